"""Measurement of one AdamW training step (on meta, CPU or CUDA), sweeps and discrepancy reports.

The entry point:

    from model import StepSpec, preset
    from profiler import measure

    step = measure(StepSpec(preset("gpt2-xl")), device="meta")       # or "cpu", "cuda", "auto"
    step.measured["peak_bytes"], step.measured["peak_phase"]         # 32744593156 (30.50 GiB), "optimizer"
    step.to_dict()                                                    # what `measure --json` prints, less predictions

Layout, imports pointing one way (commands -> experiments -> measuring -> reports -> analytic -> model):
    measuring/    the step measured: tracker (meta/CPU storages), flops, cuda (allocator backend), allocator
                  (caching-allocator model), speed (step time, MFU), measure (the coordinator: Measurement),
                  search and max_batch (the largest batch that fits)
    experiments/  what measures and writes: grid (grid files), sweep (resumable), simulation (a GPU sweep's points
                  on meta), truth (the audit's measured answers), assumptions (a formula set's audit)
    reports/      what reads results and renders, no torch: results (a sweep folder's files), folder (never
                  overwrites a user's file), compare (predictions beside measurements), report, render, plots,
                  tables, matrix, sharded, simulation (the GPU beside its simulation), truth (the exact answers)
    commands/     one module per CLI command; cli.py parses and dispatches
"""
__all__ = ["measure", "Measurement"]


def __getattr__(name):  # imported on first use, so that `import profiler` (and the CLI's --help) needs no torch
    if name in __all__:
        from profiler.measuring import measure as module
        return getattr(module, name)
    raise AttributeError(f"module 'profiler' has no attribute {name!r}")
