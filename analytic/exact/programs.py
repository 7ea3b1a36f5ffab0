"""What one training step allocates and frees, in order: the "programs" of the exact memory model.

A program is a sequence of tokens `<sign><code>:<symbol>`: `+` allocates, `-` frees a tensor of `symbol`'s bytes
(analytic.sizes for one device, analytic.exact.sharded for a rank's own) in the category of `code` (CODES): `+t:a`
a temporary, `+A:a` a tensor autograd saves for backward, `+G:gDD` a weight gradient, `+t:gDD` a weight gradient
about to be added into .grad, `+O:gDD` an AdamW temporary, `+S:gDD` AdamW state; a rank adds its shards and
buffers (`+UP:gDD` a gathered weight, `-AG:agb` a block's all-gather buffer freed). A symbol may carry an integer
count: `+A:4*B*T*H*Dh` is 4 times the bytes of the monomial `B*T*H*Dh` (the alphabet of a model derived from traces
of any code, analytic.exact.monomials, whose element size is part of the count). They are derived from traces
of the real step (analytic.exact.derivation, shipped as analytic/exact/derived.json.gz); tests/test_exact.py
checks the model against the storage tracker, byte for byte, on random configs. This module compiles a program
into coefficient matrices.

What the derived forward program of one pre-norm block reads as, for B, H ≥ 2 (explicit attention):
 1. RMSNorm: pow x² (+t:a, dies after mean), mean (+t:r, dies after +eps), +eps (+t:r, dies after rsqrt),
    rsqrt (+A:r saved), x·rsqrt (+A:a saved), ·gain (+A:a: the normalised input the next linear layers save).
 2. Q, K, V projections: three mm outputs (+t:a each), alive as the locals q, k, v until attention returns.
 3. QKᵀ needs contiguous [B·H, T, Dh] operands: q and kᵀ are copied (+A:a +A:a, saved by the bmm).
    With RoPE, the rotation writes contiguous q and k (+A:a +A:a via stack, after 2·3 half-size temporaries
    each) and the projection outputs of q and k die when rebound (-t:a -t:a).
 4. scores (+t:s), ·scale (+t:s, the bmm output dies), masked_fill (+t:s, the scaled one dies), softmax (+A:s,
    the masked one dies): at most two B·H·T² temporaries at once, one kept.
 5. v copied (+A:a), P·V (+t:a), heads merged by .contiguous() (+A:a, saved by out_proj), out_proj (+t:a); then q, k,
    v projection outputs and P·V die with the attention's locals.
 6. residual add (+A:a: saved by the next RMSNorm), the branch output dies (-t:a).
 7. feed-forward: w1 (+A:f saved by silu), silu (+A:f saved by w2), w2 (+t:a), residual add (+A:a), w2 output
    dies.
Backward mirrors it: each weight gradient (+G:g…) appears as its layer is reached, saved tensors die as the
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

# The category of each token code; a one-device program uses the first five's codes.
CODES = {"A": "saved_activations", "G": "gradients", "t": "temporaries", "O": "optimizer_temporaries",
         "S": "optimizer_state", "P": "parameters", "B": "buffers", "I": "inputs", "UP": "unsharded_parameters",
         "AG": "all_gather_buffers", "UG": "unsharded_gradients", "RS": "reduce_scatter_buffers"}
CODE_OF = {name: code for code, name in CODES.items()}
TAPE_CATEGORIES = ("saved_activations", "gradients", "temporaries", "optimizer_temporaries", "optimizer_state")

_TOKEN = re.compile(r"([+-])([A-Za-z]+):(?:(\d+)\*)?([\w*^]+)$")


def token(sign: str, category: str, symbol: str) -> str:
    """The token of an allocation ("+") or free ("-") of `symbol`'s bytes in `category`: `+A:a`."""
    return f"{sign}{CODE_OF[category]}:{symbol}"


def parse_token(text: str) -> tuple[str, str, str]:
    """(sign, category, symbol) of a token: ("+", "saved_activations", "a") of `+A:a`."""
    sign, category, _, symbol = parse_term(text)
    return sign, category, symbol


def parse_term(text: str) -> tuple[str, str, int, str]:
    """(sign, category, count, symbol) of a token whose symbol may carry an integer count: `+A:4*B*T*H*Dh` is 4
    times the bytes of the symbol `B*T*H*Dh` (a monomial of analytic.exact.monomials, the alphabet of a model
    derived from traces of any code); a token without a count, `+A:a`, counts once."""
    sign, code, count, symbol = _TOKEN.match(text).groups()
    return sign, CODES[code], int(count or 1), symbol


def term_token(sign: str, category: str, count: int, symbol: str) -> str:
    """The token of `count` times `symbol`'s bytes: `+A:4*B*T*H*Dh`, or `+A:a` for a count of 1."""
    return f"{sign}{CODE_OF[category]}:{'' if count == 1 else f'{count}*'}{symbol}"


# How a one-device allocation reads where a moment is named (the formula's text, the report's "where"): the symbol
# itself for a temporary (`+a`), in capitals for a saved tensor (`+A`), a gradient as its symbol (`+gDD`), a
# parameter-sized temporary or AdamW's own with a marker (`+tmp:gDD`, `+opt:gDD`, `+state:gDD`).
_SHORT = {"temporaries": "{}", "saved_activations": "{}", "gradients": "{}", "optimizer_temporaries": "opt:{}",
          "optimizer_state": "state:{}"}


def short_token(text: str) -> str:
    """A one-device token in its short reading (_SHORT): `+a` of `+t:a`, `+S2` of `+A:s2`, `+tmp:gDD` of
    `+t:gDD`; a rank's token as it is."""
    sign, category, symbol = parse_token(text)
    if category not in _SHORT:
        return text
    if category == "saved_activations":
        symbol = symbol.upper()
    elif category == "temporaries" and symbol.startswith("g"):
        return f"{sign}tmp:{symbol}"
    return sign + _SHORT[category].format(symbol)


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
def compile_program(program: str, categories: tuple[str, ...] = TAPE_CATEGORIES,
                    symbols: tuple[str, ...] = SYMBOLS) -> tuple[np.ndarray, np.ndarray]:
    """(moments, net): live-byte coefficients after every allocation, and after the whole program.

    moments[k, i, j] is the coefficient of symbols[j] in the bytes of categories[i] live just after the k-th
    allocation (relative to the start); net[i, j] the same at the end. Multiplying by the symbols' values gives
    bytes: a program costs one matrix product, whatever its length. One device's programs run over
    TAPE_CATEGORIES and analytic.sizes.SYMBOLS, a rank's over analytic.exact.sharded's.
    """
    live = np.zeros((len(categories), len(symbols)), dtype=np.int64)
    moments = []
    for text in program.split():
        sign, category, count, symbol = parse_term(text)
        live[categories.index(category), symbols.index(symbol)] += count if sign == "+" else -count
        if sign == "+":
            moments.append(live.copy())
    return np.array(moments, dtype=np.int64).reshape(-1, len(categories), len(symbols)), live
