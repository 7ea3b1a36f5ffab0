"""Run a grid of measurements into a folder, one JSON line per point, safe to interrupt and resume.

out_dir/
    grid.toml       the grid file as read
    meta.json       device, torch version, date, grid name, number of points (rewritten at every run)
    results.jsonl   one row per point, appended as soon as it is measured: a Measurement.to_dict() plus
                    {"key", "label", "axes", "outcome": "ok"}, or {"key", "label", "axes", "config",
                    "batch_size", "device", "optimizer", "outcome": "oom" | "error", "error": message}.
                    Measurements only: predictions are made when the report is written. With the grid's
                    max_batch_budget, a row also holds "max_batch": {"budget", "budget_bytes", "measured",
                    "exact_confirmed"}: the largest batch whose measured peak fits (the exact set's answer
                    confirmed by measuring it and one more, searched where they refute it).
    manifest.json   the files the tool wrote here (profiler.reports.folder)

A folder is only swept into if it is empty, new, or a sweep of the same grid (the same grid.toml text) on the
same device: anything else is refused before a file is written, and no file the tool did not write is ever
overwritten.

Each row is one os.write of one whole line followed by fsync, so a Ctrl-C or kill -9 loses at most the point being
measured; a trailing half line (a kill inside the write) is ignored by the reader and cut off before the next
append. A rerun skips every key already measured or out of memory and retries those that raised an error (often a
bug fixed since); the reader keeps the last row of a key.
"""
from __future__ import annotations

import datetime
import fcntl
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from analytic.units import parse_bytes
from profiler.errors import UsageError
from profiler.measuring.max_batch import measured_max_batch
from profiler.measuring.measure import measure
from profiler.experiments.grid import Grid, Point, expand, load_grid
from profiler.reports.folder import check_writable, claim, is_empty
from profiler.reports.results import META, RESULTS, read_results

GRID_COPY = "grid.toml"

FINAL = ("ok", "oom")  # outcomes a rerun keeps; an "error" (often a bug fixed since) is measured again
MeasureFn = Callable[..., Any]


def _drop_partial_line(path: Path) -> None:
    """Cut a half-written last line (a kill inside a write) so the next append starts on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "r+b") as file:
            file.truncate(keep)
            file.flush()
            os.fsync(file.fileno())


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One line, one write call (looped only if the kernel writes less), then fsync."""
    line = (json.dumps(row, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _point_identity(point: Point) -> dict[str, Any]:
    return {"key": point.key, "label": point.label, "axes": list(point.axes)}


def measure_point(point: Point, measure_fn: MeasureFn, max_batch_budget: str | None = None) -> dict[str, Any]:
    """The row for one point: the measurement (and its max batch in max_batch_budget), or its failure (OOM or
    any exception) as the outcome."""
    try:
        result = measure_fn(point.spec, device=point.device)
        body = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        if max_batch_budget is not None:
            body["max_batch"] = measure_max_batch(point, max_batch_budget)
        return {**_point_identity(point), "outcome": "ok", **body}
    except torch.OutOfMemoryError as error:
        outcome, message = "oom", str(error).splitlines()[0] if str(error) else "out of memory"
    except Exception as error:  # one bad point must not end the sweep: record it and go on
        outcome, message = "error", f"{type(error).__name__}: {error}"
    _release_memory(point.device)  # outside the except block: the traceback no longer pins tensors
    return {**_point_identity(point), "outcome": outcome, "error": message, "config": point.spec.flat(),
            "batch_size": point.spec.batch_size, "device": point.device, "optimizer": point.spec.setup.optimizer}


def measure_max_batch(point: Point, budget: str) -> dict[str, Any]:
    """The largest batch (of one micro-batch) whose measured peak fits `budget` on the point's device."""
    budget_bytes = parse_bytes(budget)
    measured, confirmed = measured_max_batch(point.spec, budget_bytes, point.device)
    return {"budget": budget, "budget_bytes": budget_bytes, "measured": measured, "exact_confirmed": confirmed}


def _release_memory(device: str) -> None:
    gc.collect()
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def check_folder(out_dir: Path, grid: Grid, device: str) -> None:
    """Refuse (UsageError) a file, a folder it cannot create or write into, or a non-empty folder that is not a sweep
    of this very grid on this device."""
    check_writable(out_dir, "--out")
    if is_empty(out_dir):
        return
    meta_path, grid_copy = out_dir / META, out_dir / GRID_COPY
    if not meta_path.exists() or not grid_copy.exists():
        raise UsageError(f"--out {out_dir} is not empty and holds no sweep; nothing was written: give a new or "
                         f"empty folder, or leave --out out for a fresh one under reports/")
    meta = json.loads(meta_path.read_text())
    if grid_copy.read_text() != grid.text or meta.get("device") != device:
        raise UsageError(f"--out {out_dir} holds a sweep of grid {meta.get('grid')} on {meta.get('device')}, not "
                         f"of grid {grid.name} as {grid.source} reads now on {device}; nothing was written: give "
                         f"another folder")


def write_start(grid: Grid, out_dir: Path, device: str, total: int) -> None:
    (out_dir / GRID_COPY).write_text(grid.text)
    meta = {"grid": grid.name, "grid_description": grid.description, "grid_source": str(grid.source),
            "device": device, "torch_version": torch.__version__, "points": total,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    (out_dir / META).write_text(json.dumps(meta, indent=2) + "\n")


def iter_sweep(grid: Grid | str | Path, out_dir: str | Path, device: str | None = None,
               measure_fn: MeasureFn | None = None, progress: bool = True) -> Iterator[dict[str, Any]]:
    """Measure every point of `grid` (a Grid, a shipped grid's name or a .toml path) not yet in
    out_dir/results.jsonl, yielding each row once it is on disk. Bad grids and folders that are not a sweep of
    this grid on this device fail before anything is written."""
    if not isinstance(grid, Grid):
        grid = load_grid(grid)
    out_dir = Path(out_dir)
    device = device or grid.device
    points = expand(grid, device)
    check_folder(out_dir, grid, device)
    claim(out_dir, [GRID_COPY, META, RESULTS])
    results = out_dir / RESULTS
    with results.open("a") as held:  # the lock lives as long as this sweep (hold)
        hold(held, out_dir)
        _drop_partial_line(results)
        done = {row["key"] for row in read_results(out_dir) if row["outcome"] in FINAL}
        todo = [point for point in points if point.key not in done]
        write_start(grid, out_dir, device, len(points))
        measure_fn = measure_fn or measure
        bar = tqdm(todo, desc=f"sweep {grid.name} on {device}", unit="point", file=sys.stderr,
                   disable=None if progress else True, dynamic_ncols=True)  # None: only on a terminal
        for point in bar:
            bar.set_postfix_str(point.label, refresh=True)
            row = measure_point(point, measure_fn, grid.max_batch_budget)
            append_row(results, row)
            yield row


def hold(results, out_dir: Path) -> None:
    """Lock the folder's results file for this sweep (flock, released when the file closes or the process dies): a
    second sweep into the same folder at the same time is refused (UsageError) before it measures anything."""
    try:
        fcntl.flock(results, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(f"--out {out_dir} is being written by another sweep right now; nothing was measured: "
                         f"wait for it, or give another folder") from None


def run_sweep(grid: Grid | str | Path, out_dir: str | Path, device: str | None = None,
              measure_fn: MeasureFn | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run the sweep to the end; returns the rows measured by this call (not those a previous run left)."""
    return list(iter_sweep(grid, out_dir, device, measure_fn, progress))
