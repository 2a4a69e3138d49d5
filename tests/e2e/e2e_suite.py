"""pytest plugin (`-p e2e_suite`): select the e2e suite, the tests that talk to a real cluster.

The suite is every test that takes the scenario harness (tests/conftest.py `harness`) or is
marked `e2e`; the rest of tests/ never touches GPUSCHED_E2E_KUBECONFIG and has run already in the unit
pass. With GPUSCHED_E2E_DESELECT_KNOWN=1 the tests in KNOWN_FAILURES are deselected, each with its
reason printed: scenarios that fail on the real server for an operator bug not fixed yet (issue #12).
Keep this list the one place such exceptions live, and empty it as the fixes land.

The scenarios that make the stand-in misbehave on purpose (fail one request, forget its watch history,
read its request log) skip on a real server; each has a real-server counterpart in
tests/e2e/test_real_counterparts.py (COUNTERPARTS), which runs in its place: the stand-in test is
deselected here, with the name of the test that replaces it printed.
"""

from __future__ import annotations

import os

import pytest

KNOWN_FAILURES: dict[str, str] = {}
"""Test node id (as pytest prints it, relative to the repository root) -> why it fails on the real server."""

_REAL = "tests/e2e/test_real_counterparts.py::"
COUNTERPARTS: dict[str, str] = {
    "tests/scheduler/test_scenarios.py::test_gang_is_withdrawn_when_one_worker_cannot_be_bound": _REAL
    + "test_real_gang_is_withdrawn_when_one_worker_cannot_be_bound",
    "tests/scheduler/test_scenarios.py::test_watches_resume_after_410_gone": _REAL
    + "test_real_watches_resume_after_410_gone",
    "tests/scheduler/test_deploy.py::test_operator_rbac_is_least_privilege_and_covers_every_request_it_makes": _REAL
    + "test_real_operator_requests_are_the_rbac_allowed_ones_in_the_audit_log",
}
"""Stand-in-only scenario -> the real-server test that checks the same on kube-apiserver."""


def _wanted(item: pytest.Item) -> bool:
    return "harness" in getattr(item, "fixturenames", ()) or item.get_closest_marker("e2e") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_known = os.environ.get("GPUSCHED_E2E_DESELECT_KNOWN", "") not in ("", "0")
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    ids = {item.nodeid for item in items}
    for item in items:
        if not _wanted(item):
            dropped.append(item)
        elif item.nodeid in COUNTERPARTS and COUNTERPARTS[item.nodeid] in ids:
            print(
                f"\n[e2e] {item.nodeid} needs the stand-in: {COUNTERPARTS[item.nodeid]} runs instead",
                flush=True,
            )
            dropped.append(item)
        elif skip_known and item.nodeid in KNOWN_FAILURES:
            print(f"\n[e2e] deselected {item.nodeid}: {KNOWN_FAILURES[item.nodeid]}", flush=True)
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
