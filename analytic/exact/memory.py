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

Every moment is affine in L (a segment runs once, L, L − 1 or L − 2 times): its live bytes by category are
(const + L·per_layer) · symbols, with integer coefficients over SYMBOLS. compiled_walk turns one layout class's step
into those coefficients once, keeping of each window only the moments that can hold its peak (Walk.candidates), so
evaluating a step is a few integer matrix products over the symbols' values, for one config or for arrays of them.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from analytic.exact import programs
from analytic.exact.programs import compile_program
from analytic.exact.source import Programs
from analytic.figures import combine_windows
from analytic.sizes import SYMBOLS, LayoutClass, Sizes, optimizer_key
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
    """Moments of one phase run program by program: [K, CATEGORIES, ...] bytes after each allocation, the start
    first (a sharded rank's windows, analytic.exact.sharded's RankPhase; one device's step runs compiled,
    compiled_walk). A subclass runs programs of another grammar: its `compile` gives (moments, net) over its tape
    rows, which are `rows` of its `categories`."""

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

    def figures(self) -> dict:
        stack = np.concatenate(self.moments)  # [K, CATEGORIES, ...]
        totals = stack.sum(axis=1)
        peak_at = np.argmax(totals, axis=0)
        at_peak = np.take_along_axis(stack, peak_at[None, None], axis=0)[0]
        return {"peak_bytes": totals.max(axis=0), "start_bytes": stack[0].sum(axis=0),
                "end_bytes": self.live.sum(axis=0),
                "categories_at_peak": {name: at_peak[i] for i, name in enumerate(self.categories)}}


def per_layout(sizes: Sizes, compute) -> dict:
    """compute(layout, sizes) for each layout (B == 1, H == 1, G < H, G == 1) present in `sizes`, over the elements
    in that layout (all of `sizes` where there is one layout), merged elementwise."""
    groups = sizes.layout_groups
    if len(groups) == 1:
        return compute(groups[0][0], sizes)
    result = None
    for layout, chosen in groups:
        result = _scatter(chosen, compute(layout, sizes.select(chosen)), result, np.shape(sizes.B))
    return result


def _scatter(chosen: np.ndarray, figures, result, shape):
    """result (arrays of `shape`, made where None) with the elements `chosen` (flat) set to `figures`."""
    if isinstance(figures, dict):
        return {key: _scatter(chosen, figures[key], None if result is None else result[key], shape)
                for key in figures}
    if result is None:
        result = np.zeros(shape, dtype=np.asarray(figures).dtype)
    result.reshape(-1)[chosen] = figures
    return result


def step_phases(programs: Programs, sizes: Sizes, positional: str, optimizer: str, warmup: bool = False) -> dict:
    """Peak, start and end bytes and categories at the peak of each phase (module docstring, items 1-4), with
    each element's attention layout chosen elementwise."""
    return per_layout(sizes, lambda layout, part: layout_phases(programs, part, positional, optimizer, layout,
                                                                warmup))


PERSISTENT = [CATEGORIES.index(name) for name in ("gradients", "optimizer_state")]


def step_walk(derived: dict, adamw: dict, micro_batches: int, zero_grad: str, warmup: bool,
              has_gradients: bool) -> list[tuple[str, int | None, list]]:
    """The windows of one step in order (module docstring, items 1-4), each (phase, micro-batch, segments): the
    first micro-batch's forward and backward, the second's standing for every later one (they repeat it:
    analytic.exact.derivation.derive checks that one leaves nothing behind), then the optimizer: the AdamW step
    (its warm-up program creates the state) and zero_grad. A backward adds each weight gradient into .grad
    (backward_accumulate) after the first micro-batch, or from the start where gradients exist (`has_gradients`:
    zero_grad 'zeros' after a step). The numeric model (compiled_walk) and the formula (analytic.exact.formula)
    walk it."""
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
    at_peaks = np.stack([[phases[phase]["categories_at_peak"][name] for name in categories] for phase in PHASES])
    at_peak = np.take_along_axis(at_peaks, np.asarray(index)[None, None], axis=0)[0]
    return {"peak_bytes": peaks.max(axis=0), "peak_phase": np.array(PHASES)[index],
            "categories_at_peak": dict(zip(categories, at_peak))}


