"""Folders the tool writes into (a sweep's, `report`'s, `audit --out`'s): it never overwrites a file it did not
write.

Each such folder keeps manifest.json, the list of files the tool wrote there, marked as the tool's ("written_by").
`claim(folder, names)` is called before any of `names` is written: a name that exists on disk but is not in the
manifest is the user's file, as is a manifest.json without the mark, and the whole write is refused (UsageError,
nothing written); so is a folder the tool could not create or write into. A sweep folder written before manifests
existed (it has the tool's meta.json) counts its standard files as the tool's.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from profiler.errors import UsageError

MANIFEST = "manifest.json"
WRITTEN_BY = "adamw-profiler"
SWEEP_FILES = ("grid.toml", "meta.json", "results.jsonl", "audit.json", "results.csv", "report.md", "report.html")


def ours(manifest: Path) -> bool:
    """Whether `manifest` is one the tool wrote: JSON with its mark and a list of files."""
    try:
        document = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (isinstance(document, dict) and document.get("written_by") == WRITTEN_BY
            and isinstance(document.get("files"), list))


def written(folder: Path) -> set[str]:
    """The files (paths relative to the folder) the tool has written in `folder` (its manifest is ours: check)."""
    manifest = folder / MANIFEST
    if manifest.exists():
        return set(json.loads(manifest.read_text())["files"])
    meta = folder / "meta.json"
    if meta.exists() and "grid" in json.loads(meta.read_text()):  # a sweep folder from before manifests
        return set(SWEEP_FILES) | {str(path.relative_to(folder)) for path in folder.glob("plots/*.png")}
    return set()


def named(folder: Path, option: str) -> str:
    """The folder as the user gave it: after its option ("--out DIR"), or alone (a positional argument)."""
    return f"{option} {folder}" if option else str(folder)


def check_writable(folder: str | Path, option: str = "") -> None:
    """Raise UsageError (naming the folder, after the `option` that gave it) if the tool could not create `folder`
    or write into it: a file is no folder; the nearest folder on its path that exists must be a folder this
    process may write into (os.access: a read-only mount, or permissions, unless the process runs as root); and
    making the missing folders and a file in it must work (probe: a name too long, a file system that refuses).
    Leaves nothing behind."""
    folder = Path(folder)
    try:
        existing = folder
        while not existing.exists() and existing != existing.parent:  # where mkdir(parents=True) would start
            existing = existing.parent
        if not existing.is_dir():
            raise UsageError(f"{named(folder, option)} exists and is not a folder" if existing == folder else
                             f"{named(folder, option)}: {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            where = "the folder" if existing == folder else f"the folder {existing}"
            raise UsageError(f"{named(folder, option)}: {where} is not writable; nothing was written")
        probe(folder, existing)
    except OSError as error:
        raise UsageError(f"{named(folder, option)} cannot be written: {error.strerror or error}") from None


def probe(folder: Path, existing: Path) -> None:
    """Make the folders from `existing` down to `folder` and an unnamed file in it, then remove them all."""
    missing = [folder, *folder.parents][:len(folder.parts) - len(existing.parts)]
    made = []
    try:
        for path in reversed(missing):
            path.mkdir()
            made.append(path)
        with tempfile.TemporaryFile(dir=folder):
            pass
    finally:
        for path in reversed(made):
            path.rmdir()


def check(folder: str | Path, names: list[str], option: str = "") -> set[str]:
    """Raise UsageError if writing `names` into `folder` would overwrite a file the tool did not write (its own
    manifest included), if `folder` is a file, or if it cannot be written (check_writable); else return what the
    tool has written there. Writes nothing."""
    folder = Path(folder)
    check_writable(folder, option)
    if (folder / MANIFEST).exists() and not ours(folder / MANIFEST):
        raise UsageError(f"{named(folder, option)} holds {MANIFEST}, which this tool did not write; nothing was "
                         f"written: choose another folder")
    known = written(folder) if folder.exists() else set()
    theirs = sorted(name for name in names if (folder / name).exists() and name not in known)
    if theirs:
        raise UsageError(f"{named(folder, option)} holds {', '.join(theirs)}, which this tool did not write; "
                         f"nothing was written: choose another folder")
    return known


def claim(folder: str | Path, names: list[str], option: str = "") -> Path:
    """check(), then record `names` in the manifest (creating the folder) before the caller writes them.
    Returns the folder as a Path."""
    folder = Path(folder)
    known = check(folder, names, option)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({"written_by": WRITTEN_BY,
                                               "files": sorted(known | set(names))}, indent=2) + "\n")
    return folder


def is_empty(folder: Path) -> bool:
    """Nothing there, or an empty folder (a file is not empty)."""
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
