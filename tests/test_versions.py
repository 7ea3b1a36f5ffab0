"""analytic.exact.versions: the verified torch versions are those the committed compatibility table shows passing,
and the CLI says one line on any other."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analytic.exact import versions
from profiler import cli

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "reports" / "torch-compat" / "results.jsonl"


def test_verified_minors_are_the_passing_rows_of_the_table():
    records = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    passing = {versions.minor(r["torch"]) for r in records
               if r.get("installed") and r["tests_ok"] and r["check_ok"] and r["torch_after"] == r["torch"]}
    assert set(versions.VERIFIED_MINORS) == passing
    shipped = {versions.minor(r["torch"]) for r in records if r.get("programs", "shipped") == "shipped"
               and r.get("installed") and r["tests_ok"] and r["check_ok"]}
    assert set(versions.SHIPPED_MINORS) == shipped
    ci = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_commands.py"), "test"], capture_output=True,
                        text=True, check=True).stdout
    pinned = re.search(r"torch==(\S+)", ci).group(1)
    assert versions.minor(pinned) in versions.SHIPPED_MINORS  # CI installs the torch the programs are shipped for


def test_notice(monkeypatch, capsys):
    assert versions.unverified_notice("2.13.0+cpu") is None
    assert versions.minor("2.9.1+cu128") == "2.9"
    assert "verified on 2.7;" in versions.unverified_notice("2.7.1")
    assert "not verified on 2.5" in versions.unverified_notice("2.5.1")
    from analytic.formula_sets import exact_set

    assert cli.main(["predict", "--preset", "tiny", "--sets", "exact"]) == 0
    shipped_here = versions.minor(torch.__version__) in versions.SHIPPED_MINORS
    assert (capsys.readouterr().err == "") or not shipped_here  # nothing derived where the shipped programs hold
    assert exact_set().programs.derive is not None  # the CLI hands the registry programs that derive


def test_pyproject_accepts_exactly_the_verified_minors():
    """torch>=FIRST,<NEXT where FIRST is the oldest verified minor and NEXT the one after the newest."""
    import re
    import tomllib

    pyproject = tomllib.loads((RESULTS.parents[2] / "pyproject.toml").read_text())
    (spec,) = [need for need in pyproject["project"]["dependencies"] if need.startswith("torch")]
    low, high = re.fullmatch(r"torch>=(\d+\.\d+),<(\d+\.\d+)", spec).groups()
    major, newest = versions.VERIFIED_MINORS[-1].split(".")
    assert (low, high) == (versions.VERIFIED_MINORS[0], f"{major}.{int(newest) + 1}")


def test_derive_writes_the_cache_the_exact_set_reads(tmp_path, monkeypatch, capsys):
    """`profiler derive` on an unverified torch writes the programs where analytic.exact.source finds them (the
    derivation itself, slow, stands in here for a one-class one; tests/test_exact.py re-derives real ones)."""
    from analytic.exact import source
    from analytic.exact.derivation.revision import simulation_revision
    from profiler.commands import derive as command

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shipped = source.shipped()
    key, optimizer = next(iter(shipped.found["classes"])), next(iter(shipped.found["optimizers"]))
    derived = {"classes": {key: shipped.layout_class(key)}, "optimizers": {optimizer: shipped.adamw(optimizer)}}
    monkeypatch.setattr(command, "derive_all", lambda progress: derived)
    monkeypatch.setattr(torch, "__version__", "2.99.0")
    assert "profiler derive" in versions.unverified_notice("2.99.0")
    assert cli.main(["derive", "--quiet"]) == 0
    path = versions.cached_path("2.99.0")
    assert str(path) in capsys.readouterr().out
    loaded = source.for_torch("2.99.0", revision=simulation_revision())
    assert (loaded.derived_on, loaded.layout_class(key), loaded.adamw(optimizer)) == \
        ("2.99.0", derived["classes"][key], derived["optimizers"][optimizer])
    assert source.for_torch("2.99.0", revision="another").found["classes"] == {}  # other simulation code's: unread
    assert source.for_torch("2.13.0").found == shipped.found  # a verified torch runs the shipped programs


def test_the_cache_is_keyed_by_the_simulation_code(tmp_path):
    """Programs cached by other simulation code are not read: the revision a cache file records changes with any
    byte of the model, the measurement or the derivation (a fix to the autocast emulation changed what selective
    checkpointing's traces hold), and only with them."""
    import shutil

    from analytic.exact.derivation import revision

    folders = []
    for folder in revision.simulation_folders():
        folders.append(tmp_path / folder.name)
        shutil.copytree(folder, folders[-1], ignore=shutil.ignore_patterns("__pycache__"))
    folders = tuple(folders)
    assert revision.simulation_revision(folders) == revision.simulation_revision()
    (tmp_path / "formulas.py").write_text("# not simulation code\n")
    assert revision.simulation_revision.__wrapped__(folders) == revision.simulation_revision()
    emulation = tmp_path / "model" / "autocast.py"
    emulation.write_text(emulation.read_text() + "\n")
    assert revision.simulation_revision.__wrapped__(folders) != revision.simulation_revision()


def test_a_cached_sharded_class_of_other_fields_is_derived_again():
    """A sharded class named with another version's fields (before tensor parallelism, 15 of them) is left out of a
    cached document, so it is derived again, not read as a class of shifted fields."""
    import json

    from analytic.exact.sharded import shipped_setup_keys
    from analytic.exact.source import cached_sharded_classes

    key = shipped_setup_keys()[0]
    old_name = json.dumps(key.fields()[:-2])
    assert cached_sharded_classes({"classes": {key.name(): "current", old_name: "old"}}) == {key: "current"}


def test_a_library_call_without_programs_says_so_in_one_line(tmp_path, monkeypatch):
    """On a torch the shipped programs do not hold on, with nothing cached, the exact set over its default source
    raises one line instead of answering from another torch's programs; over a source that derives it answers."""
    from analytic import exact
    from analytic.exact import source
    from model import StepSpec, preset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    library = exact.ExactSet(source.for_torch("2.99.0"))
    with pytest.raises(exact.MissingPrograms, match="no programs for this setup on torch 2.99.0") as error:
        library.predict(StepSpec(preset("tiny"), batch_size=2))
    assert "\n" not in str(error.value) and "profiler derive" in str(error.value)
    derived = exact.ExactSet(source.for_torch("2.99.0", derive=lambda kind, key: source.shipped().found[kind][key]))
    tiny = StepSpec(preset("tiny"), batch_size=2)
    assert derived.predict(tiny) == exact.predict(tiny)


def test_programs_are_derived_on_first_use_and_cached(tmp_path, monkeypatch, capsys):
    """On an unverified torch (2.99 stands in; the programs are derived on the installed one) a class and an AdamW
    layout the cache lacks are derived when first looked up, equal to the shipped ones on the torch they were
    derived on, written to the cache, and read from it next time without deriving."""
    from analytic.exact import source
    from analytic.exact.derivation.on_demand import deriving_programs

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(torch, "__version__", "2.99.0")
    shipped = source.shipped()
    key, optimizer = next(iter(shipped.found["classes"])), ("reference", "learned", False, "foreach")
    programs = deriving_programs()
    assert programs.layout_class(key) == shipped.layout_class(key)
    assert programs.adamw(optimizer) == shipped.adamw(optimizer)
    assert "deriving the exact model's programs" in capsys.readouterr().err
    again = deriving_programs()
    again.derive = lambda kind, key: pytest.fail("derived again")
    assert (again.found["classes"], again.found["optimizers"], again.derived_on) == \
        ({key: shipped.layout_class(key)}, {optimizer: shipped.adamw(optimizer)}, "2.99.0")


def test_differences_from_the_shipped_programs_name_the_op(monkeypatch):
    """A class whose shipped program (made to lack its first token here) differs from the one traced on this
    torch: the difference is that token, allocated by the token embedding's op."""

    from analytic.exact import source
    from analytic.exact.derivation import version_diff
    from analytic.sizes import LayoutClass

    key = LayoutClass()  # the reference block, learned positions, explicit attention, any dtype, B, H >= 2
    shipped = source.shipped().layout_class(key)
    programs = {name: list(segments) for name, segments in shipped.items() if name != "domain"}
    first_program, repeated = programs["forward_first"][0]
    programs["forward_first"][0] = (first_program.split(" ", 1)[1], repeated)  # drop its first token
    fake = source.Programs("0.0", "0.0", {"classes": {key: {**shipped, **programs}}})
    monkeypatch.setattr(version_diff, "shipped", lambda: fake)
    assert version_diff.differing_classes({key: shipped}) == [key]
    rows = version_diff.class_differences(key)
    assert [(row["window"], row["shipped"], row["here"]) for row in rows] == \
        [("forward_first", "", first_program.split()[0])]
    assert any("embedding" in op for op in rows[0]["ops here"])


def test_rope_with_head_size_two_is_outside_the_domain_before_2_11(monkeypatch):
    """Found by the compatibility runs: on 2.6 to 2.10 reshape copies the rotated query and key at head size 2
    (two aten.clone in forward), which a derivation at general sizes cannot see; there the exact set predicts the
    parameter count only, and max-batch refuses in one line."""
    from analytic import exact
    from analytic.exact import source
    from model import ModelConfig, StepSpec

    config = ModelConfig(vocab_size=2, context_length=27, num_layers=1, d_model=14, num_heads=7, positional="rope")
    assert "head size of 2" in versions.outside_domain(config, "2.9.1+cu128")
    assert versions.outside_domain(config, "2.11.0") is None
    assert versions.outside_domain(config.replace(d_model=28), "2.9.1") is None  # head size 4
    assert versions.outside_domain(config.replace(positional="learned"), "2.9.1") is None
    on_2_9 = exact.ExactSet(source.for_torch("2.9.1"))
    assert set(on_2_9.predict(StepSpec(config, batch_size=2))) == {"params"}
    with pytest.raises(ValueError, match="head size of 2"):
        on_2_9.max_batch_size(StepSpec(config), 10**9)
