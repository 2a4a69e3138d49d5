"""What every `gpusched` subcommand needs to report a user's mistake the same way.

Kept apart from gpusched/cli.py (which imports the subcommand modules) so those modules can import
it, and light: typer and rich only.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from gpusched.safeio import shown
from gpusched.units import parse_duration_hours

EXIT_INPUT = 2
EXIT_PLAN_INCOMPLETE = 3
"""`gpusched plan`: the plan is returned and written, but some jobs cannot run as asked."""
_err = Console(stderr=True)


PIPED_WIDTH = 160
"""Table width when stdout is a file or pipe: rich's default of 80 wraps plan tables mid-word."""


def report_console(min_width: int = PIPED_WIDTH, *, stderr: bool = False) -> Console:
    """The console a command prints its report on: the terminal's width, else COLUMNS, else wide.

    Piped output (a file, `less`, CI logs) gets at least `min_width` columns instead of rich's 80.
    `stderr=True` when stdout carries a document (`-o -`).
    """
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or "COLUMNS" in os.environ:
        return Console(stderr=stderr)
    return Console(width=max(PIPED_WIDTH, min_width), stderr=stderr)


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
    print_error(message)
    return typer.Exit(code)


def print_error(message: str) -> None:
    """'error: <message>' on stderr as one line (the message is text, never rich markup)."""
    from rich.markup import escape

    flat = " ".join(str(message).split())
    _err.print(f"[bold red]error:[/] {escape(flat)}", highlight=False, soft_wrap=True)


def duration_option(value: str, option: str, *, allow_zero: bool = False) -> float:
    """Hours of a duration option such as '--interval 5s'; exits 2 with one line when it is bad."""
    try:
        hours = parse_duration_hours(value)
    except ValueError as exc:
        raise fail(f"{option}: {exc}") from None
    if hours < 0 or (hours == 0 and not allow_zero):
        raise fail(f"{option}: must be {'non-negative' if allow_zero else 'positive'} (got {value!r})")
    return hours


def finite_option(
    value: float | None,
    option: str,
    *,
    minimum: float = 0.0,
    maximum: float = 1e6,
    allow_min: bool = False,
) -> float | None:
    """A float option (seconds, a price): finite, within (minimum, maximum]; exits 2 naming it if not."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise fail(f"{option}: {shown(value)} is not a finite number (expected a number such as 10)")
    low_ok = value >= minimum if allow_min else value > minimum
    if not low_ok or value > maximum:
        bound = ">=" if allow_min else ">"
        raise fail(f"{option}: {value:g} is out of range (expected {bound} {minimum:g} and <= {maximum:g})")
    return value


def require_plotly(option: str) -> None:
    """HTML charts need plotly (the `charts` extra): say so before any work, as an input error."""
    import importlib.util

    if importlib.util.find_spec("plotly") is None:
        raise fail(f"{option}: an .html chart needs plotly (pip install 'gpusched[charts]'; or use .png)")


MAX_PLAN_SLOTS = 3000
"""Largest planning model a command builds: 30 days at 15 minutes. More slots than this builds a MILP
that does not finish in any time limit, so it is refused at the option, not discovered in the solver."""


def check_plan_size(horizon_h: float, slot_h: float, horizon: str, slot: str) -> None:
    """--slot no longer than --horizon, and not so many slots that the model cannot be built."""
    if slot_h > horizon_h:
        raise fail(
            f"--slot: {shown(slot)} is longer than --horizon {shown(horizon)} (expected a shorter slot)"
        )
    slots = math.ceil(horizon_h / slot_h - 1e-9)
    if slots > MAX_PLAN_SLOTS:
        raise fail(
            f"--horizon/--slot: {shown(horizon)} in slots of {shown(slot)} is {slots:,} slots "
            f"(at most {MAX_PLAN_SLOTS:,}: use a longer --slot or a shorter --horizon)"
        )


# ----------------------------------------------------------------------- the parser's own errors

_QUOTED_LONG = re.compile(r"'([^']{60,})'")


def _cut_values(text: str) -> str:
    """The parser quotes the bad value in its message: keep that short and printable."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    text = _QUOTED_LONG.sub(lambda m: m.group(0)[:56] + "...'", text)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def _param_name(param: Any) -> str:
    opts: Sequence[str] = getattr(param, "opts", ()) or ()
    longs = [o for o in opts if o.startswith("--")]
    if longs:
        return longs[0]
    if opts:
        return opts[0]
    return str(getattr(param, "human_readable_name", None) or getattr(param, "name", "?"))


