"""Exact memory of one training step, by phase and category: closed forms, vectorised over numpy arrays.

The step's live bytes at any moment = the constant part (parameters, buffers, inputs) + what the step's
allocation programs have left live. The programs are derived from traces of the step (analytic/exact/derived.json.gz,
one set per layout class: arch, positional option, attention, dtypes, checkpointing, dropout, B == 1 or not,
H == 1 or not, grouped-query attention or not), each as
prefix + layer × L + suffix. A phase's peak is its highest moment:
 1. Forward: the prefix, L copies of the layer program, the suffix. Every layer leaves its net (what it saves)
    live, so its moments are those of the first layer shifted by l·net; the highest layer moment is in the
    last layer (l = L-1). A micro-batch after the first (forward_later) also frees the previous one's loss.
 2. Backward: the same; each layer frees one layer's saved tensors and adds its weight gradients, a net that
    may be negative or positive, so the highest layer moment is in the first (l = 0) or last (l = L-1) layer
    processed, whichever the sign of the net favours: both are candidates. Once .grad exists (a micro-batch
    after the first, or zero_grad 'zeros'), each weight gradient is a temporary added into it
    (backward_accumulate).
 3. Micro-batches: the first, then k - 1 that repeat the second exactly (each leaves nothing behind).
 4. Optimizer: the AdamW step's derived segments (analytic/exact/derived.json.gz optimizers, per parameter layout:
    arch, positional option, grouped-query attention, and implementation): foreach allocates sqrt(v) for every
    parameter at once, for-loop a few parameter-sized temporaries at a time, fused none; then zero_grad, which
    frees every gradient (set_to_none=True) or nothing ('zeros'). The warm-up step's AdamW program also creates
    the state (two moments per parameter, and fused's device step counters).
The warm-up step starts from the constant part; the measured step from the constant part plus the state (and the
gradients, with 'zeros') the warm-up step leaves. The peak of the step is the highest of the three phase peaks;
categories are read at that moment.
"""
from __future__ import annotations

import numpy as np

from analytic.exact import programs
from analytic.exact.source import Programs
from analytic.figures import combine_windows
from analytic.sizes import SYMBOLS, Sizes, optimizer_key
from model.vocabulary import CATEGORIES, COMPONENTS, PHASES

TAPE_ROWS = [CATEGORIES.index(name) for name in programs.TAPE_CATEGORIES]
STATE = programs.TAPE_CATEGORIES.index("optimizer_state")


def segments_net(segments, category: int) -> tuple[np.ndarray, np.ndarray]:
    """(once, per layer): the SYMBOLS coefficients a list of segments leaves in one tape category, as
    once + L·per layer (a segment run L − 1 times adds its net per layer and takes it once)."""
    once, per_layer = np.zeros(len(SYMBOLS), dtype=np.int64), np.zeros(len(SYMBOLS), dtype=np.int64)
    for program, repeated in segments:
        net = programs.compile_program(program)[1][category]
        if repeated:
            per_layer += net
            once -= net * (repeated == programs.EVERY_BLOCK_BUT_THE_LAST)
        else:
            once += net
    return once, per_layer


def constant_part(sizes: Sizes) -> np.ndarray:
    """[CATEGORIES, ...] bytes present all step long from the model's construction on: parameters, buffers,
    inputs."""
    live = np.zeros((len(CATEGORIES),) + np.shape(sizes.B), dtype=np.int64)
    for name, value in (("parameters", sizes.parameter_bytes), ("buffers", sizes.buffer_bytes),
                        ("inputs", sizes.input_bytes)):
        live[CATEGORIES.index(name)] = value
    return live


