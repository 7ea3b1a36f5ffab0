"""A sweep's report, from out_dir/results.jsonl: comparison rows (results.csv), leaderboard, seed audit, saved
activations by component, maximum batch and the plots, written as report.md and a self-contained report.html.

The table functions return pandas DataFrames of numbers; `write_report` formats them and hands the blocks to
profiler.reports.render.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from analytic import fit, textbook
from analytic.audit import audit, to_markdown
from analytic.exact.formula import readable
from analytic.formula_sets import describes, formula_sets, max_batch_sizes, setup_text
from analytic.seeds import seed_modules
from analytic.units import DEFAULT_BUDGET, UNITS, format_bytes, parse_bytes
from model.config import BUILTIN, SCALED_DOWN_PRESETS, ModelConfig, PRESETS
from model.spec import StepSpec
from model.vocabulary import COMPONENTS, PHASES
from profiler.reports import plots, render
from profiler.reports.matrix import TERM_GROUPS, matrix, matrix_view, reconciliation, setup_label
from profiler.reports.compare import comparison_rows, predictions
from profiler.reports.folder import check, claim
from profiler.reports.implementations import (displayed, formula_table, has_implementations,
                                              implementation as implementation_name, implementations_table)
from profiler.reports.tables import UNBOUNDED_MEANS, percent_cell, relative_cell, shows_unbounded
from profiler.reports.results import AUDIT_FILE, META, read_results
from profiler.reports.sharded import sharded_blocks
from profiler.reports.simulation import simulation_blocks
from profiler.reports.truth import audit_blocks

HEADLINE_PRESET = "gpt2-xl"
MODEL_FIELDS = ("source", "arch", "vocab_size", "context_length", "num_layers", "d_model", "num_heads", "kv_heads",
                "d_ff", "positional")
# The models of the max-batch tables: GPT-2 XL with the reference block (the seeds' question) and GPT-2 XL as published.
SETUPS_PRESETS = (HEADLINE_PRESET, "hf-gpt2-xl")
SAVED_ACTIVATION_SETS = ("textbook", "exact")
POINT_COLUMNS = ("key", "label", "device", "optimizer", "batch_size", "arch", "vocab_size", "context_length",
                 "num_layers", "d_model", "num_heads", "d_ff", "positional", "attention", "dtype", "setup", "axes")
# Leaderboard columns: a name and the terms pooled under it.
LEADERBOARD_TERMS = {"peak": TERM_GROUPS["peak"],
                     **{f"{phase} peak": (f"phases.{phase}.peak_bytes",) for phase in PHASES},
                     **{group: TERM_GROUPS[group] for group in ("saved activations", "saved per layer", "FLOPs",
                                                                "matmul FLOPs", "model states")}}


def load(out_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta.json, every row of results.jsonl); a folder without results is an error."""
    out_dir = Path(out_dir)
    rows = read_results(out_dir)
    if not rows:
        raise FileNotFoundError(f"{out_dir / 'results.jsonl'} holds no results; run `profiler sweep --out {out_dir}`")
    meta_path = out_dir / META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return meta, rows


def ok_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("outcome") == "ok"]


def row_spec(row: dict[str, Any]) -> StepSpec:
    return StepSpec.from_row(row)


def with_predictions(rows: list[dict[str, Any]], names: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows, each measured one with "predicted": every formula set's figures (or `names`'), made by today's
    code (a "predicted" block stored by an older version of the tool is replaced)."""
    return [{**row, "predicted": predictions(row, names)} if row.get("outcome") == "ok" else row for row in rows]


def point_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {**row["config"], **row}
    fields["axes"] = "+".join(row.get("axes") or ())
    fields["setup"] = setup_label(row["config"])
    return {name: fields.get(name) for name in POINT_COLUMNS}


def comparison(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per point × formula set × term the set predicts and the run measured."""
    records = [{**point_fields(row), **record} for row in ok_rows(rows)
               for record in comparison_rows(row["measured"], row.get("predicted", {}))]
    columns = list(POINT_COLUMNS) + ["formula_set", "term", "predicted", "measured", "relative_error"]
    return pd.DataFrame.from_records(records, columns=columns)


