"""`audit --formula-set NAME`: the assumptions of any formula set that differ from what PyTorch does.

The set is measured on the setup it declares (its first alternative, the first value of each field), with the
problem's model (analytic.textbook.PROBLEM: GPT-2 XL's sizes, with the declared block), at batch 1 and 2 on
meta. Every term it predicts is graded, and each difference that reconcile() finds (by category at the peak,
saved component, model state, or the total where the set does not itemise) is explained by what PyTorch does
there (WHY), largest first.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import pandas as pd
import torch

from analytic.exact.model_programs import own_code
from analytic.formula_sets import describes, formula_sets, setup_alternatives, setup_text
from analytic.textbook import PROBLEM
from model.config import BUILTIN, ModelConfig
from model.setup import ANY, Setup
from model.spec import StepSpec
from profiler.measuring.measure import measure
from profiler.reports.compare import comparison_rows, reconcile
from profiler.reports.matrix import describe
from profiler.reports.render import markdown_table
from profiler.reports.tables import UNBOUNDED_MEANS, format_cell, relative_cell, shows_unbounded

BATCH_SIZES = (1, 2)
# What PyTorch does where a set differs, by term and by whether the set counts more (+) or less (-).
WHY = {
    ("categories_at_peak.saved_activations", "+"):
        "the set adds every activation to the peak; at the measured peak PyTorch holds fewer (in the optimizer "
        "step, none: forward's activations are freed by backward, before AdamW runs)",
    ("categories_at_peak.gradients", "+"):
        "gradients do not exist yet at a peak in forward or backward (zero_grad(set_to_none=True) frees them, "
        "backward creates them one parameter at a time)",
    ("categories_at_peak.optimizer_temporaries", "-"):
        "foreach AdamW allocates its temporaries (sqrt(v), the update) for every parameter at once",
    ("categories_at_peak.temporaries", "-"):
        "tensors in flight at the peak: an op's output before its consumer frees the input, activation "
        "gradients in backward, the logits' gradient",
    ("categories_at_peak.buffers", "-"): "the model's buffers (causal mask, positions, RoPE tables)",
    ("categories_at_peak.inputs", "-"): "the batch's token ids and targets (int64)",
    ("saved_activations_by_component.scores", "+"):
        "autograd keeps no pre-softmax B·H·T² scores: softmax's backward needs only its output, and a fused "
        "kernel keeps no scores or probabilities at all",
    ("saved_activations_by_component.softmax", "+"):
        "with a fused attention kernel nothing of B·H·T² size is kept: it recomputes the probabilities",
    ("saved_activations_by_component.lm_head", "+"):
        "the logits die inside forward: cross-entropy keeps its own log-softmax, the LM head only its input",
    ("saved_activations_by_component.w1", "+"):
        "a linear layer keeps its input, not its output: w1 keeps the D-wide normalised input, and the F-wide "
        "output is kept by its consumers (the activation function, then w2)",
    ("saved_activations_by_component.w2", "-"): "w2 keeps its input, the F-wide activation output",
    ("saved_activations_by_component.k_proj", "+"):
        "q, k and v read one normalised input and autograd keeps it once (under q_proj), not once per projection",
    ("saved_activations_by_component.v_proj", "+"):
        "q, k and v read one normalised input and autograd keeps it once (under q_proj), not once per projection",
    ("saved_activations_by_component.norm1", "-"):
        "the norm keeps its input and the normalised x·rstd its weight's gradient needs: two B·T·D tensors",
    ("saved_activations_by_component.norm2", "-"):
        "the norm keeps its input and the normalised x·rstd its weight's gradient needs: two B·T·D tensors",
    ("saved_activations_by_component.final_norm", "-"):
        "the norm keeps its input and the normalised x·rstd its weight's gradient needs: two B·T·D tensors",
    ("saved_activations_by_component.cross_entropy", "-"):
        "cross-entropy keeps its log-softmax output, B·T·V in fp32",
    ("model_states.parameters", "-"):
        "torch autocast keeps the fp32 weights as the parameters (4 bytes each); its bf16 copies are made in "
        "forward and freed by backward, not kept",
    ("model_states.gradients", "-"): "gradients have the parameters' dtype: fp32 under autocast (4 bytes each)",
    ("model_states.optimizer_state", "+"):
        "torch's AdamW keeps two moments (8 bytes per parameter) and no separate fp32 master copy: with fp32 "
        "parameters they are the master weights",
    ("saved_activations_bytes", "+"): "autograd keeps less than the set counts (explain lists every component)",
    ("saved_activations_bytes", "-"): "autograd keeps more than the set counts (explain lists every component)",
}


def audited_spec(module: ModuleType, base: ModelConfig = PROBLEM.config, optimizer: str = "foreach",
                 optimizer_class: str = "") -> StepSpec:
    """The problem's model on the set's declared setup (at batch 1): its first alternative, each field's first
    value (the default of a field declared ANY, every value). A user's or Hugging Face model (base.source) keeps its
    own block: the set's arch is not imposed."""
    setup = setup_alternatives(module)[0]
    fields = {field: value[0] if isinstance(value, tuple) else value for field, value in setup.items()
              if (base.source == BUILTIN or field not in ("arch", "source", "optimizer_class")) and value != ANY}
    spec = StepSpec(base, Setup(optimizer=optimizer, optimizer_class=optimizer_class)).replace(**fields)
    if not describes(module, spec):
        raise ValueError(f"formula set {module.NAME} describes {setup_text(module)}: not model {base.source}"
                         + (f" with optimizer class {optimizer_class}" if optimizer_class else ""))
    return spec


