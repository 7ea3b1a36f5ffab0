"""measure --snapshot on meta: a memory_viz snapshot that torch's own _memory_viz code reads (stats, trace,
trace_plot, segment_plot) and its viewer can lay out, and whose trace replays to the measured figures byte for
byte."""
import pickle
import shlex

import pytest
from torch.cuda import _memory_viz

from model import StepSpec, preset
from profiler.cli import main
from profiler.measuring.measure import measure


def replay_peak(snapshot, step="measured"):
    """The highest live total over one step's events (and the moment before its first)."""
    live, levels = 0, []
    for event in snapshot["device_traces"][0]:
        if event["action"] == "snapshot":
            continue
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
    active = [block for block in segment["blocks"] if block["state"] == "active_allocated"]
    assert sum(block["size"] for block in active) == segment["allocated_size"] == end
    assert end == measured["phases"]["optimizer"]["end_bytes"] - spec.setup.bytes_per_element  # less the 0-dim loss
    assert sum(block["size"] for block in segment["blocks"]) == segment["total_size"]
    assert f"total_allocated: {_memory_viz.Bytes(end)}" in _memory_viz.segsum(snapshot)  # `stats`: it adds up
    assert "Active Memory Timeline" in _memory_viz.trace_plot(snapshot)  # torch's own reader takes it
    assert "Allocator State History" in _memory_viz.segment_plot(snapshot)
    assert _memory_viz.trace(snapshot).count("\n") > len(snapshot["device_traces"][0]) // 2
    viewer_lays_out(snapshot)


def viewer_lays_out(snapshot):
    """What memory_viz's viewer (torch/utils/viz/MemoryViz.js, which trace_plot and segment_plot load) assumes of
    a snapshot: it places each block of a segment at the segment's address plus the sizes before it
    (annotate_snapshot), which must be the block's address; it needs 'unknown' among the events' categories
    when there are any; and, replaying the trace backwards from the segments' blocks (the Allocator State
    History), it finds every allocation it undoes, and every block lies inside a segment."""
    events = snapshot["device_traces"][0]
    categories = {event["category"] for event in events if "category" in event}
    assert not categories or "unknown" in categories
    blocks, segments = {}, []
    for segment in snapshot["segments"]:
        segments.append((segment["address"], segment["address"] + segment["total_size"]))
        address = segment["address"]
        for block in segment["blocks"]:
            assert block["address"] == address
            if block["state"] == "active_allocated":
                blocks[address] = block["size"]
            address += block["size"]
        assert address == segment["address"] + segment["total_size"]
    for event in reversed(events):
        if event["action"] == "alloc":
            assert blocks.pop(event["addr"]) == event["size"]
        elif event["action"] == "free_completed":
            assert event["addr"] not in blocks
            blocks[event["addr"]] = event["size"]
        assert all(any(start <= address < end for start, end in segments) for address in blocks)
    assert blocks == {}  # before the first event nothing was allocated


def test_snapshot_option_never_overwrites(tmp_path, capsys):
    path = tmp_path / "a step.pickle"
    assert main(["measure", "--preset", "tiny", "--snapshot", str(path)]) == 0
    out = capsys.readouterr().out
    assert path.stat().st_size > 0
    command = out[out.index("python -m torch.cuda._memory_viz"):].replace("\\\n", " ").splitlines()[0]
    assert shlex.split(command)[:3] == ["python", "-m", "torch.cuda._memory_viz"]
    assert shlex.split(command)[3:] == ["trace_plot", str(path), "-o", str(path.with_suffix(".html"))]
    assert main(["measure", "--preset", "tiny", "--snapshot", str(path)]) == 2
    assert "never overwrites" in capsys.readouterr().err
