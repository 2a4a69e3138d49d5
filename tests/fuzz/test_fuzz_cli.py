"""Hostile inputs to every command, in-process: a clean success or exactly one `error:` line and exit 2.

The inputs are the shipped examples (examples/) mutated the ways real files go wrong -- a value of
the wrong type, NaN or infinity, 1e30 or 2**63, a deleted or duplicated entry, a key given twice,
nesting hundreds deep, UTF-16, binary bytes, truncation, a directory where a file belongs -- and
option values of the same kinds. Each command runs through its real entry point (the typer app, or
`python -m gpusched.workload`'s main) and must end in one of:

- its documented success codes (docs/errors.md), or
- exit 2 with exactly one stderr line starting with `error:`, no traceback, and no output file.

Seeded (the `ci` profile is derandomized) and sized for CI; `--hypothesis-profile=deep` runs longer.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gpusched.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def _profile() -> settings:
    wanted = os.environ.get("GPUSCHED_FUZZ_PROFILE") or settings.get_current_profile_name()
    return settings.get_profile("deep" if wanted == "deep" else "ci")


def fuzz(examples: int) -> settings:
    """The suite's profile with `examples` examples in `ci` (twenty times more in `deep`)."""
    base = _profile()
    scale = 20 if base.derandomize is False else 1
    return settings(base, max_examples=examples * scale)


# ------------------------------------------------------------------------------------ values

NASTY_NUMBERS = [math.nan, math.inf, -math.inf, 1e30, -1e30, 2**63, -(2**63), 10**400, 0, -1, 0.0, 1e-300]
NASTY_SCALARS = [
    *NASTY_NUMBERS,
    True,
    False,
    None,
    "",
    "x",
    "nan",
    "inf",
    "1e999",
    "2h",
    "-5m",
    "2026-13-45T99:00:00Z",
    "\x00\x01",
    "../../etc/passwd",
    "A" * 5000,
    [],
    {},
    1.5,
    7,
]
NASTY_TEXT = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e30",
    "1e999",
    str(2**63),
    str(-(2**63)),
    "-1",
    "0",
    "",
    " ",
    "true",
    "abc",
    "1h30",
    "\x00",
    "Z" * 2000,
    "../x",
    "1,2,,3",
]


def nasty_scalar() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(NASTY_SCALARS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
    )


