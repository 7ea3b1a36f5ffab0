"""Does the project run on the torch a user already has? For each torch version: a throwaway virtual environment
with that torch (from the configured package index, with its own dependencies), the project installed beside it
without replacing it (`pip install --no-deps -e .` and its other requirements), then the README's tests and the
`check` gate, timed. One JSON line per version goes to reports/torch-compat/results.jsonl as soon as it is known
(a version already there is skipped unless --redo), and the table to reports/torch-compat/README.md.

    python tools/torch_compat.py 2.11.0 2.12.0 2.13.0 2.14.1 [--venvs DIR] [--redo]

The exact model's programs were derived on one torch (analytic/exact/derived.json.gz's torch_version) and are
shipped for the minors where they hold (analytic.exact.versions.SHIPPED_MINORS); on any other torch the tests and
`check` run programs derived on it, class by class on first use. `check` passing means the programs hold there, to its
tolerance, on the `ci` grid, and the tests hold them to the byte.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from analytic.exact.versions import SHIPPED_MINORS, minor  # noqa: E402  (analytic imports no torch)

OUT = ROOT / "reports" / "torch-compat"
RESULTS = OUT / "results.jsonl"
TABLE = OUT / "README.md"
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)")


def run(command: list[str], timeout: int = 3600) -> tuple[int, str, float]:
    """(return code, stdout and stderr, seconds) of a command run in the project's root."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