class Walk:
    """One step's windows (step_walk) as coefficients over SYMBOLS, each a pair [const, per_layer] (bytes =
    (const + L·per_layer) · symbols) of the tape categories (TAPE_ROWS of CATEGORIES); the constant part is
    added when evaluated (walk_windows).

        windows     [(phase, micro-batch or None)] in step order
        starts      [2, W, S]   the tape's total as each window starts (its first moment)
        ends        [2, W, S]   the tape's total as it ends
        end         [2, R, S]   the tape by category at the end of the step
        bounds      [W + 1]     window w's candidates are candidates[bounds[w]:bounds[w + 1]]
        candidates  [2, K, R, S] the tape by category at each moment that can hold its window's peak, in step
                    order; least_layers [K] the least L at which each exists (late: some from L = 2 on)
        figures     [2, K + 2W, S] the candidates' totals, the starts and the ends
        moments, moment_layers, moment_windows   every moment's total [2, M, S], least L and window
    """

    def __init__(self, windows, starts, ends, end, moments, totals, moment_layers, moment_windows, keep):
        self.windows, self.end = windows, end
        self.starts, self.ends = np.stack(starts, axis=1), np.stack(ends, axis=1)
        self.moments, self.moment_layers, self.moment_windows = totals, moment_layers, moment_windows
        self.candidates, self.least_layers = moments[:, keep], moment_layers[keep]
        self.late = bool(np.any(self.least_layers > 1))
        self.bounds = np.searchsorted(moment_windows[keep], np.arange(len(windows) + 1))
        # [2, K + 2W, S]: the candidates' totals, then the windows' start and end totals: one product evaluates all
        self.figures = np.concatenate([totals[:, keep], self.starts, self.ends], axis=1)


def least_layers(once: int, per_layer: int, times: int) -> int:
    """The least L >= 1 at which a segment run once + L·per_layer times (per_layer 1, or 0 for a segment run once
    whatever L) runs at least `times` times."""
    return 1 if per_layer == 0 else max(1, times - once)


def walk_moments(windows: list, compile, start: np.ndarray) -> tuple:
    """Every moment of `windows` ([(phase, micro-batch, segments)]) run from the tape `start` ([2, R, S]) as
    ([2, M, R, S] coefficients, [M] least L, [M] window), and each window's start and end. Each segment contributes
    the moments of its first run (where it runs at all) and of its last (shifted by the runs before it times its
    net, where it runs twice or more); those in between are lower than one of the two (module docstring)."""
    live, blocks, layers, where, starts, ends = start, [], [], [], [], []
    for number, (_, _, segments) in enumerate(windows):
        starts.append(live.sum(axis=1))
        blocks.append(live[:, None]), layers.append([1]), where.append([number])
        for program, repeated in segments:
            steps, net = compile(program)
            once = programs.runs(repeated, 0)
            per_layer = programs.runs(repeated, 1) - once  # 0 or 1: runs(repeated, L) = once + L·per_layer
            first = np.stack([live[0] + steps, np.broadcast_to(live[1], steps.shape)])
            runs_of = [(first, 1)]
            if per_layer:
                runs_of.append((first + np.stack([(once - 1) * net, per_layer * net])[:, None], 2))
            for block, times in runs_of:
                blocks.append(block), layers.append([least_layers(once, per_layer, times)] * len(steps))
                where.append([number] * len(steps))
            live = live + np.stack([once * net, per_layer * net])
        ends.append(live.sum(axis=1))
    return (np.concatenate(blocks, axis=1), np.concatenate(layers).astype(np.int64),
            np.concatenate(where).astype(np.int64), starts, ends, live)


