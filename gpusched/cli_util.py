"""What every `gpusched` subcommand needs to report a user's mistake the same way.

Kept apart from gpusched/cli.py (which imports the subcommand modules) so those modules can import
it, and light: typer and rich only.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from gpusched.units import parse_duration_hours

EXIT_INPUT = 2
_err = Console(stderr=True)


PIPED_WIDTH = 160
"""Table width when stdout is a file or pipe: rich's default of 80 wraps plan tables mid-word."""


def report_console(min_width: int = PIPED_WIDTH) -> Console:
    """The console a command prints its report on: the terminal's width, else COLUMNS, else wide.

    Piped output (a file, `less`, CI logs) gets at least `min_width` columns instead of rich's 80.
    """
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=max(PIPED_WIDTH, min_width))


def widen_piped_help() -> None:
    """--help piped to a file or `less` is as wide as piped reports, not cut at 80 with ellipses.

    typer reads its help width once, from TERMINAL_WIDTH, into typer.rich_utils.MAX_WIDTH; an
    explicit TERMINAL_WIDTH or COLUMNS, or a terminal, is left alone.
    """
    if sys.stdout.isatty() or "COLUMNS" in os.environ or "TERMINAL_WIDTH" in os.environ:
        return
    from typer import rich_utils

    if getattr(rich_utils, "MAX_WIDTH", None) is None:
        rich_utils.MAX_WIDTH = PIPED_WIDTH


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Print one 'error: ...' line to stderr and return the Exit to raise."""
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def duration_option(value: str, option: str, *, allow_zero: bool = False) -> float:
    """Hours of a duration option such as '--interval 5s'; exits 2 with one line when it is bad."""
    try:
        hours = parse_duration_hours(value)
    except ValueError as exc:
        raise fail(f"{option}: {exc}") from None
    if hours < 0 or (hours == 0 and not allow_zero):
        raise fail(f"{option}: must be {'non-negative' if allow_zero else 'positive'} (got {value!r})")
    return hours
