"""A CUDA sweep's points beside their meta simulation: simulated once (profiler.experiments.simulation), cached in
the folder, read and shown (profiler.reports.simulation)."""
import json

import pytest

from model.config import preset
from model.spec import StepSpec
from model.vocabulary import PHASES
from profiler.experiments.simulation import simulations
from profiler.reports.simulation import SIMULATION_FILE, against_simulation, display, read_simulations, summary


def _gpu_row(key, simulated, extra_backward=0, optimizer="foreach", baseline=64 << 20):
    """A row as a CUDA sweep writes it, its allocator figures the simulation's plus a baseline (and, in
    backward, a workspace the simulation does not have)."""
    phases = {phase: {"peak_bytes": simulated["phases"][phase]["peak_bytes"] + baseline
                      + (extra_backward if phase == "backward" else 0),
                      "reserved_peak_bytes": 2 * simulated["peak_bytes"]} for phase in PHASES}
    return {"key": key, "label": f"{key} b=2", "outcome": "ok", "device": "cuda", "optimizer": optimizer,
            "config": StepSpec(preset("tiny")).flat(), "batch_size": 2,
            "measured": {"baseline_bytes": baseline, "peak_bytes": max(p["peak_bytes"] for p in phases.values()),
                         "phases": phases}}


def test_points_beside_their_simulation(tmp_path):
    from profiler.experiments.simulation import simulate_on_meta

    simulated = simulate_on_meta(StepSpec(preset("tiny"), batch_size=2))
    rows = [_gpu_row("same", simulated), _gpu_row("workspace", simulated, extra_backward=512 << 10),
            _gpu_row("fused", simulated, optimizer="fused"),
            {"key": "failed", "outcome": "oom", "device": "cuda"}]
    known = simulations(tmp_path, rows, progress=False)
    assert set(known) == {"same", "workspace", "fused"} and "outside" in known["fused"]
    assert (tmp_path / SIMULATION_FILE).read_text().count("\n") == 3

    def never(*args):
        raise AssertionError("a cached point was simulated again")

    assert simulations(tmp_path, rows, simulate=never, progress=False) == known == read_simulations(tmp_path)
    table = against_simulation(rows, known).set_index("point")
    assert table.loc["same b=2", "difference"] == 0 and table.loc["same b=2", "relative"] == 0
    peak = simulated["peak_bytes"]
    backward = simulated["phases"]["backward"]["peak_bytes"]
    workspace = table.loc["workspace b=2"]
    assert workspace["difference"] == max(peak, backward + (512 << 10)) - peak
    assert workspace["worst phase"] == ("backward", pytest.approx((512 << 10) / backward))
    assert table.loc["fused b=2", "outside"] == "fused AdamW does not run on meta"
    assert table.loc["same b=2", "reserved / allocated"] == pytest.approx(2 * peak / (peak + (64 << 20)))
    assert "Over 2 points" in summary(table.reset_index()) and "1 to the byte" in summary(table.reset_index())
    shown = display(table.reset_index())
    assert shown.loc[2, "difference"].startswith("— (fused")


def test_a_point_without_its_simulation_is_shown_as_not_simulated(tmp_path):
    """The report reads simulation.jsonl and simulates nothing: a CUDA point missing there is a row without figures."""
    from profiler.reports.simulation import simulation_blocks

    simulated = {"phases": {phase: {"peak_bytes": 1 << 20} for phase in PHASES}, "peak_bytes": 1 << 20}
    rows = [_gpu_row("done", simulated), _gpu_row("missing", simulated)]
    (tmp_path / SIMULATION_FILE).write_text(json.dumps({"key": "done", "torch_version": "2.13.0+cpu", **simulated})
                                            + "\n")
    heading, text, table = simulation_blocks(tmp_path, rows)
    assert "with torch 2.13.0+cpu;" in text.markdown and "Over 1 points" in text.markdown
    assert list(table.frame["difference"]) == ["+0.0 MiB", "— (not simulated)"]


def test_report_simulate_simulates_the_missing_points_before_it_renders(tmp_path, monkeypatch):
    """`report --simulate DIR` appends the CUDA points simulation.jsonl lacks, then renders (here: a stand-in)."""
    import profiler.reports.report as report
    from profiler.cli import main
    from profiler.reports.folder import claim
    from profiler.reports.results import RESULTS

    claim(tmp_path, [RESULTS, SIMULATION_FILE])  # a sweep folder: the tool wrote both
    simulated = {"phases": {phase: {"peak_bytes": 1 << 20} for phase in PHASES}, "peak_bytes": 1 << 20}
    (tmp_path / RESULTS).write_text("".join(json.dumps(_gpu_row(key, simulated)) + "\n" for key in ("a", "b")))
    (tmp_path / SIMULATION_FILE).write_text(json.dumps({"key": "a", "torch_version": "2.0", **simulated}) + "\n")
    rendered = []
    monkeypatch.setattr(report, "write_report",
                        lambda out_dir, budget: rendered.append(read_simulations(out_dir)) or [])
    assert main(["report", "--simulate", str(tmp_path)]) == 0
    (known,) = rendered
    assert known["a"]["torch_version"] == "2.0" and known["b"]["peak_bytes"] > 0  # b simulated on meta, a kept
