"""`formula`: the exact model of a setup as the formula people write, sizes left symbolic (L, B, T, D, H, F, V;
bytes per element as numbers): fixed part, saved activations, each phase's peak as a max of expressions linear
in B, the max-batch closed form for a budget M, FLOPs per phase. With a --preset (or sizes), each figure's value
there too. --json gives Python expressions (+ - * // ** and max() only), --latex LaTeX."""
from __future__ import annotations

import argparse
import json
import re

from analytic.units import DEFAULT_BUDGET, format_bytes, parse_bytes
from profiler.commands.options import SIZE_FIELDS, add_config_arguments, setup_from_args, spec_from_args
from profiler.errors import UsageError
from profiler.reports.tables import WIDTH, wrap_keeping

LABELS = {
    "params": "parameters N",
    "fixed.parameters_bytes": "parameters (bytes)",
    "fixed.gradients_bytes": "gradients (bytes, end of backward)",
    "fixed.optimizer_state_bytes": "AdamW state (bytes)",
    "fixed.buffers_bytes": "buffers (bytes)",
    "fixed.inputs_bytes": "token ids and targets (bytes)",
    "saved_activations_per_layer_bytes": "saved activations, one layer",
    "saved_activations_outside_layers_bytes": "saved activations, outside the layers",
    "saved_activations_bytes": "saved activations (end of forward)",
    "flops.forward": "FLOPs, forward",
    "flops.backward": "FLOPs, backward",
    "flops.optimizer": "FLOPs, AdamW step",
    "flops.recompute": "FLOPs recomputed (in backward)",
    "flops_matmul.forward": "matmul FLOPs, forward",
}

FLOP_LABELS = {"flops_matmul.backward": "matmul FLOPs, backward"}  # the FLOP keys a model's own formula adds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--budget", default=DEFAULT_BUDGET,
                        help=f"the budget M at which max batch is evaluated, with --preset (default {DEFAULT_BUDGET})")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="Python expressions, nested as in `measure --json`")
    output.add_argument("--latex", action="store_true", help="LaTeX, one figure a line")
    output.add_argument("--wide", action="store_true",
                        help="one line per formula however long (default: wrapped to 120 columns)")


def key_from_args(args: argparse.Namespace):
    """(FormulaKey, the step spec to evaluate at or None): a --preset or sizes fix the setup's options too."""
    from analytic.exact.formula import FormulaKey, formula_key
    from model.config import ARCH_POSITIONAL, DEFAULT_DROPOUT

    if args.preset or any(getattr(args, name) is not None for name in SIZE_FIELDS):
        from analytic.exact.versions import outside_domain
        from analytic.formula_sets import exact_set

        spec = spec_from_args(args)
        why = outside_domain(spec.model, exact_set().programs.torch_version)
        if why is not None:
            raise UsageError(f"the derived exact model: {why}")
        return formula_key(spec, at_batch=False), spec
    setup = setup_from_args(args)
    if setup.attention == "sdpa-flash" and setup.dtype == "float32" and setup.autocast == "none":
        raise UsageError("attention 'sdpa-flash' runs 16-bit dtypes only: give --dtype bfloat16 or float16")
    arch = args.arch or "reference"
    dropout = DEFAULT_DROPOUT[arch] if args.dropout is None else args.dropout
    return FormulaKey(positional=args.positional or ARCH_POSITIONAL[arch][0], optimizer=setup.optimizer,
                      dtype=setup.dtype, arch=arch, dropout=bool(dropout),
                      grouped=args.kv_heads is not None and args.kv_heads > 1, kv_one=args.kv_heads == 1,
                      checkpointing=setup.checkpointing, micro_batches=setup.micro_batches,
                      zero_grad=setup.zero_grad, attention=setup.attention, autocast=setup.autocast), None