def leaderboard(table: pd.DataFrame) -> pd.DataFrame:
    """Per formula set: median and worst |relative error| of each headline term, over the points it predicts."""
    table = table.assign(abs_error=table["relative_error"].abs())
    out = []
    for set_name, group in table.groupby("formula_set", sort=False):
        entry: dict[str, Any] = {"formula set": set_name,
                                 "graded on": setup_text(formula_sets([set_name])[set_name]),
                                 "points": group["key"].nunique(), "terms": group["term"].nunique()}
        for column, terms in LEADERBOARD_TERMS.items():
            errors = group.loc[group["term"].isin(terms), "abs_error"]
            entry[f"{column} median"] = errors.median() if len(errors) else None
            entry[f"{column} worst"] = errors.max() if len(errors) else None
        out.append(entry)
    board = pd.DataFrame(out)
    if board.empty:
        return board
    return board.sort_values("peak median", na_position="last").reset_index(drop=True)


def failures(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"point": row.get("label", row["key"]), "outcome": row["outcome"], "error": row["error"]}
                         for row in rows if row.get("outcome") != "ok"], columns=["point", "outcome", "error"])


def same_sizes(a: StepSpec, b: StepSpec) -> bool:
    """The same model and setup (their names, batches and AdamW implementations aside)."""
    return {**a.flat(), "name": ""} == {**b.flat(), "name": ""}