def candidates(totals: np.ndarray, layers: np.ndarray, windows: np.ndarray, block: int = 16) -> np.ndarray:
    """[M] bools: the moments that can be the first highest of their window at some size. A moment j is left out
    where another i of its window beats it: i exists wherever j does and is at least as high at every size,
    coefficient by coefficient (every symbol is at least 1 byte on the exact model's domain, every size >= 1), and
    is earlier (the first highest wins ties) or higher in some coefficient (then higher everywhere). Beating is
    transitive, and in the order of the totals with every symbol 1 byte a beater comes first: so, `block` at a
    time in that order, the moments that none of the block beats and that no earlier block's beat are kept, and
    every one the block beats is left out."""
    keep = np.zeros(len(layers), dtype=bool)
    for window in np.unique(windows):
        index = np.flatnonzero(windows == window)
        const, per_layer, least = totals[0, index], totals[1, index], layers[index]
        used = np.any((const != 0) | (per_layer != 0), axis=0)
        const, per_layer = const[:, used], per_layer[:, used]
        own = const + least[:, None] * per_layer  # each moment at its own least L
        remaining = np.lexsort((np.arange(len(index)), -(const + least.max() * per_layer).sum(axis=1)))
        while remaining.size:
            tops = remaining[:block, None]
            # each top − each remaining one at the latter's least L, and per layer from there
            difference = const[tops] + least[remaining, None] * per_layer[tops] - own[remaining]
            beats = ((least[tops] <= least[remaining]) & np.all(difference >= 0, axis=2)
                     & np.all(per_layer[tops] >= per_layer[remaining], axis=2)
                     & ((tops < remaining) | np.any(difference > 0, axis=2)))
            beaten = np.any(beats, axis=0)
            keep[index[remaining[:block][~beaten[:block]]]] = True
            remaining = remaining[block:][~beaten[block:]]
    return keep


def compile_walk(windows: list, start: np.ndarray, compile=compile_program, every_moment: bool = False) -> Walk:
    """The Walk of `windows` run from the tape `start` ([2, R, S]) with `compile` (programs.compile_program),
    keeping the candidates of each window's peak (every moment with every_moment=True: the same figures)."""
    moments, layers, where, starts, ends, end = walk_moments(windows, compile, start)
    totals = moments.sum(axis=2)
    keep = np.ones(len(layers), dtype=bool) if every_moment else candidates(totals, layers, where)
    return Walk([(name, index) for name, index, _ in windows], starts, ends, end, moments, totals, layers, where,
                keep)


def step_windows(programs: Programs, key: LayoutClass, adamw_key: tuple, micro_batches: int, zero_grad: str,
                 warmup: bool) -> tuple[list, np.ndarray]:
    """The windows of one step of a layout class (step_walk) and the tape it starts from: the warm-up step from an
    empty tape, the measured step from what the warm-up step leaves (optimizer state, and gradients with zero_grad
    'zeros'; its temporaries, the loss, die as train_step returns)."""
    derived, adamw = programs.layout_class(key), programs.adamw(adamw_key)
    start = np.zeros((2, len(TAPE_ROWS), len(SYMBOLS)), dtype=np.int64)
    if not warmup:
        left = compiled_walk(programs, key, adamw_key, micro_batches, zero_grad, True).end
        persistent = [TAPE_ROWS.index(row) for row in PERSISTENT]
        start[:, persistent] = left[:, persistent]
    has_gradients = bool(np.any(start[:, TAPE_ROWS.index(PERSISTENT[0])]))  # zero_grad 'zeros' after a step
    return step_walk(derived, adamw, micro_batches, zero_grad, warmup, has_gradients), start


@lru_cache(maxsize=128)  # a Walk holds about half a MB
def compiled_walk(programs: Programs, key: LayoutClass, adamw_key: tuple, micro_batches: int, zero_grad: str,
                  warmup: bool) -> Walk:
    """The Walk of one step of a layout class (step_windows), compiled once."""
    return compile_walk(*step_windows(programs, key, adamw_key, micro_batches, zero_grad, warmup))


