"""The torch versions the exact model is known to hold on.

Its programs were derived from traces of the step on one torch (analytic/exact/derived.py's TORCH_VERSION); a
torch release can change what autograd saves or what a kernel allocates, so the model is claimed only where it
was verified: the whole test suite (every setup exact to the byte on random sizes) and the `check` gate passed
there, each version in its own environment with the project installed beside it
(tools/torch_compat.py; its table is reports/torch-compat/README.md, and a test ties this tuple to it).
"""
from __future__ import annotations

from analytic.exact.derived import TORCH_VERSION

VERIFIED_MINORS = ("2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14")


def minor(version: str) -> str:
    """'2.13' of '2.13.0+cpu'."""
    return ".".join(version.split("+")[0].split(".")[:2])


def unverified_notice(version: str) -> str | None:
    """One line for a torch the exact model was not verified on (None where it was)."""
    if minor(version) in VERIFIED_MINORS:
        return None
    return (f"note: the exact model was derived on torch {TORCH_VERSION} and verified on "
            f"{VERIFIED_MINORS[0]} to {VERIFIED_MINORS[-1]}, not on {version}; `python -m profiler check` tells "
            f"whether it holds here")
