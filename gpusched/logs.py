"""One logging setup for every entry point (plan, simulate, capacity, validate, operator, agent).

Modules log to `logging.getLogger(__name__)`, all under the `gpusched` logger; `setup` gives that
logger one handler on stderr, as text for people (the CLIs' default) or one JSON object per line for
log collectors (the operator's default): `ts`, `level`, `logger`, `msg`, and the `extra=` fields of
each call as keys. The JSON is python-json-logger's. GPUSCHED_LOG_LEVEL and GPUSCHED_LOG_FORMAT
choose where the command has no option of its own.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from gpusched.config import InputError
from gpusched.safeio import shown

ENV_LEVEL = "GPUSCHED_LOG_LEVEL"
ENV_FORMAT = "GPUSCHED_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _level(value: str, where: str) -> int:
    number = logging.getLevelName(value.strip().upper())
    if not isinstance(number, int):
        raise InputError(f"{where}: {shown(value)} is not a level (expected debug, info, warning or error)")
    return number


def json_formatter() -> logging.Formatter:
    """python-json-logger, with the field names docs/operator.md promises."""
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # an extra of the operator and the agent, not of the planner
        raise InputError(
            "JSON logs need python-json-logger (expected it installed: pip install 'gpusched[k8s]')"
        ) from None

    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "message": "msg", "exc_info": "exc"},
        timestamp="ts",
    )


def setup(
    level: str | None = None,
    fmt: str | None = None,
    *,
    default_level: str = "warning",
    default_format: str = "text",
    stream: TextIO | None = None,
) -> None:
    """Configure the `gpusched` logger: `level`/`fmt` as given, else from the environment, else the
    defaults. A bad level or format is an InputError naming where it came from. Calling it again
    replaces the handler, so a subcommand may refine what `gpusched` set up at start."""
    where_level = "--log-level" if level is not None else ENV_LEVEL
    chosen_level = level if level is not None else os.environ.get(ENV_LEVEL) or default_level
    number = _level(chosen_level, where_level)
    chosen_format = (fmt if fmt is not None else os.environ.get(ENV_FORMAT) or default_format).strip().lower()
    if chosen_format not in FORMATS:
        where = "--log-format" if fmt is not None else ENV_FORMAT
        raise InputError(f"{where}: {shown(chosen_format)} is not a log format (expected text or json)")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if chosen_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger("gpusched")
    root.handlers[:] = [handler]
    root.setLevel(number)
    # Records still reach handlers on the root logger (pytest's caplog); entry points configure none.
    root.propagate = True
