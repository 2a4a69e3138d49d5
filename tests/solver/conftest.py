"""Fixtures for the planner tests (plain helpers live in solver_helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def one_type() -> list[dict[str, Any]]:
    return [{"name": "A", "memory_gib": 80, "price_per_hour": 2.0}]
