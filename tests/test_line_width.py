"""Every line a command prints (its text, not --json; stdout and stderr) fits 120 columns: at the presets and at
setups whose every option differs from its default, where a header names them all, and with a model named for
its overridden sizes."""
import shutil
from pathlib import Path

import pytest

from profiler.cli import main
from profiler.reports.tables import WIDTH
from tests.sweep_fakes import write_grid

ROOT = Path(__file__).resolve().parent.parent

# every option away from its default; the sizes overridden, so that the name lists them
LONG = ["--preset", "gpt2-medium", "--num-layers", "3", "--d-model", "128", "--num-heads", "4", "--vocab-size",
        "1000", "--context-length", "64", "--arch", "llama", "--kv-heads", "2", "--dtype", "bfloat16", "--optimizer",
        "forloop", "--attention", "sdpa-math", "--checkpointing", "selective", "--micro-batches", "2",
        "--zero-grad", "zeros"]
# the GPT-2 block with mixed precision and the other kernel and checkpointing
LONG_GPT2 = ["--preset", "tiny", "--num-layers", "1", "--arch", "gpt2", "--dropout", "0", "--autocast", "bfloat16",
             "--attention", "sdpa-efficient", "--checkpointing", "full", "--micro-batches", "2", "--zero-grad",
             "zeros", "--optimizer", "forloop"]
SHARD = ["--shard", "fsdp2", "--world-size", "8", "--no-reshard-after-forward"]


def over(capsys, *argv):
    """The lines of the command's output wider than WIDTH, after checking that it succeeded."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return [line for line in (out + err).splitlines() if len(line) > WIDTH]


@pytest.mark.parametrize("argv", [
    ["predict", "--preset", "gpt2-xl", "--batch-size", "4"],
    ["predict", *LONG, *SHARD, "--batch-size", "4"],
    ["predict", *LONG_GPT2, "--batch-size", "2", "--all-terms"],
    ["formula", *LONG_GPT2, "--batch-size", "2"],
    ["measure", "--preset", "tiny", "--batch-size", "2"],
    ["measure", *LONG, *SHARD, "--batch-size", "4", "--device", "meta"],
    ["measure", *LONG_GPT2, "--batch-size", "2", "--device", "meta"],
    ["max-batch", *LONG, "--device", "meta"],
    ["max-batch", *LONG_GPT2, "--device", "meta", "--budget", "100KB"],  # nothing fits: the hint
    ["max-batch", "--preset", "tiny", "--device", "meta", "--budget", "80GB", "--limit", "1000"],  # the limit
    ["explain", *LONG, "--batch-size", "4"],
], ids=lambda argv: " ".join(argv[:1] + argv[2:3]) + (" long" if len(argv) > 6 else ""))
def test_every_line_fits(capsys, argv):
    assert over(capsys, *argv) == []


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["measure", "--preset", "gpt2-xl", "--device", "meta"],
    ["max-batch", "--preset", "gpt2-xl", "--device", "meta"],
    ["max-batch", *LONG, *SHARD, "--device", "meta"],
    ["explain", "--preset", "gpt2-xl", "--batch-size", "2"],
    ["formula"],
    ["formula", "--preset", "gpt2-xl"],
    ["formula", *LONG, "--batch-size", "4"],
    ["audit", "--no-measure"],
    ["audit", "--formula-set", "textbook"],
], ids=lambda argv: " ".join(argv[:1] + argv[2:3]) + (" long" if len(argv) > 6 else ""))
def test_every_line_fits_at_gpt2_xl_and_in_the_audits(capsys, argv):
    assert over(capsys, *argv) == []


@pytest.mark.slow
def test_every_line_of_sweep_report_and_check_fits(capsys, tmp_path):
    grid = write_grid(tmp_path)
    assert over(capsys, "sweep", "--grid", str(grid), "--out", str(tmp_path / "out"), "--device", "meta") == []
    assert over(capsys, "check", "--grid", str(grid), "--quiet") == []
    shutil.copytree(ROOT / "reports" / "ci-meta", tmp_path / "ci")  # a committed sweep, its report written again
    assert over(capsys, "report", str(tmp_path / "ci")) == []


def test_the_snapshot_line_fits(capsys, tmp_path, monkeypatch):
    """measure --snapshot: the viewer's command on a line of its own (a path the user gives is printed whole, so
    that the command pastes: the file here is named relative to the current folder)."""
    monkeypatch.chdir(tmp_path)
    assert over(capsys, "measure", "--preset", "tiny", "--device", "meta", "--snapshot", "step.pickle") == []
    assert (tmp_path / "step.pickle").exists()


def test_the_first_use_note_fits_and_says_the_class_in_words(capsys):
    """The note a derivation on first use prints: a sharded rank's class in words, wrapped at 120 columns."""
    from analytic.exact.derivation.on_demand import note
    from analytic.sizes import ShardedClass
    from model import StepSpec, preset

    spec = StepSpec(preset("tiny").replace(arch="llama", positional="rope", dropout=0.0)).replace(
        shard="fsdp2", world_size=8, batch_size=4, micro_batches=2, zero_grad="zeros", checkpointing="full",
        dtype="bfloat16", attention="sdpa-math", reshard_after_forward=False)
    what = ShardedClass.of(spec).what()
    assert what == ("llama, rope, sdpa-math, 16-bit dtypes, checkpointing full, B >= 2, H >= 2, T >= 2, fsdp2, "
                    "no reshard after forward, micro-batches, zero_grad zeros")
    path = "/home/someone/.cache/adamw-profiler/derived-sharded-torch-2.13.0+cpu.json.gz"
    text = (f"deriving the exact model's programs for one rank of {what} on torch 2.13.0+cpu (first use; cached in "
            f"{path})")
    note(text)
    err = capsys.readouterr().err
    assert all(len(line) <= WIDTH for line in err.splitlines()) and len(err.splitlines()) > 1
    assert " ".join(line.strip() for line in err.splitlines()) == f"note: {text}"
