"""A run explains itself: report.md indexes the run folder, says which head each summary
number uses, links the Loihi 2 readiness report; every index entry names a real command."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from sne_loihi.cli import app
from sne_loihi.run_files import RUN_FOLDER_INDEX, run_folder_index


def test_report_indexes_the_files_of_the_run(tiny_run: Path) -> None:
    text = (tiny_run / "report.md").read_text()
    index = text.split("## Files in this run folder", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([^`]+)` \|", index, flags=re.M))
    names = {n.strip() for entry in listed for n in entry.split(",")}
    for must in ("config.toml", "teacher.pt", "ensemble.pt", "export", "report.md", "accuracy_vs_energy.png"):
        assert must in names, f"{must} missing from the index: {sorted(names)}"
    for name in names:  # nothing listed that is not there
        assert (tiny_run / name).exists(), name


def test_summary_names_the_heads_and_links_the_readiness_report(tiny_run: Path) -> None:
    summary = (tiny_run / "report.md").read_text().split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "read by its own linear head trained with the students" in summary
    assert "cascade head" in summary
    assert "[export/loihi2.md](export/loihi2.md)" in summary and (tiny_run / "export" / "loihi2.md").is_file()


def test_index_entries_name_real_commands() -> None:
    root = typer.main.get_command(app)
    commands = set(root.commands) | {f"teacher {n}" for n in root.commands["teacher"].commands}
    for entry in RUN_FOLDER_INDEX:
        for made_by in entry.made_by.split(" / "):
            command = made_by.removeprefix("sne ").split(" --")[0]
            assert command in commands, f"{entry.pattern}: no command 'sne {command}'"


def test_index_of_an_empty_folder_is_empty(tmp_path: Path) -> None:
    assert run_folder_index(tmp_path) == []
    assert [e.pattern for e in run_folder_index(tmp_path, about_to_write=("report.md",))] == ["report.md"]


def test_training_section_shows_the_learning_curves_and_summed_epoch_times(tiny_run: Path) -> None:
    """Every epoch record carries its wall seconds; the report sums them per stage and plots
    train and test accuracy per epoch."""
    import json

    from sne_loihi.io import load_checkpoint

    text = (tiny_run / "report.md").read_text()
    section = text.split("## Training", 1)[1].split("\n## ", 1)[0]
    assert "![learning curves](learning_curves.png)" in section and (tiny_run / "learning_curves.png").stat().st_size > 1000
    training = json.loads((tiny_run / "report.json").read_text())["training"]
    assert set(training) == {"teacher", "students"}
    for stage, ckpt in (("teacher", "teacher.pt"), ("students", "ensemble.pt")):
        history = load_checkpoint(tiny_run / ckpt)["history"]
        seconds = [r["seconds"] for r in history]
        assert all(s > 0 for s in seconds)
        assert training[stage]["epochs"] == training[stage]["timed_epochs"] == len(history)
        assert training[stage]["seconds"] == sum(seconds)
        assert training[stage]["cpu_seconds"] == sum(r["cpu_seconds"] for r in history) > 0
        assert training[stage]["test_accuracy"] == history[-1]["test_accuracy"]
        assert f"| {stage} | {len(history)} |" in section


def test_a_teacher_trained_with_test_time_views_shows_both_accuracies() -> None:
    from sne_loihi.analysis.runreport import teacher_tta_line

    line = teacher_tta_line([{"epoch": 1}, {"epoch": 2, "test_accuracy_tta": 0.9095}], 0.9007)
    assert line is not None and "90.95%" in line and "(90.07%)" in line
    assert teacher_tta_line([{"epoch": 2, "test_accuracy": 0.9}], 0.9) is None  # trained without views
    assert teacher_tta_line([], 0.9) is None  # an external teacher without history


def test_report_json_records_the_report_settings_it_was_made_with(tiny_run: Path, tmp_path: Path) -> None:
    """``report.json``'s config is the ensemble's training config with the ``report`` section
    this evaluation used (flags included), not the one stored at training time."""
    import json
    import shutil

    from typer.testing import CliRunner

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, symlinks=True)
    result = CliRunner().invoke(app, ["evaluate", str(run), "--no-activation", "--noise", "0.1", "--repeats", "1"])
    assert result.exit_code == 0, result.stderr
    report = json.loads((run / "report.json").read_text())["config"]["report"]
    assert (report["noise"], report["repeats"], report["activation"]) == ([0.1], 1, False)


def test_a_second_evaluation_shows_its_own_settings_and_leaves_no_stale_plot(run_copy: Path) -> None:
    """report.md's Config section is the settings this evaluation used (it copied config.toml,
    which evaluate never rewrites); plots of a section the new report leaves out are removed."""
    from typer.testing import CliRunner

    runner = CliRunner()
    first = runner.invoke(app, ["evaluate", str(run_copy), "--noise", "0.1,0.2", "--repeats", "2", "--no-progress"])
    assert first.exit_code == 0, first.stderr
    config = (run_copy / "report.md").read_text().split("## Config", 1)[1]
    assert "noise = [\n    0.1,\n    0.2,\n]" in config or "noise = [ 0.1, 0.2 ]" in config or "noise = [0.1, 0.2]" in config
    assert "repeats = 2" in config and (run_copy / "accuracy_vs_noise.png").is_file()
    second = runner.invoke(app, ["evaluate", str(run_copy), "--no-activation", "--noise", "none", "--no-progress"])
    assert second.exit_code == 0, second.stderr
    assert not any((run_copy / n).exists() for n in ("accuracy_vs_noise.png", "accuracy_vs_active.png",
                                                      "accuracy_vs_energy.png"))
    assert "accuracy_vs_noise.png" not in (run_copy / "report.md").read_text()
    (run_copy / "config.toml").unlink()  # a folder without its config.toml still gets a report (was a traceback)
    third = runner.invoke(app, ["evaluate", str(run_copy), "--no-activation", "--no-progress"])
    assert third.exit_code == 0, third.stderr


def test_evaluate_refuses_settings_it_would_ignore(run_copy: Path) -> None:
    from typer.testing import CliRunner

    from cli_checks import one_error_line

    result = CliRunner().invoke(app, ["evaluate", str(run_copy), "--set", "data.max_test=10"])
    one_error_line(result, "sne evaluate takes only report settings (report.*); --set data.max_test would change nothing")


def test_a_dropout_folder_of_another_kind_or_run_is_refused_naming_it(run_copy: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from cli_checks import one_error_line

    sub = run_copy / "dropout-k2"
    sub.mkdir()
    shutil.copy2(run_copy / "ensemble.pt", sub / "ensemble.pt")  # trained every student: not a dropout variant
    result = CliRunner().invoke(app, ["evaluate", str(run_copy), "--no-progress"])
    one_error_line(result, f"{sub / 'ensemble.pt'} is not a dropout-trained ensemble")


def test_the_cost_table_prices_neuron_updates_like_the_k_table(run_copy: Path) -> None:
    """Under a profile that charges neuron updates, the all-students row of the cost table and
    random K = N of Tables V/VI price the same ops the same (they differed by the updates)."""
    import json

    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["evaluate", str(run_copy), "--energy", "loihi", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    report = json.loads((run_copy / "report.json").read_text())
    row = next(r for r in report["evaluation"]["rows"] if r["model"].startswith("ensemble"))
    assert row["neuron_updates"] > 0
    from sne_loihi.cost.energy import energy_pj, resolve_profile

    loihi = resolve_profile("loihi")
    assert row["energy_pj"] == energy_pj(loihi, macs=row["macs"], acs=row["acs"], neuron_updates=row["neuron_updates"])
    random_all = max(report["activation"]["random_k"], key=lambda p: p["mean_active"])
    assert random_all["neuron_updates"] == row["neuron_updates"]


def test_evaluate_on_a_teacher_only_folder_points_to_sne_train(run_copy: Path) -> None:
    from typer.testing import CliRunner

    from cli_checks import one_error_line

    (run_copy / "ensemble.pt").unlink()
    one_error_line(CliRunner().invoke(app, ["evaluate", str(run_copy)]),
                   f"{run_copy} holds a teacher but no students yet: train them first with 'sne train {run_copy}'")


def test_the_summary_says_when_the_ensemble_trained_with_random_students(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    run = tmp_path / "run"
    args = ["pipeline", "--run-dir", str(run), "--dataset", "digits", "--teacher-epochs", "1", "--student-epochs", "1",
            "--max-train", "200", "--max-test", "60", "--student-arch", "digits_tiny", "--time-steps", "2",
            "--no-progress", "--threads", "2", "--no-lava", "--no-activation", "--train-active", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    summary = (run / "report.md").read_text().split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "trained with 2 random students active per batch" in summary
