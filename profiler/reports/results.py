"""A sweep folder's files as the report reads them (profiler.experiments.sweep writes them): the rows of
results.jsonl, meta.json, and the audit saved beside them (audit.json)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
META = "meta.json"
AUDIT_FILE = "audit.json"


def read_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete row of out_dir/results.jsonl, the last one per key; a trailing partial line is ignored."""
    path = Path(out_dir) / RESULTS
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(complete.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON line ({error}); the file was edited by hand?") from None
        if not isinstance(row, dict) or "key" not in row:
            raise ValueError(f"{path}:{number}: not a sweep's row (no point key); is {path.parent} a sweep folder?")
        rows[row["key"]] = row
    return list(rows.values())