# ----------------------------------------------------------------------- document mutations


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, (*prefix, i))


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@st.composite
def mutated_tree(draw: st.DrawFn, original: Any) -> Any:
    """The document with one to three mutations at random places."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate", "nest", "flip"]))
        if not path:
            if op in ("replace", "flip"):
                data = draw(nasty_scalar())
            elif op == "nest":
                data = _nest(data, draw(st.integers(2, 200)))
            continue
        parent = _get(data, path[:-1])
        key = path[-1]
        if op == "replace":
            parent[key] = draw(nasty_scalar())
        elif op == "flip":  # same value, other type: 8 -> "8" / 8.0 / true, "x" -> 1
            value = parent[key]
            parent[key] = draw(st.sampled_from([str(value), [value], {"v": value}, bool(value), 1]))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate":
            if isinstance(parent, list):
                parent.append(copy.deepcopy(parent[key]))
            else:
                parent[f"{key}"] = copy.deepcopy(parent[key])
        elif op == "nest":
            parent[key] = _nest(parent[key], draw(st.integers(2, 200)))
    return data


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def document_bytes(draw: st.DrawFn, path: Path) -> bytes:
    """A mutated YAML/JSON example, serialised one of the ways files arrive."""
    text = path.read_text(encoding="utf-8")
    original = yaml.safe_load(text)
    how = draw(
        st.sampled_from(
            [
                "tree-yaml",
                "tree-yaml",
                "tree-json",
                "dup-key",
                "raw-bytes",
                "truncate",
                "deep-text",
                "encoding",
            ]
        )
    )
    if how in ("tree-yaml", "tree-json"):
        data = draw(mutated_tree(original))
        try:
            if how == "tree-json":
                return json.dumps(data, default=str).encode()
            return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")
        except (RecursionError, ValueError, OverflowError):
            return text.encode()
    if how == "dup-key":  # a key line given twice (the last silently won)
        lines = text.splitlines()
        keyed = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
        i = draw(st.sampled_from(keyed))
        lines.insert(i + 1, lines[i])
        return "\n".join(lines).encode()
    if how == "raw-bytes":
        data = text.encode()
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if how == "truncate":
        data = text.encode()
        return data[: draw(st.integers(0, len(data)))]
    if how == "deep-text":
        depth = draw(st.sampled_from([100, 1000, 20000]))
        return ("jobs: " + "[" * depth + "]" * depth + "\n").encode()
    codec = draw(st.sampled_from(["utf-16", "utf-32", "utf-8-sig", "latin-1"]))
    return text.replace("name", "nämé").encode(codec, errors="replace")


@st.composite
def csv_bytes(draw: st.DrawFn, path: Path) -> bytes:
    """A mutated CSV trace: a bad cell, a lost column, a duplicated row, garbage or another encoding."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    how = draw(st.sampled_from(["cell", "cell", "cell", "column", "row", "extra", "raw", "encoding", "huge"]))
    if how == "cell":
        for _ in range(draw(st.integers(1, 3))):
            r = draw(st.integers(1, len(rows) - 1))
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=20)))
    elif how == "column":
        c = draw(st.integers(0, len(rows[0]) - 1))
        rows = [row[:c] + row[c + 1 :] for row in rows]
    elif how == "row":
        r = draw(st.integers(1, len(rows) - 1))
        rows.insert(r, list(rows[r]))
    elif how == "extra":
        r = draw(st.integers(1, len(rows) - 1))
        rows[r] = [*rows[r], "surplus"]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    data = out.getvalue().encode()
    if how == "raw":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    elif how == "encoding":
        data = codecs.BOM_UTF16_LE + out.getvalue().encode("utf-16-le")
    elif how == "huge":
        data = data.rstrip(b"\n") + b"," + b"9" * 200_000 + b"\n"
    return data


# ------------------------------------------------------------------------------- assertions