class Phase:
    """Moments of one phase: [K, CATEGORIES, ...] bytes after each allocation, the start first. A subclass runs
    programs of another grammar (analytic.exact.sharded): its `compile` gives (moments, net) over its tape rows,
    which are `rows` of its `categories`."""

    compile = staticmethod(programs.compile_program)
    rows = TAPE_ROWS
    categories = CATEGORIES

    def __init__(self, start: np.ndarray, symbols: np.ndarray):
        self.symbols = symbols  # [SYMBOLS, ...]
        self.live = start.copy()
        self.moments = [start[None].copy()]  # blocks of [K, CATEGORIES, ...]

    def _bytes(self, coefficients: np.ndarray) -> np.ndarray:  # [..., 3, SYMBOLS] -> [..., 3, *shape]
        return np.tensordot(coefficients, self.symbols, axes=([-1], [0]))

    def run(self, program: str, repeat=1) -> None:
        """Run `program` `repeat` times (an int or array, 0 allowed): moments of the first and the last
        repetition."""
        moments, net = self.compile(program)
        moment_bytes, net_bytes = self._bytes(moments), self._bytes(net)
        repeat = np.asarray(repeat)
        for shift in (0, repeat - 1) if np.any(repeat > 1) else (0,):
            block = np.repeat(self.live[None], len(moments), axis=0)
            block[:, self.rows] += (moment_bytes + shift * net_bytes) * (repeat > 0)  # none when it never runs
            self.moments.append(block)
        self.live[self.rows] += repeat * net_bytes

    def run_segments(self, segments, layers) -> None:
        """Derived segments: each (program, repeated) run once, `layers` or `layers` − 1 times."""
        for program, repeated in segments:
            self.run(program, programs.runs(repeated, layers))

    def figures(self) -> dict:
        stack = np.concatenate(self.moments)  # [K, CATEGORIES, ...]
        totals = stack.sum(axis=1)
        peak_at = np.argmax(totals, axis=0)
        at_peak = np.take_along_axis(stack, peak_at[None, None], axis=0)[0]
        return {"peak_bytes": totals.max(axis=0), "start_bytes": stack[0].sum(axis=0),
                "end_bytes": self.live.sum(axis=0),
                "categories_at_peak": {name: at_peak[i] for i, name in enumerate(self.categories)}}


def per_layout(sizes: Sizes, compute) -> dict:
    """compute(layout) for each layout (B == 1, H == 1, G < H) present in `sizes`, merged elementwise."""
    layouts = sizes.layouts()
    result = None
    for layout in {tuple(bool(x) for x in column) for column in layouts.reshape(len(layouts), -1).T}:
        figures = compute(layout)
        mask = np.all(layouts == np.array(layout).reshape((len(layouts),) + (1,) * (layouts.ndim - 1)), axis=0)
        result = figures if result is None else _where(mask, figures, result)
    return result


def step_phases(programs: Programs, sizes: Sizes, positional: str, optimizer: str, warmup: bool = False) -> dict:
    """Peak, start and end bytes and categories at the peak of each phase (module docstring, items 1-4), with
    each element's attention layout chosen elementwise."""
    return per_layout(sizes, lambda layout: layout_phases(programs, sizes, positional, optimizer, layout, warmup))


def _where(mask, chosen, other):
    if isinstance(chosen, dict):
        return {key: _where(mask, chosen[key], other[key]) for key in chosen}
    return np.where(mask, chosen, other)


PERSISTENT = [CATEGORIES.index(name) for name in ("gradients", "optimizer_state")]


def step_walk(derived: dict, adamw: dict, micro_batches: int, zero_grad: str, warmup: bool,
              has_gradients: bool) -> list[tuple[str, int | None, list]]:
    """The windows of one step in order (module docstring, items 1-4), each (phase, micro-batch, segments): the
    first micro-batch's forward and backward, the second's standing for every later one (they repeat it:
    analytic.exact.derivation.derive checks that one leaves nothing behind), then the optimizer: the AdamW step
    (its warm-up program creates the state) and zero_grad. A backward adds each weight gradient into .grad
    (backward_accumulate) after the first micro-batch, or from the start where gradients exist (`has_gradients`:
    zero_grad 'zeros' after a step). The numeric model (run_step) and the formula (analytic.exact.formula) walk it."""
    windows = []
    for index in (1, 2) if micro_batches > 1 else (1,):
        windows.append(("forward", index, derived["forward_first" if index == 1 else "forward_later"]))
        windows.append(("backward", index,
                        derived["backward_accumulate" if index > 1 or has_gradients else "backward_fresh"]))
    windows.append(("optimizer", None, adamw["warmup" if warmup else "steady"] + derived[f"zero_grad_{zero_grad}"]))
    return windows


def step_peak(phases: dict, categories: tuple[str, ...]) -> dict:
    """The step's peak of its phases' figures: the highest phase peak (the first phase on ties, as the tracker
    reports), that phase, and the categories at its peak (of one device's or a rank's `categories`)."""
    peaks = np.stack([phases[name]["peak_bytes"] for name in PHASES])
    index = np.argmax(peaks, axis=0)
    return {"peak_bytes": peaks.max(axis=0), "peak_phase": np.array(PHASES)[index],
            "categories_at_peak": {name: np.choose(index, [phases[p]["categories_at_peak"][name] for p in PHASES])
                                   for name in categories}}