def wrapped(line: str, width: int = WIDTH) -> list[str]:
    """A line of the text wrapped at its spaces, continuing under where its formula starts (after ' = ', after a
    numbered moment's 'N. ', else four spaces in); a bracketed value and the '<- the highest' mark stay whole."""
    if len(line) <= width:
        return [line]
    head = re.match(r"^(.{1,60}? = |\s*\d+\. )", line)
    indent = head.end() if head else len(line) - len(line.lstrip()) + 4
    return wrap_keeping(line, width, " " * indent, r"\[[^\]]*\]|<- .*$", break_long_words=False)


def bracket_name(name: str, longest: int = 30) -> str:
    """The model's name in a value's brackets: whole where it has at most `longest` characters, else its preset's
    name and '(…)' for the sizes it overrides (the line above the figures names them all), so that a bracket, kept
    on one line, fits 120 columns after its formula."""
    return name if len(name) <= longest else f"{name.split(' (')[0]} (…)"


def moment_lines(moments: list, sizes: dict) -> list[str]:
    """One numbered line per moment; with sizes, the highest there is marked."""
    from analytic.exact import formula

    at = [formula.evaluate(expression, sizes) for _, expression in moments] if sizes else []
    return [f"  {index}. {where}: {formula.readable(expression)}"
            + ("   <- the highest at the values in brackets" if at and at[index - 1] == max(at) else "")
            for index, (where, expression) in enumerate(moments, 1)]


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top, so that `--help` needs no sympy
    import sympy as sp

    from analytic.exact import formula
    from analytic.formula_sets import exact_set

    if own_code(args):
        return run_model(args)
    programs = exact_set().programs
    setup, spec = key_from_args(args)
    if args.json:
        print(json.dumps(formula.document(setup, programs), indent=2))
        return 0
    classes = formula.layout_setups(setup, programs)
    general = next(iter(classes))
    figures = formula.formulas(classes[general], programs)
    if args.latex:
        for key, expression in figures.items():
            print(f"{key}: ${sp.latex(expression)}$")
        return 0
    budget = parse_bytes(args.budget)
    values, sizes, note, own = {}, {}, "", None
    if spec is not None:  # values from the formulas of the spec's own layout class
        name, micro_batches = spec.model.name, spec.setup.micro_batches
        own = formula.formula_key(spec).domain(programs)
        sizes = formula.size_values(spec, budget)
        values = {key: formula.evaluate(expression, sizes) for key, expression in
                  formula.formulas(classes[own], programs).items()}
        values["max_batch"] = formula.evaluate(figures["max_batch"], sizes)  # the B >= 2 closed form
        note = (f" Values in brackets: {name} at B = {sizes['B']}, from the formulas of layout {own}."
                if micro_batches == 1 else f" Values in brackets: {name} at B = {sizes['B']} "
                f"(batch {spec.batch_size} in {micro_batches} micro-batches), from the formulas of layout "
                f"{own}.")

    def value(key: str) -> str:
        """The figure's value at the given spec, as a bracket after its formula; '' without a spec."""
        if key not in values:
            return ""
        number, at = values[key], f"B = {sizes['B']}"
        if key == "max_batch":
            at = f"M = {args.budget}"
        shown = format_bytes(number, "GiB", 3) if "bytes" in key else f"{number:,}"
        return f"   [{bracket_name(spec.model.name)}, {at}: {shown}]"

    block = {"reference": "the reference block", "gpt2": "GPT-2's block" + (" with dropout" if setup.dropout else ""),
             "llama": "Llama's block"}[setup.arch]
    lines = [f"The exact model, derived from traces of the step on torch {programs.derived_on}: {block}, "
             f"{setup.positional} positions, {setup.attention} attention, checkpointing {setup.checkpointing}, "
             f"{setup.dtype} "
             f"({formula.DTYPE_BYTES[setup.dtype]} bytes per element), AdamW {setup.optimizer}"
             + (f", {setup.micro_batches} micro-batches" if setup.micro_batches > 1 else "")
             + (f", zero_grad {setup.zero_grad}" if setup.zero_grad != "none" else "")
             + (f", autocast {setup.autocast} (emulated as CUDA runs it)" if setup.autocast != "none" else "") + ".",
             "L layers, B batch size" + (" (of one micro-batch)" if setup.micro_batches > 1 else "")
             + ", T context length, D d_model, H heads, F d_ff, V vocabulary; "
             + ("G key/value heads; " if setup.grouped else "") + "M a budget in bytes.",
             f"Layout {general} (the degenerate layouts follow at the end).{note}", ""]
    width = max(map(len, LABELS.values()))
    lines += [f"{LABELS[key]:<{width}} = {formula.readable(figures[key])}{value(key)}" for key in LABELS]
    for phase in ("forward", "backward", "optimizer", "step"):
        key = "peak_bytes" if phase == "step" else f"phases.{phase}.peak_bytes"
        moments = formula.peak_moments(classes[general], programs)[phase]
        title = "peak of the step" if phase == "step" else f"{phase} peak"
        lines += ["", f"{title} = max of {len(moments)} moment(s), each linear in B:{value(key)}"]
        lines += moment_lines(moments, sizes if own == general else {})
    lines += ["", f"max batch = min over the step's moments above (α + β·B each) of ⌊(M − α) / β⌋ "
                  f"(valid where it is 2 or more):{value('max_batch')}",
              f"  {formula.readable(figures['max_batch'])}"]
    for domain in list(classes)[1:]:
        lines += ["", f"Layout {domain}: peak of the step = max of"]
        lines += moment_lines(formula.peak_moments(classes[domain], programs)["step"], sizes if own == domain else {})
    print("\n".join(lines if args.wide else [part for line in lines for part in wrapped(line)]))
    return 0


