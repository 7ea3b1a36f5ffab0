"""One rank of a sharded step (FSDP2's fully_shard, or DDP as torch's replicate runs it on FSDP2's engine), exact:
the programs of its steady step derived from traces of the simulated rank (analytic.exact.derivation; shipped for
some classes, derived_sharded.json.gz, the others derived on first use where the Programs derive, analytic.exact.
source), evaluated over the sizes below. Rank 0, the rank that holds the most.

A program is a sequence of tokens `<sign><code>:<symbol>` (analytic.exact.programs, the grammar of one device's
too): `+UP:gDD` a gathered D×D weight allocated, `-AG:agb` a block's all-gather buffer freed. Categories
(model.vocabulary.SHARDED_CATEGORIES) by code (analytic.exact.programs.CODES): P parameter shards, B buffers,
I inputs, G gradient shards, S AdamW state, O AdamW temporaries, A saved activations, t temporaries, UP gathered
(unsharded) parameters, AG all-gather buffers, UG unsharded gradients, RS reduce-scatter (or all-reduce) buffers.
Symbols: those of one device (analytic.sizes, at the rank's batch) and,
with N the ranks a parameter is sharded over (world_size under FSDP2, 1 under DDP), e the parameters' bytes per
element, c the bytes of the dtype they are gathered in (2 under FSDP2's bf16 MixedPrecisionPolicy, else e) and
r the reduce dtype's (4 under that policy, else e), for each parameter shape k = rows × cols among VD, TD, DD, KD,
FD, DF, D, F:
    p{k} = ⌈rows/N⌉·cols·e    rank 0's shard of such a parameter (its AdamW state and temporaries are this size)
    q{k} = ⌈rows/N⌉·cols·2    that shard cast to bf16 for the all-gather
    u{k} = N·⌈rows/N⌉·cols·c  the gathered parameter's storage (padded rows, in the gather dtype)
    v{k} = rows·cols·2        a gradient of a gathered bf16 parameter (g{k} of analytic.sizes where c = e)
and, with Σb and Σr the padded shard elements of one block's parameters and of the rest (embeddings, final norm,
LM head):
    agb, agr = N·Σb·c, N·Σr·c   the flat all-gather buffer of a block, of the rest
    aib, air = Σb·c, Σr·c       the rank's all-gather input (its shards cast to the gather dtype, concatenated)
    rsb, rsr = N·Σb·r, N·Σr·r   the flat reduce-scatter input of a block, of the rest
    shb, shr = Σb·e, Σr·e       the rank's gradient shard of a block, of the rest (one storage, the reduce output)
    rt, rt2 = T·(D/H/2)·e, T·(D/H/2)·2   a RoPE table as each block receives it, and cast to bf16 (the policy casts
                                         a block's floating-point inputs)
    r2 = B·T·2                  a per-token scalar in bf16 (the policy's bf16 forward runs the norms in bf16)
With tensor parallelism t (model.tensor_parallel; N = world_size/t, the "dp" ranks) the shapes above are rank 0's
part of each tensor: ⌈rows/t⌉ rows of what is split on its rows (VD, TD: the embeddings' and the LM head's
vocabulary or positions; DD, KD, FD, F: the column-wise q, k, v, W1, W3 and W1's bias), ⌈cols/t⌉ columns of the
row-wise layers (DF: W2; RD: out_proj, D × ⌈D/t⌉), D whole (the norms, the row-wise layers' biases), cD = ⌈D/t⌉ × 1
(q's, k's and v's biases); l{k} = rows·cols·e such a part whole (the gradient a split layer computes before FSDP2
reduces it). The activations are one device's symbols at a rank's widths ("x": D/t, H/t, F/t, K/t, ⌈V/t⌉) or on
its part of the sequence ("y": T/t with sequence parallelism), with a few of a split step's own
(split_symbol_values). At t = 1 the shapes' symbols, l{k} and the "x" and "y" symbols equal symbols above (which,
coming first, name such a tensor), and the split step's own are sizes no tensor of a step without tensor
parallelism has: such a class keeps its programs. A class with tensor parallelism holds for every t > 1.
Each window (start: what is live as the step begins besides buffers and inputs; forward; backward; optimizer,
zero_grad included) is one program at L = 1 and, from L = 2 on, segments run once, L, L − 1 or L − 2 times.
Domain: AdamW foreach, every layout class of one device (of a rank's heads H/t and G/t with tensor parallelism),
micro-batches (micro-batch 2's windows stand for every later one), either zero_grad option, tensor parallelism
with and without sequence parallelism. FLOPs: rank_flop_figures.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from analytic.exact.memory import Phase, step_peak
from analytic.exact.programs import compile_program, runs
from analytic.exact.source import Programs
from analytic.figures import combine_windows
from analytic.params import parameter_tensor_shapes
from analytic.exact.flops import ADAMW_FLOPS_PER_PARAM, flop_figures
from analytic.sharding import padded_elements, padded_rows, shard_group
from analytic.sizes import SYMBOLS, ShardedClass, Sizes, sizes_of, symbol_bytes
from model.spec import StepSpec
from model.vocabulary import PHASES, SHARDED_CATEGORIES

SHAPES = ("VD", "TD", "DD", "KD", "FD", "DF", "D", "F")
TP_SHAPES = ("RD", "cD")  # the row-wise D×D weight and a column-wise bias: DD's and D's at t = 1
SHARD_SYMBOLS = tuple(f"{prefix}{shape}" for prefix in "pquv" for shape in SHAPES) + (
    "agb", "agr", "aib", "air", "rsb", "rsr", "shb", "shr", "rt", "rt2", "r2")
# One device's symbols of tensors tensor parallelism splits on the heads, the hidden features or the vocabulary
# ("x" before the name) and sequence parallelism on the sequence ("y"); tokens' int64 ids and bool masks.
SPLIT = ("a", "h", "f", "s", "n", "a4", "s4", "l", "le", "a2", "h2", "f2", "s2", "n2", "kv", "hk", "kv2", "hk2", "s1")
SEQUENCE_SPLIT = ("a", "h", "r", "a4", "r4", "a2", "h2", "t")
TP_SYMBOLS = (tuple(f"{prefix}{shape}" for prefix in "pquv" for shape in TP_SHAPES)
              + tuple(f"l{shape}" for shape in SHAPES + TP_SHAPES)
              + tuple(f"x{name}" for name in SPLIT) + tuple(f"y{name}" for name in SEQUENCE_SPLIT)
              + ("xn4", "yr2", "t2", "yt2", "it", "bt", "yit", "ybt", "ip", "bp", "c8"))
ALL_SYMBOLS = SYMBOLS + SHARD_SYMBOLS + TP_SYMBOLS  # the order in which a size's first matching name is chosen
# The windows of a class: what is live as the step begins, then its phases; with micro-batches, forward and
# backward of micro-batch 1 and of micro-batch 2, which every later one repeats (derive_sharded checks it).
WINDOWS = ("start",) + PHASES
MICRO_BATCH_WINDOWS = ("start", "forward_1", "backward_1", "forward_2", "backward_2", "optimizer")

# Setups the tests grade (tests/test_sharded.py), shipped at a batch of 2 on one and on several ranks ("dp" ranks
# with tensor parallelism).
SHIPPED_SETUPS = {
    "fsdp2-fp32": dict(shard="fsdp2"),
    "fsdp2-amp": dict(shard="fsdp2", autocast="bfloat16"),
    "fsdp2-amp-full-keep": dict(shard="fsdp2", autocast="bfloat16", checkpointing="full", reshard_after_forward=False),
    "ddp-fp32": dict(shard="ddp"),
    "ddp-amp": dict(shard="ddp", autocast="bfloat16"),
    "ddp-llama-gqa-amp-selective": dict(shard="ddp", arch="llama", positional="rope", autocast="bfloat16",
                                        checkpointing="selective", num_heads=4, kv_heads=2),
    "fsdp2-amp-mb-zeros": dict(shard="fsdp2", autocast="bfloat16", micro_batches=2, zero_grad="zeros"),
    "ddp-gpt2-mb": dict(shard="ddp", arch="gpt2", dropout=0.0, micro_batches=2),
    "tp-fp32": dict(shard="fsdp2", tensor_parallel=2),
    "tp-sp-amp": dict(shard="fsdp2", tensor_parallel=2, sequence_parallel=True, autocast="bfloat16"),
    "tp-sp-llama-gqa-amp-selective": dict(shard="fsdp2", tensor_parallel=2, sequence_parallel=True, arch="llama",
                                          positional="rope", autocast="bfloat16", checkpointing="selective",
                                          num_heads=8, kv_heads=4),
    "tp-gpt2-mb-full": dict(shard="fsdp2", tensor_parallel=2, arch="gpt2", dropout=0.0, micro_batches=2,
                            checkpointing="full"),
}


def in_domain(spec: StepSpec) -> bool:
    """Whether the spec is a sharded step the programs describe (foreach AdamW, T >= 2)."""
    setup = spec.setup
    return setup.shard != "none" and setup.optimizer == "foreach" and spec.model.context_length >= 2


def windows_of(key: ShardedClass) -> tuple[str, ...]:
    """The windows a class's programs have (micro-batched or not)."""
    return MICRO_BATCH_WINDOWS if key.micro_batched else WINDOWS


