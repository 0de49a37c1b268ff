"""Partitioning through the CLI: the pipeline's teacher fine-tuning (run, report, resume),
unequal groups sized by the capacity rule, and one-line errors for bad partition input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sne_loihi.cli import app
from sne_loihi.io import load_checkpoint
from sne_loihi.partition import Partition, group_widths

runner = CliRunner()

#: A tiny digits run without the Lava stage and the activation analysis (seconds).
FAST = ["--dataset", "digits", "--teacher-epochs", "1", "--student-epochs", "1", "--max-train", "300", "--max-test", "100",
        "--student-arch", "digits_tiny", "--time-steps", "2", "--no-progress", "--threads", "2", "--no-lava",
        "--no-activation"]


def invoke_ok(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr + result.stdout


def invoke_error(args: list[str]) -> str:
    """Run a command that must fail with one ``error: ...`` line on stderr and exit code 1."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding only a (1-epoch) digits teacher; D = 64 features."""
    run = tmp_path_factory.mktemp("teacher") / "run"
    invoke_ok(["teacher", "--run-dir", str(run), "--dataset", "digits", "--teacher-epochs", "1", "--max-train", "300",
               "--max-test", "100", "--no-progress"])
    return run


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("finetune")
    (tmp / "ft.toml").write_text("[finetune]\nbeta = -1.0\nepochs = 2\nlr = 0.001\n")
    run = tmp / "run"
    invoke_ok(["pipeline", "--run-dir", str(run), "--config", str(tmp / "ft.toml"), "--partition", "finetune", *FAST])
    return run


def test_pipeline_finetune_fine_tunes_the_teacher_and_reports_before_after(finetune_run: Path) -> None:
    summary = json.loads((finetune_run / "finetune.json").read_text())
    assert (summary["students"], summary["beta"], summary["epochs"], summary["lr"]) == (4, -1.0, 2, 0.001)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    # the saved teacher is the fine-tuned one, the original is kept
    tuned, original = load_checkpoint(finetune_run / "teacher.pt"), load_checkpoint(finetune_run / "teacher_pre_finetune.pt")
    assert tuned["finetune"]["beta"] == -1.0 and "finetune" not in original
    assert any(not torch.equal(tuned["model"][k], original["model"][k]) for k in tuned["model"])
    # settings stored in config.toml and in the checkpoints
    assert "[finetune]\nbeta = -1.0\nepochs = 2\nlr = 0.001" in (finetune_run / "config.toml").read_text()
    assert load_checkpoint(finetune_run / "ensemble.pt")["config"]["finetune"] == {"beta": -1.0, "epochs": 2, "lr": 0.001}
    part = Partition.load(finetune_run / "partition.json")
    assert part.strategy.value == "finetune" and part.groups == tuple(tuple(range(16 * j, 16 * j + 16)) for j in range(4))
    report = json.loads((finetune_run / "report.json").read_text())
    assert report["finetune"]["before"] == summary["before"] and report["finetune"]["after"] == summary["after"]
    assert report["timings"]["teacher_finetune"] > 0
    md = (finetune_run / "report.md").read_text()
    b, a = summary["before"], summary["after"]
    assert "## Teacher fine-tuning" in md
    assert f"| test accuracy (%) | {100 * b['test_accuracy']:.2f} | {100 * a['test_accuracy']:.2f} |" in md
    assert f"| L_sim (test set) | {b['l_sim']:.4f} | {a['l_sim']:.4f} |" in md


def test_pipeline_resume_does_not_redo_a_finished_finetune(finetune_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finetune_run, run)
    names = ("teacher.pt", "teacher_pre_finetune.pt", "finetune.json", "ensemble.pt")
    before = {n: (run / n).stat().st_mtime_ns for n in names}
    invoke_ok(["pipeline", "--run-dir", str(run), "--resume", "--no-progress", "--no-lava", "--no-activation"])
    assert {n: (run / n).stat().st_mtime_ns for n in names} == before


def test_the_guides_step_by_step_commands_train_the_partition_sne_partition_made(teacher_run: Path,
                                                                                  tmp_path: Path) -> None:
    """docs/getting-started.md: sne teacher, then sne partition --partition kmeans, then sne train
    (which read config.toml's partition = "fixed" and refused the kmeans partition.json)."""
    run = tmp_path / "run"
    shutil.copytree(teacher_run, run)
    invoke_ok(["partition", "--run-dir", str(run), "--partition", "kmeans", "--no-progress"])
    assert 'partition = "kmeans"' in (run / "config.toml").read_text()
    invoke_ok(["train", "--run-dir", str(run), "--student-arch", "digits_tiny", "--student-epochs", "1",
               "--time-steps", "2", "--no-progress", "--threads", "2"])
    assert Partition.from_dict(load_checkpoint(run / "ensemble.pt")["partition"]).strategy.value == "kmeans"


