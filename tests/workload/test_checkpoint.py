"""Checkpoint files and the status/termination writers, on real files with real torch.save."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="checkpoints are torch.save files")

from gpusched.workload import checkpoint as ckpt  # noqa: E402
from gpusched.workload.report import (  # noqa: E402
    TERMINATION_MESSAGE_LIMIT,
    Throughput,
    termination_message,
    write_status,
    write_termination_message,
)
from gpusched.workload_contract import WorkloadStatus  # noqa: E402

SHAPE = {"layers": 1, "heads": 1, "d_model": 8, "vocab_size": 8, "seq_len": 4}


def _save(directory: Path, step: int) -> ckpt.CheckpointManifest:
    payload = {
        "step": step,
        "data_position": step * 8,
        "model": {},
        "optimizer": {},
        "shape": SHAPE,
        "seed": 0,
        "weights": torch.full((64,), float(step)),
        "rng": [[3, [1, 2], None]],
    }
    return ckpt.save(directory, payload, step=step, data_position=step * 8, world_size=2, shape=SHAPE)


def _load(directory: Path) -> tuple[int | None, list[str]]:
    warnings: list[str] = []
    found = ckpt.load_latest(directory, warnings.append)
    return (None if found is None else found[0].step), warnings


def test_save_writes_payload_and_manifest_and_leaves_no_temporaries(tmp_path: Path) -> None:
    manifest = _save(tmp_path / "c", 5)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["ckpt-000000005.json", "ckpt-000000005.pt"]
    on_disk = json.loads((tmp_path / "c" / "ckpt-000000005.json").read_text())
    assert on_disk["sha256"] == ckpt.sha256_of(tmp_path / "c" / "ckpt-000000005.pt") == manifest.sha256
    assert (on_disk["step"], on_disk["data_position"], on_disk["world_size"]) == (5, 40, 2)
    found = ckpt.load_latest(tmp_path / "c", pytest.fail)
    assert found is not None and torch.equal(found[1]["weights"], torch.full((64,), 5.0))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (
            lambda d: (d / "ckpt-000000020.pt").write_bytes((d / "ckpt-000000020.pt").read_bytes()[:-100]),
            "truncated",
        ),
        (lambda d: (d / "ckpt-000000020.json").unlink(), "no manifest"),
        (lambda d: (d / "ckpt-000000020.json").write_text("{not json"), "unreadable manifest"),
        (lambda d: (d / "ckpt-000000020.pt").unlink(), "missing"),
        (lambda d: _flip_byte(d / "ckpt-000000020.pt"), "SHA-256"),
    ],
    ids=["truncated", "no-manifest", "bad-manifest", "no-payload", "bit-flip"],
)
def test_damaged_newest_is_skipped_with_warning_and_previous_used(tmp_path: Path, damage, why: str) -> None:
    for step in (10, 20):
        _save(tmp_path, step)
    damage(tmp_path)
    step, warnings = _load(tmp_path)
    assert step == 10
    assert len(warnings) == 1 and "step 20" in warnings[0] and why in warnings[0], warnings
    # Quarantined: pruning can no longer keep it in place of a good one, and the next start is quiet.
    assert ckpt._steps_on_disk(tmp_path) == [10]
    assert _load(tmp_path) == (10, [])


def test_manifest_without_loadable_payload_is_skipped(tmp_path: Path) -> None:
    """Size and hash can match garbage if the manifest was written for garbage: torch.load decides."""
    _save(tmp_path, 1)
    bad = tmp_path / "ckpt-000000002.pt"
    bad.write_bytes(b"not a torch file")
    manifest = ckpt.CheckpointManifest(
        step=2,
        data_position=0,
        file=bad.name,
        bytes=bad.stat().st_size,
        sha256=ckpt.sha256_of(bad),
        world_size=1,
        shape=SHAPE,
        created_at="x",
    )
    (tmp_path / "ckpt-000000002.json").write_text(manifest.model_dump_json())
    step, warnings = _load(tmp_path)
    assert step == 1 and "torch.load failed" in warnings[0]


@pytest.mark.parametrize(
    "payload",
    [
        torch.zeros(3),
        [1, 2, 3],
        {"step": 2},
        {"step": 2, "data_position": 0, "model": [], "optimizer": {}, "rng": [], "shape": {}, "seed": 0},
    ],
    ids=["tensor", "list", "dict-without-fields", "model-not-a-state-dict"],
)
def test_hash_matching_payload_that_is_not_a_checkpoint_is_skipped(tmp_path: Path, payload: object) -> None:
    """torch loads it and the manifest's hash matches, but the trainer could not resume from it."""
    _save(tmp_path, 1)
    ckpt.save(tmp_path, payload, step=2, data_position=0, world_size=1, shape=SHAPE)  # type: ignore[arg-type]
    step, warnings = _load(tmp_path)
    assert step == 1
    assert len(warnings) == 1 and "not a checkpoint" in warnings[0]
    assert (tmp_path / "ckpt-000000002.pt.corrupt").exists()