def requirements() -> list[str]:
    """The project's dependencies other than torch, from pyproject.toml, and the test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needs = project["dependencies"] + project["optional-dependencies"]["test"]
    return [need for need in needs if not re.match(r"torch\b", need)]


def environment(version: str, venvs: Path) -> tuple[Path, dict]:
    """A venv holding torch==version and the project (made once, reused); its python and what installing took."""
    venv = venvs / f"torch-{version}"
    python = venv / "bin" / "python"
    steps = {}
    if not python.exists():
        steps["venv"] = run([sys.executable, "-m", "venv", str(venv)])[0]
    code, output, seconds = run([str(python), "-m", "pip", "install", "-q", f"torch=={version}"])
    if code != 0:
        raise RuntimeError(f"torch=={version} did not install: {output.strip().splitlines()[-1]}")
    steps["torch_install_seconds"] = round(seconds, 1)
    code, output, seconds = run([str(python), "-m", "pip", "install", "-q", *requirements()])
    code2, output2, _ = run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)])
    if code or code2:
        raise RuntimeError(f"the project did not install next to torch {version}: {(output + output2).strip()}")
    steps["project_install_seconds"] = round(seconds, 1)
    return python, steps


def torch_of(python: Path) -> str:
    return run([str(python), "-c", "import torch; print(torch.__version__)"])[1].strip().splitlines()[-1]


def check_version(version: str, venvs: Path) -> dict:
    """Install, then run the tests and the check gate; the record of one version."""
    record: dict = {"requested": version, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "python": sys.version.split()[0]}
    try:
        python, steps = environment(version, venvs)
    except RuntimeError as error:
        return {**record, "installed": False, "error": str(error)}
    record.update(installed=True, torch=torch_of(python), **steps)
    record["programs"] = "shipped" if minor(record["torch"]) in SHIPPED_MINORS else "derived on it"
    # the test that ties the verified range to this table is left out: the table is what this run writes
    code, output, seconds = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--deselect",
                                 "tests/test_versions.py::test_verified_minors_are_the_passing_rows_of_the_table"])
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n)
              for n, kind in SUMMARY.findall(output.strip().splitlines()[-1])}
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M)))
    record.update(tests_ok=code == 0, tests=counts, tests_seconds=round(seconds, 1), test_failures=failed)
    code, output, seconds = run([str(python), "-m", "profiler", "check", "--quiet"])
    record.update(check_ok=code == 0, check_seconds=round(seconds, 1),
                  check_summary=output.strip().splitlines()[-1] if output.strip() else "")
    if record["programs"] != "shipped":  # where the programs derived here (during the tests and check) differ
        code, output, _ = run([str(python), "-m", "profiler", "derive", "--against-shipped", "--json"])
        record["differences"] = json.loads(output[output.index("{"):])["differences"] if code == 0 else output
    record["torch_after"] = torch_of(python)  # the project's install must not have replaced it
    return record


def table(records: list[dict]) -> str:
    lines = ["| torch | installed beside the project | exact model's programs | tests | check (exact set, ci grid) | "
             "seconds (tests, check) |", "|---|---|---|---|---|---|"]
    notes = []
    for r in records:
        if not r.get("installed"):
            lines.append(f"| {r['requested']} | no: {r.get('error', '?')} | — | — | — | — |")
            continue
        kept = "yes" if r["torch_after"] == r["torch"] else f"no: replaced by {r['torch_after']}"
        tests = ", ".join(f"{n} {kind}" for kind, n in r["tests"].items())
        if r["test_failures"]:
            tests += " (" + ", ".join(r["test_failures"]) + ")"
        check = "passes" if r["check_ok"] else f"fails: {r['check_summary'][:100]}"
        programs = r.get("programs", "shipped")  # the runs before derivation on first use ran the shipped ones
        if "differences" in r:
            programs += f" ({len({row['class'] for row in r['differences']})} classes differ from the shipped)"
            kinds: dict[tuple, set] = {}  # one line per kind of difference, with the classes it is found in
            for row in r["differences"]:
                kinds.setdefault((row["shipped"], row["here"], ", ".join(row["ops here"])), set()).add(row["class"])
            notes += [f"- torch {r['torch']}: the shipped programs have [{shipped}], this torch [{here}] (ops here: "
                      f"{ops}), in {len(classes)} classes: {'; '.join(sorted(classes))}"
                      for (shipped, here, ops), classes in kinds.items()]
        lines.append(f"| {r['torch']} | {kept} | {programs} | {tests} | {check} | "
                     f"{r['tests_seconds']:.0f}, {r['check_seconds']:.0f} |")
    dates = sorted(r["date"][:10] for r in records)
    return ("# The project on several torch versions\n\nGenerated by `python tools/torch_compat.py` (one venv per "
            f"torch, the project installed with `--no-deps` beside it), Python {records[0]['python']}, "
            f"{dates[0]} to {dates[-1]}; the exact model's programs were derived on torch "
            f"{derived_on()}.\n\n" + "\n".join(lines) + "\n"
            + ("\nWhere the programs derived on a torch differ from the shipped ones, at one layer, token by token "
               "(`python -m profiler derive --against-shipped`, over the classes its tests and check derived):\n\n"
               + "\n".join(notes) + "\n" if notes else ""))


def derived_on() -> str:
    from analytic.exact import store  # noqa: PLC0415 - analytic imports no torch

    return store.read(ROOT / "analytic" / "exact" / "derived.json.gz")["torch_version"]


def write_table(records: list[dict]) -> None:
    TABLE.write_text(table(sorted(records, key=lambda r: [int(p) for p in r["requested"].split(".")])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="torch versions to install, e.g. 2.12.0")
    parser.add_argument("--venvs", type=Path, default=Path("/tmp/torch-compat"), help="where the venvs go")
    parser.add_argument("--redo", action="store_true", help="run versions already in the results again")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    records = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    for version in args.versions:
        if not args.redo and any(r["requested"] == version for r in records):
            print(f"torch {version}: already in {RESULTS.relative_to(ROOT)}", file=sys.stderr)
            continue
        print(f"torch {version}: installing and testing ...", file=sys.stderr, flush=True)
        record = check_version(version, args.venvs)
        records = [r for r in records if r["requested"] != version] + [record]
        RESULTS.write_text("".join(json.dumps(r) + "\n" for r in records))
        write_table(records)
        print(f"torch {version}: tests {'pass' if record.get('tests_ok') else 'FAIL'}, check "
              f"{'passes' if record.get('check_ok') else 'FAILS'}", file=sys.stderr, flush=True)
    if records:
        write_table(records)  # also re-rendered when every version was already there


if __name__ == "__main__":
    main()
