"""Hypothesis profiles of the fuzz suite (docs/errors.md).

- `ci` (used unless another is asked for): derandomized, so every run tries the same inputs, and
  small enough that the whole suite runs in well under two minutes on two cores.
- `deep`: random and twenty times longer, for a hunt before a release:
  `python -m pytest tests/fuzz --hypothesis-profile=deep` (or GPUSCHED_FUZZ_PROFILE=deep).

The profiles are only registered here; the fuzz tests pick theirs (tests/fuzz/test_fuzz_cli.py), so
loading this file changes nothing for the other Hypothesis tests of the session.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # a command's run time is not what is under test
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    "print_blob": True,
}
settings.register_profile("ci", derandomize=True, database=None, max_examples=10, **_COMMON)
settings.register_profile("deep", derandomize=False, max_examples=200, **_COMMON)
