"""Duration spellings every command and file accepts (gpusched.units)."""

from __future__ import annotations

import pytest

from gpusched.units import format_hours, parse_duration_hours


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        (2, 2.0),
        ("2.5", 2.5),
        ("90m", 1.5),
        ("1h30m", 1.5),
        ("45s", 45 / 3600),
        ("250ms", 0.25 / 3600),
        ("1d", 24.0),
        ("5m30s", 5.5 / 60),
        ("2 min", 2 / 60),
    ],
)
def test_spellings(text: object, hours: float) -> None:
    assert parse_duration_hours(text) == pytest.approx(hours)


@pytest.mark.parametrize("text", ["soon", "5x", "m5", "", True, "1h-2m"])
def test_bad_spellings_name_the_value(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration_hours(text)


def test_format_round_trips() -> None:
    assert format_hours(1.5) == "1h30m"
    assert parse_duration_hours(format_hours(2.25)) == 2.25