def _affine(coefficients: np.ndarray, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """(const + L·per_layer) · values: [2, ..., S] coefficients over [S, N] values (_values), N layer counts ->
    [..., N] int64."""
    shape = coefficients.shape[1:-1]
    product = coefficients.reshape(-1, coefficients.shape[-1]).astype(values.dtype, copy=False) @ values
    const, per_layer = product.astype(np.int64, copy=False).reshape((2, math.prod(shape), -1))
    return (const + per_layer * layers).reshape(shape + (-1,))


EXACT_IN_FLOAT = 2.0 ** 52  # below it every integer is a float64 (with room for the bound's own rounding)


def _values(sizes: Sizes, *coefficients: np.ndarray) -> np.ndarray:
    """The symbols' values (Sizes.symbol_matrix) to multiply `coefficients` by: over many elements as float64, for
    BLAS (numpy's integer product has none), where the sum of the products' magnitudes stays below EXACT_IN_FLOAT
    for every row, so every product and partial sum is an integer float64 holds exactly; else int64."""
    values = sizes.symbol_matrix()
    if values.shape[1] < 64:
        return values
    top = values.max(axis=1).astype(np.float64)
    bound = max(float((np.abs(table).reshape(-1, len(top)).astype(np.float64) @ top).max(initial=0))
                for table in coefficients)
    return values.astype(np.float64) if bound < EXACT_IN_FLOAT else values


def walk_windows(walk: Walk, sizes: Sizes) -> list[tuple[str, int | None, dict]]:
    """The figures of each window of `walk` at `sizes` (one layout): its peak (the first highest moment), start
    and end bytes and the categories at its peak, each of sizes.B's shape (numpy scalars for one config)."""
    shape, windows, low = np.shape(sizes.B), len(walk.windows), len(walk.least_layers)
    values, layers = _values(sizes, walk.figures, walk.candidates), np.broadcast_to(sizes.L, shape).reshape(-1)
    constant = constant_part(sizes).reshape(len(CATEGORIES), -1)
    base = constant.sum(axis=0)
    figures = _affine(walk.figures, values, layers)
    totals, starts, ends = figures[:low], figures[low:low + windows] + base, figures[low + windows:] + base
    if walk.late:
        totals[walk.least_layers[:, None] > layers] = np.iinfo(np.int64).min
    at = np.stack([start + np.argmax(totals[start:end], axis=0) for start, end in zip(walk.bounds, walk.bounds[1:])])
    columns = np.arange(len(layers))
    peaks = totals[at, columns] + base
    categories = np.repeat(constant[None], windows, axis=0)
    categories[:, TAPE_ROWS] += _tape_at(walk, at, values, layers)
    peaks, starts, ends = (array.reshape((windows,) + shape) for array in (peaks, starts, ends))
    categories = categories.reshape((windows, len(CATEGORIES)) + shape)
    return [(name, index, {"peak_bytes": peaks[number], "start_bytes": starts[number], "end_bytes": ends[number],
                           "categories_at_peak": dict(zip(CATEGORIES, categories[number]))})
            for number, (name, index) in enumerate(walk.windows)]


def _tape_at(walk: Walk, at: np.ndarray, values: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """[W, R, N]: the tape by category at candidate at[w, n] of each window w and element n: every candidate's
    for a few elements, else each distinct candidate's over the elements where it holds the peak."""
    if at.size * len(walk.least_layers) <= 4096:
        return _affine(walk.candidates, values, layers)[at, :, np.arange(len(layers))].transpose(0, 2, 1)
    tape = np.empty(at.shape[:1] + walk.candidates.shape[2:3] + at.shape[1:], dtype=np.int64)
    for window, moments in enumerate(at):
        order = np.argsort(moments, kind="stable")
        ordered, chosen_values, chosen_layers = moments[order], values[:, order], layers[order]
        edges = np.concatenate([[0], np.flatnonzero(np.diff(ordered)) + 1, [len(order)]])
        for start, end in zip(edges, edges[1:]):
            tape[window][:, order[start:end]] = _affine(walk.candidates[:, ordered[start]],
                                                        chosen_values[:, start:end], chosen_layers[start:end])
    return tape


def layout_phases(programs: Programs, sizes: Sizes, positional: str, optimizer: str,
                  layout: tuple[bool, ...] = (False, False, False, False),
                  warmup: bool = False, moments: bool = False) -> dict:
    """step_phases for one attention layout; with moments=True, the live total at every moment of each phase
    instead ([M, ...] per phase; a moment of a segment that does not run at an element's L stands as its window's
    start). The warm-up step starts from the constant part; the measured step from the constant part and what the
    warm-up step leaves behind (compiled_walk)."""
    walk = compiled_walk(programs, sizes.layout_class(positional, layout),
                         optimizer_key(sizes.arch, positional, layout[2], optimizer), sizes.micro_batches,
                         sizes.zero_grad, warmup)
    if moments:
        shape = np.shape(sizes.B)
        values, layers = sizes.symbol_matrix(), np.broadcast_to(sizes.L, shape).reshape(-1)
        base = constant_part(sizes).reshape(len(CATEGORIES), -1).sum(axis=0)
        totals = _affine(walk.moments, values, layers)
        starts = _affine(walk.starts, values, layers)[walk.moment_windows]
        totals = np.where(walk.moment_layers[:, None] <= layers, totals, starts) + base
        phase_of = np.array([name for name, _ in walk.windows])[walk.moment_windows]
        return {name: totals[phase_of == name].reshape((-1,) + shape) for name in PHASES}
    return combine_windows(walk_windows(walk, sizes), sizes.micro_batches)


def step_figures(programs: Programs, sizes: Sizes, positional: str, optimizer: str, warmup: bool = False) -> dict:
    """Phase figures plus the step's peak, the phase that holds it and the categories there."""
    figures = step_phases(programs, sizes, positional, optimizer, warmup)
    return {**step_peak(figures["phases"], CATEGORIES), **figures}


@lru_cache(maxsize=512)
def saved_coefficients(programs: Programs, key: LayoutClass) -> tuple[np.ndarray, np.ndarray]:
    """[2, 1 + COMPONENTS, S] coefficients (const, per layer) of the bytes autograd keeps at the end of forward:
    row 0 one layer's in all, then each component's (L times what it saves in one layer plus what it saves outside
    the layers), from the layout class's saved_by_component."""
    saved = programs.layout_class(key)["saved_by_component"]
    table = np.zeros((2, 1 + len(COMPONENTS), len(SYMBOLS)), dtype=np.int64)
    for where, side in (("outside", 0), ("layer", 1)):
        for component, names in saved[where].items():
            for name in names.split():
                if where == "layer":
                    table[0, 0, SYMBOLS.index(name)] += 1
                if component in COMPONENTS:
                    table[side, 1 + COMPONENTS.index(component), SYMBOLS.index(name)] += 1
    return table


def saved_bytes(programs: Programs, sizes: Sizes, positional: str) -> dict:
    """{"layer": one layer's saved bytes, component: its saved bytes} (saved_coefficients), elementwise."""

    def compute(layout, part):
        table = saved_coefficients(programs, part.layout_class(positional, layout))
        shape = np.shape(part.B)
        values = _affine(table, _values(part, table), np.broadcast_to(part.L, shape).reshape(-1))
        return dict(zip(("layer",) + COMPONENTS, values.reshape(values.shape[:1] + shape)))

    return per_layout(sizes, compute)


def saved_activations_per_layer(programs: Programs, sizes: Sizes, positional: str) -> np.ndarray:
    """Bytes one layer keeps for backward: the per-layer part of saved_activations_by_component (its total is L
    times this plus what the components outside the layers keep)."""
    return saved_bytes(programs, sizes, positional)["layer"]


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
    by_component = saved_bytes(programs, sizes, positional)
    return {name: by_component[name] for name in COMPONENTS}