def headline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The point the detailed tables and plots show: GPT-2 XL at its smallest batch (foreach first), else the point
    with the largest measured peak."""
    rows = ok_rows(rows)
    if not rows:
        return None
    xl = [row for row in rows if same_sizes(row_spec(row), StepSpec(PRESETS[HEADLINE_PRESET]))]
    if xl:
        return min(xl, key=lambda row: (row["optimizer"] != "foreach", row["batch_size"]))
    return max(rows, key=lambda row: row["measured"].get("peak_bytes", 0))


def saved_activations(row: dict[str, Any]) -> pd.DataFrame:
    """Bytes saved for backward by component: textbook, exact (where they predict it) and measured."""
    columns = {name: row.get("predicted", {}).get(name, {}).get("saved_activations_by_component")
               for name in SAVED_ACTIVATION_SETS}
    columns = {name: values for name, values in columns.items() if values}
    columns["measured"] = row["measured"].get("saved_activations_by_component", {})
    names = [c for c in COMPONENTS if any(c in values for values in columns.values())]
    names += sorted({c for values in columns.values() for c in values} - set(names))
    table = pd.DataFrame({"component": names, **{name: [values.get(c) for c in names]
                                                  for name, values in columns.items()}})
    total = {"component": "total", **{name: table[name].sum(min_count=1) for name in columns}}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def same_model(a: ModelConfig, b: ModelConfig) -> bool:
    """The same implementation (the built-in model is the presets'), sizes and positions, whatever the training
    setup."""
    return all(getattr(a, name) == getattr(b, name) for name in MODEL_FIELDS)


def _measured_max_batch(rows: list[dict[str, Any]], spec: StepSpec, budget_bytes: int) -> int | None:
    for row in ok_rows(rows):
        found = row.get("max_batch") or {}
        if (row["optimizer"] == spec.setup.optimizer and same_sizes(row_spec(row), spec)
                and found.get("budget_bytes") == budget_bytes):
            return found["measured"]
    return None


def max_batch(rows: list[dict[str, Any]], budget: str = DEFAULT_BUDGET) -> pd.DataFrame:
    """Largest batch (of one micro-batch) that fits `budget` for each full-size preset (GPT-2, published GPT-2 and
    Llama models) and setup in the results (else the headline point's model), by every formula set that describes
    the setup, and measured where a row carries it (a sweep of a grid with max_batch_budget)."""
    budget_bytes = parse_bytes(budget)
    models: dict[tuple[str, str, str], StepSpec] = {}
    for row in ok_rows(rows):
        spec = row_spec(row)
        for name, known in PRESETS.items():
            if name not in SCALED_DOWN_PRESETS and same_model(spec.model, known):
                models.setdefault((name, spec.options_text(), row["optimizer"]), spec.replace(name=name))
    top = headline(rows)
    if not models and top is not None:
        spec = row_spec(top)
        models[(spec.model.name, spec.options_text(), top["optimizer"])] = spec
    sets = formula_sets()
    out = []
    for (name, setup, optimizer), spec in models.items():
        predicted = max_batch_sizes(spec, budget_bytes)
        out.append({"model": name, "setup": setup, "optimizer": optimizer,
                    **{set_name: value if describes(sets[set_name], spec) else None
                       for set_name, value in predicted.items()},
                    "measured": _measured_max_batch(rows, spec, budget_bytes)})
    frame = pd.DataFrame(out).dropna(axis="columns", how="all")
    return frame.astype({column: "Int64" for column in frame.columns[3:]})  # whole batches, missing as <NA>


SETUPS_COLUMNS = ("measured", "exact", "textbook")


def setups_table(rows: list[dict[str, Any]], presets: tuple[str, ...] = SETUPS_PRESETS,
                 budget: str = DEFAULT_BUDGET) -> pd.DataFrame:
    """The max batch table of some presets (GPT-2 XL with the reference block, then GPT-2 XL as published), a row per
    model and setup: measured, exact and textbook (— where the textbook does not describe the setup). The "max batch
    per setup" table of docs/findings.md is this, from reports/setups-meta."""
    columns = ["model", "setup", *SETUPS_COLUMNS]
    table = max_batch(rows, budget)
    if table.empty or "setup" not in table:
        return pd.DataFrame(columns=columns)
    table = table[table["model"].isin(presets)].reindex(columns=columns)
    table = table.sort_values("model", key=lambda names: names.map(presets.index), kind="stable")
    return table.astype(object).where(table.notna(), "—").reset_index(drop=True)


CSV_FILE = "results.csv"


def seed_audit_markdown(out_dir: Path | None = None) -> str:
    """The seed audit as Markdown, headings demoted below the report's. With the exact and measured answers when
    the sweep saved them (out_dir/audit.json, written by `sweep`: profiler.experiments.truth.save_audit), else with
    the exact answer alone."""
    saved = Path(out_dir) / AUDIT_FILE if out_dir is not None else None
    if saved is not None and saved.exists():
        result = json.loads(saved.read_text())
    else:
        result = audit(extra_blocks=audit_blocks())
    return re.sub(r"^(#+ )", r"##\1", to_markdown(result), flags=re.MULTILINE)  # nested under "## Seed audit"


def header(meta: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, str]:
    """What every report names: grid, device, torch version, dtype, optimizers, settings, date."""
    done = ok_rows(rows)

    def values(get) -> str:
        return ", ".join(sorted({str(value) for value in map(get, done) if value}))

    settings = values(lambda row: ", ".join(f"{k}={v}" for k, v in sorted((row.get("environment") or {}).items())))
    return {"grid": f"{meta.get('grid', '?')}: {meta.get('grid_description', '')}",
            "device": values(lambda row: row.get("device_name")) or meta.get("device", "?"),
            "torch": values(lambda row: row.get("torch_version")) or meta.get("torch_version", "?"),
            "dtype": values(lambda row: row["config"]["dtype"]) or "?",
            "optimizers": values(lambda row: row["config"].get("optimizer_class") or f"{row['optimizer']} AdamW"),
            "settings": settings or "—",
            "date": meta.get("date") or values(lambda row: row.get("date")),
            "points": f"{len(done)} measured, {len(rows) - len(done)} failed"}


def misses(rows: list[dict[str, Any]], formula_set: str, tolerance: float) -> pd.DataFrame:
    """The terms where `formula_set` (predicted afresh) misses the measurement by more than `tolerance` relative,
    plus every point that failed to measure: what `profiler check` gates on."""
    table = comparison(with_predictions(rows, [formula_set]))
    off = table[table["relative_error"].abs() > tolerance]
    found = pd.DataFrame({"point": off["label"], "term": off["term"], "predicted": off["predicted"],
                          "measured": off["measured"], "relative error": off["relative_error"].map(percent_cell)})
    failed = failures(rows).rename(columns={"outcome": "term", "error": "measured"})
    return pd.concat([found, failed], ignore_index=True) if not failed.empty else found.reset_index(drop=True)


def peaks_by_point(table: pd.DataFrame) -> pd.DataFrame:
    """Measured peak of every point and each formula set's relative error on it."""
    peaks = table[table["term"] == "peak_bytes"]
    if peaks.empty:
        return pd.DataFrame()
    wide = peaks.pivot_table(index=["key", "label"], columns="formula_set", values="relative_error",
                             aggfunc="first", sort=False)
    measured = peaks.groupby(["key", "label"], sort=False)["measured"].first()
    wide.insert(0, "measured peak", measured)
    wide.columns.name = None
    return wide.reset_index(level="key", drop=True).reset_index()


def _bytes(value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    return format_bytes(value, "GiB" if abs(value) >= UNITS["GiB"] else "MiB")


def _leaderboard_display(board: pd.DataFrame) -> pd.DataFrame:
    shown = board[["formula set", "graded on", "points", "terms"]].copy()
    for column in LEADERBOARD_TERMS:
        shown[column] = [f"{percent_cell(m)} / {percent_cell(w)}" for m, w in
                                               zip(board[f"{column} median"], board[f"{column} worst"])]
    return shown


def _model(config: dict[str, Any]) -> str:
    """'gpt2-xl (V=50257, T=1024, L=48, D=1600, H=25)', with the implementation where it is not the built-in
    model."""
    implementation = "" if config.get("source", BUILTIN) == BUILTIN else f" as {implementation_name(config)}"
    return (f"{config['name']}{implementation} (V={config['vocab_size']}, T={config['context_length']}, "
            f"L={config['num_layers']}, D={config['d_model']}, H={config['num_heads']})")


def _describe(row: dict[str, Any]) -> str:
    return f"{_model(row['config'])}, batch {row['batch_size']}, {row['optimizer']} AdamW"


CURVE_BUDGETS = ("80GB", "80GiB", "40GB", "24GB")


def predicted_curves(spec: StepSpec, batches: list[int]) -> dict[str, tuple[list, list]]:
    """{set: (batches, peaks)} for every formula set that describes the setup and predicts a peak; batches are the
    step's (micro_batches × the micro-batch)."""
    curves = {}
    for name, module in formula_sets().items():
        if not describes(module, spec):
            continue
        peaks = [module.predict(spec.replace(batch_size=batch)).get("peak_bytes") for batch in batches]
        if all(peak is not None for peak in peaks):
            curves[name] = (batches, peaks)
    return curves


def batch_curve_blocks(rows: list[dict[str, Any]], top: dict[str, Any]) -> list[render.Block]:
    """Peak against batch size for the headline model: what the sweep measured at each batch of that setup and
    what every formula set describing it predicts, with the usual budgets."""
    spec, optimizer = row_spec(top), top["optimizer"]
    measured = {row["batch_size"]: row["measured"]["peak_bytes"] for row in ok_rows(rows)
                if row["optimizer"] == optimizer and same_sizes(row_spec(row), spec)}
    batches = list(range(1, max(16, 2 * max(measured, default=1)) + 1))
    name = _model(top["config"])
    return [render.Heading("Peak memory against batch size"),
            render.Image("batch_curve.png", plots.batch_curve(measured, predicted_curves(spec, batches),
                                                              {b: parse_bytes(b) for b in CURVE_BUDGETS}, name),
                         f"Peak of the step against batch size, measured (circles) and predicted by each formula "
                         f"set, with budget lines: {name}, {optimizer} AdamW")]


def _headline_blocks(row: dict[str, Any]) -> list[render.Block]:
    name = _describe(row)
    blocks: list[render.Block] = [render.Heading(f"Saved activations by component: {name}"),
                                  render.Table(saved_activations(row).map(
                                      lambda v: v if isinstance(v, str) else _bytes(v)))]
    if row.get("timeline", {}).get("op_index"):
        blocks += [render.Heading("Memory timeline of one step"),
                   render.Image("timeline.png", plots.memory_timeline(row["timeline"], name),
                                f"Live bytes by category after each op: {name}")]
    if row.get("flops_by_component"):
        blocks += [render.Heading("Forward FLOPs by component"),
                   render.Image("flops_by_component.png", plots.flops_by_component(row["flops_by_component"], name),
                                f"Forward FLOPs by component, matmul and elementwise (log scale): {name}")]
    columns = {set_name: figures["categories_at_peak"] for set_name, figures in row.get("predicted", {}).items()
               if set_name in SAVED_ACTIVATION_SETS and figures.get("categories_at_peak")}
    if row["measured"].get("categories_at_peak"):
        columns["measured"] = row["measured"]["categories_at_peak"]
        blocks += [render.Heading("Bytes by category at the peak"),
                   render.Image("categories_at_peak.png", plots.categories_at_peak(columns, name),
                                f"Bytes by category at the peak, predicted and measured: {name}")]
    return blocks


FORMULA_TERMS = {"params": "parameters", "saved_activations_bytes": "saved activations (bytes)",
                 "peak_bytes": "peak (bytes)", "flops.forward": "FLOPs, forward", "flops.backward": "FLOPs, backward",
                 "flops.optimizer": "FLOPs, AdamW step"}


def formula_blocks(preset_name: str = HEADLINE_PRESET, batch_size: int = 2) -> list[render.Block]:
    """"The formula, derived": the exact model's formula for the preset's setup beside the textbook's and each
    seed's, read back as polynomials (analytic.fit), with the coefficients each got wrong."""
    modules = {"textbook": textbook, **{module.NAME: module for module in seed_modules()}}
    table, where = fit.comparison(modules, StepSpec(PRESETS[preset_name], batch_size=batch_size))
    blocks: list[render.Block] = [
        render.Heading(f"The formula, derived ({preset_name}'s setup)"),
        render.Text("The exact model's formula as `python -m profiler formula` derives it from traces (float32, "
                    "learned positions, foreach AdamW, explicit attention, B ≥ 2, H ≥ 2), with d_ff written as "
                    "F = 4·D, beside the textbook's and each seed's figures read back as polynomials: fitted "
                    "from their predictions at random small sizes and checked at others (`analytic/fit.py`). "
                    f"The derived peak is a max of moments; the row shows the one that holds {preset_name}'s "
                    f"peak at batch {batch_size}: {where}. Each difference reads: monomial: theirs → derived.")]
    for key, rows in table.items():
        shown = [{"formula set": name, "formula": "not a polynomial in L, B, T, D, H, V" if expression is None
                  else f"`{readable(expression)}`",
                  "coefficients that differ": "—" if not differences else "; ".join(
                      f"{readable(monomial)}: {theirs} → {ours}" for monomial, theirs, ours in differences)}
                 for name, expression, differences in rows]
        blocks += [render.Heading(FORMULA_TERMS[key], level=3), render.Table(pd.DataFrame(shown))]
    return blocks


MATRIX_GROUPS = ("peak", "saved activations", "model states", "matmul FLOPs")


def matrix_blocks(rows: list[dict[str, Any]], table: pd.DataFrame) -> list[render.Block]:
    """Which formula is right where: setups × sets per group of terms, the heat map of the peak, and the
    reconciliation (only with more than one setup in the results)."""
    if table.empty or table["setup"].nunique() < 2:
        return []
    long = matrix(table)
    blocks: list[render.Block] = [
        render.Heading("Which formula is right where"),
        render.Text("Each cell: median / worst |predicted − measured| / measured over the points of that setup "
                    "(block · precision · attention kernel · checkpointing), where the set declares the setup "
                    "(— where it does not, or does not predict the terms). `amp bf16` is bf16 autocast over fp32 "
                    "weights; `bf16` is pure bf16 weights.")]
    peak = long[long["terms"] == "peak"]
    if not peak.empty:
        blocks.append(render.Image("error_matrix.png", plots.error_matrix(peak),
                                   "Median |relative error| of the peak, formula set × setup (grey: not graded)"))
    for group in MATRIX_GROUPS:
        view = matrix_view(long, group)
        if not view.empty:
            blocks += [render.Heading(group[0].upper() + group[1:], level=3), render.Table(view)]
    reconciled = reconciliation(rows)
    if not reconciled.empty:
        reconciled["peak error"] = reconciled["peak error"].map(lambda e: "—" if pd.isna(e) else relative_cell(e))
        blocks += [render.Heading("Reconciliation: the bytes each set misses or over-counts", level=3),
                   render.Text("At each setup's point with the largest measured peak: the set's error on the peak "
                               "and its largest differences from the measurement by category at the peak, by "
                               "saved component (at the end of forward) and by model state (at the optimizer "
                               "step), largest first; where a set itemises a family, what it leaves out counts "
                               "as missed."),
                   render.Table(reconciled)]
    return blocks


def implementation_blocks(rows: list[dict[str, Any]]) -> list[render.Block]:
    """Each model as the implementations in the sweep write it (profiler.reports.implementations)."""
    budgets = sorted({row["max_batch"]["budget"] for row in ok_rows(rows) if row.get("max_batch")})
    budget = " or ".join(budgets) or "the grid's budget (none: not measured)"
    shown = displayed(implementations_table(rows))  # two tables, so that each fits a page: figures, then the sets
    figures = list(shown.columns[:list(shown.columns).index("max batch") + 1])
    sets = [column for column in shown.columns if column not in figures]
    return [render.Heading("Implementations"),
            render.Text("Each point measured as its implementation runs it: `ours` is the built-in block of the "
                        "arch, `Hugging Face` transformers' model built from a config (random weights), a path the "
                        "user's model (and optimizer) loaded from that file. `peak vs ours`: the peak's difference "
                        "from the built-in block's at the same step; `max batch`: the largest batch whose measured "
                        f"peak fits {budget}. Bytes in GB (10⁹)."),
            render.Table(shown[figures]),
            render.Text("Each formula set that describes a point: the relative error of its peak there (— where it "
                        "does not describe it)."),
            render.Table(shown[["model", "implementation", "setup", *sets]]),
            *formula_blocks_of(rows)]


def formula_blocks_of(rows: list[dict[str, Any]]) -> list[render.Block]:
    """Each user's or Hugging Face implementation's saved activations per layer as derived from its code, and the
    difference from our block's (profiler.reports.implementations.formula_table); none where none is derived."""
    table = formula_table(rows)
    if table.empty:
        return []
    return [render.Text("Saved activations per layer as the exact set derives them from each implementation's code "
                        "(`python -m profiler formula --model`; B ≥ 2, H ≥ 2, bytes), and what it keeps beyond "
                        "the built-in block of the same step (`vs ours`; `explain --model X --against builtin` "
                        "names the ops). L layers, B batch, T context, D d_model, H heads, F d_ff, V vocabulary."),
            render.Table(table)]


def report_blocks(meta: dict[str, Any], rows: list[dict[str, Any]], table: pd.DataFrame,
                  budget: str = DEFAULT_BUDGET, out_dir: Path | None = None) -> list[render.Block]:
    blocks: list[render.Block] = [render.Facts(header(meta, rows))]
    if has_implementations(rows):
        blocks += implementation_blocks(rows)
    board = leaderboard(table)
    blocks += [render.Heading("Leaderboard of formula sets"),
               render.Text("Each cell: median / worst of |predicted − measured| / measured over the points "
                           "where the set predicts the term. FLOPs pools `flops.forward`, `flops.backward` and "
                           "`flops.optimizer`; matmul FLOPs `flops_matmul.forward` and `flops_matmul.backward` (what "
                           "FlopCounterMode counts); saved activations what autograd keeps for backward, in all "
                           "and one layer's share; model states the parameters, gradients and optimizer state "
                           "at the optimizer step. A set is graded only on points of the setup it declares (its "
                           "\"graded on\" column): the seeds on their own dtype, each published set on the "
                           "block, precision, kernel and checkpointing its source describes."),
               render.Table(_leaderboard_display(board)) if not board.empty else render.Text("No predictions.")]
    if out_dir is not None:
        blocks += simulation_blocks(out_dir, rows)
    blocks += sharded_blocks(rows, budget)
    blocks += matrix_blocks(rows, table)
    failed = failures(rows)
    if not failed.empty:
        blocks += [render.Heading("Points that did not complete"), render.Table(failed)]
    blocks += [render.Heading("Seed audit"), render.Text(seed_audit_markdown(out_dir))]
    blocks += formula_blocks()
    top = headline(rows)
    if top is not None:
        blocks += _headline_blocks(top)
        blocks += batch_curve_blocks(rows, top)
    batches = max_batch(rows, budget)
    if len(batches.columns) > 2:  # a formula set or a measurement gave a number
        blocks += [render.Heading(f"Maximum batch in {budget}"),
                   render.Text(f"Largest batch (of one micro-batch) whose predicted peak fits {budget} "
                               f"({parse_bytes(budget):,} bytes), by each formula set that computes it for a "
                               "setup it describes (— where it does not); `measured` where the sweep measured "
                               "it (the exact set's answer confirmed by measuring it and one more)."),
                   render.Table(batches.astype(object).where(batches.notna(), "—"))]
    if (table["term"] == "peak_bytes").any():  # a sweep of sharded points alone has no set that predicts a peak
        axes = [axis for axis in ("batch_size", "context_length", "d_model", "num_layers", "num_heads",
                                  "vocab_size") if table["axes"].str.split("+").apply(lambda a: axis in a).any()]
        blocks += [render.Heading("Peak memory: predicted vs measured"),
                   render.Image("peak_scatter.png", plots.peak_scatter(table),
                                "Predicted vs measured peak, log-log; the dashed line is y = x")]
        if axes:
            blocks += [render.Heading("Relative error of the peak along each swept axis"),
                       render.Image("error_by_axis.png", plots.error_by_axis(table, axes),
                                    "Relative error of the peak vs each axis, the others at the base "
                                    "(a mis-scaled term shows as a slope; symmetric-log scale when a set is off by "
                                    "more than 100 %)")]
        peaks = peaks_by_point(table)
        for column in peaks.columns[2:]:
            peaks[column] = peaks[column].map(percent_cell)
        peaks["measured peak"] = peaks["measured peak"].map(_bytes)
        blocks += [render.Heading("Peak by point (relative error of each set)"), render.Table(peaks)]
    return with_legends(blocks)


def with_legends(blocks: list[render.Block]) -> list[render.Block]:
    """The blocks with UNBOUNDED_MEANS under each table that shows an unbounded relative error."""
    legended: list[render.Block] = []
    for block in blocks:
        legended.append(block)
        if isinstance(block, render.Table) and shows_unbounded(block.frame.to_numpy().ravel()):
            legended.append(render.Text(UNBOUNDED_MEANS))
    return legended


def write_report(out_dir: str | Path, budget: str = DEFAULT_BUDGET) -> list[Path]:
    """results.csv, report.md (+ plots/*.png) and report.html in out_dir; returns the paths written. Nothing is
    written if one of them exists and was not written by the tool (profiler.reports.folder)."""
    out_dir = Path(out_dir)
    meta, rows = load(out_dir)
    check(out_dir, [CSV_FILE, *render.file_names([])])  # fail fast, before the plots are drawn
    rows = with_predictions(rows)
    table = comparison(rows)
    title = f"Memory and FLOPs of AdamW training: grid {meta.get('grid', '?')} on {meta.get('device', '?')}"
    blocks = report_blocks(meta, rows, table, budget, out_dir)
    claim(out_dir, [CSV_FILE, *render.file_names(blocks)])
    csv = out_dir / CSV_FILE
    table.to_csv(csv, index=False)
    return [csv] + render.write(out_dir, title, blocks)
