"""Distillation of a teacher into the student ensemble (method.md sections 3 and 5)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from sne_loihi.config import RunConfig
from sne_loihi.data import Dataset, augment_nchw
from sne_loihi.ensemble import LossTerms, ensemble_loss, scale_features
from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE, build_ensemble, ensemble_extra
from sne_loihi.ensemble.evaluate import evaluate_ensemble
from sne_loihi.errors import ConfigError
from sne_loihi.partition import Partition
from sne_loihi.train.checks import check_config
from sne_loihi.train.common import (
    append_jsonl,
    batch_indices,
    make_optimizer,
    resolve_device,
    restore_or_start,
    save_epoch_checkpoint,
    seed_everything,
    keep_freed_memory,
    set_threads,
)

STUDENT_METRICS = "metrics_students.jsonl"


@dataclass
class StudentsResult:
    """The trained ensemble, its history and checkpoint path."""

    model: nn.Module
    history: list[dict[str, Any]]
    path: Path


def random_active(num_students: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``[N]`` bool mask with ``k`` students drawn without replacement (``k = 0``: all)."""
    mask = torch.zeros(num_students, dtype=torch.bool)
    if k <= 0 or k >= num_students:
        mask[:] = True
    else:
        mask[torch.randperm(num_students, generator=generator)[:k]] = True
    return mask


def distill_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x_nchw: torch.Tensor,
    y: torch.Tensor,
    active_n: torch.Tensor,
    *,
    teacher: nn.Module | None,
    feature_scale: torch.Tensor,
    groups: list[list[int]],
    alpha: float,
) -> tuple[LossTerms, torch.Tensor]:
    """One optimisation step of the ensemble on a batch (also what ``benchmarks/bench_train.py``
    times): teacher features as targets, students with the ``active_n`` mask, loss, update.

    Returns:
        ``(loss terms, logits [B, classes])``.
    """
    targets = None
    if teacher is not None and alpha > 0:
        with torch.no_grad():
            targets = scale_features(teacher.features(x_nchw), feature_scale)
    out = model(x_nchw, active_n.to(x_nchw.device))
    terms = ensemble_loss(out.logits, y, out.rates, targets, groups, alpha, active_n.tolist())
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return terms, out.logits


def train_students(
    cfg: RunConfig,
    data: Dataset,
    teacher: nn.Module | None,
    partition: Partition,
    feature_scale: torch.Tensor,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> StudentsResult:
    """Train the ensemble with ``L = CE + alpha * sum_i MSE(f_T^(i), f_S^(i))``.

    Teacher features are computed on the same (augmented) batch the students see, scaled by
    ``feature_scale`` into [0, 1]. With ``ensemble.train_active = K > 0`` each batch activates
    K random students (dropout training); the others output zeros and get no KD term.
    ``provenance`` (e.g. the teacher file's SHA-256) is stored in every checkpoint.

    Raises:
        ConfigError: Impossible options (K > N, alpha < 0, distillation without a teacher).
        CheckpointError: ``ensemble.pt`` exists without ``resume``, or does not match.
    """
    check_config(cfg)
    ecfg, tcfg = cfg.ensemble, cfg.train
    if ecfg.alpha > 0 and teacher is None:
        raise ConfigError("alpha > 0 needs a teacher")
    if ecfg.train_active > partition.num_groups:
        raise ConfigError(f"--train-active {ecfg.train_active} exceeds the {partition.num_groups} students")
    device = resolve_device(tcfg.device)
    set_threads(tcfg.threads)
    if device.type == "cpu":
        keep_freed_memory()
    gen = seed_everything(tcfg.seed)
    run_dir = Path(run_dir)
    path, metrics = run_dir / ENSEMBLE_FILE, run_dir / STUDENT_METRICS
    model = build_ensemble(cfg.student, partition, data.in_shape, data.num_classes).to(device)
    optimizer = make_optimizer(tcfg.optimizer, model.parameters(), tcfg.lr, tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(tcfg.epochs, 1))
    state = restore_or_start(
        path, cfg.to_dict(), resume=resume, model=model, optimizer=optimizer, scheduler=sched,
        generator=gen, metrics=metrics, epochs=tcfg.epochs,
    )
    if teacher is not None:
        teacher.to(device).eval()
    groups = partition.groups
    extra = {**ensemble_extra(model, partition, feature_scale, data.in_shape, data.num_classes, data.class_names),
             **(provenance or {})}
    n_batches = -(-len(data.x_train_nchw) // tcfg.batch_size)
    bar = tqdm(
        total=tcfg.epochs * n_batches,
        initial=state.epoch * n_batches,
        desc=f"students {partition.num_groups}x{cfg.student.arch}",
        disable=not progress,
        unit="batch",
    )
    for epoch in range(state.epoch, tcfg.epochs):
        model.train()
        seen, sums = 0, {"loss": 0.0, "ce": 0.0, "kd": 0.0, "correct": 0.0}
        for idx in batch_indices(len(data.x_train_nchw), tcfg.batch_size, gen):
            x = data.x_train_nchw[idx]
            if cfg.data.augment:
                x = augment_nchw(x, gen)
            x, y = x.to(device), data.y_train[idx].to(device)
            active = random_active(partition.num_groups, ecfg.train_active, gen)
            terms, logits = distill_step(
                model, optimizer, x, y, active, teacher=teacher, feature_scale=feature_scale, groups=groups,
                alpha=ecfg.alpha,
            )
            n = len(idx)
            seen += n
            sums["loss"] += float(terms.total.detach()) * n
            sums["ce"] += terms.ce * n
            sums["kd"] += terms.kd * n
            sums["correct"] += float((logits.argmax(-1) == y).sum())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{sums['loss'] / seen:.3f}", kd=f"{sums['kd'] / seen:.4f}")
        sched.step()
        evaluation = evaluate_ensemble(
            model, data.x_test_nchw, data.y_test, active=_eval_active(ecfg.train_active, partition.num_groups),
            batch_size=tcfg.batch_size, count_ops=False,  # SLAYER: 256 is ~40% slower per sample than 64
        )
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / seen,
            "ce": sums["ce"] / seen,
            "kd": sums["kd"] / seen,
            "train_accuracy": sums["correct"] / seen,
            "test_accuracy": evaluation.accuracy,
            "lr": sched.get_last_lr()[0],
        }
        state.epoch, state.history = epoch + 1, state.history + [record]
        append_jsonl(metrics, record)
        save_epoch_checkpoint(
            path, config=cfg.to_dict(), model=model, optimizer=optimizer, state=state,
            generator=gen, extra={"scheduler": sched.state_dict(), **extra},
        )
    bar.close()
    model.eval()
    return StudentsResult(model, state.history, path)


def _eval_active(train_active: int, num_students: int) -> int:
    """Dropout-trained ensembles are evaluated with the same K (method.md section 5)."""
    return train_active if 0 < train_active < num_students else num_students
