"""Fixtures that wire the operator's test bench (gpusched/testing/harness.py) into the tests.

The bench itself (the API server stand-in, the fake kubelet, the harness) lives in the testing package
gpusched/testing/, which the wheel leaves out (CONTRIBUTING.md, "Test doubles"). This file sits at the
top of tests/ so that the scheduler tests and the e2e suite (tests/e2e) share one set of fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported in the fixtures: the solver and simulator tests need no Kubernetes client
    from gpusched.testing.apiserver import FakeKubeAPI
    from gpusched.testing.harness import Harness


@pytest.fixture
def e2e() -> SimpleNamespace:
    """The harness module's helpers, for tests that drive the bench step by step."""
    from gpusched.testing.harness import (
        CLUSTER_NODES,
        E2E_LABEL,
        NODE_LEASE_NAMESPACE,
        ROOT,
        ensure_namespace,
        install_crds,
        node_body,
        register_node,
        stand_in_harness,
        sweep_stale_runs,
        wait_for,
    )

    return SimpleNamespace(
        stand_in_harness=stand_in_harness,
        install_crds=install_crds,
        ensure_namespace=ensure_namespace,
        sweep_stale_runs=sweep_stale_runs,
        node_body=node_body,
        register_node=register_node,
        wait_for=wait_for,
        E2E_LABEL=E2E_LABEL,
        NODE_LEASE_NAMESPACE=NODE_LEASE_NAMESPACE,
        CLUSTER_NODES=CLUSTER_NODES,
        ROOT=ROOT,
    )


@pytest.fixture
def fake_api() -> Iterator[FakeKubeAPI]:
    from gpusched.testing.apiserver import FakeKubeAPI

    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The bench on a real cluster when GPUSCHED_E2E_KUBECONFIG names one, else on the stand-in."""
    from gpusched.testing.harness import (
        E2E_KUBECONFIG,
        E2E_OPERATOR_KUBECONFIG,
        E2E_OPERATOR_SA,
        Harness,
        stand_in_harness,
    )

    if E2E_KUBECONFIG:
        h = Harness.open(
            E2E_KUBECONFIG,
            None,
            tmp_path,
            operator_kubeconfig=E2E_OPERATOR_KUBECONFIG,
            operator_sa=E2E_OPERATOR_SA,
        )
        try:
            yield h
        finally:
            h.close()
        return
    with stand_in_harness(tmp_path) as h:
        yield h
