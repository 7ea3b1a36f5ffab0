"""measure --snapshot on meta: a memory_viz snapshot that torch's own _memory_viz code reads, and whose trace
replays to the measured figures byte for byte."""
import pickle

import pytest
from torch.cuda import _memory_viz

from model import StepSpec, preset
from profiler.cli import main
from profiler.measuring.measure import measure


def replay_peak(snapshot, step="measured"):
    """The highest live total over one step's events (and the moment before its first)."""
    live, levels = 0, []
    for event in snapshot["device_traces"][0]:
        if event["action"] == "alloc":
            live += event["size"]
        elif event["action"] == "free_completed":
            live -= event["size"]
        levels.append((event["frames"][0]["filename"], live))
    inside = [i for i, (phase, _) in enumerate(levels) if phase.startswith(step)]
    return max(level for _, level in levels[inside[0] - 1:inside[-1] + 1]), live


@pytest.mark.parametrize("changes", [{}, {"micro_batches": 2, "checkpointing": "full"},
                                     {"attention": "sdpa-flash", "dtype": "bfloat16"}])
def test_snapshot_replays_to_the_measured_peak(tmp_path, changes):
    path = tmp_path / "step.pickle"
    spec = StepSpec(preset("tiny"), batch_size=2).replace(**changes)
    measured = measure(spec, "meta", count_flops=False, snapshot_path=path).measured
    snapshot = pickle.loads(path.read_bytes())
    peak, end = replay_peak(snapshot)
    assert peak == measured["peak_bytes"]
    assert replay_peak(snapshot, "warmup")[0] == measured["warmup"]["peak_bytes"]
    segment = snapshot["segments"][0]
    assert sum(block["size"] for block in segment["blocks"]) == segment["allocated_size"] == end
    assert end == measured["phases"]["optimizer"]["end_bytes"] - spec.setup.bytes_per_element  # less the 0-dim loss
    assert "Active Memory Timeline" in _memory_viz.trace_plot(snapshot)  # torch's own reader takes it
    assert _memory_viz.trace(snapshot).count("\n") > len(snapshot["device_traces"][0]) // 2


def test_snapshot_option_never_overwrites(tmp_path, capsys):
    path = tmp_path / "step.pickle"
    assert main(["measure", "--preset", "tiny", "--snapshot", str(path)]) == 0
    assert "memory snapshot" in capsys.readouterr().out and path.stat().st_size > 0
    assert main(["measure", "--preset", "tiny", "--snapshot", str(path)]) == 2
    assert "never overwrites" in capsys.readouterr().err