def check(result: Any, ok: tuple[int, ...] = (0,), outputs: tuple[Path, ...] = ()) -> None:
    """The contract of docs/errors.md for one run."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc  # a traceback: the bug itself, with its stack
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    if result.exit_code in ok:
        return
    assert result.exit_code == 2, f"exit {result.exit_code}: {stderr[-2000:]}"
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert len(lines[0]) < 1000, f"error line of {len(lines[0])} chars"
    for out in outputs:
        if out.is_dir():
            assert not any(out.iterdir()), f"{out} has files after an error: {sorted(os.listdir(out))}"
        else:
            assert not out.exists(), f"{out} was written although the run failed"


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gpusched-fuzz-") as d:
        yield Path(d)


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------ plan

PLAN_OK = (0, 3)
"""`gpusched plan` exits 3 when the plan it returns (and writes) has jobs that cannot run as asked."""

PLAN_OPTIONS = {
    "--horizon": ["8h", "4h", "nan", "inf", "1e30", "0", "-1h", "100000h", "3h", "1h30m", "Z" * 500],
    "--slot": ["1h", "30m", "nan", "0", "-15m", "1s", "1e-9", "2h"],
    "--time-limit": ["0.5", "1", "nan", "inf", "0", "-1", "1e30"],
    "--policy": ["cost", "jct", "makespan", "deadline", "fair", "bogus", "\x00"],
    "--now": ["2026-11-23T09:00:00Z", "not-a-time", "2026-02-30T00:00:00Z", "1e30"],
}


@given(data=st.data())
@fuzz(12)
def test_plan_with_mutated_files(data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(["demo", "seed"]), label="example")
    mutate = data.draw(st.sampled_from(["cluster", "jobs", "both"]), label="mutate")
    with workdir() as d:
        cluster = EXAMPLES / which / "cluster.yaml"
        jobs = EXAMPLES / which / "jobs.yaml"
        if mutate in ("cluster", "both"):
            cluster = write(d, "cluster.yaml", data.draw(document_bytes(cluster), label="cluster"))
        if mutate in ("jobs", "both"):
            jobs = write(d, "jobs.yaml", data.draw(document_bytes(jobs), label="jobs"))
        out, chart = d / "plan.json", d / "chart.html"
        args = ["plan", "-c", str(cluster), "-j", str(jobs), "--horizon", "4h", "--slot", "1h",
                "--time-limit", "0.5", "-q", "-o", str(out), "--chart", str(chart)]  # fmt: skip
        check(runner.invoke(app, args), ok=PLAN_OK, outputs=(out, chart))


@given(data=st.data())
@fuzz(14)
def test_plan_with_hostile_options(data: st.DataObject) -> None:
    chosen = data.draw(
        st.dictionaries(st.sampled_from(sorted(PLAN_OPTIONS)), st.just(""), min_size=1, max_size=3),
        label="opts",
    )
    with workdir() as d:
        args = ["plan", "-c", str(EXAMPLES / "seed" / "cluster.yaml"), "-j", str(EXAMPLES / "seed" / "jobs.yaml"),
                "-q", "--time-limit", "0.5", "--horizon", "3h", "--slot", "1h"]  # fmt: skip
        for option in chosen:
            args += [option, data.draw(st.sampled_from(PLAN_OPTIONS[option]), label=option)]
        target = data.draw(st.sampled_from(["ok", "missing-dir", "is-dir", "bad-suffix"]), label="output")
        out = {
            "ok": d / "p.yaml",
            "missing-dir": d / "nope" / "p.json",
            "is-dir": d,
            "bad-suffix": d / "p.txt",
        }[target]
        chart = (
            d / "missing" / "c.png" if data.draw(st.booleans(), label="chart-missing-dir") else d / "c.png"
        )
        args += ["-o", str(out), "--chart", str(chart)]
        result = runner.invoke(app, args)
        check(result, ok=PLAN_OK, outputs=tuple(p for p in (out, chart) if p != d))


def test_plan_telemetry_dir_that_is_empty_is_named() -> None:
    with workdir() as d:
        result = runner.invoke(app, ["plan", "-c", str(EXAMPLES / "demo" / "cluster.yaml"), "-j",
                                     str(EXAMPLES / "demo" / "jobs.yaml"), "--telemetry", str(d)])  # fmt: skip
        check(result)
        assert result.exit_code == 2 and "--telemetry" in result.stderr


@given(data=st.data())
@fuzz(10)
def test_plan_with_mutated_agent_snapshots(data: st.DataObject) -> None:
    snapshot = {
        "node": "h100-0",
        "timestamp": "2026-11-23T09:00:00Z",
        "gpus": [
            {"index": i, "uuid": f"GPU-{i}", "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559,
             "temperature_c": 40, "health": "healthy"}
            for i in range(8)
        ],
    }  # fmt: skip
    with workdir() as d:
        snaps = d / "snaps"
        snaps.mkdir()
        source = d / "snap.json"
        source.write_text(json.dumps(snapshot))
        write(snaps, "h100-0.json", data.draw(document_bytes(source), label="snapshot"))
        args = ["plan", "-c", str(EXAMPLES / "demo" / "cluster.yaml"), "-j", str(EXAMPLES / "seed" / "jobs.yaml"),
                "--telemetry", str(snaps), "-q", "--time-limit", "0.5", "--horizon", "3h", "--slot", "1h"]  # fmt: skip
        check(runner.invoke(app, args), ok=PLAN_OK)


# -------------------------------------------------------------------------------- simulate

SIM_OPTIONS = {
    "--policy": ["fifo", "las", "sjf", "gpusched:jct", "gavel", "bogus", "\x00" * 3],
    "--replan": ["5m", "nan", "0", "-1m", "inf"],
    "--plan-time-limit": ["0.2", "0", "nan", "-1", "inf", "1e30"],
    "--mtbf": ["5000h", "nan", "0", "inf", "-1h", "1e30"],
    "--mttr": ["2h", "nan", "0", "inf"],
    "--las-thresholds": ["1,16", "nan,16", "16,1", "inf", "-1", "", "a,b"],
    "--las-starvation": ["4h", "nan", "0"],
    "--gavel-round": ["6m", "nan", "0", "1e30"],
    "--start": ["0", "1h", "nan", "-1h", "1e30"],
    "--end": ["10h", "nan", "0", "1e30"],
    "--limit": ["3", "0", "-1", str(2**63), "abc"],
    "--seed": ["0", "-1", str(2**63), "x"],
    "--restart-overhead": ["0m", "nan", "-1m"],
    "--plan-window": ["8", "0", str(2**63)],
    "--format": ["csv", "philly", "openb", "bogus"],
}


@given(data=st.data())
@fuzz(12)
def test_simulate_with_mutated_trace_and_cluster(data: st.DataObject) -> None:
    with workdir() as d:
        trace = write(d, "trace.csv", data.draw(csv_bytes(EXAMPLES / "traces" / "tiny.csv"), label="trace"))
        cluster = EXAMPLES / "sim" / "cluster.yaml"
        if data.draw(st.booleans(), label="mutate-cluster"):
            cluster = write(d, "cluster.yaml", data.draw(document_bytes(cluster), label="cluster"))
        out = d / "out"
        args = ["simulate", "-c", str(cluster), "-t", str(trace), "-o", str(out),
                "--policy", data.draw(st.sampled_from(["fifo", "las", "gpusched:jct"]), label="policy"),
                "--plan-time-limit", "0.2"]  # fmt: skip
        result = runner.invoke(app, args)
        check(result, outputs=(out,) if out.exists() else ())
        if result.exit_code == 2:
            assert not out.exists() or not any(out.iterdir())


@given(data=st.data())
@fuzz(12)
def test_simulate_with_hostile_options(data: st.DataObject) -> None:
    chosen = data.draw(
        st.dictionaries(st.sampled_from(sorted(SIM_OPTIONS)), st.just(""), min_size=1, max_size=3),
        label="opts",
    )
    with workdir() as d:
        args = ["simulate", "-c", str(EXAMPLES / "sim" / "cluster.yaml"), "-t", str(EXAMPLES / "traces" / "tiny.csv"),
                "--plan-time-limit", "0.2"]  # fmt: skip
        for option in chosen:
            args += [option, data.draw(st.sampled_from(SIM_OPTIONS[option]), label=option)]
        where = data.draw(st.sampled_from(["new", "file", "under-file"]), label="out")
        blocker = d / "blocker"
        blocker.write_text("x")
        out = {"new": d / "out", "file": blocker, "under-file": blocker / "out"}[where]
        result = runner.invoke(app, [*args, "-o", str(out)])
        check(result, outputs=(d / "out",) if where == "new" and (d / "out").exists() else ())
        if where != "new":
            assert result.exit_code == 2 and blocker.read_text() == "x"


@given(data=st.data())
@fuzz(6)
def test_simulate_with_mutated_synthetic_spec(data: st.DataObject) -> None:
    with workdir() as d:
        base = d / "base.yaml"
        base.write_text("jobs: 12\nload: 0.7\nmax_gpus: 8\nmax_duration_h: 4\n")
        spec = write(d, "spec.yaml", data.draw(document_bytes(base), label="spec"))
        args = ["simulate", "-c", str(EXAMPLES / "sim" / "cluster.yaml"), "-t", str(spec), "-f", "synthetic",
                "--limit", "40"]  # fmt: skip
        check(runner.invoke(app, args))


# -------------------------------------------------------------------------------- capacity

CAPACITY_OPTIONS = {
    "--slo": ["p95_queue<=1h", "p95_queue<=nan", "avg_jct<=inf", "bogus", "p99_jct<=0"],
    "--gpu-types": [
        "A100:2.5:1.4",
        "A100:nan:1",
        "A100:inf:1",
        "A100:-1:1",
        "A100:1:0",
        "A100",
        "A:1:1,A:1:1",
    ],
    "--prices": ["A100=3", "A100=nan", "A100=-1", "A100=inf", "X=1", "A100"],
    "--reserved-discount": ["0.4", "nan", "-0.1", "2", "inf"],
    "--budget": ["100000", "nan", "-1", "inf", "0"],
    "--utilisations": ["0.5,0.8", "nan", "0", "1.5", "a", ""],
    "--node-gpus": ["8", "0", str(2**63), "-1"],
    "--what-if": [
        "+16 A100",
        "+99999999999999 A100",
        "lose node x",
        "demand +30%",
        "demand -100%",
        "garbage",
    ],
    "--limit": ["10", "0", str(2**63)],
}


@given(data=st.data())
@fuzz(8)
def test_capacity_with_hostile_options(data: st.DataObject) -> None:
    chosen = data.draw(
        st.dictionaries(st.sampled_from(sorted(CAPACITY_OPTIONS)), st.just(""), min_size=1, max_size=2),
        label="opts",
    )
    with workdir() as d:
        args = ["capacity", "-w", "jobs=15,rate_per_hour=6,max_gpus=4", "--slo", "p95_queue<=2h",
                "--gpu-types", "A100:2.5:1.4", "--utilisations", "0.6,0.8"]  # fmt: skip
        for option in chosen:
            args += [option, data.draw(st.sampled_from(CAPACITY_OPTIONS[option]), label=option)]
        out = d / "out"
        result = runner.invoke(app, [*args, "-o", str(out)])
        check(result, ok=(0, 1), outputs=(out,) if out.exists() else ())


# ----------------------------------------------------------------------------------- agent

AGENT_OPTIONS = {
    "--interval": ["5s", "nan", "0", "-1s", "inf", "1e30"],
    "--heartbeat": ["30s", "nan", "0"],
    "--poll-timeout": ["2s", "nan", "0", "inf"],
    "--node-name": ["node-1", "../x", "a/b", "", ".", "..", "x" * 300, "\x00"],
    "--label": ["a=b", "nokey", "=v"],
    "--log-level": ["info", "bogus", "BASIC_FORMAT"],
    "--publish": ["none", "file", "k8s-nope"],
}

HEALTH = (
    "xid_ignored: [13, 31]\necc_uncorrected_max: 0\ntemperature_degraded_c: 85\n"
    "temperature_unhealthy_c: 95\npower_degraded_ratio: 1.05\nremapped_rows_pending: degraded\n"
)


@given(data=st.data())
@fuzz(10)
def test_agent_once_with_hostile_options_and_health_rules(data: st.DataObject) -> None:
    chosen = data.draw(
        st.dictionaries(st.sampled_from(sorted(AGENT_OPTIONS)), st.just(""), max_size=2), label="opts"
    )
    with workdir() as d:
        base = d / "health-base.yaml"
        base.write_text(HEALTH)
        health = write(d, "health.yaml", data.draw(document_bytes(base), label="health"))
        args = ["agent", "--once", "--json", "--port", "0", "--health-config", str(health),
                "--node-name", "fuzz-node", "--output-dir", str(d / "snaps")]  # fmt: skip
        for option in chosen:
            args += [option, data.draw(st.sampled_from(AGENT_OPTIONS[option]), label=option)]
        check(runner.invoke(app, args))
        assert not (d / "x.json").exists() and not (d.parent / "x.json").exists()


def test_agent_port_in_use_is_one_line() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["agent", "--port", str(port), "--node-name", "n1", "--interval", "1h"])
    check(result)
    assert result.exit_code == 2 and f"--port: cannot serve on port {port}" in result.stderr


# -------------------------------------------------------------------------------- operator

OPERATOR_OPTIONS = {
    "--namespace": ["team-a", "Not_A/Namespace", "", "x" * 70, "\x00"],
    "--lease-name": ["gpusched-operator", "Bad Lease!", "", "a" * 300],
    "--lease-namespace": ["default", "UPPER"],
    "--time-limit": ["10", "nan", "0", "-1", "inf", "1e30"],
    "--horizon": ["24h", "nan", "1e30", "100000h"],
    "--slot": ["15m", "nan", "0", "1s"],
    "--replan-interval": ["30s", "nan", "0", "inf"],
    "--stale-after": ["2m", "nan", "-1s"],
    "--lease-duration": ["15", "0", str(2**63), "x"],
    "--metrics-port": ["8080", "-1", "70000", str(2**63)],
    "--policy": ["jct", "bogus"],
    "--node-selector": ["pool=a", "pool in (a", "=x", "a,,b"],
    "--log-level": ["info", "loud"],
}


@given(data=st.data())
@fuzz(14)
def test_operator_with_hostile_options_and_cluster_config(data: st.DataObject) -> None:
    """The kubeconfig is never a usable one, so every run ends at a boundary before any server."""
    chosen = data.draw(
        st.dictionaries(st.sampled_from(sorted(OPERATOR_OPTIONS)), st.just(""), max_size=3), label="opts"
    )
    with workdir() as d:
        cluster = EXAMPLES / "demo" / "cluster.yaml"
        if data.draw(st.booleans(), label="mutate-cluster"):
            cluster = write(d, "cluster.yaml", data.draw(document_bytes(cluster), label="cluster"))
        kube = write(
            d, "kubeconfig", data.draw(st.sampled_from([b"- a list\n", b"\x00\xff", b"a: [\n", b"x"]))
        )
        args = ["operator", "-c", str(cluster), "--kubeconfig", str(kube), "--dry-run"]
        for option in chosen:
            args += [option, data.draw(st.sampled_from(OPERATOR_OPTIONS[option]), label=option)]
        result = runner.invoke(app, args)
        check(result, ok=())


# ----------------------------------------------------------------------------------- train

TRAIN_OPTIONS = {
    "--steps": ["2", "0", "-1", str(2**63), "nan"],
    "--model": ["tiny", "huge", ""],
    "--layers": ["2", "0", str(2**63)],
    "--heads": ["3", "0"],
    "--d-model": ["32", "7", str(2**40)],
    "--batch-size": ["2", "0", str(2**63)],
    "--lr": ["0.001", "nan", "inf", "-1", "0", "1e30"],
    "--weight-decay": ["0.1", "nan", "2"],
    "--grad-clip": ["1", "nan", "inf", "-1"],
    "--seed": ["0", "-1", str(2**64)],
    "--keep": ["3", "0"],
    "--threads": ["1", "0", "100000"],
    "--device": ["cpu", "tpu"],
    "--checkpoint-every": ["1", "-1"],
}


@given(data=st.data())
@fuzz(14)
def test_train_with_hostile_options_and_environment(data: st.DataObject) -> None:
    """`python -m gpusched.workload` up to the training loop, which is replaced by a stub that
    returns 0: the flags, environment and paths are what is under test, not tens of seconds of SGD."""
    import signal

    from gpusched.workload import cli as train_cli
    from gpusched.workload import trainer

    chosen = data.draw(
        st.dictionaries(st.sampled_from(sorted(TRAIN_OPTIONS)), st.just(""), min_size=1, max_size=3),
        label="opts",
    )
    env = data.draw(
        st.sampled_from(
            [
                {},
                {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "99999"},
                {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "nan"},
                {"WORLD_SIZE": "nan"},
                {"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "h", "MASTER_PORT": "29500"},
            ]
        ),
        label="env",
    )
    with workdir() as d:
        where = data.draw(st.sampled_from(["ok", "file", "status-dir"]), label="paths")
        blocker = d / "blocker"
        blocker.write_text("x")
        status_dir = d / "status"
        status_dir.mkdir()
        args = ["--checkpoint-dir", str(blocker if where == "file" else d / "ckpt"),
                "--termination-message-path", str(d / "termination-log")]  # fmt: skip
        if where == "status-dir":
            args += ["--status-file", str(status_dir)]
        for option in chosen:
            args += [option, data.draw(st.sampled_from(TRAIN_OPTIONS[option]), label=option)]
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        trained: list[object] = []
        with pytest.MonkeyPatch.context() as mp:
            for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
                mp.delenv(var, raising=False)
            for key, value in env.items():
                mp.setenv(key, value)
            mp.setattr(trainer, "run", lambda cfg, stop, placement: trained.append(cfg) or 0)
            stderr = io.StringIO()
            try:
                with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                    code = train_cli.main(args)
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
        if code == 0:
            assert trained and not stderr.getvalue()
            return
        lines = stderr.getvalue().splitlines()
        assert code == 2, stderr.getvalue()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr.getvalue()
        assert not trained and not (d / "ckpt").exists()
