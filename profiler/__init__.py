"""Measurement of one AdamW training step (on meta, CPU or CUDA), sweeps and discrepancy reports.

The entry point:

    from model import preset
    from profiler import measure

    step = measure(preset("gpt2-xl"), batch_size=1, device="meta")   # or "cpu", "cuda", "auto"
    step.measured["peak_bytes"], step.measured["peak_phase"]         # 32744593156 (30.50 GiB), "optimizer"
    step.to_dict()                                                    # what `measure --json` prints, less predictions

Layout, imports pointing one way (commands -> reporting -> measuring -> analytic -> model):
    measuring/   the step measured: tracker (meta/CPU storages), flops, cuda (allocator backend), allocator
                 (caching-allocator model), speed (step time, MFU), measure (the coordinator: Measurement),
                 search and max_batch (the largest batch that fits)
    reporting/   grid, sweep (resumable), folder (never overwrites a user's file), compare (predictions beside
                 measurements), report, render, plots, tables, truth (the audit's exact and measured answers)
    commands/    one module per CLI command; cli.py parses and dispatches
"""
__all__ = ["measure", "Measurement"]


def __getattr__(name):  # imported on first use, so that `import profiler` (and the CLI's --help) needs no torch
    if name in __all__:
        from profiler.measuring import measure as module
        return getattr(module, name)
    raise AttributeError(f"module 'profiler' has no attribute {name!r}")