def _given_value(param: Any, args: Sequence[str]) -> str | None:
    """The text the user gave for `param` (the parser's message does not always quote it)."""
    opts = set(getattr(param, "opts", ()) or ())
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if eq and name in opts:
            return value
        if arg in opts and i + 1 < len(args):
            return args[i + 1]
    return None


def usage_error_line(exc: Any, args: Sequence[str] = ()) -> str:
    """click's usage error (bad choice, missing or unknown option) as one 'where: what (expected)'."""
    from typer._click import exceptions as cx

    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "gpusched"
    help_hint = f"see '{command} --help'"
    if isinstance(exc, cx.MissingParameter):
        where = _param_name(exc.param) if exc.param is not None else command
        return f"{where}: missing ({exc.param_type or 'a value'} required; {help_hint})"
    if isinstance(exc, cx.BadParameter):
        where = _param_name(exc.param) if exc.param is not None else command
        message = (
            exc.message[len("Value error, ") :] if exc.message.startswith("Value error, ") else exc.message
        )
        given = _given_value(exc.param, args) if exc.param is not None else None
        got = f" (got {shown(given)})" if given is not None and repr(given)[:20] not in message else ""
        return f"{where}: {_cut_values(message.rstrip('.'))}{got}"
    if isinstance(exc, cx.NoSuchOption):
        maybe = f"did you mean {', '.join(sorted(exc.possibilities))}?" if exc.possibilities else help_hint
        return f"{_cut_values(exc.option_name)}: no such option for {command} ({maybe})"
    if isinstance(exc, cx.BadOptionUsage):
        return f"{exc.option_name}: {_cut_values(exc.message)}"
    message = _cut_values(exc.format_message() if hasattr(exc, "format_message") else str(exc))
    return f"{command}: {message.rstrip('.')} ({help_hint})"


def escape_help_markup(group: Any) -> None:
    """Help texts are text, not rich markup: '[default: all]' in a help string is shown, not eaten.

    typer renders help through rich markup, which drops any '[word...]' it takes for a tag; the
    '[default: x]' typer adds itself is appended after this, so only the authors' text is escaped.
    """
    if getattr(group, "rich_markup_mode", None) != "rich":
        return
    from rich.markup import escape

    seen: set[int] = set()
    stack = [group]
    while stack:
        command = stack.pop()
        if id(command) in seen or getattr(command, "_help_escaped", False):
            continue
        seen.add(id(command))
        command._help_escaped = True  # a second main() in one process must not escape twice
        for attr in ("help", "short_help", "epilog"):
            text = getattr(command, attr, None)
            if isinstance(text, str) and "[" in text:
                setattr(command, attr, escape(text))
        for param in getattr(command, "params", ()):
            text = getattr(param, "help", None)
            if isinstance(text, str) and "[" in text:
                param.help = escape(text)
        stack.extend(getattr(command, "commands", {}).values())


class OneLineErrors(TyperGroup):
    """The command group: the parser's usage errors become one 'error:' line and exit 2.

    typer's own report is a boxed, multi-line panel; every other error of every command is one line
    (docs/errors.md), so this keeps typer's parsing and replaces only its report. Anything that is
    not a usage error (a bug) still propagates with its traceback.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from typer._click import exceptions as cx

        escape_help_markup(self)
        given = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                args=given, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
        except cx.NoArgsIsHelpError as exc:
            if not standalone_mode:
                raise
            typer.echo(exc.ctx.get_help())
            sys.exit(0)
        except cx.ClickException as exc:
            if not standalone_mode:
                raise
            print_error(usage_error_line(exc, given))
            sys.exit(EXIT_INPUT)
        except typer.Abort:
            if not standalone_mode:
                raise
            print_error("aborted")
            sys.exit(1)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)