def test_nothing_valid_means_fresh_start(tmp_path: Path) -> None:
    assert _load(tmp_path / "absent") == (None, [])
    (tmp_path / "ckpt-000000003.pt").write_bytes(b"partial")
    step, warnings = _load(tmp_path)
    assert step is None and "incomplete" in warnings[0]


def test_prune_keeps_newest_k_and_stale_temporaries_go(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4, 5):
        _save(tmp_path, step)
    assert ckpt.prune(tmp_path, 2) == [3, 2, 1]
    assert ckpt._steps_on_disk(tmp_path) == [5, 4]
    stale = tmp_path / ".ckpt-000000006.pt.tmp-host-123"
    stale.write_bytes(b"half")
    ckpt.remove_stale_temporaries(tmp_path)
    assert not stale.exists() and ckpt._steps_on_disk(tmp_path) == [5, 4]


def test_status_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "a" / "status.json"
    write_status(path, WorkloadStatus(step=3, loss=2.5))
    write_status(path, WorkloadStatus(step=4, loss=2.4, tokens_per_s=10.0))
    status = WorkloadStatus.model_validate_json(path.read_text())
    assert (status.step, status.loss, status.tokens_per_s) == (4, 2.4, 10.0) and status.updated_at
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]


def test_termination_message_fits_kubernetes_limit(tmp_path: Path) -> None:
    status = WorkloadStatus(state="failed", step=7, exit_code=1, message="x" * 10_000)
    data = termination_message(status)
    assert len(data) <= TERMINATION_MESSAGE_LIMIT
    back = WorkloadStatus.model_validate_json(data)
    assert back.step == 7 and back.exit_code == 1 and back.message and back.message.endswith("...")
    path = tmp_path / "termination-log"
    assert write_termination_message(path, status)
    assert len(path.read_bytes()) <= TERMINATION_MESSAGE_LIMIT


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root can write anywhere, so an unwritable directory cannot be made"
)
def test_termination_message_skipped_when_directory_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert not write_termination_message(locked / "log", WorkloadStatus())


def test_termination_message_written_in_place_over_an_existing_file(tmp_path: Path) -> None:
    """The kubelet's file is a bind mount: it must keep its inode (no rename over it)."""
    path = tmp_path / "termination-log"
    path.write_bytes(b"x" * 9000)
    inode = path.stat().st_ino
    assert write_termination_message(path, WorkloadStatus(state="preempted", exit_code=75, step=3))
    assert path.stat().st_ino == inode
    assert WorkloadStatus.model_validate_json(path.read_bytes()).exit_code == 75


def test_termination_message_waits_for_another_rank_writing_the_same_file(tmp_path: Path) -> None:
    """The ranks of one pod share the file: a writer truncates and writes only under the lock.

    Without it, two failing ranks interleave (both truncate, then the shorter message lands over
    the longer one's tail) and the kubelet reports invalid JSON.
    """
    path = tmp_path / "termination-log"
    path.write_bytes(termination_message(WorkloadStatus(state="failed", exit_code=1, message="m" * 2000)))
    before = path.read_bytes()
    with open(path, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        writer = threading.Thread(
            target=write_termination_message, args=(path, WorkloadStatus(state="failed", exit_code=1, step=2))
        )
        writer.start()
        writer.join(0.3)
        assert writer.is_alive(), "the writer did not wait for the lock"
        assert path.read_bytes() == before
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    writer.join(30)
    assert not writer.is_alive()
    final = WorkloadStatus.model_validate_json(path.read_bytes())
    assert (final.step, final.message) == (2, None)


def test_termination_message_skipped_when_directory_missing(tmp_path: Path) -> None:
    assert not write_termination_message(tmp_path / "no" / "such" / "log", WorkloadStatus())


def test_throughput_window_excludes_checkpoint_time() -> None:
    now = [100.0]
    meter = Throughput(samples_per_step=4, tokens_per_step=128, clock=lambda: now[0])
    for _ in range(4):
        meter.step()
        now[0] += 0.5
    now[0] += 30.0  # a checkpoint write ...
    meter.exclude(30.0)  # ... which the trainer reports as excluded
    window = meter.window()
    assert window == {"samples_per_s": 8.0, "tokens_per_s": 256.0, "step_time_s": 0.5, "window_steps": 4}
    assert meter.window()["tokens_per_s"] is None  # a new, empty window


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
