"""torch's own MemTracker on the step the tool measures, for the tests that hold the measurement equal to it."""
import torch
from torch.distributed._tools.mem_tracker import MemTracker

from analytic.figures import flatten
from model.step import build, make_batch, train_step

# What MemTracker counts and the measurement leaves out: the fused kernels' RNG state, which CUDA creates on the
# host (profiler.measuring.tracker.HOST_OUTPUTS) and their meta kernels on meta, kept for backward by each layer:
# the efficient kernel's seed and offset (0-dim int64 each), the flash kernel's [2] and 0-dim int64 tensors.
HOST_BYTES_PER_LAYER = {"explicit": 0, "sdpa-math": 0, "sdpa-efficient": 8 + 8, "sdpa-flash": 16 + 8}


def memtracker_peak(spec) -> int:
    """MemTracker's peak on meta over a steady-state step (after one warm-up step), as the tool measures it."""
    model, optimizer = build(spec, "meta")
    tokens, targets = make_batch(spec.model, spec.batch_size, "meta")
    train_step(model, optimizer, tokens, targets, spec.setup)
    tracker = MemTracker()
    tracker.track_external(model, optimizer, tokens, targets)
    with tracker:
        train_step(model, optimizer, tokens, targets, spec.setup)
    return tracker.get_tracker_snapshot("peak")[torch.device("meta")]["Total"]


def byte_figures(measured) -> dict:
    """Every figure of a measurement but its FLOPs (which are the same on every device by construction)."""
    return {key: value for key, value in flatten(measured).items() if "flops" not in key}