def test_unequal_groups_get_capacity_in_proportion_to_their_share(teacher_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(teacher_run, run)
    invoke_ok(["train", "--run-dir", str(run), "--partition", "agglomerative", "--student-arch", "digits_tiny",
               "--student-epochs", "1", "--time-steps", "2", "--no-progress", "--threads", "2"])
    ckpt = load_checkpoint(run / "ensemble.pt")
    part = Partition.from_dict(ckpt["partition"])
    assert len(set(part.sizes)) > 1, part.sizes  # agglomerative on these features gives unequal groups
    widths = group_widths(part.sizes, 1.0)
    for size, width, spec in zip(part.sizes, widths, ckpt["student_specs"]):
        hidden = [layer["out_features"] for layer in spec["layers"] if layer["kind"] != "flatten"][:-1]
        assert hidden == [max(1, round(4 * width)), max(1, round(32 * width))]  # digits_tiny: conv 4, dense 32
        assert spec["layers"][-1]["out_features"] == size
    assert sum(w * w for w in widths) == pytest.approx(len(widths))  # total cost of the equal split


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["partition", "--students", "65"], "cannot split 64 teacher features among 65 students"),
        (["partition", "--partition", "spectral"], "'spectral' is not one of fixed, agglomerative"),
        (["partition", "--partition", "balanced-kmeans", "--students", "5"], "must be divisible by the number of students (5)"),
        (["partition", "--partition", "finetune"], "needs a fine-tuned teacher"),
        (["train", "--partition", "spectral"], "'spectral' is not one of"),
        (["teacher", "finetune", "--beta", "0.5"], "finetune.beta must be a negative number"),
        (["teacher", "finetune", "--students", "65"], "features to be divisible by 65"),
    ],
)
def test_bad_partition_input_is_a_one_line_error(teacher_run: Path, tmp_path: Path, args: list[str], message: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(teacher_run, run)
    if args[0] == "teacher":
        args = ["teacher", "--run-dir", str(run), *args[1:]]
    else:
        args = [args[0], "--run-dir", str(run), *args[1:]]
    assert message in invoke_error(args)
    assert not (run / "partition.json").exists() and not (run / "finetune.json").exists()


def test_pipeline_unknown_strategy_and_bad_finetune_config(tmp_path: Path) -> None:
    assert "ensemble.partition: 'spectral' is not one of" in invoke_error(
        ["pipeline", "--run-dir", str(tmp_path / "a"), "--partition", "spectral", "--no-progress"])
    (tmp_path / "bad.toml").write_text("[finetune]\nbeta = 0.0\n")
    assert "finetune.beta must be a negative number" in invoke_error(
        ["pipeline", "--run-dir", str(tmp_path / "b"), "--config", str(tmp_path / "bad.toml"), "--no-progress"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_partition_file_that_does_not_match_the_teacher(teacher_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(teacher_run, run)
    # made for a teacher with 16 features; this teacher has 64
    Partition.from_dict({"strategy": "fixed", "feature_dim": 16, "groups": [list(range(8)), list(range(8, 16))]}).save(
        run / "partition.json")
    before = (run / "partition.json").read_bytes()
    assert "splits 16 features but the teacher has 64" in invoke_error(["partition", "--run-dir", str(run)])
    assert "splits 16 features but the teacher has 64" in invoke_error(["train", "--run-dir", str(run), "--no-progress"])
    assert (run / "partition.json").read_bytes() == before  # never overwritten
    (run / "partition.json").write_text("{not json")
    assert "cannot read partition file" in invoke_error(["partition", "--run-dir", str(run)])


def test_partition_command_stores_each_strategy(teacher_run: Path, tmp_path: Path) -> None:
    for strategy in ("fixed", "agglomerative", "kmeans", "balanced-kmeans", "balanced-optimal"):
        run = tmp_path / strategy
        shutil.copytree(teacher_run, run)
        result = runner.invoke(app, ["partition", "--run-dir", str(run), "--partition", strategy, "--students", "4"])
        assert result.exit_code == 0, result.stderr
        part = Partition.load(run / "partition.json", feature_dim=64)
        assert part.strategy.value == strategy and part.num_groups == 4
        assert f"{strategy} partition of 64 features" in result.stdout
        if strategy.startswith("balanced"):
            assert part.sizes == (16, 16, 16, 16)


def test_teacher_finetune_command_then_contiguous_partition(teacher_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(teacher_run, run)
    # an interrupted earlier fine-tune: the original was kept, teacher.pt is garbage
    shutil.copy2(run / "teacher.pt", run / "teacher_pre_finetune.pt")
    (run / "teacher.pt").write_bytes(b"half-written")
    ft = ["teacher", "--run-dir", str(run), "--no-progress", "finetune", "--students", "4", "--beta", "-1", "--finetune-epochs", "1", "--finetune-lr", "1e-3"]
    result = runner.invoke(app, ft)
    assert result.exit_code == 0, result.stderr
    summary = json.loads((run / "finetune.json").read_text())
    b, a = summary["before"], summary["after"]
    assert f"{100 * b['test_accuracy']:.2f}% -> {100 * a['test_accuracy']:.2f}%" in result.stdout
    assert load_checkpoint(run / "teacher.pt")["finetune"]["students"] == 4
    assert "already fine-tuned" in invoke_error(ft)
    assert "fine-tuned for 4 chunks, not 2 students" in invoke_error(
        ["partition", "--run-dir", str(run), "--partition", "finetune", "--students", "2"])
    invoke_ok(["partition", "--run-dir", str(run), "--partition", "finetune", "--students", "4"])
    assert Partition.load(run / "partition.json").sizes == (16, 16, 16, 16)


def test_partition_without_strategy_follows_the_run_config(teacher_run: Path, tmp_path: Path) -> None:
    """`sne partition --run-dir R` with no --partition uses R/config.toml's strategy (it used fixed)."""
    import tomli
    import tomli_w

    run = tmp_path / "config-only"
    shutil.copytree(teacher_run, run)
    (run / "partition.json").unlink(missing_ok=True)
    with open(run / "config.toml", "rb") as fh:
        tree = tomli.load(fh)
    tree["ensemble"]["partition"] = "kmeans"
    (run / "config.toml").write_text(tomli_w.dumps(tree))
    result = runner.invoke(app, ["partition", "--run-dir", str(run)])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert Partition.load(run / "partition.json", feature_dim=64).strategy.value == "kmeans"
    assert "kmeans partition of 64 features" in result.stdout


def test_finetune_keeps_its_records_consistent(teacher_run: Path, tmp_path: Path) -> None:
    """A backup left by an unfinished fine-tune is replaced when teacher.pt was retrained since
    (the fine-tune started from the old teacher and overwrote the new one); config.toml records
    the fine-tuning settings (the pipeline's --resume compares them); a partition made from the
    teacher before, options given before 'finetune', and teacher training resumed on a
    fine-tuned teacher are refused."""
    import tomli

    from sne_loihi.io import save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(teacher_run, run)
    current = (run / "teacher.pt").read_bytes()
    older = load_checkpoint(run / "teacher.pt")
    older["model"] = {k: v * 0.5 if v.is_floating_point() else v for k, v in older["model"].items()}
    save_checkpoint(run / "teacher_pre_finetune.pt", older)  # an unfinished fine-tune's backup of an older teacher
    assert "does not use --teacher-epochs" in invoke_error(
        ["teacher", "--run-dir", str(run), "--teacher-epochs", "9", "finetune", "--students", "2"])
    invoke_ok(["teacher", "--run-dir", str(run), "--no-progress", "finetune", "--students", "2", "--beta", "-0.3",
               "--finetune-epochs", "1"])
    assert (run / "teacher_pre_finetune.pt").read_bytes() == current
    stored = tomli.loads((run / "config.toml").read_text())
    assert (stored["finetune"]["beta"], stored["finetune"]["epochs"], stored["ensemble"]["num_students"]) == (-0.3, 1, 2)
    assert "would undo the fine-tuning" in invoke_error(
        ["teacher", "--run-dir", str(run), "--resume", "--teacher-epochs", "3", "--no-progress"])
    other = tmp_path / "other"
    shutil.copytree(teacher_run, other)
    invoke_ok(["partition", "--run-dir", str(other), "--no-progress"])
    assert "was computed from this teacher before fine-tuning" in invoke_error(
        ["teacher", "--run-dir", str(other), "finetune", "--students", "2"])
