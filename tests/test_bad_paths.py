"""Paths the tool cannot or must not write: one line naming the option and the path, exit 2, before anything is
measured, nothing written; and --plot in the format its name says."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from profiler.cli import main
from sweep_fakes import write_grid
from test_folders_and_errors import assert_one_line_error, run, snapshot


def not_writable(monkeypatch, folder: Path) -> None:
    """os.access says `folder` cannot be written, as for a read-only mount or a chmod 555 folder of another user
    (the tests may run as root, whom permissions do not stop)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.fixture
def nothing_measured(monkeypatch):
    """Any measurement (a sweep's points, the audit's steps) fails the test."""
    from profiler.experiments import sweep, truth

    def fail(*args, **kwargs):
        pytest.fail("measured before the path was checked")

    monkeypatch.setattr(sweep, "measure", fail)
    monkeypatch.setattr(truth, "truth_blocks", fail)


@pytest.mark.parametrize("command", [["sweep", "--grid", "{grid}", "--quiet"], ["audit"]])
@pytest.mark.parametrize("inside", ["", "new/sub"])
def test_a_read_only_folder_is_one_line_before_anything_is_measured(tmp_path, capsys, monkeypatch, nothing_measured,
                                                                    command, inside):
    """--out the read-only folder itself, or a folder to be made inside it."""
    grid = write_grid(tmp_path)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    not_writable(monkeypatch, read_only)
    out = read_only / inside if inside else read_only
    code, stdout, err = run(capsys, *[part.format(grid=grid) for part in command], "--out", out)
    assert_one_line_error(code, stdout, err, f"--out {out}: ", f"{read_only} is not writable" if inside else
                          "the folder is not writable")
    assert list(read_only.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder")
def test_a_chmod_555_folder_is_refused(tmp_path, capsys, nothing_measured):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        code, stdout, err = run(capsys, "audit", "--out", read_only / "audit")
    finally:
        read_only.chmod(0o755)
    assert_one_line_error(code, stdout, err, f"--out {read_only / 'audit'}: the folder {read_only} is not writable")


@pytest.mark.parametrize("manifest", ['{"mine": 1}\n', "not json\n", '{"files": ["audit.md", "audit.json"]}\n',
                                      '["audit.md"]\n'])
def test_audit_never_writes_over_the_users_own_manifest(tmp_path, capsys, nothing_measured, manifest):
    """A manifest.json the tool did not write (no mark of the tool's) is the user's file: nothing is written, not
    even beside it, and the user's files stay as they were."""
    (tmp_path / "manifest.json").write_text(manifest)
    (tmp_path / "audit.md").write_text("my notes\n")
    before = snapshot(tmp_path)
    code, stdout, err = run(capsys, "audit", "--out", tmp_path)
    assert_one_line_error(code, stdout, err, f"--out {tmp_path} holds manifest.json, which this tool did not write")
    assert snapshot(tmp_path) == before


def test_audit_writes_again_into_its_own_folder(tmp_path, capsys):
    out = tmp_path / "audit"
    assert main(["audit", "--no-measure", "--out", str(out)]) == 0
    (out / "mine.txt").write_text("mine\n")
    assert main(["audit", "--no-measure", "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "manifest.json").read_text())["files"] == ["audit.json", "audit.md"]
    assert (out / "mine.txt").read_text() == "mine\n"


def test_sweep_refuses_a_folder_holding_the_users_manifest(tmp_path, capsys, nothing_measured):
    grid = write_grid(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"mine": 1}\n')
    code, stdout, err = run(capsys, "sweep", "--grid", grid, "--out", out, "--quiet")
    assert_one_line_error(code, stdout, err, f"--out {out}")
    assert snapshot(out) == {"manifest.json": b'{"mine": 1}\n'}


@pytest.mark.parametrize("name", ["peaks.gif", "peaks", "peaks.png.txt"])
def test_a_plot_format_it_cannot_write_is_one_line_before_measuring(tmp_path, capsys, monkeypatch, name):
    from profiler.measuring import max_batch

    monkeypatch.setattr(max_batch, "batch_fits", lambda *args, **kwargs: pytest.fail("measured before the check"))
    code, stdout, err = run(capsys, "max-batch", "--preset", "tiny", "--plot", tmp_path / name)
    assert_one_line_error(code, stdout, err, f"--plot {tmp_path / name}: give a name ending in .png, .jpg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, magic", [("peaks.jpg", b"\xff\xd8\xff"), ("peaks.SVG", b"<?xml"),
                                         ("peaks.pdf", b"%PDF-"), ("peaks.png", b"\x89PNG")])
def test_plot_is_written_in_the_format_its_name_says(tmp_path, capsys, name, magic):
    path = tmp_path / name
    assert main(["max-batch", "--preset", "tiny", "--budget", "20MB", "--plot", str(path)]) == 0
    capsys.readouterr()
    assert path.read_bytes().startswith(magic)


@pytest.mark.parametrize("argv", [["audit", "--out", "{tmp}/new/{long}/audit"], ["sweep", "--out", "{tmp}/{long}"],
                                  ["measure", "--preset", "tiny", "--snapshot", "{tmp}/{long}.pickle"],
                                  ["max-batch", "--preset", "tiny", "--plot", "{tmp}/{long}.png"]])
def test_a_path_the_file_system_refuses_is_one_line_before_anything_runs(tmp_path, capsys, monkeypatch,
                                                                          nothing_measured, argv):
    """What permissions cannot tell (a name longer than the file system takes) is found by making the folders and
    a file there and removing them at once: nothing is left."""
    from profiler.measuring import max_batch, measure

    monkeypatch.setattr(measure, "measure", lambda *args, **kwargs: pytest.fail("measured"))
    monkeypatch.setattr(max_batch, "batch_fits", lambda *args, **kwargs: pytest.fail("measured"))
    argv = [part.format(tmp=tmp_path, long="a" * 300) for part in argv]
    code, stdout, err = run(capsys, *argv)
    assert_one_line_error(code, stdout, err, f"{argv[-1]} cannot be written: File name too long")
    assert list(tmp_path.iterdir()) == []
