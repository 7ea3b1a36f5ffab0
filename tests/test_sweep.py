"""Grids, the resumable sweep, failures recorded per point, a sweep killed with SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model import preset
from model.spec import StepSpec
from profiler.experiments.grid import GridError, expand, load_grid
from profiler.experiments.sweep import iter_sweep, run_sweep
from profiler.reports.results import RESULTS, read_results
from sweep_fakes import TINY_GRID, fake_measure, write_grid

TESTS = Path(__file__).parent


@pytest.mark.parametrize("name", ["ci", "gpu", "gpt2", "setups"])
def test_shipped_grids_expand_with_unique_keys_and_gpt2_xl(name):
    points = expand(load_grid(name))
    assert len({p.key for p in points}) == len(points)
    xl = StepSpec(preset("gpt2-xl"))
    assert any(p.spec.replace(optimizer="foreach") == xl for p in points)


def test_axes_vary_one_size_around_the_base(tmp_path):
    points = expand(load_grid(write_grid(tmp_path)))
    base = [p for p in points if len(p.axes) == 2]
    assert len(base) == 1 and set(base[0].axes) == {"batch_size", "context_length"}
    on_t = [p for p in points if "context_length" in p.axes]
    assert sorted(p.spec.model.context_length for p in on_t) == [16, 32]
    assert all(p.spec.model.d_model == 64 and p.spec.batch_size == 2 for p in on_t)
    assert len(points) == 4  # base, batch 1, T 16, and the extra forloop point (T 32 is the base)


@pytest.mark.parametrize("old, new, words", [
    ('optimizers = ["foreach"]', 'optimizers = ["foreach"]\nbogus = 1', ["bogus", "unknown key"]),
    ("batch_size = [1, 2]", "batch_size = [1, 0]", ["axes.batch_size", "positive integers"]),
    ("batch_size = [1, 2]", "batch_size = [1, 2]\nd_modle = [1]", ["axes.d_modle", "unknown key"]),
    ("context_length = [16, 32]", "context_length = [16, 32]\nnum_heads = [3]", ["axes.num_heads", "not divisible"]),
    ('optimizers = ["forloop"]', 'optimizers = ["adamw"]', ["points[0].optimizers", "adamw"]),
    ('device = "meta"', 'device = "tpu"', ["device", "tpu"]),
    ("[base]", "[base", ["not valid TOML"]),
])
def test_malformed_grid_names_file_and_key_and_writes_nothing(tmp_path, old, new, words):
    path = write_grid(tmp_path, TINY_GRID.replace(old, new, 1))
    out = tmp_path / "out"
    with pytest.raises(GridError) as error:
        run_sweep(path, out, measure_fn=fake_measure, progress=False)
    message = str(error.value)
    assert str(path) in message and all(w in message for w in words), message
    assert not out.exists()


def test_resume_measures_nothing_new(tmp_path):
    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return fake_measure(*args, **kwargs)

    grid = write_grid(tmp_path)
    first = run_sweep(grid, tmp_path / "out", measure_fn=counting, progress=False)
    assert len(first) == len(calls) == 4 and all(row["outcome"] == "ok" for row in first)
    assert run_sweep(grid, tmp_path / "out", measure_fn=counting, progress=False) == []
    assert len(calls) == 4 and len(read_results(tmp_path / "out")) == 4
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["grid"] == "tiny-test" and meta["device"] == "meta" and meta["points"] == 4
    assert (tmp_path / "out" / "grid.toml").read_text() == TINY_GRID


def test_a_second_sweep_into_a_folder_being_written_is_refused(tmp_path):
    """Two sweeps into one folder at once: the second measures nothing and says why (the first holds the lock on
    results.jsonl); once the first has finished, the folder resumes as usual."""
    import fcntl

    from profiler.errors import UsageError

    grid, out, calls = write_grid(tmp_path), tmp_path / "out", []
    first = iter_sweep(grid, out, measure_fn=fake_measure, progress=False)
    next(first)  # the first sweep has measured one point and holds the folder
    with pytest.raises(UsageError, match="being written by another sweep"):
        run_sweep(grid, out, measure_fn=lambda *a, **k: calls.append(a), progress=False)
    assert calls == [] and len(read_results(out)) == 1
    assert len(list(first)) == 3
    with open(out / RESULTS) as results:  # released once the first sweep ended
        fcntl.flock(results, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    def flaky(spec, device):
        if spec.model.context_length == 16:
            raise RuntimeError("boom")
        if spec.setup.optimizer == "forloop":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return fake_measure(spec, device)

    rows = run_sweep(write_grid(tmp_path), tmp_path / "out", measure_fn=flaky, progress=False)
    outcomes = sorted(row["outcome"] for row in rows)
    assert outcomes == ["error", "ok", "ok", "oom"]
    error = next(row for row in rows if row["outcome"] == "error")
    assert error["error"] == "RuntimeError: boom" and error["config"]["context_length"] == 16
    assert next(row for row in rows if row["outcome"] == "oom")["error"].startswith("CUDA out of memory")
    retried = run_sweep(write_grid(tmp_path), tmp_path / "out", measure_fn=fake_measure, progress=False)
    assert [row["key"] for row in retried] == [error["key"]]  # the error is retried, the OOM kept
    assert sorted(row["outcome"] for row in read_results(tmp_path / "out")) == ["ok", "ok", "ok", "oom"]


def test_trailing_half_line_is_ignored_then_cut_before_the_next_append(tmp_path):
    out = tmp_path / "out"
    grid = write_grid(tmp_path)
    run_sweep(grid, out, measure_fn=fake_measure, progress=False)
    lines = (out / RESULTS).read_bytes().splitlines(keepends=True)
    (out / RESULTS).write_bytes(b"".join(lines[:2]) + lines[2][:25])  # a kill inside the third write
    assert len(read_results(out)) == 2
    assert len(run_sweep(grid, out, measure_fn=fake_measure, progress=False)) == 2
    assert len(read_results(out)) == 4
    assert all(json.loads(line) for line in (out / RESULTS).read_bytes().splitlines())


def test_killed_sweep_keeps_completed_rows_and_resumes(tmp_path):
    grid, out = write_grid(tmp_path), tmp_path / "out"
    code = ("import sys; from profiler.experiments.sweep import run_sweep; from sweep_fakes import slow_measure; "
            "run_sweep(sys.argv[1], sys.argv[2], measure_fn=slow_measure, progress=False)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", code, str(grid), str(out)], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(read_results(out)) < 2:
            assert process.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    survived = read_results(out)
    assert 2 <= len(survived) < 4
    rest = run_sweep(grid, out, measure_fn=fake_measure, progress=False)
    assert len(rest) == 4 - len(survived)
    assert {row["key"] for row in read_results(out)} == {p.key for p in expand(load_grid(grid))}


def test_defaults_pick_gpu_grid_on_cuda_else_ci_on_meta(monkeypatch):
    from profiler.commands.sweep import default_out, resolve
    from profiler.errors import CudaUnavailableError

    assert resolve(None, "auto", has_cuda=False) == ("ci", "meta")
    assert resolve("gpt2", "auto", has_cuda=False) == ("gpt2", "meta")
    assert resolve("gpu", "meta", has_cuda=False) == ("gpu", "meta")
    with pytest.raises(CudaUnavailableError, match="grid gpu on cuda needs a GPU"):
        resolve("gpu", "auto", has_cuda=False)
    with pytest.raises(CudaUnavailableError, match="grid ci on cuda needs a GPU"):
        resolve("ci", "cuda", has_cuda=False)
    assert resolve(None, "auto", has_cuda=True) == ("gpu", "cuda")
    assert default_out("ci", "meta").parts[0] == "reports" and "sweep-ci-meta-" in default_out("ci", "meta").name


def test_checkpointing_is_a_grid_axis(tmp_path):
    grid = load_grid(write_grid(tmp_path, TINY_GRID.replace("context_length = [16, 32]",
                                                             'checkpointing = ["full", "selective"]')))
    labels = {point.label: point for point in expand(grid)}
    assert labels["tiny:checkpointing=full b=2"].spec.setup.checkpointing == "full"
    assert "-ckpt-selective|" in labels["tiny:checkpointing=selective b=2"].key
    assert "ckpt" not in labels["tiny b=2"].key  # keys of points without checkpointing are those of earlier sweeps
    bad = write_grid(tmp_path, TINY_GRID.replace("context_length = [16, 32]", 'checkpointing = ["some"]'), "b.toml")
    with pytest.raises(GridError, match="axes.checkpointing: must be a non-empty list of some of none, full"):
        load_grid(bad)


def test_micro_batches_zero_grad_and_attention_are_grid_axes(tmp_path):
    grid = load_grid(write_grid(tmp_path, TINY_GRID.replace(
        "context_length = [16, 32]", 'micro_batches = [2]\nzero_grad = ["zeros"]\nattention = ["sdpa-efficient"]')))
    keys = {point.label: point.key for point in expand(grid)}
    assert "-mb2|" in keys["tiny:micro_batches=2 b=2"] and "-zg-zeros|" in keys["tiny:zero_grad=zeros b=2"]
    assert "-sdpa-efficient-" in keys["tiny:attention=sdpa-efficient b=2"]
    odd = write_grid(tmp_path, TINY_GRID.replace("context_length = [16, 32]", "micro_batches = [3]"), "b.toml")
    with pytest.raises(GridError, match="axes.micro_batches.* not divisible by micro_batches=3"):
        load_grid(odd)


def test_max_batch_budget_measures_each_points_largest_batch(tmp_path):
    """A grid with max_batch_budget: each row holds the largest batch whose measured peak fits, which is the exact
    set's answer confirmed by measuring it and one more."""
    from analytic.exact.max_batch import max_batch_size

    text = TINY_GRID.split("[axes]")[0] + "\n[[points]]\npreset = \"tiny\"\nbatch_sizes = [1]\n"
    path = write_grid(tmp_path, text.replace('optimizers = ["foreach"]', 'optimizers = ["foreach"]\n'
                                             'max_batch_budget = "3MB"').replace("[base]\npreset = \"tiny\"\n"
                                                                                "batch_size = 2\n", ""))
    rows = run_sweep(path, tmp_path / "out", progress=False)
    assert [row["max_batch"] for row in rows] == [
        {"budget": "3MB", "budget_bytes": 3_000_000, "measured": max_batch_size(StepSpec(preset("tiny")), 3_000_000),
         "exact_confirmed": True}]
    bad = write_grid(tmp_path, TINY_GRID.replace('device = "meta"', 'device = "meta"\nmax_batch_budget = "lots"'),
                     "b.toml")
    with pytest.raises(GridError, match="max_batch_budget"):
        load_grid(bad)


def test_point_keys_tell_the_archs_apart():
    """Same sizes, other block: the published GPT-2 XL, its dropout-free variant and a Llama block of GPT-2 XL's
    sizes are other points than GPT-2 XL with the reference block (a sweep skips a key it has measured)."""
    from model.config import PRESETS
    from profiler.experiments.grid import point_key
    configs = [PRESETS["gpt2-xl"], PRESETS["hf-gpt2-xl"], PRESETS["hf-gpt2-xl"].replace(dropout=0.0),
               PRESETS["gpt2-xl"].replace(arch="llama", d_ff=6400, kv_heads=5)]
    keys = [point_key(StepSpec(config), "meta") for config in configs]
    assert len(set(keys)) == 4
    assert keys[0] == "V50257-T1024-L48-D1600-H25-F6400-learned-explicit-float32|b1|foreach|meta"
