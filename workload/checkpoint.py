"""Checkpoint files: written so that a crash at any instant leaves either the old set or the new one.

Layout in the checkpoint directory, per saved step N (zero-padded to 9 digits so names sort by step):

    ckpt-000000N.pt    torch.save() of the payload (model, optimizer, per-rank RNG states, position)
    ckpt-000000N.json  the manifest: size and SHA-256 of the .pt, step, data position, model shape

The payload is written to a temporary name, fsynced, read back to hash it, then renamed; the manifest
is written the same way afterwards and is the completeness marker. A checkpoint without a manifest, or
whose payload's size or hash differs from it, or that torch cannot load, is skipped with a warning and
renamed to *.corrupt so that pruning never keeps it in place of a good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gpusched.safeio import tmp_path_for, write_atomic

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{9})\.(pt|json)$")
_CHUNK = 8 << 20

Warn = Callable[[str], None]


class CheckpointManifest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: int = FORMAT_VERSION
    step: int
    data_position: int
    file: str
    bytes: int
    sha256: str
    world_size: int
    shape: dict[str, int]
    created_at: str


def payload_name(step: int) -> str:
    return f"ckpt-{step:09d}.pt"


def manifest_name(step: int) -> str:
    return f"ckpt-{step:09d}.json"


write_bytes_atomic = write_atomic
"""The one atomic writer (gpusched.safeio): temporary file, fsync, rename, fsync of the directory."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save(
    directory: Path,
    payload: dict[str, Any],
    *,
    step: int,
    data_position: int,
    world_size: int,
    shape: dict[str, int],
) -> CheckpointManifest:
    """Write one checkpoint durably and return its manifest. Only one rank may call this."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / payload_name(step)
    tmp = tmp_path_for(final)
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        manifest = CheckpointManifest(
            step=step,
            data_position=data_position,
            file=final.name,
            bytes=tmp.stat().st_size,
            sha256=sha256_of(tmp),
            world_size=world_size,
            shape=shape,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    write_bytes_atomic(directory / manifest_name(step), (manifest.model_dump_json(indent=2) + "\n").encode())
    return manifest


def _steps_on_disk(directory: Path) -> list[int]:
    steps: set[int] = set()
    if not directory.is_dir():
        return []
    for entry in directory.iterdir():
        m = _NAME.match(entry.name)
        if m:
            steps.add(int(m.group(1)))
    return sorted(steps, reverse=True)


def _quarantine(directory: Path, step: int) -> None:
    for name in (payload_name(step), manifest_name(step)):
        path = directory / name
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, path.with_name(path.name + ".corrupt"))


def validate(directory: Path, step: int) -> tuple[CheckpointManifest | None, str]:
    """(manifest, "") when the files of `step` are complete and intact, else (None, why not)."""
    mpath = directory / manifest_name(step)
    ppath = directory / payload_name(step)
    if not mpath.exists():
        return None, f"{ppath}: no manifest {mpath.name} (incomplete write)"
    try:
        manifest = CheckpointManifest.model_validate_json(mpath.read_bytes())
    except (ValidationError, OSError) as exc:
        return None, f"{mpath}: unreadable manifest: {str(exc).splitlines()[0]}"
    if manifest.format != FORMAT_VERSION:
        return None, f"{mpath}: format {manifest.format}, this build reads {FORMAT_VERSION}"
    if manifest.step != step or manifest.file != ppath.name:
        return None, f"{mpath}: names step {manifest.step} file {manifest.file!r}, expected {step}"
    try:
        size = ppath.stat().st_size
    except FileNotFoundError:
        return None, f"{ppath}: missing"
    if size != manifest.bytes:
        return None, f"{ppath}: {size} bytes, manifest says {manifest.bytes} (truncated or partial)"
    digest = sha256_of(ppath)
    if digest != manifest.sha256:
        return None, f"{ppath}: SHA-256 {digest[:12]}... differs from manifest {manifest.sha256[:12]}..."
    return manifest, ""


_PAYLOAD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "step": int,
    "data_position": int,
    "model": dict,
    "optimizer": dict,
    "rng": list,
    "shape": dict,
    "seed": int,
}
"""What the trainer reads back from a payload: anything else (a tensor, a dict of something else)
loads fine with torch but is no checkpoint, and must be skipped like a corrupt file, not crash."""


def payload_problem(payload: Any, step: int) -> str:
    """'' when `payload` has every field the trainer reads, for `step`; else what is wrong."""
    if not isinstance(payload, dict):
        return f"a {type(payload).__name__}, not a dict"
    for key, kind in _PAYLOAD_FIELDS.items():
        if key not in payload:
            return f"no {key!r}"
        if not isinstance(payload[key], kind) or isinstance(payload[key], bool):
            return f"{key!r} is a {type(payload[key]).__name__}"
    if payload["step"] != step:
        return f"it describes step {payload['step']}, not {step}"
    return ""


def load_latest(directory: Path, warn: Warn) -> tuple[CheckpointManifest, dict[str, Any]] | None:
    """The newest checkpoint that validates and loads; every newer bad one is warned about and quarantined."""
    import torch

    for step in _steps_on_disk(directory):
        manifest, why = validate(directory, step)
        if manifest is None:
            warn(f"skipping checkpoint at step {step}: {why}")
            _quarantine(directory, step)
            continue
        try:
            payload = torch.load(directory / manifest.file, map_location="cpu", weights_only=True)
        except Exception as exc:
            warn(f"skipping checkpoint at step {step}: torch.load failed: {str(exc).splitlines()[0]}")
            _quarantine(directory, step)
            continue
        problem = payload_problem(payload, step)
        if problem:
            warn(f"skipping checkpoint at step {step}: the payload is not a checkpoint: {problem}")
            _quarantine(directory, step)
            continue
        return manifest, payload
    return None


def prune(directory: Path, keep: int) -> list[int]:
    """Delete all but the newest `keep` checkpoints; return the steps deleted."""
    removed = []
    for step in _steps_on_disk(directory)[keep:]:
        # Manifest first: a crash in between leaves a payload without a marker, which is skipped.
        for name in (manifest_name(step), payload_name(step)):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        removed.append(step)
    return removed


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files of writers that died mid-write (they can never become checkpoints)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name.startswith(".ckpt-") and ".tmp-" in entry.name:
            with contextlib.suppress(OSError):
                entry.unlink()