def shard_symbol_values(spec: StepSpec) -> dict[str, int]:
    """Bytes of each symbol of SHARD_SYMBOLS and of the shapes of TP_SHAPES (module docstring) for rank 0."""
    config, setup = spec.model, spec.setup
    N, t = shard_group(setup), setup.tensor_parallel
    e = setup.bytes_per_element
    gathered, reduced = (2, 4) if setup.autocast != "none" else (e, e)
    V, T, D, F, K = config.vocab_size, config.context_length, config.d_model, config.d_ff, config.kv_width
    part = partial(padded_rows, world_size=t)  # rank 0's part of what tensor parallelism splits: ⌈n/t⌉
    shapes = {"VD": (part(V), D), "TD": (part(T), D), "DD": (part(D), D), "KD": (part(K), D), "FD": (part(F), D),
              "DF": (D, part(F)), "D": (D, 1), "F": (part(F), 1), "RD": (D, part(D)), "cD": (part(D), 1)}
    values = {}
    for name, (rows, cols) in shapes.items():
        padded = padded_rows(rows, N) * cols
        values.update({f"p{name}": padded * e, f"q{name}": padded * 2, f"u{name}": N * padded * gathered,
                       f"v{name}": rows * cols * 2, f"l{name}": rows * cols * e})
    one, two = (parameter_tensor_shapes(config.replace(num_layers=n), t) for n in (1, 2))
    first = 1 + (config.positional == "learned")  # the embeddings come before the blocks
    block = one[first:first + len(two) - len(one)]
    in_block = padded_elements(block, N)
    rest = padded_elements(parameter_tensor_shapes(config, t), N) - config.num_layers * in_block
    table = T * (D // config.num_heads // 2)
    values.update(agb=N * in_block * gathered, agr=N * rest * gathered, aib=in_block * gathered,
                  air=rest * gathered, rsb=N * in_block * reduced,
                  rsr=N * rest * reduced, shb=in_block * e, shr=rest * e, rt=table * e, rt2=table * 2)
    return values


def split_symbol_values(spec: StepSpec, sizes: Sizes) -> dict[str, Any]:
    """Bytes of the activation symbols of TP_SYMBOLS at the rank's batch: one device's symbols (analytic.sizes.
    symbol_bytes) at a rank's widths D/t, H/t, F/t, K/t and ⌈V/t⌉ ("x"), at its part of the sequence T/s ("y": s = t
    with sequence parallelism, else 1), the split logits in fp32 whatever e (xn4 = B·T·⌈V/t⌉·4: loss parallelism's
    log-softmax of 16-bit logits), the position embedding's output in bf16 whatever e (t2 = T·D·2, yt2 its part
    of the sequence; autocast's), int64 ids and bool masks of the tokens (it = 8·B·T, bt = B·T, whole and
    sequence-split: yit, ybt) and of the positions (ip = 8·T, bp = T) (a split embedding's lookup), and an int64
    0-dim tensor, c8 = 8; yr2 = B·(T/s)·2 is r2 on the rank's part of the sequence. At t = 1 the "x" and "y" symbols
    equal their one-device ones (which, coming first in ALL_SYMBOLS, name such a tensor)."""
    setup, (B, T, D, H, F, V, e, K) = spec.setup, (sizes.B, sizes.T, sizes.D, sizes.H, sizes.F, sizes.V, sizes.e,
                                                    sizes.K)
    t = setup.tensor_parallel
    s = t if setup.sequence_parallel else 1
    split = symbol_bytes(B, T, D // t, H // t, F // t, -(-V // t), e, K // t)
    sequence = symbol_bytes(B, T // s, D, H, F, V, e, K)
    return {**{f"x{name}": split[name] for name in SPLIT}, **{f"y{name}": sequence[name] for name in SEQUENCE_SPLIT},
            "xn4": B * T * -(-V // t) * 4, "yr2": B * (T // s) * 2, "t2": T * D * 2, "yt2": (T // s) * D * 2,
            "it": B * T * 8, "bt": B * T, "yit": B * (T // s) * 8, "ybt": B * (T // s),
            "ip": 8 * T + 0 * B, "bp": T + 0 * B, "c8": 8 + 0 * B}


def symbol_values(spec: StepSpec, sizes: Sizes) -> dict[str, Any]:
    """Every symbol of ALL_SYMBOLS in bytes, at the rank's batch (sizes)."""
    constant = {name: value + 0 * sizes.B for name, value in shard_symbol_values(spec).items()}
    return {**sizes.symbols(), **constant, "r2": sizes.B * sizes.T * 2, **split_symbol_values(spec, sizes)}


compile_sharded = partial(compile_program, categories=SHARDED_CATEGORIES, symbols=ALL_SYMBOLS)


class RankPhase(Phase):
    compile = staticmethod(compile_sharded)
    rows = list(range(len(SHARDED_CATEGORIES)))
    categories = SHARDED_CATEGORIES


def shipped_setup_keys() -> list[ShardedClass]:
    """The class keys of SHIPPED_SETUPS at a batch of 2 (two heads a rank unless a setup says), with FSDP2 over one
    rank and over several (each FSDP2 setup's own classes; t ranks and 2t with tensor parallelism t), DDP over 4."""
    keys = []
    for options in SHIPPED_SETUPS.values():
        t = options.get("tensor_parallel", 1)
        heads = options.get("num_heads", 2 * t)
        spec = StepSpec.of(vocab_size=16, context_length=4, num_layers=1, d_model=8 * heads, world_size=t,
                           **{**options, "num_heads": heads})
        for world_size in (t, 2 * t) if spec.setup.shard == "fsdp2" else (4,):
            keys.append(ShardedClass.of(spec.replace(world_size=world_size,
                                                     batch_size=2 * spec.setup.micro_batches)))
    return keys


def window_segments(derived: dict, window: str, layers: int) -> list[tuple[str, bool | str]]:
    """The window's segments at L layers: its own program at L = 1, the segments from L = 2 on."""
    return [(derived["one"][window], False)] if layers == 1 else derived["segments"][window]


def rank_phases(spec: StepSpec, sizes: Sizes, derived: dict) -> dict[str, RankPhase]:
    """Rank 0's windows after the start one, each run from where the previous one ended."""
    values, layers = symbol_values(spec, sizes), spec.model.num_layers
    symbols = np.stack([np.broadcast_to(values[name], np.shape(sizes.B)) for name in ALL_SYMBOLS])
    live = np.zeros((len(SHARDED_CATEGORIES),) + np.shape(sizes.B), dtype=np.int64)
    live[SHARDED_CATEGORIES.index("buffers")] = sizes.buffer_bytes
    live[SHARDED_CATEGORIES.index("inputs")] = sizes.input_bytes
    phases = {}
    for window in derived["one"]:  # the class's windows, in step order
        phase = RankPhase(live, symbols)
        for program, repeated in window_segments(derived, window, layers):
            phase.run(program, runs(repeated, layers))
        live = phase.live
        if window != "start":
            phases[window] = phase
    return phases


def moment_totals(programs: Programs, spec: StepSpec) -> np.ndarray | None:
    """Live bytes at every moment of rank 0's step (None outside the domain or without programs): each is linear
    in the batch, for analytic.exact.max_batch."""
    sizes = sizes_of(spec)
    derived = programs.sharded_class(ShardedClass.of(spec)) if in_domain(spec) else None
    if derived is None:
        return None
    return np.concatenate([np.concatenate(phase.moments).sum(axis=1)
                           for phase in rank_phases(spec, sizes, derived).values()])


def rank_figures(spec: StepSpec, sizes: Sizes, derived: dict) -> dict[str, Any]:
    """Peak, phase and per-phase figures of rank 0 (the keys of a measurement: peak_bytes, peak_phase,
    categories_at_peak, phases.<phase>.{peak_bytes, start_bytes, end_bytes, categories_at_peak})."""
    windows = [(name.split("_")[0], int(name[-1]) if "_" in name else None, phase.figures())
               for name, phase in rank_phases(spec, sizes, derived).items()]
    combined = combine_windows(windows, spec.setup.micro_batches)
    return {**step_peak(combined["phases"], SHARDED_CATEGORIES), **combined}


def rank_flop_figures(spec: StepSpec, sizes: Sizes) -> dict[str, Any]:
    """A rank's FLOPs: one device's forward and backward at the rank's batch (gathering, casting and reducing count
    none), its AdamW step and its gradient accumulations over the elements it holds, n = Σ⌈rows/N⌉·cols (rank 0's
    shards; every parameter under DDP): 14·n + one step-counter increment per tensor.

    With tensor parallelism t > 1, the matmul FLOPs and the AdamW step's alone (n over the rank's part of each
    tensor): every matmul of a block has one split dimension (q, k, v, W1 and W3 their output features, out_proj
    and W2 their input features, the attention its heads), so it runs 1/t of one device's FLOPs, and the LM head
    runs ⌈V/t⌉ of the V logits: with h = 2·B·T·D·V and h_t = 2·B·T·D·⌈V/t⌉ per micro-batch (k of them), which
    forward counts once and backward twice (both operands' gradients),
        forward  = (forward₁ − k·h)/t + k·h_t        backward = (backward₁ − 2k·h)/t + 2k·h_t
    of one device's matmul FLOPs forward₁ and backward₁ (recomputation included). The elementwise FLOPs of a
    split step (loss parallelism's, the split embeddings' masks, the norms on whole or split activations) are not
    in closed form: forward, backward and recompute are left out."""
    setup = spec.setup
    t = setup.tensor_parallel
    held = padded_elements(parameter_tensor_shapes(spec.model, t), shard_group(setup))
    figures = flop_figures(sizes)
    optimizer = ADAMW_FLOPS_PER_PARAM * held + sizes.tensors
    adamw = {"adamw_flops_per_param": optimizer / sizes.params}
    if t > 1:
        k, head = setup.micro_batches, 2 * sizes.B * sizes.T * sizes.D
        one_device = figures["flops_matmul"]
        matmul = {phase: (one_device[phase] - times * k * head * sizes.V) // t + times * k * head * -(-sizes.V // t)
                  for phase, times in (("forward", 1), ("backward", 2))}
        return {"flops": {"optimizer": optimizer}, "flops_matmul": matmul, **adamw}
    accumulations = setup.micro_batches - 1 + int(setup.zero_grad == "zeros")
    flops = dict(figures["flops"], optimizer=optimizer)
    flops["backward"] = flops["backward"] - accumulations * sizes.params + accumulations * held
    return {"flops": flops, "flops_matmul": figures["flops_matmul"], **adamw}


def evaluate_rank(programs: Programs, spec: StepSpec, sizes: Sizes) -> dict[str, Any]:
    """rank_figures where the spec is in the domain and its programs are at hand, else {}."""
    if not in_domain(spec) or np.ndim(sizes.B):
        return {}
    derived = programs.sharded_class(ShardedClass.of(spec.replace(batch_size=int(sizes.B) * spec.setup.micro_batches)))
    return {} if derived is None else {**rank_figures(spec, sizes, derived), **rank_flop_figures(spec, sizes)}