def audit_formula_set(name: str, base: ModelConfig = PROBLEM.config, optimizer: str = "foreach",
                      optimizer_class: str = "") -> dict[str, Any]:
    """Plain data (JSON-ready): the set, the audited setup, each graded term per batch, and the differences
    with their explanation, largest first (at batch 1). `base` is the audited model (a user's with its source),
    `optimizer_class` a user's optimizer."""
    (module,) = formula_sets([name]).values()
    spec = audited_spec(module, base, optimizer, optimizer_class)
    batches = []
    for batch_size in BATCH_SIZES:
        measured = measure(spec.replace(batch_size=batch_size), "meta").measured
        predicted = module.predict(spec.replace(batch_size=batch_size))
        batches.append({"batch_size": batch_size, "terms": comparison_rows(measured, {name: predicted}),
                        "differences": [dict(item, explanation=explain(item, measured), words=describe(item))
                                        for item in reconcile(predicted, measured)]})
    result = {"formula_set": module.NAME, "description": module.DESCRIPTION, "graded_on": setup_text(module),
              "config": spec.flat(), "optimizer": spec.setup.optimizer, "device": "meta", "torch": torch.__version__,
              "batches": batches}
    if own_code(spec):
        result["formula"] = derived_beside(module, spec)
    return result


def derived_beside(module: ModuleType, spec: StepSpec) -> dict[str, Any]:
    """The exact model derived from the spec's own code (analytic.exact.derivation.model_cache.verified_model, at
    B >= 2 and H >= 2) beside the set's figures read back as polynomials (analytic.fit), coefficient by
    coefficient: {"where": the derived peak's moment at the spec, "terms": {term: [{"formula_set", "formula"
    (None: not a polynomial in L, B, T, D, H, V), "differences": [[monomial, theirs, derived]]}]}}, or {"missing":
    why} where there is no verified derivation."""
    from analytic import fit
    from analytic.exact.derivation.model_cache import verified_model
    from analytic.exact.formula import readable
    from analytic.exact.model_programs import ModelPrograms

    general = spec.replace(batch_size=max(2, spec.batch_size), num_heads=max(2, spec.model.num_heads))
    document = verified_model(general)
    if document is None:
        return {"missing": f"no verified exact model of {spec.model.source} (the note above says why)"}
    programs = ModelPrograms(document)
    table, where = fit.comparison({module.NAME: module}, general, fit.model_formulas(programs, general), base=spec)
    return {"where": where, "terms": {key: [{"formula_set": name, "formula": None if expression is None else
                                             readable(expression),
                                             "differences": [[readable(m), str(a), str(b)] for m, a, b in found or ()]}
                                            for name, expression, found in rows] for key, rows in table.items()}}


