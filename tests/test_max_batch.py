import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import analytic.formula_sets
from analytic.formula_sets import max_batch_sizes
from model.config import preset
from model.spec import StepSpec
from profiler import cli
from profiler.measuring.max_batch import batch_fits
from profiler.measuring.measure import measure, step_phases
from profiler.measuring.search import confirm_max_batch, find_max_batch
from tests.strategies import step_specs


def threshold(maximum, calls=None):
    def fits(batch):
        if calls is not None:
            calls.append(batch)
        return batch <= maximum
    return fits


@pytest.mark.parametrize("maximum", [1, 2, 3, 5, 7, 8, 9, 100, 1000, 4095])
def test_finds_the_threshold(maximum):
    calls = []
    assert find_max_batch(threshold(maximum, calls), limit=4096) == maximum
    assert len(calls) <= 2 * maximum.bit_length() + 2  # exponential then binary: logarithmic


def test_nothing_fits():
    probes = []
    assert find_max_batch(threshold(0), probes=probes) == 0
    assert probes == [(1, False)]


def test_limit_fits():
    assert find_max_batch(threshold(10**9), limit=50) == 50
    assert find_max_batch(threshold(49), limit=50) == 49


def test_start_above_the_answer_searches_below():
    probes = []
    assert find_max_batch(threshold(5), start=16, probes=probes) == 5
    assert probes[0] == (16, False)


def test_start_inside_the_range():
    assert find_max_batch(threshold(37), start=4) == 37


def test_bad_start():
    with pytest.raises(ValueError):
        find_max_batch(threshold(3), start=0)
    with pytest.raises(ValueError):
        find_max_batch(threshold(3), start=10, limit=5)


@pytest.mark.parametrize("guess, confirmed, calls", [(37, True, 2), (0, False, None), (36, False, None),
                                                     (38, False, None), (None, False, None), (5000, False, None)])
def test_a_guess_is_confirmed_by_two_probes_or_searched(guess, confirmed, calls):
    probes = []
    assert confirm_max_batch(threshold(37), guess, limit=4096, probes=probes) == (37, confirmed)
    if calls is not None:
        assert probes == [(37, True), (38, False)]


def test_a_guess_of_nothing_fits_is_confirmed_by_one_probe():
    probes = []
    assert confirm_max_batch(threshold(0), 0, probes=probes) == (0, True) and probes == [(1, False)]


class FormulaSet:
    @staticmethod
    def max_batch_size(spec, budget_bytes):
        return budget_bytes // 1000


class LinearSet:  # no solver of its own: its peak 300·B + 1000 is solved from predict at B = 1 and B = 2
    NAME = "linear"

    @staticmethod
    def predict(spec):
        return {"peak_bytes": 300 * spec.batch_size + 1000}


class NoPeak:  # predicts no peak at all
    NAME = "none"

    @staticmethod
    def predict(spec):
        return {"params": 1}


FAKE_SETS = {"good": FormulaSet, "linear": LinearSet, "none": NoPeak}


def test_predictions_of_every_kind_of_formula_set(monkeypatch):
    monkeypatch.setattr(analytic.formula_sets, "formula_sets", lambda: FAKE_SETS)
    assert max_batch_sizes(StepSpec(preset("tiny")), 5000) == {"good": 5, "linear": 13, "none": None}
    assert max_batch_sizes(StepSpec(preset("tiny")), 1299) == {"good": 1, "linear": 0, "none": None}


def run_cli(argv, monkeypatch):
    monkeypatch.setattr(analytic.formula_sets, "formula_sets", lambda: FAKE_SETS)
    return cli.main(["max-batch", *argv])


