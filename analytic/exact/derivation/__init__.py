"""The exact model's derivation: its programs traced from the real step on meta (imports torch and the storage
tracker of profiler.measuring). The torch-free part of analytic.exact never imports it; the profiler's commands,
tools/ and tests do.

    trace             one traced step as measure() traces it: each window's events, the constant and saved storages
    fit               events traced at unrelated size sets named by an alphabet's terms (the built-in blocks' named
                      symbols, or count × monomial for any code), and the tokens at L = 1, 2, 3 split into segments
    derive            the built-in blocks' layout classes and AdamW layouts: trace and fit with the named symbols
    any_model         any model's code (a user's, Hugging Face's): trace and fit with monomials, and its verification
    model_cache       any_model's documents, verified and cached by a hash of the code
    derive_sharded    one rank of a sharded step (FSDP2, DDP), from traces of simulated ranks
    on_demand         a class derived on first use on the installed torch and cached (analytic.exact.store's format)
    version_diff      where the installed torch allocates otherwise than the shipped programs say, and which op
    revision          the simulation's revision, recorded with every derivation
"""