def run_step(programs: Programs, sizes: Sizes, positional: str, optimizer: str, layout: tuple[bool, ...],
             symbols: np.ndarray, start: np.ndarray, warmup: bool) -> list[tuple[str, int | None, Phase]]:
    """The windows of one step (step_walk) run from `start`: [(phase, micro-batch, Phase)]."""
    derived = programs.layout_class(sizes.layout_class(positional, layout))
    adamw = programs.adamw(optimizer_key(sizes.arch, positional, layout[2], optimizer))
    has_gradients = bool(np.all(start[CATEGORIES.index("gradients")] > 0))  # zero_grad 'zeros' after a step
    windows, live = [], start
    for name, index, segments in step_walk(derived, adamw, sizes.micro_batches, sizes.zero_grad, warmup,
                                           has_gradients):
        phase = Phase(live, symbols)
        phase.run_segments(segments, sizes.L)
        windows.append((name, index, phase))
        live = phase.live
    return windows


def layout_phases(programs: Programs, sizes: Sizes, positional: str, optimizer: str,
                  layout: tuple[bool, ...] = (False, False, False, False),
                  warmup: bool = False, moments: bool = False) -> dict:
    """step_phases for one attention layout; with moments=True, the live total at every moment of each phase
    instead ([K, ...] per phase). The warm-up step starts from the constant part; the measured step from the
    constant part and what the warm-up step leaves behind (optimizer state, and gradients with zero_grad
    'zeros'; its temporaries, the loss, die as train_step returns)."""
    symbols = np.stack([np.broadcast_to(value, np.shape(sizes.B)) for value in
                        (sizes.symbols()[name] for name in SYMBOLS)])
    start = constant_part(sizes)
    windows = run_step(programs, sizes, positional, optimizer, layout, symbols, start, warmup=True)
    if not warmup:
        start = start.copy()
        start[PERSISTENT] += windows[-1][2].live[PERSISTENT]
        windows = run_step(programs, sizes, positional, optimizer, layout, symbols, start, warmup=False)
    if moments:
        return {name: np.concatenate([np.concatenate(phase.moments).sum(axis=1)
                                      for window, _, phase in windows if window == name]) for name in PHASES}
    return combine_windows([(name, index, phase.figures()) for name, index, phase in windows],
                           sizes.micro_batches)


def step_figures(programs: Programs, sizes: Sizes, positional: str, optimizer: str, warmup: bool = False) -> dict:
    """Phase figures plus the step's peak, the phase that holds it and the categories there."""
    figures = step_phases(programs, sizes, positional, optimizer, warmup)
    return {**step_peak(figures["phases"], CATEGORIES), **figures}


def saved_activations_per_layer(programs: Programs, sizes: Sizes, positional: str) -> np.ndarray:
    """Bytes one layer keeps for backward: the per-layer part of saved_activations_by_component (its total is L
    times this plus what the components outside the layers keep)."""
    values = sizes.symbols()

    def compute(layout):
        saved = programs.layout_class(sizes.layout_class(positional, layout))["saved_by_component"]["layer"]
        return {"layer": sum((values[name] for names in saved.values() for name in names.split()), 0 * sizes.B)}

    return per_layout(sizes, compute)["layer"]


def saved_activations_by_component(programs: Programs, sizes: Sizes, positional: str) -> dict[str, np.ndarray]:
    """Bytes autograd keeps at the end of forward, by the component that saved each tensor first: L times what
    one layer's components save plus what the components outside the layers save, as traced (the derived programs).

    For B, H ≥ 2, per layer: norm1 and norm2 keep their input x, x·rsqrt (a each) and rsqrt (r): 2a + r;
    q_proj keeps the normalised input that k_proj and v_proj share (a); the QKᵀ bmm keeps contiguous q and k
    (2a; with RoPE the rotated q and k); softmax keeps its output (s), which the P·V bmm shares; weighted_sum
    keeps a contiguous v (a); out_proj its merged-heads input (a); w1 its input (a); silu its input, w1's output
    (f); w2 its input, silu's output (f). Outside the blocks: final_norm 2a + r, lm_head its input a,
    cross-entropy the log-probabilities n and the 0-dim total weight c. The embedding keeps only the token ids
    (inputs) and the position indices (a buffer); rope keeps only its tables.
    """
    values = sizes.symbols()

    def bytes_of(names: str):
        return sum((values[name] for name in names.split()), 0 * sizes.B)

    def compute(layout):
        saved = programs.layout_class(sizes.layout_class(positional, layout))["saved_by_component"]
        return {name: sizes.L * bytes_of(saved["layer"].get(name, "")) + bytes_of(saved["outside"].get(name, ""))
                for name in COMPONENTS}

    return per_layout(sizes, compute)
