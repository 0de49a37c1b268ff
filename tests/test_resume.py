"""Resume after an interrupted run: the teacher and the student loops are really interrupted
(KeyboardInterrupt in the middle of epoch 2, or between the metrics line and the checkpoint of
epoch 2), then resumed; the result must equal an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sne_loihi.config import DataConfig, RunConfig, StudentConfig, TeacherConfig, TrainConfig
from sne_loihi.errors import CheckpointError
from sne_loihi.io import load_checkpoint
from sne_loihi.run import Run, load_data
from sne_loihi.train.stages import students_stage
from sne_loihi.train import loop as loop_mod
from sne_loihi.train import students as students_mod
from sne_loihi.train import teacher as teacher_mod
from sne_loihi.train.common import batch_indices, retarget_cosine
from sne_loihi.train.teacher import TEACHER_FILE, TEACHER_METRICS, train_teacher

EPOCHS = 3


def _cfg() -> RunConfig:
    return RunConfig(
        data=DataConfig(max_train=160, max_test=60),
        teacher=TeacherConfig(epochs=EPOCHS, batch_size=32),
        student=StudentConfig(arch="digits_tiny", time_steps=2),
        train=TrainConfig(epochs=EPOCHS, batch_size=32, device="cpu", threads=1),
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _untimed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without their wall seconds (which every epoch has, and which differ
    between an interrupted run and one that was not)."""
    assert all(r["seconds"] >= 0 and r["cpu_seconds"] >= 0 for r in records)
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in records]


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _interrupt_in_epoch(epoch: int, batch: int) -> Any:
    """A ``batch_indices`` that raises KeyboardInterrupt at ``batch`` of training ``epoch``
    (1-based; only shuffled calls, i.e. training epochs, are counted)."""
    calls = {"epochs": 0}

    def patched(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        if generator is not None:
            calls["epochs"] += 1
        for i, idx in enumerate(batch_indices(n, batch_size, generator)):
            if generator is not None and calls["epochs"] == epoch and i == batch - 1:
                raise KeyboardInterrupt
            yield idx

    return patched


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted teacher + students run (the same seed as the interrupted ones)."""
    run = tmp_path_factory.mktemp("resume") / "reference"
    cfg = _cfg()
    train_teacher(Run(run, cfg), progress=False)
    students_stage(Run(run, cfg), resume=False, progress=False)
    return run


def test_teacher_interrupted_mid_epoch_resumes_to_the_same_result(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, run = _cfg(), tmp_path / "run"
    data = load_data(cfg)
    monkeypatch.setattr(teacher_mod, "batch_indices", _interrupt_in_epoch(epoch=2, batch=3))
    with pytest.raises(KeyboardInterrupt):
        train_teacher(Run(run, cfg), progress=False, data=data)
    monkeypatch.undo()
    assert load_checkpoint(run / TEACHER_FILE)["epoch"] == 1
    assert [r["epoch"] for r in _lines(run / TEACHER_METRICS)] == [1]

    with pytest.raises(CheckpointError, match="pass --resume"):
        train_teacher(Run(run, cfg), progress=False, data=data)
    result = train_teacher(Run(run, cfg), resume=True, progress=False, data=data)

    expected = _lines(reference / TEACHER_METRICS)
    assert [r["epoch"] for r in expected] == list(range(1, EPOCHS + 1))
    assert _untimed(_lines(run / TEACHER_METRICS)) == _untimed(expected)  # continued, earlier line kept, none twice
    assert result.history == _lines(run / TEACHER_METRICS)
    got, want = load_checkpoint(run / TEACHER_FILE), load_checkpoint(reference / TEACHER_FILE)
    assert got["epoch"] == EPOCHS
    _same_state(got["model"], want["model"])
    assert torch.equal(got["rng"]["data"], want["rng"]["data"])
    assert torch.equal(got["rng"]["torch"], want["rng"]["torch"])


def test_students_interrupted_before_the_checkpoint_resume_without_duplicate_lines(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after epoch 2's metrics line but before its checkpoint: resume restarts
    epoch 2 from epoch 1's checkpoint and the stray line is not kept twice."""
    cfg, run = _cfg(), tmp_path / "run"
    run.mkdir()
    shutil.copy2(reference / TEACHER_FILE, run / TEACHER_FILE)
    real_save = loop_mod.save_epoch_checkpoint  # the training loops' epoch end (train/loop.py)

    def save_then_stop(path: Path, **kw: Any) -> None:
        if kw["state"].epoch == 2:
            raise KeyboardInterrupt
        real_save(path, **kw)

    monkeypatch.setattr(loop_mod, "save_epoch_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        students_stage(Run(run, cfg), resume=False, progress=False)
    monkeypatch.undo()
    metrics = run / students_mod.STUDENT_METRICS
    assert [r["epoch"] for r in _lines(metrics)] == [1, 2]
    assert load_checkpoint(run / "ensemble.pt")["epoch"] == 1

    result = students_stage(Run(run, cfg), resume=True, progress=False)
    expected = _lines(reference / students_mod.STUDENT_METRICS)
    assert [r["epoch"] for r in expected] == list(range(1, EPOCHS + 1))
    assert _untimed(_lines(metrics)) == _untimed(expected)
    assert result.history == _lines(metrics)
    got, want = load_checkpoint(run / "ensemble.pt"), load_checkpoint(reference / "ensemble.pt")
    _same_state(got["model"], want["model"])
    assert got["scheduler"] == want["scheduler"]


def test_students_interrupted_mid_epoch_resume(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, run = _cfg(), tmp_path / "run"
    run.mkdir()
    shutil.copy2(reference / TEACHER_FILE, run / TEACHER_FILE)
    monkeypatch.setattr(students_mod, "batch_indices", _interrupt_in_epoch(epoch=3, batch=2))
    with pytest.raises(KeyboardInterrupt):
        students_stage(Run(run, cfg), resume=False, progress=False)
    monkeypatch.undo()
    assert load_checkpoint(run / "ensemble.pt")["epoch"] == 2
    students_stage(Run(run, cfg), resume=True, progress=False)
    assert _untimed(_lines(run / students_mod.STUDENT_METRICS)) == _untimed(_lines(reference / students_mod.STUDENT_METRICS))
    _same_state(load_checkpoint(run / "ensemble.pt")["model"], load_checkpoint(reference / "ensemble.pt")["model"])


def test_resume_refuses_a_different_config(reference: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    cfg = _cfg()
    cfg.train.lr = 1e-2
    with pytest.raises(CheckpointError, match="config differs in train.lr"):
        students_stage(Run(run, cfg), resume=True, progress=False)


def _contents(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_resume_refuses_fewer_epochs_than_done_and_writes_nothing(reference: Path, tmp_path: Path) -> None:
    """A budget below the epochs a checkpoint has trained cannot be honoured: the students'
    and the teacher's resume are refused in one line, before config.toml or a metrics file is
    rewritten (before, both went on and config.toml recorded the smaller budget)."""
    import dataclasses

    from sne_loihi.train.stages import prepare_run_dir

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = _contents(run)
    assert "config.toml" in before and students_mod.STUDENT_METRICS in before
    cfg = _cfg()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=EPOCHS - 1))
    with pytest.raises(CheckpointError, match=f"already trained {EPOCHS} epochs, more than train.epochs = {EPOCHS - 1}"
                       ) as info:
        students_stage(Run(run, cfg), resume=True, progress=False)
    assert "\n" not in str(info.value)
    cfg = _cfg()
    cfg = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, epochs=EPOCHS - 1))
    with pytest.raises(CheckpointError, match=f"already trained {EPOCHS} epochs, more than teacher.epochs"):
        prepare_run_dir(Run(run, cfg), resume=True, checkpoints=(TEACHER_FILE,))  # sne teacher's check
    with pytest.raises(CheckpointError, match=f"already trained {EPOCHS} epochs"):
        train_teacher(Run(run, cfg), resume=True, progress=False)  # the loop's own check
    assert _contents(run) == before
    cfg = _cfg()  # the budget it was trained with still resumes (nothing left to do)
    assert len(students_stage(Run(run, cfg), resume=True, progress=False).history) == EPOCHS


def test_resume_may_extend_the_budget_and_change_threads(reference: Path, tmp_path: Path) -> None:
    """A finished 3-epoch run resumed with 5 epochs (and other threads / Lava settings) keeps
    epochs 1-3 and trains 4-5 on the cosine of the new budget (not climbing back up)."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    cfg = _cfg()
    cfg.train.epochs, cfg.train.threads, cfg.lava.samples = 5, 2, 7
    result = students_stage(Run(run, cfg), resume=True, progress=False)
    old = _lines(reference / students_mod.STUDENT_METRICS)
    lines = _lines(run / students_mod.STUDENT_METRICS)
    assert lines[:EPOCHS] == old and [r["epoch"] for r in lines] == [1, 2, 3, 4, 5]
    assert result.history == lines
    base = cfg.train.lr
    assert lines[3]["lr"] == pytest.approx(base * (1 + math.cos(math.pi * 4 / 5)) / 2, rel=1e-9)
    assert lines[4]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_retarget_cosine_follows_the_closed_form_of_the_new_budget() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    for _ in range(2):
        opt.step()
        sched.step()
    retarget_cosine(sched, 6)
    for epoch in range(2, 7):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * epoch / 6)), abs=1e-12)
        opt.step()
        sched.step()


def _drop_finetune_section(path: Path) -> None:
    """Rewrite a checkpoint as if written before the ``[finetune]`` section existed."""
    from sne_loihi.io import save_checkpoint

    ckpt = load_checkpoint(path)
    del ckpt["config"]["finetune"]
    save_checkpoint(path, ckpt)


def test_a_checkpoint_older_than_a_config_section_resumes_at_its_defaults(reference: Path, tmp_path: Path) -> None:
    """Keys a checkpoint predates count as their defaults: resuming with defaults works, and a
    non-default value of such a key is still refused."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    _drop_finetune_section(run / "ensemble.pt")
    result = students_stage(Run(run, _cfg()), resume=True, progress=False)
    assert [r["epoch"] for r in result.history] == list(range(1, EPOCHS + 1))
    cfg = _cfg()
    cfg.finetune.beta = -1.0
    with pytest.raises(CheckpointError, match="config differs in finetune.beta"):
        students_stage(Run(run, cfg), resume=True, progress=False)


def test_a_finished_teacher_is_reused_when_only_the_student_recipe_changed(reference: Path, tmp_path: Path) -> None:
    """The teacher's checkpoint is compared on what the teacher's training reads: a later
    student key (here train.translate, lr and epochs, the student's T) does not make it
    stale; a teacher key or the seed does."""
    import dataclasses

    run = tmp_path / "run"
    run.mkdir()
    for name in (TEACHER_FILE, TEACHER_METRICS):
        shutil.copy2(reference / name, run / name)
    before = (run / TEACHER_FILE).read_bytes()
    cfg = _cfg()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, translate=2, lr=1e-3, epochs=7),
                              student=dataclasses.replace(cfg.student, time_steps=3))
    result = train_teacher(Run(run, cfg), resume=True, progress=False)
    assert (run / TEACHER_FILE).read_bytes() == before and len(result.history) == EPOCHS
    from sne_loihi.train.stages import check_resumable, prepare_run_dir

    assert check_resumable(run / TEACHER_FILE, cfg, resume=True, teacher=True)["epoch"] == EPOCHS
    prepare_run_dir(Run(run, cfg), resume=True, checkpoints=(TEACHER_FILE,))  # the pipeline's check before it writes
    with pytest.raises(CheckpointError, match="train.translate"):  # as a student checkpoint it would be stale
        check_resumable(run / TEACHER_FILE, cfg, resume=True)
    for changed in (dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, lr=0.5)),
                    dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=7))):
        with pytest.raises(CheckpointError, match="its config differs in (teacher.lr|train.seed)"):
            train_teacher(Run(run, changed), resume=True, progress=False)
