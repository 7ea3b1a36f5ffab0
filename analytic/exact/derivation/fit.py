"""Allocation programs fitted to traced events: fit() names each event by a term of an alphabet, segment() splits
the tokens of L = 1, 2, 3 layers into segments run once or per layer.

A window traced at several unrelated size sets (analytic.exact.derivation.trace) must give the same ops in the same
order, each keeping the same category, at every set; then each event is named by the term (a count times a symbol)
that its bytes are at every set: the alphabet's `fits` at one set, intersected over the sets, so that a coincidence
of sizes cannot name a tensor wrongly, and `pick` choosing one of those left. Two alphabets:

    SymbolAlphabet    the named symbols of analytic.sizes (a = B·T·D·e, gDF = D·F·e, ...; the shipped programs of the
                      built-in blocks), a size set being each symbol's bytes; a category takes only its own symbols
                      (a gradient a parameter-sized one), and the first in SYMBOLS order is picked
    MonomialAlphabet  an integer count times a monomial in the sizes (analytic.exact.monomials; any model's code), a
                      size set being the sizes; the lowest degree is picked, and where no one term fits, a sum of two

A token is `<sign><code>:<count>*<symbol>` (analytic.exact.programs.term_token; `+A:a` for a count of 1).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from analytic.exact import monomials
from analytic.exact.derivation.trace import Event
from analytic.exact.programs import EVERY_BLOCK_BUT_THE_LAST, EVERY_BLOCK_BUT_TWO, runs, term_token


class DerivationError(RuntimeError):
    """The traced step does not fit the model's form: a size that no term fits, an event sequence that changes
    with the sizes, or no segments."""


@dataclass(frozen=True)
class SymbolAlphabet:
    """Named symbols (`order`: the first of those that fit is picked); `allowed[category]`, where given, those a
    category may take."""

    order: tuple[str, ...]
    allowed: dict[str, tuple[str, ...]] | None = None

    def names(self, category: str) -> tuple[str, ...]:
        return self.order if self.allowed is None else self.allowed[category]

    def fits(self, event: Event, values: dict[str, int]) -> set[tuple[str, int]]:
        return {(name, 1) for name in self.names(event.category) if values[name] == event.nbytes}

    def pick(self, common: set[tuple[str, int]], category: str) -> tuple[str, int]:
        return next((name, 1) for name in self.order if (name, 1) in common)

    def sums(self, nbytes: list[int], sets: list[dict]) -> list[tuple[str, int]]:
        return []

    def describe(self, category: str) -> str:
        return f"symbol of {', '.join(self.names(category))}"


@dataclass(frozen=True)
class MonomialAlphabet:
    """A positive integer count times a monomial of analytic.exact.monomials (in G too where `grouped`)."""

    grouped: bool = False

    def fits(self, event: Event, sizes: dict) -> set[tuple[str, int]]:
        return set(monomials.fits(event.nbytes, sizes, grouped=self.grouped))

    def pick(self, common: set[tuple[str, int]], category: str) -> tuple[str, int]:
        return min(common, key=lambda term: (sum(monomials.powers(term[0])), term[0]))

    def sums(self, nbytes: list[int], sets: list[dict]) -> list[tuple[str, int]]:
        """A sum of two monomials (a padded mask, B·(T + 1)): one token each; the moment after the first is lower
        than the one after the second, so neither a peak nor the categories at it change."""
        return monomials.sums(nbytes, sets, grouped=self.grouped)

    def describe(self, category: str) -> str:
        return (f"count × monomial of degree <= {monomials.DEGREE} in {', '.join(monomials.VARIABLES)}, nor a sum "
                f"of two")


def fit(groups: list[list[Event]], sets: list[dict], alphabet, what: str, at: list[str]) -> list[str]:
    """The tokens of one window traced at every size set (`groups[i]` its events at `sets[i]`, described by
    `at[i]`): each event the term of `alphabet` its bytes are at every set."""
    first = groups[0]
    for other, where in zip(groups[1:], at[1:]):
        for fields in (("sign", "op"), ("sign", "op", "category")):  # the ops first, then what each keeps
            for index, (one, two) in enumerate(zip(first, other)):
                if [getattr(one, name) for name in fields] != [getattr(two, name) for name in fields]:
                    raise DerivationError(
                        f"{what}: the op sequence changes with the sizes: event {index + 1} is {one.op} "
                        f"({one.category}) in {one.module or 'backward'} at {at[0]} and {two.op} ({two.category}) "
                        f"in {two.module or 'backward'} at {where}")
        if len(first) != len(other):
            raise DerivationError(f"{what}: {len(first)} events at {at[0]}, {len(other)} at {where}")
    tokens = []
    for group in zip(*groups):
        one = group[0]
        common = set.intersection(*(alphabet.fits(event, values) for event, values in zip(group, sets)))
        terms = [alphabet.pick(common, one.category)] if common else alphabet.sums([e.nbytes for e in group], sets)
        if not terms:
            raise DerivationError(
                f"{what}: {'an allocation' if one.sign == '+' else 'a free'} by {one.op or 'the step'} in "
                f"{one.module or 'backward'} ({one.category}) of {[e.nbytes for e in group]} bytes at the "
                f"{len(sets)} size sets fits no {alphabet.describe(one.category)} ({at[0]})")
        tokens += [term_token(one.sign, one.category, count, symbol) for symbol, count in terms]
    return tokens


def once_per_layer(counts: dict[int, dict[str, int]], what: str) -> list[dict[str, int]]:
    """[once, per layer] ({monomial: count} each) of {L: {monomial: count}} at L = 1, 2 and any more: per layer =
    counts[2] − counts[1], once = counts[1] − per layer, and once + L × per layer must be counts[L] at every L
    given (`what` names the figure where it is not)."""
    per_layer = {s: counts[2].get(s, 0) - counts[1].get(s, 0) for s in set(counts[1]) | set(counts[2])}
    once = {s: counts[1].get(s, 0) - per_layer.get(s, 0) for s in set(counts[1]) | set(per_layer)}
    for layers, counted in counts.items():
        if any(once.get(s, 0) + layers * per_layer.get(s, 0) != counted.get(s, 0) for s in set(once) | set(counted)):
            raise DerivationError(f"{what} are not once + L × per layer at L = {', '.join(map(str, counts))}")
    return [{s: c for s, c in once.items() if c}, {s: c for s, c in per_layer.items() if c}]


def segment(programs: dict[int, list[str]], what: str, base: int = 1) -> list[tuple[str, bool | str]]:
    """[(program, repeated)] with programs[L] == the segments joined, each run once (False), L times (True), L − 1
    times ("L-1") or, from base 2, L − 2 times ("L-2"), for every L >= base.

    A depth-first search over (position in the L = base trace, tokens consumed by repeated segments so far): at
    each position either a block follows base, base + 1 and base + 2 times (a segment repeated L times), or the
    three traces share a token (a fixed one), or a block follows one time fewer in each (repeated L − 1 times:
    every block but the last, whose program differs, as when the next block's checkpoint saves each block's
    output but the last's), or two fewer (L − 2). The first decomposition found must also reproduce the
    programs at every other L given (base + 3: a check)."""
    one, two, three = programs[base], programs[base + 1], programs[base + 2]
    extra = len(two) - len(one)
    fewer_runs = [(1, EVERY_BLOCK_BUT_THE_LAST), (2, EVERY_BLOCK_BUT_TWO)][:base]  # (runs fewer than L, marker)
    failed: set[tuple[int, int]] = set()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(three) + 1000))

    def repeats(block: list[str], p: int, s: int, count: int) -> bool:
        """Whether the block follows count, count + 1 and count + 2 times at p in the three traces."""
        n = len(block)
        return all(trace[p + i * s:p + i * s + (count + i) * n] == block * (count + i)
                   for i, trace in enumerate((one, two, three)))

    def blocks(p: int, s: int, fewer: int, repeated: bool | str) -> list[tuple[list[str], bool | str]] | None:
        """A segment at p that runs L − fewer times, then the rest: the shortest that leads to a decomposition."""
        count = base - fewer
        for n in range(1, extra - s + 1):
            if count and p + count * n > len(one):
                break
            block = one[p:p + n] if count else two[p + s:p + s + n]
            if len(block) == n and repeats(block, p, s, count):
                rest = search(p + count * n, s + n)
                if rest is not None:
                    return [(block, repeated)] + rest
        return None

    def fixed(p: int, s: int) -> list[tuple[list[str], bool | str]] | None:
        """A token the three traces share at p, then the rest."""
        if one[p] != two[p + s] or one[p] != three[p + 2 * s]:
            return None
        rest = search(p + 1, s)
        return None if rest is None else [([one[p]], False)] + rest

    def search(p: int, s: int) -> list[tuple[list[str], bool | str]] | None:
        if p == len(one):
            return [] if s == extra else None
        if (p, s) in failed:
            return None
        found = blocks(p, s, 0, True) or fixed(p, s)  # segments repeated L times first, then a fixed token
        for fewer, repeated in fewer_runs:
            found = found or blocks(p, s, fewer, repeated)
        if found is None:
            failed.add((p, s))
        return found

    try:
        found = search(0, 0)
    finally:
        sys.setrecursionlimit(limit)
    if found is None:
        raise DerivationError(f"{what}: no segments reproduce the traces at L = {base}, {base + 1}, {base + 2}")
    merged: list[tuple[list[str], bool | str]] = []
    for tokens, repeated in found:  # consecutive fixed tokens form one segment
        if merged and not repeated and not merged[-1][1]:
            merged[-1][0].extend(tokens)
        else:
            merged.append((list(tokens), repeated))
    for layers, program in programs.items():
        if [t for tokens, repeated in merged for t in tokens * runs(repeated, layers)] != program:
            raise DerivationError(f"{what}: the segments do not reproduce the trace at L = {layers}")
    return [(" ".join(tokens), repeated) for tokens, repeated in merged]
