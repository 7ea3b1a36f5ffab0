"""What one training step allocates and frees, in order: the "programs" of the exact memory model.

A program is a sequence of tokens `+x` (allocate) or `-x` (free) over the symbols of analytic.sizes:
lowercase a temporary, uppercase a tensor autograd saves for backward (category saved_activations), `g…` a
weight gradient (category gradients). They are derived from traces of the real step (analytic/exact/derived.py,
written by tools/derive_programs.py); tests/test_exact.py checks the model against the storage tracker, byte
for byte, on random configs. This module compiles a program into coefficient matrices.

What the derived forward program of one pre-norm block reads as, for B, H ≥ 2 (explicit attention):
 1. RMSNorm: pow x² (+a, dies after mean), mean (+r, dies after +eps), +eps (+r, dies after rsqrt),
    rsqrt (+R saved), x·rsqrt (+A saved), ·gain (+A: the normalised input that the next linear layers save).
 2. Q, K, V projections: three mm outputs (+a each), alive as the locals q, k, v until attention returns.
 3. QKᵀ needs contiguous [B·H, T, Dh] operands: q and kᵀ are copied (+A +A, saved by the bmm).
    With RoPE, the rotation writes contiguous q and k (+A +A via stack, after 2·3 half-size temporaries each)
    and the projection outputs of q and k die when rebound (-a -a).
 4. scores (+s), ·scale (+s, the bmm output dies), masked_fill (+s, the scaled one dies), softmax (+S saved,
    the masked one dies): at most two B·H·T² temporaries at once, one kept.
 5. v copied (+A), P·V (+a), heads merged by .contiguous() (+A, saved by out_proj), out_proj (+a); then q, k,
    v projection outputs and P·V die with the attention's locals.
 6. residual add (+A: saved by the next RMSNorm), the branch output dies (-a).
 7. feed-forward: w1 (+F saved by silu), silu (+F saved by w2), w2 (+a), residual add (+A), w2 output dies.
Backward mirrors it: each weight gradient (+g…) appears as its layer is reached, saved tensors die as the
autograd nodes that hold them run, and at most a few activation-sized gradient temporaries live at once.

Layouts: the copies of items 3 and 5 exist because reshaping a transposed head view to [B·H, T, Dh] cannot be a
view when B, H and T all exceed 1 (and merging heads back cannot when H and T do). With B == 1 or H == 1 some of
those reshapes are views: autograd then saves the projection outputs themselves, and backward skips some
gradient copies: each layout class has its own derived programs.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from analytic.sizes import SYMBOLS

TAPE_CATEGORIES = ("saved_activations", "gradients", "temporaries", "optimizer_temporaries", "optimizer_state")

_TOKEN = re.compile(r"([+-])(?:(opt|state|tmp):)?(g?[A-Za-z][A-Za-z0-9]*)$")


def category_and_symbol(token: str) -> tuple[int, int, int]:
    """(+1 | -1, row of TAPE_CATEGORIES, index in SYMBOLS) of a token: `+a` a temporary, `+A` saved for backward,
    `+gDD` a weight gradient, `+tmp:gDD` a weight gradient about to be added into .grad (a temporary),
    `+opt:gDD` an AdamW temporary, `+state:gDD` AdamW state (of that size)."""
    sign, marker, name = _TOKEN.match(token).groups()
    if marker == "tmp":
        category = 2
    elif marker == "opt":
        category = 3
    elif marker == "state":
        category = 4
    elif name.startswith("g"):
        category = 1
    else:
        category = 0 if name.isupper() else 2
    symbol = name if name.startswith("g") else name.lower()
    return (1 if sign == "+" else -1), category, SYMBOLS.index(symbol)


EVERY_BLOCK_BUT_THE_LAST = "L-1"
EVERY_BLOCK_BUT_TWO = "L-2"  # the blocks between the first and the last (sharded programs, derived for L >= 2)


def runs(repeated, layers):
    """How many times a derived segment runs: once (False), L times (True), L − 1 times ("L-1": a program of
    every block but the last, whose own program follows; e.g. with full checkpointing each block's output is
    saved by the next block's checkpoint, the last one's is not) or L − 2 times ("L-2": every block but the first
    and the last, as when FSDP2's backward prefetches the next block and frees the previous one's buffers)."""
    if repeated in (EVERY_BLOCK_BUT_THE_LAST, EVERY_BLOCK_BUT_TWO):
        return layers - int(repeated[-1])
    return layers if repeated else 1


@lru_cache(maxsize=None)
def compile_program(program: str) -> tuple[np.ndarray, np.ndarray]:
    """(moments, net): live-byte coefficients after every allocation, and after the whole program.

    moments[k, i, j] is the coefficient of SYMBOLS[j] in the bytes of TAPE_CATEGORIES[i] live just after the
    k-th allocation (relative to the start); net[i, j] the same at the end. Multiplying by the symbols' values
    gives bytes: a program costs one matrix product, whatever its length.
    """
    live = np.zeros((len(TAPE_CATEGORIES), len(SYMBOLS)), dtype=np.int64)
    moments = []
    for token in program.split():
        sign, category, symbol = category_and_symbol(token)
        live[category, symbol] += sign
        if sign > 0:
            moments.append(live.copy())
    return np.array(moments, dtype=np.int64).reshape(-1, len(TAPE_CATEGORIES), len(SYMBOLS)), live
