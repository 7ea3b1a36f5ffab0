"""The exact model's derivation: its programs traced from the real step on meta (imports torch and the storage
tracker of profiler.measuring). The torch-free part of analytic.exact never imports it; the profiler's commands,
tools/ and tests do.

    derive            one device's layout classes and AdamW layouts, from traces at two unrelated size sets
    derive_sharded    one rank of a sharded step (FSDP2, DDP), from traces of simulated ranks
    on_demand         a class derived on first use on the installed torch and cached (analytic.exact.store's format)
    version_diff      where the installed torch allocates otherwise than the shipped programs say, and which op
"""
