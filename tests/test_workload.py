"""The guard against measurements that cannot finish: the estimate (profiler.measuring.workload) against the
tracker's own count, the refusal in one line before anything runs, and the everyday steps it lets through."""
from __future__ import annotations

import time

import pytest

from model import StepSpec, preset
from profiler.commands.options import check_points, check_work
from profiler.errors import UsageError
from profiler.experiments.grid import load_grid
from profiler.measuring import workload
from profiler.measuring.workload import PROGRESS_SECONDS, step_work, traced_ops
from sweep_fakes import write_grid
from test_folders_and_errors import assert_one_line_error, run


def counted_ops(spec: StepSpec) -> int:
    """The ops the tracker saw over a measurement's two steps."""
    from profiler.measuring.measure import OneDevice, trace_step
    from profiler.measuring.sharded import ShardedRank

    where = ShardedRank(spec, "meta") if spec.setup.shard != "none" else OneDevice(spec, "meta")
    with where:
        return len(trace_step(where, spec, count_flops=True).tracker.ops)


@pytest.mark.parametrize("model, setup", [
    ({}, {}), ({"num_layers": 6}, {}), ({"arch": "gpt2"}, {"optimizer": "forloop"}),
    ({"arch": "llama", "positional": "rope"}, {"checkpointing": "full"}), ({}, {"micro_batches": 2}),
    ({}, {"checkpointing": "selective", "autocast": "bfloat16", "attention": "sdpa-flash"}),
    ({}, {"shard": "fsdp2", "world_size": 4}), ({}, {"shard": "ddp", "world_size": 2}),
])
def test_the_estimate_is_within_a_quarter_of_the_ops_traced(model, setup):
    spec = StepSpec(preset("tiny").replace(**model), batch_size=2).replace(**setup)
    assert traced_ops(spec) == pytest.approx(counted_ops(spec), rel=0.25)


def test_the_estimate_grows_with_layers_micro_batches_and_ranks_as_the_docstring_says():
    spec = StepSpec(preset("tiny"))
    assert traced_ops(spec.replace(num_layers=3)) - traced_ops(spec) == 2 * 295  # 2 steps × (250 + 45) a layer
    fsdp2 = spec.replace(shard="fsdp2", world_size=1000)
    assert step_work(fsdp2, "meta").chunks == 2 * 20 * 1000  # 20 tensors: 4, and 8 a layer
    assert step_work(spec.replace(shard="ddp", world_size=1000), "meta").chunks == 0
    assert step_work(spec, "cuda") is None


@pytest.mark.parametrize("argv, words", [
    (["measure", "--preset", "tiny", "--num-layers", "100000"], "this step takes ~1.6 hours on meta (59,000,220 "
                                                                "traced ops), past the 10-minute limit"),
    (["measure", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "10000000"],
     "this step takes ~47 minutes on meta (400,000,000 FSDP2 chunks)"),
    (["measure", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "1000", "--device", "cpu"],
     "on cpu (1,000 processes to start)"),
    (["measure", "--preset", "gpt2-xl", "--batch-size", "8", "--device", "cpu"], "on cpu (1.8e+14 FLOPs)"),
    (["max-batch", "--preset", "tiny", "--num-layers", "100000"], "each probe takes ~1.6 hours"),
    (["explain", "--preset", "tiny", "--num-layers", "100000"], "this step takes ~1.6 hours"),
])
def test_a_step_that_cannot_finish_is_one_line_before_anything_runs(capsys, monkeypatch, argv, words):
    from profiler.measuring import max_batch, measure

    def fail(*args, **kwargs):
        pytest.fail("a step ran before the estimate refused it")

    monkeypatch.setattr(measure, "measure", fail)
    monkeypatch.setattr(max_batch, "batch_fits", fail)
    start = time.perf_counter()
    code, out, err = run(capsys, *argv)
    assert time.perf_counter() - start < 5
    assert_one_line_error(code, out, err, words, "use predict or --allow-long")


def test_a_sweep_with_a_point_that_cannot_finish_is_refused_before_its_first_point(tmp_path, capsys, monkeypatch):
    from profiler.experiments import sweep

    monkeypatch.setattr(sweep, "measure", lambda *args, **kwargs: pytest.fail("measured"))
    grid = write_grid(tmp_path, 'name = "deep"\ndevice = "meta"\noptimizers = ["foreach"]\n\n[[points]]\n'
                                'preset = "tiny"\nbatch_sizes = [1]\n\n[[points]]\npreset = "tiny"\n'
                                'num_layers = 100000\nname = "deep"\nbatch_sizes = [1]\n')
    for argv in (["sweep", "--grid", grid, "--out", tmp_path / "out", "--quiet"], ["check", "--grid", grid]):
        code, out, err = run(capsys, *argv)
        assert_one_line_error(code, out, err, "point deep", "1.6 hours on meta")
    assert not (tmp_path / "out").exists()


def test_allow_long_runs_it_and_says_what_it_will_take(capsys):
    spec = StepSpec(preset("tiny").replace(num_layers=100000))
    with pytest.raises(UsageError):
        check_work(spec, "meta", allow_long=False)
    check_work(spec, "meta", allow_long=True)
    assert capsys.readouterr().err == "this step takes ~1.6 hours on meta (59,000,220 traced ops)...\n"


@pytest.mark.parametrize("spec", [
    StepSpec(preset("gpt2-xl"), batch_size=8), StepSpec(preset("llama2-7b"), batch_size=4),
    StepSpec(preset("gpt2-xl")).replace(shard="fsdp2", world_size=8),
    StepSpec(preset("gpt2-xl"), batch_size=8).replace(shard="fsdp2", world_size=64, checkpointing="full"),
    StepSpec(preset("llama2-7b")).replace(shard="fsdp2", world_size=64),
    StepSpec(preset("gpt2-xl")).replace(micro_batches=4, checkpointing="selective"),
], ids=str)
def test_everyday_steps_run_without_a_word(spec, capsys):
    assert step_work(spec, "meta").seconds < PROGRESS_SECONDS
    check_work(spec, "meta", allow_long=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["ci", "gpt2", "dist", "setups", "gpu"])
def test_no_point_of_a_shipped_grid_is_refused(name):
    grid = load_grid(name)
    check_points(grid, grid.device, allow_long=False)


def test_the_limit_is_ten_minutes_at_the_calibrated_rates():
    assert workload.LIMIT_SECONDS == 600 and workload.duration(workload.LIMIT_SECONDS) == "10 minutes"
    assert [workload.duration(s) for s in (40, 150, 5900, 2 * 86400)] == ["40 s", "2 minutes", "1.6 hours", "2.0 days"]


def test_audit_of_a_set_declaring_a_setup_that_cannot_finish_is_refused(tmp_path, capsys, monkeypatch):
    import analytic.formula_sets as registry
    from profiler.experiments import assumptions

    monkeypatch.setattr(registry, "_USER_SETS", {})  # the user's file stays out of other tests
    monkeypatch.setattr(assumptions, "measure", lambda *args, **kwargs: pytest.fail("measured"))
    mine = tmp_path / "huge.py"
    mine.write_text("NAME = 'huge'\nDESCRIPTION = 'a rank of ten million'\n"
                    "SETUP = {'shard': 'fsdp2', 'world_size': 10**7}\n"
                    "def predict(spec):\n    return {'peak_bytes': 1}\n")
    code, out, err = run(capsys, "audit", "--formula-set", mine)
    assert_one_line_error(code, out, err, "each of its steps takes ~15.1 hours on meta (7,760,000,000 FSDP2 chunks)")
