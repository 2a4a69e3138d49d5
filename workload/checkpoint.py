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
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

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


def _tmp_path(path: Path) -> Path:
    # Unique per writer: several nodes may share one volume, and a fixed temporary name would let
    # two writers interleave their bytes in it.
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync of the directory."""
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


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
    tmp = _tmp_path(final)
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
        if not isinstance(payload, dict) or payload.get("step") != step:
            warn(f"skipping checkpoint at step {step}: payload does not describe step {step}")
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
