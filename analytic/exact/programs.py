"""What one training step allocates and frees, in order: the "programs" of the exact memory model.

A program is a sequence of tokens `+x` (allocate) or `-x` (free) over the symbols of analytic.exact.sizes:
lowercase a temporary, uppercase a tensor autograd saves for backward (category saved_activations), `g…` a
weight gradient (category gradients). They transcribe what autograd and the ops of model.transformer do, block
by block; tests/test_exact.py checks every one against the storage tracker, byte for byte, on random configs.

Forward, one pre-norm block (explicit attention):
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
gradient copies. Those layer programs are traced once by tools/derive_layouts.py into layouts.py.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from analytic.exact.layouts import LAYOUTS
from analytic.exact.sizes import SYMBOLS

TAPE_CATEGORIES = ("saved_activations", "gradients", "temporaries")

# --- forward blocks -------------------------------------------------------------------------------------------
RMSNORM = "+a +r -a +r -r +R -r +A +A"
QKV = "+a +a +a"
ROPE_ONE = "+h +h +h -h -h +h +h +h -h -h +A -h -h"  # x1·cos, x2·sin, sub; x1·sin, x2·cos, add; stack
ATTENTION_CORE = "+s +s -s +s -s +S -s"  # QKᵀ, ·scale, masked_fill, softmax
WEIGHTED_SUM_AND_OUT = "+A +a +A +a"  # v copy, P·V, merged heads, out_proj
RESIDUAL = "+A -a"
FEED_FORWARD = "+F +F +a"

EXPLICIT_ATTENTION = " ".join([QKV, "+A +A", ATTENTION_CORE, WEIGHTED_SUM_AND_OUT, "-a -a -a -a"])
ROPE_ATTENTION = " ".join([QKV, ROPE_ONE, ROPE_ONE, "-a -a", ATTENTION_CORE, WEIGHTED_SUM_AND_OUT, "-a -a"])

FORWARD_EMBEDDING = {"learned": "+a +t +A -t -a",  # token and position lookups, their sum (saved by norm1)
                     "rope": "+A", "none": "+A"}  # the lookup itself is the first block's input
FORWARD_HEAD = RMSNORM + " +n +N +c +C -n"  # final norm, logits, log-softmax (saved), loss, total weight


def forward_layer(positional: str, layout: tuple[bool, bool] = (False, False)) -> str:
    """One block's forward; layout = (B == 1, H == 1) picks a degenerate layout's traced program (layouts.py)."""
    if any(layout):
        return LAYOUTS[(positional == "rope", *layout)]["forward"]
    attention = ROPE_ATTENTION if positional == "rope" else EXPLICIT_ATTENTION
    return " ".join([RMSNORM, attention, RESIDUAL, RMSNORM, FEED_FORWARD, RESIDUAL])


# --- backward blocks ------------------------------------------------------------------------------------------
# RMSNorm backward in two halves: through ·gain and ·rsqrt (gain gradient +gD), then through rsqrt and x².
RMSNORM_BACK_SCALE = "+a +a +gD -a -a -A +a +a +r -a -a"
RMSNORM_BACK_RMS = "+r +r +r -r -r -r -R +a -r +a +a +a -a -a -a -A +a -a -a"
RESIDUAL_BACK = "+a -a -a"  # the skip path's gradient summed with the branch's
CROSS_ENTROPY_AND_HEAD_BACK = "+c +n -C +n -n -N +gVD +a -n -A"  # seed, nll, log-softmax, lm_head
FEED_FORWARD_BACK = "+gDF +f -F +f -f -F +gDF +a -f -A"
ATTENTION_CORE_BACK = "+gDD +a -A +a -a +a +s -a -A +s -s -S +s -s +s -s +a +a -s -A -A"
ROPE_ONE_BACK = "+h +h +h +h -h +h -h -h +h -a +h -h -h +a -h +a -h +a -a -a"
QKV_BACK = "+a -a +gDD +a -a +a -a +gDD +a -a +a -a -a +a -a +gDD +a -a -A +a -a -a"

BACKWARD_HEAD = " ".join([CROSS_ENTROPY_AND_HEAD_BACK, RMSNORM_BACK_SCALE, RMSNORM_BACK_RMS])
BACKWARD_EMBEDDING = {"learned": "+t +gTD -t +gVD -a -c",  # position grad summed over batch, both tables
                      "rope": "+gVD -a -c", "none": "+gVD -a -c"}  # last: the incoming grad and the seed die


def backward_layer(positional: str, layout: tuple[bool, bool] = (False, False)) -> str:
    if any(layout):
        return LAYOUTS[(positional == "rope", *layout)]["backward"]
    rope = [ROPE_ONE_BACK, ROPE_ONE_BACK] if positional == "rope" else []
    norm = [RMSNORM_BACK_SCALE, RESIDUAL_BACK, RMSNORM_BACK_RMS]
    return " ".join([FEED_FORWARD_BACK, *norm, ATTENTION_CORE_BACK, *rope, QKV_BACK, *norm])


# --- compilation ----------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"([+-])(g?[A-Za-z]+)$")


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
        sign, name = _TOKEN.match(token).groups()
        if name.startswith("g"):
            category, symbol = 1, name
        else:
            category, symbol = (0 if name.isupper() else 2), name.lower()
        live[category, SYMBOLS.index(symbol)] += 1 if sign == "+" else -1
        if sign == "+":
            moments.append(live.copy())
    return np.array(moments), live
