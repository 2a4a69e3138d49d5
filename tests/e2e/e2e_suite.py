"""pytest plugin (`-p e2e_suite`): select the e2e suite, the tests that talk to a real cluster.

The suite is every test that takes the scenario harness (tests/conftest.py `harness`) or is
marked `e2e`; the rest of tests/ never touches GPUSCHED_E2E_KUBECONFIG and has run already in the unit
pass. With GPUSCHED_E2E_DESELECT_KNOWN=1 the tests in KNOWN_FAILURES are deselected, each with its
reason printed: scenarios that fail on the real server for an operator bug not fixed yet (issue #12).
Keep this list the one place such exceptions live, and empty it as the fixes land.
"""

from __future__ import annotations

import os

import pytest

KNOWN_FAILURES: dict[str, str] = {}
"""Test node id (as pytest prints it, relative to the repository root) -> why it fails on the real server."""


def _wanted(item: pytest.Item) -> bool:
    return "harness" in getattr(item, "fixturenames", ()) or item.get_closest_marker("e2e") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_known = os.environ.get("GPUSCHED_E2E_DESELECT_KNOWN", "") not in ("", "0")
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if not _wanted(item):
            dropped.append(item)
        elif skip_known and item.nodeid in KNOWN_FAILURES:
            print(f"\n[e2e] deselected {item.nodeid}: {KNOWN_FAILURES[item.nodeid]}", flush=True)
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
