"""Durations and times as the planner sees them: float hours from the plan's epoch.

One unit everywhere (hours) keeps the solver free of conversions; the file formats accept the
human spellings ("90m", "2h", "1d", "1h30m") and ISO datetimes, resolved here once.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 1 / 3_600_000, "s": 1 / 3600, "m": 1 / 60, "min": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(min|ms|s|m|h|d|w)")


MAX_HOURS = 1_000_000.0
"""Largest duration or time offset accepted anywhere (about 114 years): beyond it a number is a typo."""

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_duration_hours(value: Any) -> float:
    """Return hours for 2, 2.5, "90m", "1h30m", "45s", "250ms", "1d"; raise ValueError otherwise.

    NaN, infinities and magnitudes past MAX_HOURS are refused: a NaN interval loops forever and a
    1e30-hour horizon builds a model that never finishes.
    """
    hours = _parse_hours(value)
    if not math.isfinite(hours):
        raise ValueError(f"expected a finite duration such as '90m' or '2h', got {_short(value)}")
    if abs(hours) > MAX_HOURS:
        raise ValueError(f"expected a duration of at most {MAX_HOURS:,.0f}h, got {_short(value)}")
    return hours


def _parse_hours(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '90m' or '2h', got {_short(value)}")
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an int past float's range
            return math.inf
    if isinstance(value, str) and len(value) <= 100:
        text = value.strip().lower().replace(" ", "")
        if _NUMBER.fullmatch(text):
            return float(text)
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos == len(text) and pos > 0:
            return total
    raise ValueError(f"expected a duration such as '90m', '2h' or '1h30m', got {_short(value)}")


def format_hours(hours: float) -> str:
    """Inverse of parse_duration_hours for display: 1.5 -> '1h30m'."""
    if hours != hours or hours in (float("inf"), float("-inf")):
        return str(hours)
    sign = "-" if hours < 0 else ""
    minutes = round(abs(hours) * 60)
    h, m = divmod(minutes, 60)
    if h and m:
        return f"{sign}{h}h{m:02d}m"
    if h:
        return f"{sign}{h}h"
    return f"{sign}{m}m"


def parse_datetime(value: Any) -> datetime | None:
    """An ISO-8601 datetime (naive means UTC), or None when value is not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and ("T" in value or re.match(r"^\d{4}-\d{2}-\d{2}", value)):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def hours_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


Hours = Annotated[float, BeforeValidator(parse_duration_hours)]
"""A duration or a time offset from the epoch, in hours; accepts '90m', '2h', numbers."""
