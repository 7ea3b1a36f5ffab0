"""Where the installed torch allocates otherwise than the torch the shipped programs were derived on, and which op.

The exact model's programs for a layout class, derived here (cached on first use, analytic.exact.source), are
compared with the shipped ones (analytic/exact/derived.json.gz, derived on its torch_version). For a class whose
programs differ, its step is traced again at one layer, and each window's tokens are aligned with the shipped
program's (difflib): what one torch allocates or frees that the other does not, with the op that allocated or
freed it here (the tracker's op at that event). `python -m profiler derive --against-shipped` prints them.
"""
from __future__ import annotations

import difflib
from typing import Any

from analytic.exact import source
from analytic.exact.programs import runs
from analytic.exact.derivation.derive import CLASS_WINDOWS, class_traces

LAYERS = 1  # the depth the tokens are compared at: every segment runs there, L − 1 ones excepted


def expanded(segments: list[tuple[str, Any]], layers: int) -> list[str]:
    """A window's tokens at `layers` layers: each segment's tokens as many times as it runs."""
    return [token for program, repeated in segments for token in program.split() * runs(repeated, layers)]


def shipped() -> source.Programs:
    """The programs compared with: the shipped ones."""
    return source.shipped()


def differing_classes(derived_here: dict[tuple, dict]) -> list[tuple]:
    """The keys of the classes whose programs derived here differ from the shipped ones (same key)."""
    return [key for key, data in derived_here.items()
            if key in shipped().found["classes"]
            and any(data[window] != shipped().layout_class(key)[window] for window in CLASS_WINDOWS)]


def class_differences(key: tuple) -> list[dict[str, Any]]:
    """Per window of one class whose programs differ: each run of tokens the installed torch and the shipped
    programs do not share, at one layer, with the ops that made them here (for tokens only the shipped programs
    have, the op here where they would stand)."""
    cls = key
    traced = class_traces(cls)
    rows = []
    for window, traced_window in CLASS_WINDOWS.items():
        here = traced.programs(traced_window, f"{cls.what()}, {window}")[LAYERS]
        ops = [event.op for event in traced.traces[LAYERS][0].windows[traced_window]]
        before = expanded(shipped().layout_class(key)[window], LAYERS)
        matcher = difflib.SequenceMatcher(a=before, b=here, autojunk=False)
        for kind, i1, i2, j1, j2 in matcher.get_opcodes():
            if kind == "equal":
                continue
            rows.append({"class": cls.what(), "window": window, "shipped": " ".join(before[i1:i2]),
                         "here": " ".join(here[j1:j2]),
                         "ops here": sorted(set(ops[j1:j2])) if j2 > j1 else [ops[j1] if j1 < len(ops) else ""],
                         "shipped on": shipped().derived_on})
    return rows
