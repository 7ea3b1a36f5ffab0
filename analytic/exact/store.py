"""The file format of the exact model's derived programs: shipped (analytic/exact/derived.json.gz,
derived_sharded.json.gz) and cached (analytic.exact.versions.cache_dir) alike, read as data, never executed.

A document is a JSON object {"format": FORMAT, "torch_version": ..., "classes": {name: ...}, ...}; as stored, every
program (a string of tokens, analytic.exact.programs) stands once in "programs" and is referenced by its index
there: a segment (program, repeated) as [index, repeated], and each program of a sharded class's "one" as its
index. Most classes share most of their programs, so the table is a fraction of the programs written out; gzip
(mtime 0: the same bytes for the same programs) takes it to a few tens of KB.
"""
from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any

FORMAT = 4  # raised whenever the symbols, the grammar, the keys or this layout change: older files are not read


def pack(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each program replaced by its index in an added "programs" table."""
    table: dict[str, int] = {}

    def intern(program: str) -> int:
        return table.setdefault(program, len(table))

    def walk(value, key=None):
        if key == "one":
            return {window: intern(program) for window, program in value.items()}
        if isinstance(value, dict):
            return {name: walk(item, name) for name, item in value.items()}
        if _is_segments(value, str):
            return [[intern(program), repeated] for program, repeated in value]
        return value

    packed = walk(document)
    return {**packed, "programs": list(table)}


def unpack(stored: dict[str, Any]) -> dict[str, Any]:
    """pack's inverse: segments as (program, repeated) tuples, programs as strings."""
    table = stored["programs"]

    def walk(value, key=None):
        if key == "one":
            return {window: table[index] for window, index in value.items()}
        if isinstance(value, dict):
            return {name: walk(item, name) for name, item in value.items()}
        if _is_segments(value, int):
            return [(table[index], repeated) for index, repeated in value]
        return value

    return walk({name: value for name, value in stored.items() if name != "programs"})


def _is_segments(value, program_type: type) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], program_type) for item in value)


def dumps(document: dict[str, Any]) -> bytes:
    """The stored bytes of a document: packed, compact JSON, gzipped reproducibly."""
    text = json.dumps({"format": FORMAT, **pack(document)}, separators=(",", ":"))
    return gzip.compress(text.encode(), mtime=0)


def loads(data: bytes) -> dict[str, Any] | None:
    """The document of stored bytes; None where its format is not FORMAT (written by another release)."""
    stored = json.loads(gzip.decompress(data))
    return unpack(stored) if stored.get("format") == FORMAT else None


def read(path: Path) -> dict[str, Any] | None:
    """The document of a file (None where there is none or its format is another)."""
    return loads(path.read_bytes()) if path.exists() else None


def write(path: Path, document: dict[str, Any]) -> None:
    """Write whole or not at all: into a temporary file beside it, renamed over the path (atomic on one file
    system), so that a reader never sees half a document and a run that dies leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(dumps(document))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def key_name(key) -> str:
    """A key as a document names it: a class's name() (analytic.sizes.LayoutClass, ShardedClass), an AdamW
    layout's tuple as a JSON array."""
    return key.name() if hasattr(key, "name") else json.dumps(list(key))


def parse_key(name: str) -> tuple:
    """An AdamW layout's key (analytic.sizes.optimizer_key) of its name."""
    return tuple(json.loads(name))