def formula_lines(formula: dict[str, Any], name: str) -> list[str]:
    """The audit's "The formula, derived" section (derived_beside) as markdown lines."""
    lines = ["## The formula, derived", ""]
    if "missing" in formula:
        return lines + [formula["missing"], ""]
    lines += [f"The exact model derived from traces of the model's code (`python -m profiler formula --model`; "
              f"B ≥ 2, H ≥ 2, d_ff written as F = 4·D) beside `{name}`'s figures read back as polynomials (fitted "
              f"from its predictions at random small sizes and checked at others, `analytic/fit.py`). The derived "
              f"peak is a max of moments; the row shows the one that holds the audited model's peak: "
              f"{formula['where']}. Each difference reads: monomial: theirs → derived.", ""]
    for term, rows in formula["terms"].items():
        shown = pd.DataFrame([{"formula set": row["formula_set"],
                               "formula": "not a polynomial in L, B, T, D, H, V" if row["formula"] is None
                               else f"`{row['formula']}`",
                               "coefficients that differ": "—" if not row["differences"] else "; ".join(
                                   f"{m}: {a} → {b}" for m, a, b in row["differences"])} for row in rows])
        lines += [f"### {term}", "", markdown_table(shown), ""]
    return lines


def explain(item: dict[str, Any], measured: dict[str, Any] | None = None) -> str:
    """What PyTorch does where the set differs (WHY); for the saved activations, also the ops that keep the most
    (the measurement's saved_activations_by_op), which names what a user's implementation keeps."""
    sign = "+" if item["difference"] > 0 else "-"
    at_peak_as_state = item["term"].replace("categories_at_peak.", "model_states.")  # the same bytes, same reason
    why = WHY.get((item["term"], sign)) or WHY.get((at_peak_as_state, sign), "")
    by_op = (measured or {}).get("saved_activations_by_op")
    if by_op and item["term"] in ("saved_activations_bytes", "categories_at_peak.saved_activations"):
        largest = ", ".join(f"{op} {format_cell('saved_activations_bytes', value)}"
                            for op, value in list(by_op.items())[:3])
        why = f"{why}; the ops that keep the most: {largest}" if why else f"the ops that keep the most: {largest}"
    return why


def to_markdown(result: dict[str, Any]) -> str:
    spec = StepSpec.from_row(result)
    lines = [f"# Audit of formula set `{result['formula_set']}`", "", result["description"], "",
             f"- graded on: {result['graded_on']}",
             f"- audited at: {spec.model.name}, {spec.setup_text()}; {spec.setup.optimizer_text}; measured on "
             f"{result['device']} with torch {result['torch']}", ""]
    for batch in result["batches"]:
        terms = pd.DataFrame([{"term": row["term"], "predicted": format_cell(row["term"], row["predicted"]),
                               "measured": format_cell(row["term"], row["measured"]),
                               "error": relative_cell(row["relative_error"])} for row in batch["terms"]],
                             columns=["term", "predicted", "measured", "error"])
        lines += [f"## Batch {batch['batch_size']}", "", markdown_table(terms)]
        if shows_unbounded(terms["error"]):
            lines += ["", UNBOUNDED_MEANS]
        lines += ["", "Where it differs from what PyTorch does, largest first:", ""]
        lines += [f"- {item['words']}" + (f": {item['explanation']}" if item["explanation"] else "")
                  for item in batch["differences"]] or ["- nowhere: every term it predicts is measured exactly"]
        lines.append("")
    if "formula" in result:
        lines += formula_lines(result["formula"], result["formula_set"])
    return "\n".join(lines)