def own_code(args: argparse.Namespace) -> bool:
    """Whether the formula is of a model's or an optimizer's own code (--model, --optimizer-class): derived from
    traces of it (analytic.exact.derivation.any_model) rather than the built-in model's programs."""
    return getattr(args, "source", None) not in (None, "builtin") or bool(getattr(args, "optimizer_class", None))


PLACEHOLDER_SIZES = {"vocab_size": 50, "context_length": 8, "num_layers": 2, "d_model": 16, "num_heads": 2,
                     "d_ff": 32}  # a spec for the options only: the derivation traces sizes of its own


LAYOUT_ONES = (("B",), ("H",), ("B", "H"))  # the degenerate layout classes a model's own formula is derived for


def run_model(args: argparse.Namespace) -> int:
    """`formula --model X`: the formulas derived from traces of X, verified at held-out sizes, printed only where
    they were exact there: the general layout class (B, H >= 2), then B = 1, H = 1 and both, each derived and
    verified on its own (a layout that does not derive or verify is named, not shown)."""
    from analytic.exact import formula
    from analytic.exact.derivation.fit import DerivationError
    from analytic.exact.derivation.model_cache import derived_model
    from analytic.exact.model_programs import (ModelPrograms, domain, formula_document, layout_ones, program_sizes,
                                               unverified_flops)

    given = args.preset or any(getattr(args, name) is not None for name in SIZE_FIELDS)
    placeholder = argparse.Namespace(**{**vars(args), **({} if given else PLACEHOLDER_SIZES)})
    spec = spec_from_args(placeholder)
    documents, missing = {}, []
    for ones in ((), *LAYOUT_ONES):
        try:
            document = derived_model(spec, ones=ones)
        except DerivationError as error:
            if not ones:
                raise UsageError(f"no exact formula of {spec.model.source}: {error}; `measure --model` measures "
                                 f"it") from None
            missing.append(f"{' and '.join(f'{name} = 1' for name in ones)} ({error})")
            continue
        differences = document["verified"]["differences"]
        if differences and not ones:
            raise UsageError(f"the formula derived from {spec.model.source} is not exact at held-out sizes "
                             f"({differences[0]}), so it is not shown; `measure --model` measures it")
        if differences:
            missing.append(f"{' and '.join(f'{name} = 1' for name in ones)} (not exact at held-out sizes: "
                           f"{differences[0]})")
            continue
        documents[ones] = document
    general = documents.pop(())
    if args.json:
        print(json.dumps(formula_document(general, tuple(documents.values())), indent=2))
        return 0
    programs = ModelPrograms(general)
    layouts = {ones: ModelPrograms(document) for ones, document in documents.items()}
    why_not = unverified_flops(general)
    figures = {**programs.formulas(), **(programs.flop_formulas() if why_not is None else {})}
    # the spec's own layout, by the sizes that are 1 at it (multi-query attention's G is part of every layout here)
    own = tuple(name for name in layout_ones(spec) if name != "G") if given else ()
    budget = parse_bytes(args.budget)
    sizes = dict(program_sizes(spec), D=spec.model.d_model, M=budget) if given else {}
    if not given or own not in {(), *layouts}:  # no sizes, or the own layout not derived or not exact
        at_own = {}
    else:
        at_own = figures if own == () else layouts[own].formulas()
    verified = general["verified"]
    held_out = "; ".join(", ".join(f"{k}={v}" for k, v in at.items()) for at in verified["sizes"])
    lines = [f"The exact model of {spec.model.source}, derived from traces of its step on torch "
             f"{general['torch_version']}: {general['dtype']}, {general['optimizer']}. Exact at "
             f"{len(verified['sizes'])} held-out sizes (every phase's peak, start and end, the categories at the "
             f"step's peak, saved activations), the formulas below at {verified['formulas_at']} of them: {held_out} "
             f"(Dh the head size). "
             + (f"FLOPs as measure() counts them, exact at {verified['flops_at']} of them." if why_not is None
                else f"No FLOP formula: {why_not}."),
             f"Layout {domain(general)} (the degenerate layouts follow at the end).",
             "L layers, B batch size, T context length, D d_model, H heads, F d_ff, V vocabulary; M a budget in bytes; "
             "bytes per element as numbers."
             + (f" Values in brackets: {spec.model.name} at B = {sizes['B']}, from the formulas of its layout"
                f"{' (B, H >= 2)' if not own else ', ' + ' and '.join(f'{name} = 1' for name in own)}." if at_own
                else ""), ""]
    labels = {key: LABELS.get(key, FLOP_LABELS.get(key, key)) for key in figures
              if not key.endswith("peak_bytes") and key != "max_batch"}
    width = max(map(len, labels.values()))

    def value(key: str) -> str:
        if key not in at_own:
            return ""
        number = formula.evaluate(at_own[key], sizes)
        return f"   [{format_bytes(number, 'GiB', 3) if 'bytes' in key else f'{number:,}'}]"

    lines += [f"{label:<{width}} = {formula.readable(figures[key])}{value(key)}" for key, label in labels.items()]
    moments = programs.peak_moments
    for phase in ("forward", "backward", "optimizer", "step"):
        key = "peak_bytes" if phase == "step" else f"phases.{phase}.peak_bytes"
        title = "peak of the step" if phase == "step" else f"{phase} peak"
        lines += ["", f"{title} = max of {len(moments[phase])} moment(s):{value(key)}"]
        lines += moment_lines(moments[phase], sizes if not own else {})
    if "max_batch" in figures:
        lines += ["", f"max batch = min over the step's moments above (α + β·B each) of ⌊(M − α) / β⌋ (valid where "
                      f"it is 2 or more):{value('max_batch')}", f"  {formula.readable(figures['max_batch'])}"]
    for ones, layout in layouts.items():
        lines += ["", f"Layout {domain(layout.document)}: peak of the step = max of"]
        lines += moment_lines(layout.peak_moments["step"], sizes if own == ones else {})
    lines += [f"Layout {text}: no formula." for text in missing]
    print("\n".join(lines if args.wide else [part for line in lines for part in wrapped(line)]))
    return 0
