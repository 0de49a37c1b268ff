"""The `sne` command line: help, a tiny end-to-end pipeline, and one-line errors."""

from __future__ import annotations

import json
import shutil
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


# ---- bad input found by hand: one `error:` line, non-zero exit, no run folder left behind ----
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["pipeline", "--config", "BAD_TOML"], 1, "cannot read config file"),
        (["pipeline", "--student-epochs", "-1"], 1, "train.epochs must be >= 1, got -1"),
        (["pipeline", "--teacher-epochs", "-2"], 1, "teacher.epochs must be >= 0"),
        (["pipeline", "--student-arch", "nosuch"], 1, "unknown student 'nosuch'"),
        (["pipeline", "--teacher-arch", "nosuch"], 1, "unknown teacher 'nosuch'"),
        (["pipeline", "--threads", "-1"], 1, "train.threads must be >= 0"),
        (["pipeline", "--alpha", "nan"], 1, "ensemble.alpha must be >= 0"),
        (["pipeline", "--lava-samples", "-3"], 1, "lava.samples must be >= 0"),
        (["pipeline", "--energy", "nosuch"], 1, "unknown energy profile 'nosuch'; known: cmos45nm, loihi"),
        (["pipeline", "--energy", "MISSING.toml"], 1, "MISSING.toml"),
        (["pipeline", "--dropout-k", "4"], 1, "pipeline.dropout_k: 4 must be in 1..3"),
        (["pipeline", "--draw-batch", "0"], 1, "report.draw_batch must be >= 1, got 0"),
        (["pipeline", "--repeats", "0", "--noise", "0.1"], 1, "report.repeats must be >= 1, got 0"),
        (["pipeline", "--noise", "0.01,nan"], 1, "report.noise must be distinct finite numbers in 0..10, got [0.01, nan]"),
        (["pipeline", "--noise", "-0.1"], 1, "report.noise must be distinct finite numbers in 0..10, got [-0.1]"),
        (["pipeline", "--noise", "0.1,x"], 1, "--noise expects comma-separated numbers"),
        (["pipeline", "--lava-cascade", "0.5,-1"], 1, "lava.cascade thresholds must be numbers >= 0, got -1.0"),
        (["pipeline", "--lava-cascade", "0.5,high"], 1, "--lava-cascade expects comma-separated numbers"),
        (["pipeline", "--device", "tpu"], 1, "unknown device 'tpu'"),
        (["pipeline", "--config", "ACTIVE_TOML"], 1, "lava.active: --active '5': student index 5 out of range 0..3"),
        (["pipeline", "--config", "DATA_TOML"], 1, "config section 'data' must be a table"),
        (["pipeline", "--backend", "loihi2"], 1, "lava.backend loihi2 needs Intel's lava-loihi extension"),
        (["pipeline", "--students", "1000"], 1, "ensemble.num_students 1000 exceeds teacher digits_cnn's 64 features"),
        (["teacher", "--teacher-arch", "nosuch"], 1, "unknown teacher 'nosuch'"),
        (["pipeline", "--student-epochs", "abc"], 2, "Invalid value for '--student-epochs'"),
        (["pipeline", "--nosuch"], 2, "No such option: --nosuch"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_bad_options_fail_up_front_in_one_line(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3\n")
    (tmp_path / "active.toml").write_text('[lava]\nactive = ["all", "5"]\n')
    (tmp_path / "data.toml").write_text("data = 5\n")
    files = {"BAD_TOML": bad, "ACTIVE_TOML": tmp_path / "active.toml", "DATA_TOML": tmp_path / "data.toml"}
    run = tmp_path / "run"
    args = [str(files[a]) if a in files else a for a in args]
    result = runner.invoke(app, args + (["--run-dir", str(run)] if args[0] in ("pipeline", "teacher") else []))
    assert result.exit_code == code, result.stderr + result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not run.exists()  # nothing trained, no half-made run folder to trip over next time


def test_cuda_on_a_cpu_only_machine_is_a_one_line_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    result = runner.invoke(app, ["pipeline", "--device", "cuda", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.stderr == "error: device 'cuda' asked for but CUDA is not available here\n"


def test_train_refuses_zero_epochs_before_looking_for_a_teacher(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--run-dir", str(tmp_path), "--student-epochs", "0"])
    assert result.exit_code == 1
    assert result.stderr == "error: train.epochs must be >= 1, got 0\n"


@pytest.mark.parametrize("name", ["ensemble.pt", "teacher.pt"])
def test_evaluate_truncated_checkpoint_in_a_real_run(tiny_run: Path, tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.toml", "ensemble.pt", "teacher.pt", "partition.json"):
        shutil.copy2(tiny_run / f, run / f)
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot load checkpoint {run / name} (truncated")
    assert result.stderr.count("\n") == 1


def test_evaluate_checkpoint_with_wrong_weights_names_the_mismatch(tiny_run: Path, tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    run.mkdir()
    ckpt = torch.load(tiny_run / "ensemble.pt", weights_only=True)
    key = next(iter(ckpt["model"]))
    ckpt["model"][key] = torch.zeros(3, 3)
    torch.save(ckpt, run / "ensemble.pt")
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "do not fit" in result.stderr and f"size mismatch for {key}" in result.stderr


def test_a_resumed_pipeline_keeps_a_finished_lava_stage(tiny_run: Path, tiny_pipeline_args: list[str], tmp_path: Path) -> None:
    """--resume on a finished run keeps RUN/lava.json and its export (same ensemble, head and
    [lava] settings) and reports the earlier invocation's seconds under their own name (the
    kept training stages' loading seconds too); other Lava settings, or an export rewritten
    since, run the stage again."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # copy2: sizes and modification times, so file keys, kept
    lava_json, manifest = run / "lava.json", run / "export" / "manifest.json"
    before = (lava_json.stat().st_mtime_ns, manifest.stat().st_mtime_ns)
    earlier_s = json.loads(lava_json.read_text())["pipeline_stage"]["seconds"]
    args = ["pipeline", "--run-dir", str(run), *tiny_pipeline_args, "--resume"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "Lava stage: kept" in result.stdout
    assert (lava_json.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == before
    timings = json.loads((run / "report.json").read_text())["timings"]
    assert timings["export_and_lava_earlier_invocation"] == pytest.approx(earlier_s) and "export_and_lava" not in timings
    # the finished training stages were only loaded: their seconds are not reported as training
    assert {"setup", "teacher_kept", "students_kept"} <= set(timings) and not {"teacher", "students"} & set(timings)
    from sne_loihi.sim.stage import LAVA_SECTION

    md = (run / "report.md").read_text()
    assert LAVA_SECTION in md and "**Stale:**" not in md

    manifest.touch()  # the export was rewritten (e.g. by sne export --overwrite): simulate again
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "Lava stage: kept" not in result.stdout and lava_json.stat().st_mtime_ns != before[0]
    assert "export_and_lava" in json.loads((run / "report.json").read_text())["timings"]

    result = runner.invoke(app, [*args, "--lava-samples", "4"])  # other settings: run again
    assert result.exit_code == 0, result.stderr
    assert "Lava stage: kept" not in result.stdout
    assert json.loads(lava_json.read_text())["samples"] == 4


def test_interrupted_pipeline_resumes_from_its_checkpoint(
    tiny_pipeline_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the students' second epoch: exit 130 with a hint; --resume finishes the run
    with epochs 1 and 2 in the metrics, each once."""
    from sne_loihi.train import students as students_mod
    from sne_loihi.train.common import batch_indices

    run = tmp_path / "run"
    args = ["pipeline", "--run-dir", str(run), *tiny_pipeline_args, "--student-epochs", "2", "--no-lava"]
    calls = {"epochs": 0}

    def interrupt_in_epoch_2(n: int, batch_size: int, generator):  # noqa: ANN001, ANN202
        calls["epochs"] += generator is not None
        for i, idx in enumerate(batch_indices(n, batch_size, generator)):
            if generator is not None and calls["epochs"] == 2 and i == 1:
                raise KeyboardInterrupt
            yield idx

    monkeypatch.setattr(students_mod, "batch_indices", interrupt_in_epoch_2)
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert "rerun with --resume" in result.stderr
    assert [json.loads(x)["epoch"] for x in (run / "metrics_students.jsonl").read_text().splitlines()] == [1]
    assert not (run / "report.md").exists()

    monkeypatch.undo()
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "pass --resume" in result.stderr
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(x)["epoch"] for x in (run / "metrics_students.jsonl").read_text().splitlines()] == [1, 2]
    assert [json.loads(x)["epoch"] for x in (run / "metrics_teacher.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((run / "report.json").read_text())["evaluation"]["epochs"] == 2


def test_cifar10_folder_without_training_images_is_a_one_line_error(tmp_path: Path) -> None:
    import pickle

    import numpy as np

    folder = tmp_path / "cifar"
    folder.mkdir()
    batches = {
        "data_batch_1": {b"data": np.zeros((0, 3072), np.uint8), b"labels": []},
        "test_batch": {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]},
        "batches.meta": {b"label_names": [b"c%d" % i for i in range(10)]},
    }
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch))
    run = tmp_path / "run"
    result = runner.invoke(app, ["pipeline", "--dataset", "cifar10", "--data-dir", str(folder), "--run-dir", str(run)])
    assert result.exit_code == 1
    assert result.stderr == "error: cifar10: the data set has no training images\n"
    assert not run.exists()


def test_real_console_error_after_slayer_import_is_one_stderr_line(tiny_run: Path, tmp_path: Path) -> None:
    """In a fresh process (SLAYER's import-time messages not yet printed): the ensemble loads,
    then the teacher does not fit; stderr must hold the error line and nothing else."""
    import subprocess
    import sys

    import torch

    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.toml", "ensemble.pt", "partition.json"):
        shutil.copy2(tiny_run / f, run / f)
    ckpt = torch.load(tiny_run / "teacher.pt", weights_only=True)
    key = next(iter(ckpt["model"]))
    ckpt["model"][key] = torch.zeros(3, 3)
    torch.save(ckpt, run / "teacher.pt")
    sne = Path(sys.executable).with_name("sne")
    proc = subprocess.run([str(sne), "evaluate", str(run)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {run / 'teacher.pt'} does not fit teacher") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Prophesee" not in proc.stdout


def test_students_refuse_a_teacher_trained_on_another_split(tmp_path: Path) -> None:
    """digits has no official split: another seed would put the teacher's training images into
    the students' test set, so `sne train --seed 7` on a seed-0 teacher is refused up front."""
    run = tmp_path / "run"
    result = runner.invoke(app, ["teacher", "--run-dir", str(run), "--dataset", "digits", "--teacher-epochs", "1",
                                 "--max-train", "200", "--max-test", "50", "--no-progress"])
    assert result.exit_code == 0, result.stdout + result.stderr
    before = (run / "config.toml").read_bytes()
    refused = runner.invoke(app, ["train", "--run-dir", str(run), "--seed", "7", "--student-epochs", "1",
                                  "--student-arch", "digits_tiny", "--no-progress"])
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "split used seed 0" in refused.stderr and "seed 7" in refused.stderr
    assert not (run / "ensemble.pt").exists() and (run / "config.toml").read_bytes() == before


def test_resume_refuses_an_ensemble_distilled_from_another_teacher(tmp_path: Path) -> None:
    """ensemble.pt records the SHA-256 of the teacher it was distilled from; a run folder whose
    teacher.pt was swapped for another one does not silently continue with it."""
    import shutil

    common = ["--dataset", "digits", "--max-train", "200", "--max-test", "50", "--no-progress"]
    run, other = tmp_path / "run", tmp_path / "other"
    for folder, epochs in ((run, "1"), (other, "2")):
        result = runner.invoke(app, ["teacher", "--run-dir", str(folder), "--teacher-epochs", epochs, *common])
        assert result.exit_code == 0, result.stdout + result.stderr
    train = ["train", "--run-dir", str(run), "--student-epochs", "1", "--student-arch", "digits_tiny", "--time-steps", "2",
             "--no-progress"]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.stdout + result.stderr
    shutil.copy2(other / "teacher.pt", run / "teacher.pt")
    ensemble_before = (run / "ensemble.pt").read_bytes()
    refused = runner.invoke(app, [*train[:4], "2", *train[5:], "--resume"])
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "distilled from another teacher" in refused.stderr
    assert (run / "ensemble.pt").read_bytes() == ensemble_before


def _teachers_and_ensemble(tmp_path: Path, teacher_flags: tuple[list[str], list[str]]) -> tuple[Path, Path]:
    """Two small digits teacher runs ``a`` and ``b`` (each with its extra flags) and an ensemble
    distilled in ``a``."""
    common = ["--dataset", "digits", "--max-train", "200", "--max-test", "50", "--no-progress"]
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, flags in zip((a, b), teacher_flags):
        result = runner.invoke(app, ["teacher", "--run-dir", str(folder), *flags, *common])
        assert result.exit_code == 0, result.stdout + result.stderr
    result = runner.invoke(app, ["train", "--run-dir", str(a), "--student-epochs", "1", "--student-arch", "digits_tiny",
                                 "--time-steps", "2", "--no-progress"])
    assert result.exit_code == 0, result.stdout + result.stderr
    return a, b


def test_evaluate_refuses_an_ensemble_from_another_split(tmp_path: Path) -> None:
    """Another run's ensemble.pt (trained on the digits split of seed 0) next to a teacher of
    the seed-7 split: scoring the teacher on the ensemble's test set would reuse its training
    images, so `sne evaluate` refuses in one line."""
    import shutil

    a, b = _teachers_and_ensemble(tmp_path, (["--teacher-epochs", "1", "--seed", "0"], ["--teacher-epochs", "1", "--seed", "7"]))
    shutil.copy2(a / "ensemble.pt", b / "ensemble.pt")
    refused = runner.invoke(app, ["evaluate", str(b), "--no-activation"])
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "does not fit" in refused.stderr and "seed 7" in refused.stderr


def test_evaluate_refuses_a_swapped_teacher_of_the_same_split(tmp_path: Path) -> None:
    """A teacher retrained with the same config (same split, other weights) put in place of the
    one the ensemble was distilled from: the report would describe a teacher the students never
    saw, so `sne evaluate` refuses in one line and writes no report."""
    import shutil

    a, b = _teachers_and_ensemble(tmp_path, (["--teacher-epochs", "1"], ["--teacher-epochs", "2"]))
    shutil.copy2(b / "teacher.pt", a / "teacher.pt")
    refused = runner.invoke(app, ["evaluate", str(a), "--no-activation"])
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "is not the teacher" in refused.stderr
    assert not (a / "report.json").exists()


@pytest.mark.parametrize("command", ["pipeline", "teacher"])
def test_resume_without_a_run_folder_is_refused(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It started a fresh runs/<dataset>-<time> folder instead."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [command, "--resume", "--no-progress"])
    assert result.exit_code == 1 and result.stderr == "error: --resume continues a run folder: name it with --run-dir\n"
    assert not (tmp_path / "runs").exists()


def test_a_training_stage_is_timed_as_training_only_when_it_trained_an_epoch(tmp_path: Path) -> None:
    """The pipeline names a stage's seconds after what the stage did: an epoch record added to
    its learning curve (fresh or resumed training) or none (a finished stage only loaded)."""
    from sne_loihi.pipeline import _time_training

    metrics, timings = tmp_path / "metrics_teacher.jsonl", {}
    _time_training(timings, "teacher", metrics, lambda: metrics.write_text('{"epoch": 1}\n'))
    _time_training(timings, "students", metrics, lambda: None)
    _time_training(timings, "dropout_k2", tmp_path / "absent.jsonl", lambda: None)
    assert set(timings) == {"teacher", "students_kept", "dropout_k2_kept"}
    assert all(v >= 0 for v in timings.values())



def test_a_default_run_folder_is_claimed_by_one_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands started in the same second without --run-dir (seeds launched together) each get
    their own runs/<dataset>-<time> folder, locked while they run; a command that wrote nothing
    leaves no folder behind, and torchrun without --run-dir is refused (ranks would differ)."""
    import time

    from sne_loihi.cli.options import run_folder
    from sne_loihi.config import preset
    from sne_loihi.errors import SneError
    from sne_loihi.io import LOCK_FILE

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261207-120000")
    cfg = preset("digits")
    with run_folder(None, cfg) as first, run_folder(None, cfg) as second:
        assert (first, second) == (Path("runs/digits-20261207-120000"), Path("runs/digits-20261207-120000-2"))
        assert (first / LOCK_FILE).exists() and (second / LOCK_FILE).exists()
        (first / "config.toml").write_text("")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["digits-20261207-120000"]  # the empty one went
    assert sorted(p.name for p in first.iterdir()) == ["config.toml"]  # lock released, results kept
    with run_folder(None, cfg) as third:
        assert third == Path("runs/digits-20261207-120000-2")
    with run_folder(tmp_path / "named", cfg) as named:
        assert named == tmp_path / "named" and not named.exists()  # --run-dir: the command's wrapper locks it
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SneError, match="under torchrun name the run folder with --run-dir"), run_folder(None, cfg):
        pass
