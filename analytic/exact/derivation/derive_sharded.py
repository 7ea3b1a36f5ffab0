"""The programs of one sharded rank's steady step (analytic.exact.sharded), derived from traces of the simulated
rank 0 (profiler.measuring.sharded), as analytic.exact.derivation.derive does for one device.

A class (analytic.sizes.ShardedClass: one device's layout class, the shard strategy, FSDP2's
resharding, one rank or several, micro-batches or not, zero_grad, tensor and sequence parallelism) is traced at
L = 1 to 5 layers and at two unrelated size sets, each on its own mesh (MESHES: 3 and 7 ranks, so that shards pad,
1 for FSDP2's one-rank classes; with tensor parallelism 2 × 3 and 6 × 4 ("dp" × "tp"), the size set's heads, d_ff
and, with sequence parallelism, context length a rank's): every storage's bytes must name the same symbol of
analytic.exact.sharded.ALL_SYMBOLS at both (the first in that order: analytic.exact.derivation.fit with a
SymbolAlphabet), and no two symbols may agree at both sets but not at one of the check sets (CHECKS: CHECK_SET on
five meshes, some with more positions or vocabulary, so that no padded shard is one row at all of them).
Windows: start (what is live as the measured step begins, in allocation order, besides buffers and inputs),
forward and backward (of micro-batches 1 and 2 where there are micro-batches), optimizer (zero_grad included).
L = 1 keeps its own programs; L = 2, 3, 4 are split into segments run once, L, L − 1 or L − 2 times
(fit.segment), which must reproduce L = 5. The ten traces run in parallel (profiler.measuring.parallel).
"""
from __future__ import annotations

import itertools

from analytic.exact.sharded import ALL_SYMBOLS, compile_sharded, symbol_values, windows_of
from analytic.sizes import ShardedClass, sizes_of
from model.spec import StepSpec
from analytic.exact.derivation.derive import CHECK_SET, size_sets, traced_spec
from analytic.exact.derivation.fit import DerivationError, SymbolAlphabet, fit, segment
from analytic.exact.derivation.trace import Event
from profiler.measuring.measure import trace_step
from profiler.measuring.parallel import run_calls
from profiler.measuring.sharded import ShardedRank

# The meshes ("dp" ranks, "tp" ranks) of the two traced size sets, without and with tensor parallelism: no two
# symbols coincide at both in any class (with tensor parallelism: the only such pair among meshes of 2, 3, 4, 5, 6,
# 7 or 9 "dp" ranks by 2, 3 or 4 "tp" ranks, over the 448 classes of tests/test_tensor_parallel.py)
MESHES = {False: ((3, 1), (7, 1)), True: ((2, 3), (6, 4))}
# The check sets: meshes and sizes of analytic.exact.derivation.derive.CHECK_SET changed, where a shard's padded
# rows would otherwise be one whatever the sizes
CHECKS = (((11, 5), {}), ((2, 3), {}), ((3, 2), {"T": 29}), ((4, 4), {"T": 97, "V": 301}), ((13, 2), {"V": 7, "T": 5}))
LAYERS = (1, 2, 3, 4, 5)
CONSTANT = ("buffers", "inputs")  # closed forms of their own (analytic.sizes.Sizes), not traced
ALPHABET = SymbolAlphabet(ALL_SYMBOLS)  # any category any symbol, the first in that order


def rank_spec(key: ShardedClass, layers: int, size_set: dict, mesh: tuple[int, int],
              micro_batches: int = 2) -> StepSpec:
    """The step spec (at the rank's batch) of a sharded class at one size set on a mesh of (ranks, t) (t: tensor
    parallelism, where the class has it; the size set's heads, key/value heads, d_model, d_ff and, with sequence
    parallelism, context length are then a rank's, t times as many in the model)."""
    spec = traced_spec(key.layout_class, layers, size_set, micro_batches=micro_batches if key.micro_batched else 1)
    ranks, t = mesh[0], mesh[1] if key.tensor_parallel else 1
    config = spec.model
    spec = spec.replace(num_heads=t * config.num_heads, kv_heads=t * config.kv_heads, d_model=t * config.d_model,
                        d_ff=t * config.d_ff,
                        context_length=config.context_length * (t if key.sequence_parallel else 1))
    return spec.replace(shard=key.shard, world_size=t * (1 if key.one_rank else ranks), tensor_parallel=t,
                        sequence_parallel=key.sequence_parallel, reshard_after_forward=key.reshard_after_forward,
                        zero_grad=key.zero_grad)


def traced_windows(key: ShardedClass, layers: int, which: int, micro_batches: int = 2) -> dict[str, list]:
    """trace_windows of the class at L = layers and size set `which` (0 or 1), with `micro_batches` micro-batches
    where the class has them."""
    size_set = size_sets(key.layout_class)[which]
    return trace_windows(rank_spec(key, layers, size_set, MESHES[key.tensor_parallel][which], micro_batches))


