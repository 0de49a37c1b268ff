"""The `sne` command line: help, a tiny end-to-end pipeline, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sne_loihi.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args", [[], ["pipeline"], ["teacher"], ["teacher", "finetune"], ["train"], ["evaluate"], ["partition"]]
)
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.stdout
    assert "Usage" in result.stdout


def test_pipeline_writes_report_with_teacher_and_ensemble(tiny_run: Path) -> None:
    report = json.loads((tiny_run / "report.json").read_text())
    rows = {r["model"].split()[0]: r for r in report["evaluation"]["rows"]}
    assert {"teacher", "student", "ensemble"} <= set(rows)
    assert 0.0 <= rows["ensemble"]["accuracy"] <= 1.0
    assert rows["teacher"]["macs"] > 0 and rows["ensemble"]["acs"] > 0
    md = (tiny_run / "report.md").read_text()
    assert "ACs/sample" in md and "MACs/sample" in md
    for name in ("config.toml", "teacher.pt", "ensemble.pt", "partition.json", "metrics_students.jsonl"):
        assert (tiny_run / name).is_file(), name


def test_pipeline_refuses_to_overwrite_an_existing_run(tiny_run: Path, tiny_pipeline_args: list[str]) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()}
    result = runner.invoke(app, ["pipeline", "--run-dir", str(tiny_run), *tiny_pipeline_args])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "already holds results" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()} == before


def test_evaluate_prints_table(tiny_run: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(tiny_run)])
    assert result.exit_code == 0, result.stderr
    assert "ensemble" in result.stdout and "teacher" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "/nonexistent/run"], "not found"),
        (["pipeline", "--dataset", "cifar10", "--data-dir", "/nonexistent/cifar", "--no-progress"], "cifar10"),
        (["pipeline", "--dataset", "mnist"], "no preset"),
        (["train", "--run-dir", "/nonexistent/run"], "no teacher"),
    ],
)
def test_bad_input_gives_one_line_error(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, args + (["--run-dir", str(tmp_path / "r")] if args[0] == "pipeline" else []))
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "ensemble.pt").write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot load checkpoint") and result.stderr.count("\n") == 1
