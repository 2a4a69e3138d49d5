"""One logging setup (gpusched/logs.py) for every entry point; modules log under their own name."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpusched import logs
from gpusched.config import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_gpusched_logger() -> Iterator[None]:
    logger = logging.getLogger("gpusched")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_json_lines_carry_the_documented_fields_and_the_extras() -> None:
    out = io.StringIO()
    logs.setup("info", "json", stream=out)
    log = logging.getLogger("gpusched.scheduler.operator")
    log.debug("not shown at info")
    log.info("planned %d jobs", 3, extra={"job": "team-a/bert", "solve_s": 0.25})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("apply failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "planned 3 jobs" and first["level"] == "INFO"
    assert first["logger"] == "gpusched.scheduler.operator"
    assert first["job"] == "team-a/bert" and first["solve_s"] == 0.25
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", first["ts"])
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_text_is_the_default_and_the_environment_chooses_when_no_option_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    logs.setup(stream=out)
    logging.getLogger("gpusched.x").info("hidden at the default warning level")
    logging.getLogger("gpusched.x").warning("shown")
    assert out.getvalue().rstrip().endswith("WARNING gpusched.x: shown")
    assert "hidden" not in out.getvalue()

    monkeypatch.setenv(logs.ENV_FORMAT, "json")
    monkeypatch.setenv(logs.ENV_LEVEL, "debug")
    out = io.StringIO()
    logs.setup(stream=out)
    logging.getLogger("gpusched.x").debug("now shown")
    assert json.loads(out.getvalue())["msg"] == "now shown"
    out = io.StringIO()
    logs.setup("error", "text", stream=out)  # options win over the environment
    logging.getLogger("gpusched.x").warning("not shown at error")
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({"level": "loud"}, {}, "--log-level: 'loud' is not a level"),
        ({"level": "BASIC_FORMAT"}, {}, "--log-level: 'BASIC_FORMAT' is not a level"),
        ({"fmt": "xml"}, {}, "--log-format: 'xml' is not a log format"),
        ({}, {logs.ENV_FORMAT: "xml"}, "GPUSCHED_LOG_FORMAT: 'xml' is not a log format"),
        ({}, {logs.ENV_LEVEL: "chatty"}, "GPUSCHED_LOG_LEVEL: 'chatty' is not a level"),
    ],
)
def test_bad_levels_and_formats_name_where_they_came_from(
    kwargs: dict[str, str], env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError, match=re.escape(expected)):
        logs.setup(**kwargs)


def test_the_cli_refuses_a_bad_log_format_in_one_line() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GPUSCHED_LOG_FORMAT="xml")
    result = subprocess.run(
        [sys.executable, "-m", "gpusched.cli", "version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: GPUSCHED_LOG_FORMAT: 'xml' is not a log format (expected text or json)"
    ]


def test_modules_log_under_their_own_name() -> None:
    """getLogger(__name__) everywhere, so a logger's name says which module spoke."""
    named = re.compile(r"getLogger\(\s*['\"]")
    offenders = []
    for folder in ("gpusched", "solver", "agents", "scheduler", "simulations", "workload"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_relative_to(ROOT / "gpusched") and path.parent != ROOT / "gpusched":
                continue  # gpusched/<symlink>/ is the top-level folder again; gpusched/testing is tests' own
            if path == ROOT / "gpusched" / "logs.py":
                continue  # configures the `gpusched` parent logger itself
            offenders += [
                f"{path.relative_to(ROOT)}" for line in path.read_text().splitlines() if named.search(line)
            ]
    assert offenders == []
