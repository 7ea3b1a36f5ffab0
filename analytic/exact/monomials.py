"""The alphabet of a model derived from traces of any code: monomials in the sizes, named by their own text.

A monomial is a product of VARIABLES, the traced sizes B batch, T context length, H heads, Dh head size (d_model
D = H·Dh), F d_ff, V vocabulary, T32 = ⌈T/32⌉·32 (the rows the memory-efficient SDPA kernel pads its logsumexp
to) and, for grouped-query attention only, G key/value heads, each to a power; its name is the product written out
in that order, `B*T*H*Dh`, `B*H*T^2`, `1` for the empty product. An allocation of a derived program is an integer
count times one monomial (analytic.exact.programs' token `+A:4*B*T*H*Dh`: the element size is part of the count, one
dtype per derivation). fits() lists every (monomial, count) a byte count is at one size set; the derivation keeps
those that hold at every traced set of unrelated sizes (primes), so that a coincidence of sizes cannot name a tensor
wrongly.
"""
from __future__ import annotations

import itertools
import re
from functools import lru_cache

import numpy as np

VARIABLES = ("B", "T", "H", "Dh", "F", "V", "T32", "G")
UNGROUPED = VARIABLES[:-1]  # G = H: no monomial names G
LSE_ROWS = 32
DEGREE = 4  # the highest total degree a monomial of the alphabet has (B·H·T²: an attention matrix)
_FACTOR = re.compile(r"^(B|T32|T|H|Dh|F|V|G)(?:\^(\d+))?$")


def name(powers: tuple[int, ...]) -> str:
    """`B*H*T^2` of the powers of VARIABLES (1 for none)."""
    factors = [variable + (f"^{power}" if power > 1 else "") for variable, power in zip(VARIABLES, powers) if power]
    return "*".join(factors) or "1"


@lru_cache(maxsize=None)
def powers(monomial: str) -> tuple[int, ...]:
    """The powers of VARIABLES in a monomial's name (name's inverse)."""
    found = dict.fromkeys(VARIABLES, 0)
    if monomial != "1":
        for factor in monomial.split("*"):
            variable, power = _FACTOR.match(factor).groups()
            found[variable] += int(power or 1)
    return tuple(found[variable] for variable in VARIABLES)


@lru_cache(maxsize=None)
def alphabet(degree: int = DEGREE, grouped: bool = False) -> tuple[str, ...]:
    """Every monomial of total degree up to `degree` (in G too where `grouped`), lowest degree first."""
    used = [VARIABLES.index(variable) for variable in (VARIABLES if grouped else UNGROUPED)]
    found = []
    for total in range(degree + 1):
        for combination in itertools.combinations_with_replacement(used, total):
            found.append(name(tuple(combination.count(i) for i in range(len(VARIABLES)))))
    return tuple(found)


def padded(sizes: dict) -> dict:
    """`sizes` ({B, T, H, Dh, F, V} and G where grouped: numbers or numpy arrays) with T32 = ⌈T/32⌉·32, and G = H
    where it is not given."""
    return {"G": sizes["H"], **sizes, "T32": -(-sizes["T"] // LSE_ROWS) * LSE_ROWS}


def value(monomial: str, sizes: dict):
    """The monomial at `sizes` ({variable: number or numpy array}, VARIABLES' names; T32 worked out where it is
    not given)."""
    sizes = sizes if "T32" in sizes else padded(sizes)
    result = 1
    for variable, power in zip(VARIABLES, powers(monomial)):
        if power:
            result = result * sizes[variable] ** power
    return result


def fits(nbytes: int, sizes: dict, degree: int = DEGREE, grouped: bool = False) -> frozenset[tuple[str, int]]:
    """Every (monomial, count) with count · monomial = nbytes at `sizes` (integer sizes), count a positive
    integer."""
    sizes = padded(sizes)
    return _fits(nbytes, tuple(sizes[variable] for variable in VARIABLES), degree, grouped)


@lru_cache(maxsize=65536)
def _fits(nbytes: int, values: tuple[int, ...], degree: int, grouped: bool) -> frozenset[tuple[str, int]]:
    sizes = dict(zip(VARIABLES, values))
    found = set()
    for monomial in alphabet(degree, grouped):
        size = value(monomial, sizes)
        if size <= nbytes and nbytes % size == 0:
            found.add((monomial, nbytes // size))
    return frozenset(found)


def sums(nbytes: tuple[int, ...], sets: list[dict], degree: int = DEGREE - 1,
         grouped: bool = False) -> list[tuple[str, int]]:
    """The first pair of (monomial, count) whose sum is nbytes[i] at sets[i] for every set, both counts positive
    (lowest degrees first; monomials up to `degree`); [] where none is: B·(T + 1), a padded mask, is 8·B·T + 8·B
    bytes."""
    values = tuple(tuple(padded(sizes)[v] for v in VARIABLES) for sizes in sets)
    return list(_sums(tuple(nbytes), values, degree, grouped))


@lru_cache(maxsize=4096)
def _sums(nbytes: tuple[int, ...], sets: tuple[tuple[int, ...], ...], degree: int,
          grouped: bool) -> tuple[tuple[str, int], ...]:
    at = [dict(zip(VARIABLES, values)) for values in sets]
    candidates = alphabet(degree, grouped)
    table = {m: [value(m, sizes) for sizes in at] for m in candidates}
    for i, first in enumerate(candidates):
        for second in candidates[i + 1:]:
            (a1, a2), (b1, b2) = table[first][:2], table[second][:2]
            determinant = a1 * b2 - a2 * b1
            if determinant == 0:
                continue
            x, rest_x = divmod(nbytes[0] * b2 - nbytes[1] * b1, determinant)
            y, rest_y = divmod(a1 * nbytes[1] - a2 * nbytes[0], determinant)
            if rest_x or rest_y or x <= 0 or y <= 0:
                continue
            if all(x * table[first][k] + y * table[second][k] == nbytes[k] for k in range(len(at))):
                return ((first, x), (second, y))
    return ()


def matrix(symbols: tuple[str, ...], sizes: dict) -> np.ndarray:
    """[symbols, elements] int64: each monomial's value at each element of `sizes` (arrays that broadcast
    together), flattened."""
    sizes = padded(sizes)
    arrays = np.broadcast_arrays(*(np.asarray(sizes[variable], dtype=np.int64) for variable in VARIABLES))
    at = dict(zip(VARIABLES, (array.reshape(-1) for array in arrays)))
    return np.stack([np.broadcast_to(np.asarray(value(symbol, at), dtype=np.int64), arrays[0].reshape(-1).shape)
                     for symbol in symbols]) if symbols else np.zeros((0, arrays[0].size), dtype=np.int64)

