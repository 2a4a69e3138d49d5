"""Live progress of `gpusched plan` on stderr: stage, incumbent, proven bound, gap, elapsed.

Only on a terminal (a pipe or a log file gets nothing of it) and never under -q: stdout stays the
plan's. The planner calls `update` through plan(progress=...); rich redraws one line in place.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from gpusched.solver.progress import Progress, ProgressCallback


def _line(p: Progress, limit: float | None) -> Text:
    text = Text("planning ", style="bold")
    text.append(f"{p.elapsed:5.1f}s")
    if limit is not None:
        text.append(f" / {limit:g}s")
    text.append(f"  stage {p.stage:<22}")
    if p.incumbent is not None:
        text.append(f"  plan {p.incumbent:.6g}")
    if p.bound is not None:
        text.append(f"  bound {p.bound:.6g}")
    if p.gap is not None:
        text.append(f"  gap {p.gap:.2%}", style="green" if p.gap <= 0.01 else "yellow")
    return text


@contextmanager
def plan_progress(
    quiet: bool, limit: float | None, stream: TextIO | None = None
) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing on `stream` (stderr) while the block runs; None (nothing drawn)
    under -q or when the stream is not a terminal."""
    stream = stream if stream is not None else sys.stderr
    if quiet or not stream.isatty():
        yield None
        return
    console = Console(file=stream, stderr=stream is sys.stderr)
    with Live(Text("planning ..."), console=console, transient=True, refresh_per_second=8) as live:

        def update(p: Progress) -> None:
            live.update(_line(p, limit))

        yield update