def test_cli_without_cuda_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_cli(["--preset", "tiny", "--device", "cuda", "--budget", "1GB"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA" in err and "--device meta" in err


def test_cli_device_auto_is_meta_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_cli(["--preset", "tiny", "--budget", "1MB"], monkeypatch) == 0
    assert "device meta" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--preset", "tiny", "--device", "meta", "--budget", "80"], "unit"),
    (["--preset", "tiny", "--device", "tpu"], "--device"),
    (["--preset", "tiny", "--device", "meta", "--start", "0"], "--start"),
    (["--preset", "tiny", "--device", "meta", "--start", "9", "--limit", "4"], "--start <= --limit"),
])
def test_cli_usage_errors(argv, message, monkeypatch, capsys):
    assert run_cli(argv, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_meta_search(monkeypatch, capsys):
    from profiler.measuring.measure import measure

    spec = StepSpec(preset("tiny"))
    peaks = {b: measure(spec.replace(batch_size=b), "meta", count_flops=False).measured["peak_bytes"]
             for b in (2, 3, 4)}
    budget = peaks[3]
    assert run_cli(["--preset", "tiny", "--device", "meta", "--budget", f"{budget}B", "--limit", "4"],
                   monkeypatch) == 0
    out = capsys.readouterr().out
    expected = 3 if peaks[4] > budget else 4
    assert f"measured maximum batch size: {'at least ' if expected == 4 else ''}{expected}" in out
    assert "  good    " in out and "  none " not in out  # a set without an answer is named on one line after
    assert "no answer (they do not describe this setup): none" in out


def paragraph(out, start):
    """The line of `out` that starts with `start`, with its indented continuation lines, as one line."""
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    rest = [line.strip() for line in lines[first + 1:]]
    follow = next((i for i, line in enumerate(lines[first + 1:]) if not line.startswith("  ")), len(rest))
    return " ".join([lines[first], *rest[:follow]])


def test_cli_says_what_to_try_when_nothing_fits(monkeypatch, capsys):
    """Below batch 1's peak: 0, with that peak, its phase and the options that shrink it which the setup does not
    use; batch 1 of tiny peaks in the optimizer step, where the activations are gone: no checkpointing offered."""
    from profiler.measuring.measure import measure
    from profiler.reports.tables import human_bytes

    spec = StepSpec(preset("tiny")).replace(checkpointing="full")
    measured = measure(spec, "meta", count_flops=False).measured
    peak = measured["peak_bytes"]
    assert measured["peak_phase"] == "optimizer"
    assert run_cli(["--preset", "tiny", "--device", "meta", "--budget", f"{peak - 1}B", "--checkpointing", "full"],
                   monkeypatch) == 0
    out = capsys.readouterr().out
    assert "measured maximum batch size: 0" in out
    line = paragraph(out, "nothing fits: batch 1")
    assert f"(its peak is {human_bytes(peak)}, in the optimizer phase)" in line
    assert line.endswith("try --dtype bfloat16 (2 bytes per parameter, gradient and moment), --shard fsdp2 "
                         "--world-size N, --optimizer forloop, a smaller model")
    assert run_cli(["--preset", "tiny", "--device", "meta", "--budget", f"{peak - 1}B"], monkeypatch) == 0
    assert "--checkpointing" not in paragraph(capsys.readouterr().out, "nothing fits: batch 1")


def test_nothing_fits_at_a_forward_or_backward_peak_offers_checkpointing(monkeypatch, capsys):
    """Batch 1 of tiny at context 1024 peaks in the backward: checkpointing is what to try, not for-loop AdamW."""
    spec = StepSpec(preset("tiny").replace(context_length=1024))
    measured = measure(spec, "meta", count_flops=False).measured
    assert measured["peak_phase"] == "backward"
    assert run_cli(["--preset", "tiny", "--context-length", "1024", "--device", "meta", "--budget", "2MB"],
                   monkeypatch) == 0
    line = paragraph(capsys.readouterr().out, "nothing fits: batch 1")
    assert "in the backward phase" in line
    assert line.endswith("try --dtype bfloat16 (2 bytes per parameter, gradient and moment), --checkpointing full, "
                         "--shard fsdp2 --world-size N")


def test_the_limit_that_stops_the_search_is_named(monkeypatch, capsys):
    """tiny in 80GB: the exact set's answer, 177100, lies beyond the default limit of a search (65536); on meta it
    is measured there all the same (confirmed: it fits, one more does not); with --limit below it, the limit
    stopped the search and the text and the JSON say so (never 'refuted': nothing measured refutes it)."""
    spec = StepSpec(preset("tiny"))
    assert analytic.formula_sets.exact_set().max_batch_size(spec, 80 * 10**9) == 177100
    assert cli.main(["max-batch", "--preset", "tiny", "--device", "meta", "--budget", "80GB"]) == 0
    out = capsys.readouterr().out
    assert "probes: 177100 fits, 177101 does not fit" in out
    assert "measured maximum batch size: 177100 (the exact set's answer, confirmed by measuring it and one more)" \
        in out
    assert cli.main(["max-batch", "--preset", "tiny", "--device", "meta", "--budget", "80GB", "--limit", "1000"]) == 0
    out = capsys.readouterr().out
    assert "probes: 1000 fits\n" in out and "refuted" not in out
    assert paragraph(out, "measured maximum batch size").startswith(
        "measured maximum batch size: at least 1000 (--limit 1000 stopped the search; the exact set's answer, "
        "177100, lies beyond it: --limit 177101 measures it)")
    assert cli.main(["max-batch", "--preset", "tiny", "--device", "meta", "--budget", "80GB", "--limit", "1000",
                     "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["max_batch"], document["limit"], document["at_limit"]) == (1000, 1000, True)
    assert (document["guess"], document["guess_confirmed"]) == (177100, False)


def test_how_found_in_words():
    from profiler.commands.max_batch import how_found, search_limit

    exact = "the exact set's answer"
    assert how_found(exact, 7, True, 7, 100) == f"{exact}, confirmed by measuring it and one more"
    assert how_found(exact, 7, False, 5, 100) == f"searched; {exact}, 7, was refuted by a measurement"
    assert how_found(exact, 7, False, 100, 100) == (f"searched; {exact}, 7, was refuted by a measurement; --limit "
                                                    "100 stopped the search: a larger --limit searches further")
    assert how_found(exact, 500, False, 40, 100) == f"searched; {exact}, 500, is refuted: the limit, 100, does not fit"
    assert how_found(exact, None, False, 100, 100) == ("searched; --limit 100 stopped the search: a larger --limit "
                                                       "searches further")
    assert search_limit(None, "meta", 177100) == 354200 and search_limit(None, "meta", 10) == 65536
    assert search_limit(None, "cuda", 177100) == 65536 and search_limit(1000, "meta", 177100) == 1000
    assert search_limit(None, "meta", None) == 65536


@pytest.mark.cuda
def test_cuda_fits_recovers_from_out_of_memory():
    spec = StepSpec(preset("gpt2-small"))  # its step at batch 1 peaks near 3.9 GB (4.2 GB reserved on an H200)
    total = torch.cuda.get_device_properties(0).total_memory
    before = torch.cuda.get_per_process_memory_fraction()
    fits = batch_fits(spec, 6 << 30, "cuda")
    assert fits(1) is True
    held = torch.cuda.memory_allocated()
    assert fits(64) is False  # 6 GiB cannot hold batch 64 of GPT-2 small
    assert torch.cuda.get_per_process_memory_fraction() == before
    assert torch.cuda.memory_allocated() == held  # nothing of the failed step survives
    assert fits(1) is True  # and the GPU is usable after it
    with pytest.raises(ValueError, match="exceeds"):
        batch_fits(spec, total + 1, "cuda")(1)


def test_plot_of_peak_against_batch(tmp_path, capsys):
    """--plot draws the measured probes and every describing set's line; it never overwrites a file."""
    path = tmp_path / "curve.png"
    argv = ["max-batch", "--preset", "tiny", "--device", "meta", "--budget", "3MB", "--plot", str(path)]
    assert cli.main(argv) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(argv) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_allocator_hint_only_where_the_gpu_refused_the_exact_answer():
    from profiler.commands.max_batch import allocator_hint

    assert "expandable_segments:True" in allocator_hint("cuda", 13, 11, None)
    assert allocator_hint("cuda", 13, 13, None) is None  # the answer ran
    assert allocator_hint("cuda", 13, 11, "expandable_segments:True") is None  # already on
    assert allocator_hint("meta", 13, 11, None) is None and allocator_hint("cuda", None, 11, None) is None


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=step_specs(archs=("reference", "gpt2", "llama"), dtypes=("float32", "bfloat16"),
                       checkpointings=("none", "full", "selective"), micro_batches=(1, 2),
                       zero_grads=("none", "zeros"), attentions=("explicit", "sdpa-math", "sdpa-flash"),
                       autocasts=("none", "bfloat16"), max_layers=2),
       optimizer=st.sampled_from(("foreach", "forloop")), micro_batch=st.integers(1, 3))
def test_the_probe_is_the_measurement(spec, optimizer, micro_batch):
    """step_phases (the probes' cheaper warm-up: one AdamW step on zero gradients, no categories) gives the phase
    figures measure() gives, to the byte."""
    spec = spec.replace(batch_size=spec.setup.micro_batches * micro_batch, optimizer=optimizer)
    assert_same_phases(step_phases(spec, "meta"), measure(spec, "meta", count_flops=False).measured)


def assert_same_phases(probe: dict, measured: dict) -> None:
    assert {key: probe[key] for key in ("params", "peak_bytes", "peak_phase")} == \
        {key: measured[key] for key in ("params", "peak_bytes", "peak_phase")}
    for phase, figures in probe["phases"].items():
        assert figures == {key: measured["phases"][phase][key] for key in figures}, phase
    for index, figures in probe.get("micro_batches", {}).items():
        assert figures == measured["micro_batches"][index]


@pytest.mark.slow
def test_the_probe_on_cpu_leaves_host_scalars_out():
    spec = StepSpec(preset("tiny"), batch_size=2).replace(zero_grad="zeros", autocast="bfloat16", micro_batches=2)
    for optimizer in ("foreach", "fused"):
        spec = spec.replace(optimizer=optimizer)
        assert_same_phases(step_phases(spec, "cpu"), measure(spec, "cpu", count_flops=False).measured)
