"""The torch versions the exact model is known to hold on, and with which programs.

Its programs were derived from traces of the step on one torch (analytic/exact/derived.json.gz's torch_version) and
are shipped for the minors where they hold (SHIPPED_MINORS); a torch release can change what autograd saves or
what a kernel allocates, so on any other torch the exact model runs programs derived on it (analytic.exact.source;
class by class on first use where its Programs derive, cached). The model is claimed only where it was verified
(VERIFIED_MINORS): the whole test suite (every setup exact to the byte on random sizes) and the `check` gate
passed there, each version in its own environment with the project installed beside it (tools/torch_compat.py;
its table is reports/torch-compat/README.md, and a test ties both tuples to it).
"""
from __future__ import annotations

import os
from pathlib import Path


# The shipped programs are used only on the minor they were derived on: a test run on 2.9.1 found a setup where
# they do not hold there (the reference block with RoPE, fp32, explicit attention: a forward peak 208 bytes apart at a
# small size), which earlier runs had not drawn; every other torch derives its own on first use.
SHIPPED_MINORS = ("2.13",)
# The tests and check pass there (on each but 2.13 with the programs derived on it).
VERIFIED_MINORS = ("2.6", "2.7", "2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14")


def minor(version: str) -> str:
    """'2.13' of '2.13.0+cpu'."""
    return ".".join(version.split("+")[0].split(".")[:2])


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adamw-profiler"


def cached_path(version: str, kind: str = "derived") -> Path:
    """Where the programs derived on torch `version` are cached (analytic.exact.store's format, recording the
    simulation revision that derived them): kind "derived" one device's (`python -m profiler derive`, or class by
    class on first use), "sharded" a rank's; keyed by the release without its local build tag ('2.15.0' of
    '2.15.0+cu130': the package metadata's version and torch.__version__ can differ in it)."""
    return cache_dir() / f"{kind}-torch-{version.split('+')[0]}.json.gz"


def unverified_notice(version: str) -> str | None:
    """One line for a torch the shipped programs do not hold on (None where they do): which programs the exact
    model runs there, and whether that was verified."""
    if minor(version) in SHIPPED_MINORS:
        return None
    verified = (f"verified on {minor(version)}" if minor(version) in VERIFIED_MINORS else
                f"not verified on {minor(version)} (verified: {VERIFIED_MINORS[0]} to {VERIFIED_MINORS[-1]})")
    return (f"note: on torch {version} the exact model runs programs derived on it, each on first use (seconds), "
            f"cached in {cached_path(version)} (`python -m profiler derive`: all of them, minutes); {verified}; "
            f"`python -m profiler check` tells whether it holds here")


# Changes at particular sizes, which no derivation at general sizes sees, found by the compatibility runs: before
# torch 2.11, the reference block's rotary embedding with a head size of 2 makes reshape copy the rotated query and key
# (aten.clone, two B·H·T·Dh copies in forward) where 2.11 on views them.
ROPE_HEAD_TWO_COPIES_BEFORE = "2.11"


def outside_domain(config, version: str) -> str | None:
    """Why the exact model does not model `config` on torch `version` (None where it does)."""
    if config.context_length < 2:
        return "the exact formula set models context_length >= 2 (T = 1 routes weight gradients another way)"
    if config.positional == "rope" and config.head_dim == 2 and release(version) < release(
            ROPE_HEAD_TWO_COPIES_BEFORE):
        return (f"on torch {minor(version)} (before {ROPE_HEAD_TWO_COPIES_BEFORE}) the exact formula set does not "
                f"model RoPE with a head size of 2: reshape copies the rotated query and key there")
    return None


def release(version: str) -> tuple[int, int]:
    """(2, 13) of '2.13.0+cpu'."""
    major, minor_number = minor(version).split(".")
    return int(major), int(minor_number)
