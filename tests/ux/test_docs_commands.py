"""Every `gpusched` command shown in README.md and docs/*.md runs on a plain clone.

The commands are taken from the fenced code blocks themselves (a continued line joined, comments
dropped, `pip install . && gpusched ...` cut to its gpusched part) and run with bash in a temporary
copy of the working tree's files that git would clone: no `../shared/traces`, no build outputs. A
command either exits as the doc says or the test fails with its output. What cannot run here is
listed in NOT_RUN with the reason, and each entry must still match a documented command.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

NOT_RUN = {
    "gpusched agent --publish file": "a daemon that runs until stopped: tests/agents run it with a stop signal",
    "gpusched plan -c cluster.yaml -j jobs.yaml --telemetry /var/lib": "placeholder paths of a node's setup",
    "gpusched agent --once --json | tee agent-on-gpu.json": "needs a real NVIDIA GPU (tests/agents/test_real_gpu.py)",
}
"""Documented commands that cannot run on a plain clone, by prefix, with the reason (printed)."""

EXIT = {"examples/demo/jobs.yaml": 3}
"""Commands that the docs say exit non-zero: the demo plan has jobs that cannot run as asked."""

NEEDS_TRACES = "gpusched validate"
"""Reproductions of published results read the full published traces (hundreds of MB, not in a clone:
docs/validation.md). On a plain clone the documented behaviour is one line naming --traces and exit 2,
at once; the validations themselves run on cuts of those traces in tests/simulations/test_validate.py."""

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def documented_commands() -> list[tuple[str, str]]:
    """(doc, command) for every gpusched command in a fenced block of a shell (or unnamed) language."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        for match in FENCE.finditer(doc.read_text()):
            if match.group(1) not in ("", "bash", "sh", "shell", "console"):
                continue
            for line in match.group(2).replace("\\\n", " ").splitlines():
                line = _strip_comment(line.strip())
                for part in line.split("&&"):
                    part = part.strip()
                    if part.startswith("gpusched ") and "[--" not in part:  # '[--x]' is a synopsis
                        found.append((doc.relative_to(ROOT).as_posix(), " ".join(part.split())))
    return found


def _strip_comment(line: str) -> str:
    """Drop a trailing '# comment' that is outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line


def _skip_reason(command: str) -> str | None:
    for prefix, reason in NOT_RUN.items():
        if command.startswith(prefix):
            return reason
    return None


COMMANDS = documented_commands()


def test_the_docs_show_commands_and_every_not_run_entry_is_still_documented() -> None:
    assert len(COMMANDS) >= 10, COMMANDS
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for _, c in COMMANDS), f"stale NOT_RUN entry: {prefix}"
    assert not any("../shared" in c for _, c in COMMANDS), "a documented command reads ../shared"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files `git clone` would give (tracked, plus new files not ignored), and a `gpusched` on PATH."""
    target = tmp_path_factory.mktemp("clone") / "gpusched"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source, dest = ROOT / name, target / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            dest.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, dest)
    bin_dir = target.parent / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "gpusched"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m gpusched.cli "$@"\n')
    shim.chmod(0o755)
    return target


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_documented_command_runs_on_a_plain_clone(
    doc: str, command: str, clone: Path, tmp_path: Path
) -> None:
    reason = _skip_reason(command)
    if reason is not None:
        print(f"SKIP: {command}: {reason}")
        pytest.skip(reason)
    if command.startswith("gpusched train"):
        pytest.importorskip("torch", reason="gpusched train needs torch (the [train] extra)")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONPATH")}
    env["PATH"] = f"{clone.parent / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(clone)
    # A documented scratch path (/tmp/ckpt) is written under this test's own directory, not the machine's /tmp.
    runnable = re.sub(r"(?<=[ =])/tmp/", f"{tmp_path}/", command)
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {runnable}"],
        cwd=clone, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    if command.startswith(NEEDS_TRACES):
        print(f"NOTE: {command}: no published traces in a clone; checking its one-line refusal")
        assert result.returncode == 2, (command, result.returncode, result.stderr[-3000:])
        assert result.stderr.startswith("error: --traces: ") and result.stderr.count("\n") == 1, result.stderr
        return
    expected = next((code for key, code in EXIT.items() if key in command), 0)
    assert result.returncode == expected, (
        f"{doc}: `{command}` exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr
    tokens = shlex.split(command)
    for option, value in itertools.pairwise(tokens):
        if option in ("-o", "--out", "--output") and value.endswith("/"):
            assert any((clone / value).iterdir()), f"{doc}: `{command}` wrote nothing to {value}"
