"""The scenario harness (fake nodes, fake kubelet, operator runner) for tests/e2e, in one place.

The harness lives in gpusched.testing.harness (test doubles, never shipped); every tests/e2e module
takes it from here, so a move changes one line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpusched.testing import harness as harness_module


def real_cluster_or_skip() -> str:
    """The admin kubeconfig of the real cluster `python tests/e2e/run.py` started, else a skip."""
    kubeconfig = os.environ.get("GPUSCHED_E2E_KUBECONFIG")
    if not kubeconfig:
        pytest.skip("needs a real API server: `python tests/e2e/run.py` starts one (GPUSCHED_E2E_KUBECONFIG)")
    return kubeconfig


@contextlib.contextmanager
def open_harness(
    kubeconfig: str,
    tmp_path: Path,
    operator_kubeconfig: str | None = None,
    operator_sa: str | None = None,
) -> Iterator[Any]:
    """A harness on that cluster, closed (and its objects deleted) whatever the test did."""
    h = harness_module.Harness.open(
        kubeconfig, None, tmp_path, operator_kubeconfig=operator_kubeconfig, operator_sa=operator_sa
    )
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def real_harness(tmp_path: Path) -> Iterator[Any]:
    """The harness on the suite's real cluster, the operator under deploy/'s RBAC (run.py's identity)."""
    kubeconfig = real_cluster_or_skip()
    with open_harness(
        kubeconfig,
        tmp_path,
        operator_kubeconfig=os.environ.get("GPUSCHED_E2E_OPERATOR_KUBECONFIG") or None,
        operator_sa=os.environ.get("GPUSCHED_E2E_OPERATOR_SA") or None,
    ) as h:
        yield h
