"""Folders the tool writes into (a sweep's, `report`'s, `audit --out`'s): it never overwrites a file it did not
write.

Each such folder keeps manifest.json, the list of files the tool wrote there. `claim(folder, names)` is called
before any of `names` is written: a name that exists on disk but is not in the manifest is the user's file, and
the whole write is refused (UsageError, nothing written). A sweep folder written before manifests existed (it has
the tool's meta.json) counts its standard files as the tool's.
"""
from __future__ import annotations

import json
from pathlib import Path

from profiler.errors import UsageError

MANIFEST = "manifest.json"
SWEEP_FILES = ("grid.toml", "meta.json", "results.jsonl", "audit.json", "results.csv", "report.md", "report.html")


def written(folder: Path) -> set[str]:
    """The files (paths relative to the folder) the tool has written in `folder`."""
    manifest = folder / MANIFEST
    if manifest.exists():
        return set(json.loads(manifest.read_text())["files"])
    meta = folder / "meta.json"
    if meta.exists() and "grid" in json.loads(meta.read_text()):  # a sweep folder from before manifests
        return set(SWEEP_FILES) | {str(path.relative_to(folder)) for path in folder.glob("plots/*.png")}
    return set()


def check(folder: str | Path, names: list[str]) -> set[str]:
    """Raise UsageError if writing `names` into `folder` would overwrite a file the tool did not write (or if
    `folder` is a file); else return what the tool has written there. Writes nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    known = written(folder) if folder.exists() else set()
    theirs = sorted(name for name in names if (folder / name).exists() and name not in known)
    if theirs:
        raise UsageError(f"{folder} holds {', '.join(theirs)}, which this tool did not write; nothing was "
                         f"written: choose another folder")
    return known


def claim(folder: str | Path, names: list[str]) -> Path:
    """check(), then record `names` in the manifest (creating the folder) before the caller writes them.
    Returns the folder as a Path."""
    folder = Path(folder)
    known = check(folder, names)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({"written_by": "adamw-profiler",
                                               "files": sorted(known | set(names))}, indent=2) + "\n")
    return folder


def is_empty(folder: Path) -> bool:
    """Nothing there, or an empty folder (a file is not empty)."""
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
