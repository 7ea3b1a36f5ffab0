"""The `exact` formula set: closed forms that predict what the profiler measures for model.transformer.

Its programs are passed in: `ExactSet(programs)` is the formula set (analytic.formula_sets.FormulaSet) over an
analytic.exact.source.Programs; this module's own NAME, predict, max_batch_size, evaluate and evaluate_arrays are
those of ExactSet() over the installed torch's shipped or cached programs (source.installed: on a torch they do
not hold on, a setup neither shipped nor cached raises source.MissingPrograms, one line). A source that derives
what is missing on first use: analytic.exact.derivation.on_demand.deriving_programs() (imports torch).

Memory to the byte on meta (analytic.exact.memory, from the allocation programs derived from traces of the step,
analytic/exact/derived.json.gz, compiled by analytic.exact.programs),
FLOPs exactly under FlopCounterMode and the elementwise convention (analytic.exact.flops), the maximum batch in
a budget solved from the closed form (analytic.exact.max_batch). Everything is numpy-vectorised: pass an array
of batch sizes, or use `evaluate` over arrays of sizes.

Domain: context_length >= 2, every arch (reference, gpt2, llama), every attention option (explicit, and the SDPA
backends as CUDA runs them, which is what meta simulates; flash for 16-bit dtypes and autocast), checkpointing,
micro-batching, zero_grad option and bf16 autocast as meta emulates CUDA's; on torch before 2.11, not RoPE with a
head size of 2 (analytic.exact.versions.outside_domain). Outside it (T = 1, where weight gradients take another
path) it predicts the parameter count only. One rank of a sharded step (FSDP2, DDP): its memory by phase and
category, FSDP2's buffers included, from derived programs, and its FLOPs (analytic.exact.sharded: foreach AdamW;
rank 0).

A user's model (a source other than the built-in one, or an optimizer class of one's own): ExactSet(programs,
models) answers from the exact model derived from traces of its code (analytic.exact.model_programs), where
`models(spec)` hands it a verified document: where the spec is in the derivation's domain (B = 1 its own layout
class) and the derivation is exact at held-out sizes (analytic.exact.derivation.model_cache.verified_model:
derived on first use, it imports torch); else None, one line on stderr says why, and the set has no figures.
Without `models`, a user's model is not described (SETUP).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from analytic.exact import max_batch
from analytic.exact.flops import flop_figures
from analytic.exact.memory import saved_activations_by_component, saved_activations_per_layer, step_figures
from analytic.exact.model_programs import ModelPrograms, own_code, own_max_batch_size, program_sizes
from analytic.exact.sharded import evaluate_rank
from analytic.exact.source import MissingPrograms, Programs, installed, installed_torch
from analytic.exact.versions import outside_domain
from analytic.sizes import sizes_from_arrays, sizes_of
from model.setup import ANY
from model.spec import StepSpec

NAME = "exact"
DESCRIPTION = ("ours: every allocation of the real step (autograd's saved tensors, transient temporaries, AdamW "
               "temporaries, phase order), exact on meta; one rank of FSDP2 or DDP too (its buffers included), "
               "with tensor and sequence parallelism")
# A sharded rank's memory within analytic.exact.sharded's domain, at any tensor parallelism; the programs are
# derived from the built-in model's traces with torch's AdamW.
SETUP = {"shard": ("none", "fsdp2", "ddp"), "source": "builtin", "optimizer_class": "", "tensor_parallel": ANY,
         "sequence_parallel": (False, True)}

__all__ = ["NAME", "DESCRIPTION", "SETUP", "ExactSet", "Programs", "MissingPrograms", "predict", "max_batch_size",
           "evaluate", "evaluate_arrays", "installed_torch"]


class ExactSet:
    """The exact formula set over `programs` (the installed torch's shipped or cached ones by default)."""

    NAME, DESCRIPTION, SETUP = NAME, DESCRIPTION, SETUP

    def __init__(self, programs: Programs | None = None, models: Callable[[StepSpec], dict | None] | None = None):
        self._programs = programs
        self.models = models  # a user's model's verified document, or None (module docstring)

    @property
    def DERIVES_OWN_CODE(self) -> bool:  # noqa: N802 (a formula set's protocol attribute, analytic.formula_sets)
        """Whether the set answers for a user's model on one device (analytic.formula_sets.describes)."""
        return self.models is not None

    def model_programs(self, spec: StepSpec) -> ModelPrograms | None:
        """The derived exact model of the spec's own code, or None where there is none (models said why)."""
        document = self.models(spec) if self.models is not None else None
        return None if document is None else ModelPrograms(document)

    @property
    def programs(self) -> Programs:
        return self._programs or installed()

    def evaluate(self, spec: StepSpec) -> dict[str, Any]:
        """All figures as numpy values (arrays when the spec's batch_size is an array)."""
        if own_code(spec):
            derived = self.model_programs(spec)
            return {} if derived is None else derived.step_figures(program_sizes(spec))
        programs, config, optimizer = self.programs, spec.model, spec.setup.optimizer
        sizes = sizes_of(spec)
        figures: dict[str, Any] = {"params": sizes.params}
        if spec.setup.shard != "none":  # rank 0: its memory and FLOPs (analytic.exact.sharded)
            figures.update(evaluate_rank(programs, spec, sizes))
        elif outside_domain(config, programs.torch_version) is None:
            figures.update(step_figures(programs, sizes, config.positional, optimizer))
            figures["warmup"] = step_figures(programs, sizes, config.positional, optimizer, warmup=True)
            by_component = saved_activations_by_component(programs, sizes, config.positional)
            figures["saved_activations_bytes"] = sum(by_component.values())
            figures["saved_activations_by_component"] = by_component
            figures["saved_activations_per_layer_bytes"] = saved_activations_per_layer(programs, sizes,
                                                                                       config.positional)
            figures.update(flop_figures(sizes))
        return figures

    def evaluate_arrays(self, optimizer: str = "foreach", positional: str = "learned", dtype: str = "float32",
                        checkpointing: str = "none", attention: str = "explicit", arch: str = "reference",
                        dropout: float = 0.0, **sizes) -> dict[str, Any]:
        """Memory and FLOP figures of many configurations at once: vocab_size, context_length, num_layers,
        d_model, num_heads, d_ff, batch_size (and kv_heads) as numpy arrays (context_length >= 2)."""
        arrays = sizes_from_arrays(positional=positional, dtype=dtype, checkpointing=checkpointing,
                                   attention=attention, arch=arch, dropout=dropout, **sizes)
        if np.any(arrays.T < 2) or np.any(arrays.D % arrays.H):
            raise ValueError("every context_length must be >= 2 and every d_model divisible by its num_heads")
        programs = self.programs
        figures: dict[str, Any] = {"params": arrays.params}
        figures.update(step_figures(programs, arrays, positional, optimizer))
        figures["saved_activations_bytes"] = sum(saved_activations_by_component(programs, arrays, positional).values())
        figures.update(flop_figures(arrays))
        return figures

    def predict(self, spec: StepSpec) -> dict[str, Any]:
        """Figures for one step spec as plain Python numbers (analytic.figures)."""
        return _plain(self.evaluate(spec))

    def max_batch_size(self, spec: StepSpec, budget_bytes: int) -> int:
        """The largest batch (of one micro-batch) whose exact peak fits budget_bytes (analytic.exact.max_batch;
        the spec's batch_size is not read); a user's model's from its derived exact model of B >= 2, and of B = 1
        where not even 2 fits (ValueError where there is none)."""
        if own_code(spec):
            answer = None
            derived = self.model_programs(spec.replace(batch_size=2 * spec.setup.micro_batches))
            if derived is not None:
                answer = own_max_batch_size(derived, spec, budget_bytes)
            if answer is None:  # B = 1, its own layout class
                one = spec.replace(batch_size=spec.setup.micro_batches)
                derived = self.model_programs(one)
                if derived is None:
                    raise ValueError(f"no exact model of {spec.model.source}")
                answer = int(int(derived.figures(program_sizes(one))["peak_bytes"]) <= budget_bytes)
            return answer
        return max_batch.max_batch_size(spec, budget_bytes, self.programs)


_INSTALLED = ExactSet()
evaluate, evaluate_arrays, predict = _INSTALLED.evaluate, _INSTALLED.evaluate_arrays, _INSTALLED.predict
max_batch_size = _INSTALLED.max_batch_size


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value
