"""Reading untrusted files and writing outputs, so that neither can end in a traceback or a half-file.

Every file a command reads enters through `read_text` (size cap, directory check, strict UTF-8 with
the encoding named when it is not) and, for documents, `parse_document` (libyaml's C loader where
present, duplicate keys refused, nesting depth bounded). Every output is written by `write_atomic`
(temporary file in the same directory, fsync, rename, fsync of the directory); a command with
several outputs checks them all with `check_output_file`/`check_output_dir` before its work starts
and writes them with `write_all_atomic`, so that either all of them appear or none.

Errors are InputError (defined here, re-exported by gpusched.config): str() is the one line the CLI
prints after 'error: '. Values are shown through `shown()`, never echoed back whole.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 16 << 20
"""YAML/JSON inputs (cluster, jobs, health rules, specs, snapshots): far above any real one."""
MAX_TABLE_BYTES = 1 << 30
"""CSV traces: the published ones are a few MB; a GiB is a runaway, not a trace."""
MAX_DEPTH = 64
"""Nesting of a YAML/JSON document: ours need 5; deeper is garbage (and RecursionError bait)."""
SHOWN_CHARS = 60


class InputError(Exception):
    """A user input problem; str() is one line: '<file or option>: <path>: <what> (<expected/got>)'."""


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """repr() of a value for an error line: escaped (no newlines, no control bytes) and cut to `limit`."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _limit(default: int) -> int:
    raw = os.environ.get("GPUSCHED_MAX_INPUT_BYTES")
    if raw and raw.isdigit():
        return int(raw)
    return default


def read_bytes(path: Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The file's bytes, or an InputError naming it: missing, a directory, unreadable, too large."""
    path = Path(path)
    cap = _limit(max_bytes)
    try:
        if path.is_dir():
            raise InputError(f"{path}: is a directory (expected a file)")
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > cap:
                raise InputError(
                    f"{path}: {size:,} bytes is larger than the {cap:,}-byte limit for this input"
                )
            data = handle.read(cap + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > cap:  # a pipe or /proc file whose size stat() does not know
        raise InputError(f"{path}: larger than the {cap:,}-byte limit for this input")
    return data


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode_text(data: bytes, source: str) -> str:
    """Strict UTF-8 (a UTF-8 BOM is dropped); other encodings and binary data are named, not guessed."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise InputError(f"{source}: the file is {name} text (expected UTF-8; re-save it as UTF-8)")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{source}: byte {nul}: NUL byte: binary data (expected UTF-8 text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: byte {exc.start}: not UTF-8 text ({shown(data[exc.start : exc.start + 8])}; "
            "expected a UTF-8 file)"
        ) from None


def read_text(path: Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    return decode_text(read_bytes(path, max_bytes), str(path))


# --------------------------------------------------------------------------------------------- parsing

_CLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_CLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loading (C parser when libyaml is installed) that refuses a key given twice.

    PyYAML keeps the last of two equal keys silently; in a cluster or jobs file that hides a typo.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {shown(key)} (first on line {seen[key] + 1}; give each key once)",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {shown(key)} (each key once)")
        out[key] = value
    return out


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (expected a finite number)")


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{shown(text)} overflows a float (expected a finite number)")
    return value


def _depth(data: Any) -> int:
    """Nesting depth, iteratively (a recursive walk is what overflows on hostile input)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            items: Iterable[Any] = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in items)
    return deepest


def parse_document(text: str, source: str, fmt: str = "yaml") -> Any:
    """Plain data from YAML or JSON text; one-line InputError for anything that is not that."""
    try:
        if fmt == "json":
            data = json.loads(
                text, object_pairs_hook=_json_pairs, parse_constant=_json_constant, parse_float=_json_float
            )
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise InputError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source}: line {exc.lineno} column {exc.colno}: malformed JSON: {exc.msg}"
        ) from None
    except ValueError as exc:  # from the JSON hooks above
        raise InputError(f"{source}: malformed JSON: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{source}: {where}malformed YAML: {_one_line(problem)}") from None
    if _depth(data) > MAX_DEPTH:
        raise InputError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)")
    return data


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= 200 else flat[:197] + "..."


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file (by suffix; YAML otherwise) into plain data."""
    path = Path(path)
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    return parse_document(read_text(path), str(path), fmt)


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------------- outputs


def check_output_file(path: Path, option: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """Refuse, before any work, an output file path that cannot be written: one InputError line."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise InputError(
            f"{option}: unsupported file type {shown(path.suffix or path.name)} (expected {', '.join(suffixes)})"
        )
    if path.is_dir():
        raise InputError(f"{option}: {shown(str(path))} is a directory (expected a file path)")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"{option}: directory {shown(str(parent))} does not exist (create it first)")
    if not parent.is_dir():
        raise InputError(f"{option}: {shown(str(parent))} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option}: cannot write in {shown(str(parent))} (permission denied)")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option}: {shown(str(path))} is not writable")
    return path


def check_output_dir(path: Path, option: str) -> Path:
    """An output directory: it may not exist yet (it is created), but it must be creatable."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{option}: {shown(str(path))} is a file (expected a directory)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option}: cannot write in {shown(str(path))} (permission denied)")
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{option}: {shown(str(ancestor))} is a file (expected a directory)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option}: cannot create {shown(str(path))} (permission denied in {ancestor})")
    return path


def tmp_path_for(path: Path) -> Path:
    # Unique per writer: several processes may share a volume, and a fixed temporary name would let
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


def _write_tmp(path: Path, data: str | bytes) -> Path:
    tmp = tmp_path_for(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def write_atomic(path: Path, data: str | bytes) -> None:
    """Temporary file, fsync, rename, fsync of the directory: readers see the old file or the new one."""
    write_all_atomic([(Path(path), data)])


def write_all_atomic(files: list[tuple[Path, str | bytes]]) -> None:
    """Several outputs of one run: every temporary is written first, then all are renamed.

    A failure while writing (disk full, permissions) removes the temporaries and leaves none of the
    outputs; the renames that follow are metadata operations within one directory each.
    """
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            written.append((_write_tmp(Path(path), data), Path(path)))
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    for directory in {path.parent for _, path in written}:
        fsync_dir(directory)