def trace_windows(spec: StepSpec) -> dict[str, list[Event]]:
    """Every storage event of each window of rank 0's measured step (and the storages live as it starts)."""
    with ShardedRank(spec, "meta", 0) as where:
        traced = trace_step(where, spec)
    events, category_of = traced.tracker.events, traced.category_of
    marks = traced.marks["measured"]  # forward, backward (once per micro-batch), optimizer, end
    live: dict[int, int] = {}
    for sign, sid, nbytes in events[:marks[0].event_index]:
        live[sid] = live.get(sid, 0) + sign * nbytes
    category = lambda sid: category_of.get(sid, "temporaries")  # noqa: E731
    windows = {"start": [Event("+", category(sid), nbytes) for sid, nbytes in sorted(live.items())
                         if nbytes and category(sid) not in CONSTANT]}
    micro_batched = spec.setup.micro_batches > 1
    for index, (begin, end) in enumerate(zip(marks, marks[1:])):
        name = f"{begin.name}_{index // 2 + 1}" if micro_batched and begin.name != "optimizer" else begin.name
        windows[name] = [Event("+" if sign > 0 else "-", category(sid), nbytes)
                         for sign, sid, nbytes in events[begin.event_index:end.event_index] if nbytes]
    return windows


def tokens(first: list[Event], second: list[Event], values: tuple[dict, dict], what: str) -> list[str]:
    """One token per event: the first symbol of ALL_SYMBOLS both size sets' bytes name."""
    return fit([first, second], [{name: int(value[name]) for name in ALL_SYMBOLS} for value in values],
               ALPHABET, what, ["size set 1", "size set 2"])


def coincident_symbols(key: ShardedClass) -> list[tuple[str, str]]:
    """Symbol pairs equal at both traced size sets but not at one of the check sets (CHECKS)."""
    sets = size_sets(key.layout_class)
    fused = key.layout_class.attention in ("sdpa-flash", "sdpa-efficient")
    checks = [(dict(sets[0], **{**CHECK_SET, "head_dim": 24 if fused else 18, **sizes}), mesh)
              for mesh, sizes in CHECKS]
    values = []
    for size_set, mesh in [*zip(sets, MESHES[key.tensor_parallel]), *checks]:
        spec = rank_spec(key, 2, size_set, mesh)
        values.append({name: int(value) for name, value in symbol_values(spec, sizes_of(spec)).items()})
    first, second, *others = values
    return [(x, y) for x, y in itertools.combinations(ALL_SYMBOLS, 2)
            if first[x] == first[y] and second[x] == second[y] and any(other[x] != other[y] for other in others)]


def derive_sharded_class(key: ShardedClass) -> dict:
    """{"one": {window: program at L = 1}, "segments": {window: [(program, repeated)] for L >= 2}}."""
    what = key.what()
    coincident = coincident_symbols(key)
    if coincident:
        raise DerivationError(f"{what}: the size sets make symbols coincide: {coincident}")
    windows = windows_of(key)
    programs: dict[str, dict[int, list[str]]] = {window: {} for window in windows}
    calls = [(traced_windows, (key, layers, which)) for layers in LAYERS for which in (0, 1)]
    results = iter(run_calls(calls, "tracing small ranks", progress=False))
    for layers in LAYERS:
        traced, values = [next(results), next(results)], []
        for size_set, mesh in zip(size_sets(key.layout_class), MESHES[key.tensor_parallel]):
            spec = rank_spec(key, layers, size_set, mesh)
            values.append(symbol_values(spec, sizes_of(spec)))
        for window in windows:
            programs[window][layers] = tokens(traced[0][window], traced[1][window], tuple(values),
                                              f"{what}, {window}, L = {layers}")
    if key.micro_batched:
        later_micro_batches_repeat(key, programs, values, what)
    return {"one": {window: " ".join(programs[window][1]) for window in windows},
            "segments": {window: segment({layers: programs[window][layers] for layers in LAYERS[1:]},
                                         f"{what}, {window}", base=2) for window in windows}}


def later_micro_batches_repeat(key: ShardedClass, programs: dict, values: tuple, what: str) -> None:
    """Micro-batch 2 must leave nothing behind (at every L), and micro-batch 3 of a three-micro-batch step must
    be micro-batch 2 again (at L = 2): then micro-batch 2's windows stand for every later one."""
    for layers in LAYERS:
        net = compile_sharded(" ".join(programs["forward_2"][layers] + programs["backward_2"][layers]))[1]
        if net.any():
            raise DerivationError(f"{what}: micro-batch 2 leaves memory behind at L = {layers}")
    three = [traced_windows(key, 2, which, micro_batches=3) for which in (0, 1)]
    for window in ("forward", "backward"):
        second, third = (tokens(three[0][f"{window}_{index}"], three[1][f"{window}_{index}"], values,
                                f"{what}, {window} of micro-batch {index} of 3") for index in (2, 3))
        if second != third:
            raise DerivationError(f"{what}: micro-batch 3's {window} differs from micro-batch 2's")
