"""Writes never follow links out of a run folder; the exporter removes only its own leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sne_loihi.cli import app
from sne_loihi.export.exporter import LEFTOVER_MARKER, clean_leftovers

runner = CliRunner()


@pytest.mark.parametrize("entry", [".sne.lock", "accuracy_vs_active.png", "export/extra.txt"])
@pytest.mark.parametrize("command", [["evaluate"], ["export", "--overwrite", "--check-samples", "0"]])
def test_a_link_out_of_the_run_folder_is_refused(run_copy: Path, tmp_path: Path, entry: str,
                                                 command: list[str]) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("user data\n")
    (run_copy / entry).parent.mkdir(exist_ok=True)
    (run_copy / entry).unlink(missing_ok=True)
    os.symlink(outside, run_copy / entry)
    before = {p: p.stat().st_mtime_ns for p in run_copy.rglob("*") if not p.is_symlink()}
    result = runner.invoke(app, [command[0], str(run_copy), *command[1:]])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "link" in lines[0], result.stderr
    assert outside.read_text() == "user data\n"
    assert {p: p.stat().st_mtime_ns for p in run_copy.rglob("*") if not p.is_symlink()} == before


def test_a_link_inside_the_run_folder_is_fine(run_copy: Path) -> None:
    os.symlink(run_copy / "report.md", run_copy / "latest.md")
    result = runner.invoke(app, ["evaluate", str(run_copy), "--no-activation", "--noise", "none"])
    assert result.exit_code == 0, result.stderr


def test_plots_replace_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    from sne_loihi.analysis.plots import _pyplot, save_figure

    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep")
    link = tmp_path / "run" / "plot.png"
    link.parent.mkdir()
    os.symlink(outside, link)
    plt = _pyplot()
    fig, _ = plt.subplots()
    save_figure(plt, fig, link)
    assert outside.read_bytes() == b"keep"
    assert not link.is_symlink() and link.read_bytes().startswith(b"\x89PNG")


def test_leftover_cleaner_removes_only_folders_it_marked(tmp_path: Path) -> None:
    out = tmp_path / "export"
    dead_pid = 2**22 + 12345  # above any pid this machine hands out
    mine = [tmp_path / f".export.tmp-{dead_pid}-abc", tmp_path / f".export.old-{dead_pid}"]
    users = [tmp_path / ".export.tmp-notes", tmp_path / ".export.old-2023", tmp_path / f".export.tmp-{dead_pid}-x"]
    for folder in mine + users:
        folder.mkdir()
        (folder / "file.txt").write_text("x")
    for folder in mine:
        (folder / LEFTOVER_MARKER).write_text("made by sne export")
    removed = clean_leftovers(out)
    assert sorted(removed) == sorted(mine)
    assert all(not f.exists() for f in mine) and all((f / "file.txt").is_file() for f in users)
