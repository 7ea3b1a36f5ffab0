"""A held-out mix of bad inputs, none of them the case a fix was written for: each is one line on stderr and exit 2,
before anything is measured or written (the cases the issues named have their own tests beside their fixes)."""
from __future__ import annotations

import pytest

from profiler.cli import main

MIX = [
    ("measure", "--preset", "tiny", "--batch-size", "-3"),
    ("measure", "--preset", "tiny", "--num-layers", "0"),
    ("measure", "--preset", "tiny", "--dtype", "float64"),
    ("measure", "--preset", "tiny", "--device", "tpu"),
    ("measure", "--preset", "no-such-model"),
    ("measure", "--preset", "tiny", "--micro-batches", "3", "--batch-size", "4"),
    ("measure", "--preset", "tiny", "--arch", "llama", "--kv-heads", "3"),
    ("measure", "--preset", "tiny", "--context-length", "abc"),
    ("measure", "--preset", "tiny", "--dropout", "1.5"),
    ("measure", "--preset", "tiny", "--world-size", "4"),
    ("measure", "--preset", "tiny", "--no-reshard-after-forward"),
    ("measure", "--preset", "tiny", "--autocast", "bfloat16", "--dtype", "bfloat16"),
    ("measure", "--d-model", "7", "--num-heads", "2", "--vocab-size", "10", "--context-length", "4",
     "--num-layers", "1"),
    ("measure", "--preset", "tiny", "--model", "not a source"),
    ("measure", "--preset", "tiny", "--model", "no_such_package.models:build"),
    ("measure", "--preset", "tiny", "--optimizer-class", "no_such_package.optim:AdamW"),
    ("measure", "--preset", "tiny", "--optimizer-class", "torch.nn:Linear"),
    ("measure", "--model", "hf:/no/such/config.json"),
    ("measure", "--preset", "tiny", "--formula-set", "/no/such/set.py"),
    ("measure", "--preset", "tiny", "--formula-set", "no_such_set"),
    ("predict", "--preset", "tiny", "--positional", "rope", "--arch", "gpt2"),
    ("predict", "--preset", "tiny", "--batch-size", "0"),
    ("max-batch", "--preset", "tiny", "--budget", "80 parsecs"),
    ("max-batch", "--preset", "tiny", "--budget", "-5GB"),
    ("max-batch", "--preset", "tiny", "--budget", "80GB", "--start", "0"),
    ("max-batch", "--preset", "tiny", "--budget", "80GB", "--plot", "/no/such/folder/curve.png"),
    ("formula", "--preset", "tiny", "--budget", "lots"),
    ("explain", "--preset", "tiny", "--attention", "sdpa-flash"),
    ("check", "--tolerance", "-0.1"),
    ("check", "--grid", "/no/such/grid.toml"),
    ("sweep", "--grid", "no-such-grid"),
    ("sweep", "--grid", "/"),
    ("measure", "--preset", "tiny", "--formula-set", "/"),
    ("report", "/no/such/folder"),
    ("audit", "--formula-set", "no_such_set"),
    ("audit", "--preset", "tiny"),
]


@pytest.mark.parametrize("argv", MIX, ids=[" ".join(argv) for argv in MIX])
def test_a_bad_input_is_one_line_and_exit_2(capsys, argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err, captured.err
    assert len(captured.err.rstrip("\n")) <= 400  # a line, not a dump
    assert "Errno" not in captured.err  # said in the tool's words
