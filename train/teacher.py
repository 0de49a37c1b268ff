"""Teacher training (cross-entropy) with epoch checkpoints and resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.run import Run
from sne_loihi.data import Dataset
from sne_loihi.distributed import autocast, backward_step, grad_scaler
from sne_loihi.teachers import build_teacher
from sne_loihi.teachers.checkpoint import TEACHER_FILE, load_teacher  # noqa: F401  (TEACHER_FILE: re-exported)
from sne_loihi.checks import check_config
from sne_loihi.train.common import batch_indices, recalibrate_batchnorm, sharded_accuracy
from sne_loihi.train.loop import EpochCheckpoints, augmenter, epoch_bar, start_optimisation, start_training

TEACHER_METRICS = "metrics_teacher.jsonl"


@dataclass
class TeacherResult:
    """A trained (or loaded) teacher and its test accuracy."""

    model: nn.Module
    test_accuracy: float
    history: list[dict[str, Any]]
    path: Path


def _meta(data: Dataset) -> dict[str, Any]:
    return {
        "in_shape": list(data.in_shape),
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "dataset": data.name,
    }


def teacher_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x_nchw: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_weight: float | None = None,
    amp: bool = False,
    scaler: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One cross-entropy optimisation step (also what ``benchmarks/bench_train.py`` times).

    Args:
        loss_weight: Factor on the loss before ``backward`` (a rank's share of the global
            batch, :meth:`~sne_loihi.distributed.DistContext.loss_weight`); ``None``: none.
        amp: Forward pass in mixed precision (:func:`sne_loihi.distributed.autocast`).
        scaler: Loss scaler for float16 AMP (:func:`sne_loihi.distributed.grad_scaler`).

    Returns:
        ``(loss, logits [B, classes])`` (the unweighted mean loss over ``x_nchw``).
    """
    with autocast(x_nchw.device, amp):
        logits = model(x_nchw)
        loss = F.cross_entropy(logits, y)
    backward_step(loss if loss_weight is None else loss * loss_weight, optimizer, scaler)
    return loss, logits


def train_teacher(run: Run, *, resume: bool = False, progress: bool = True, data: Dataset | None = None) -> TeacherResult:
    """Train the run config's teacher with cross-entropy; checkpoint every epoch to ``RUN/teacher.pt``.

    Args:
        run: The run (its config's teacher section and train.seed/device/threads are used).
        resume: Continue an interrupted run from its last epoch checkpoint.
        progress: Show a progress bar.
        data: The data set; ``None``: the run's (:meth:`~sne_loihi.run.Run.data`).

    Raises:
        CheckpointError: ``teacher.pt`` exists and ``resume`` is False, or it does not
            match the config.
    """
    cfg = run.config
    data = data if data is not None else run.data()
    check_config(cfg)
    tcfg = cfg.teacher
    start = start_training(cfg.train.device, cfg.train.threads, cfg.train.seed)
    device, dist, gen = start.device, start.dist, start.generator
    path, metrics = run.dir / TEACHER_FILE, run.dir / TEACHER_METRICS
    model = build_teacher(tcfg, data.in_shape, data.num_classes).to(device)
    opt = start_optimisation(tcfg, model, path, cfg.to_dict(), resume=resume, start=start, metrics=metrics)
    dist.check_last_batch(len(data.x_train_nchw), tcfg.batch_size, "teacher training")
    ddp = dist.wrap(model, device)
    scaler = grad_scaler(device, tcfg.amp)
    checkpoints = EpochCheckpoints(path, metrics, cfg.to_dict(), model, opt, start, _meta(data))
    augment = augmenter(cfg.data.augment, gen)
    bar = epoch_bar(len(data.x_train_nchw), tcfg, opt.state.epoch, f"teacher {tcfg.arch}", progress and dist.is_main)
    for epoch in range(opt.state.epoch, tcfg.epochs):
        model.train()
        sums = {"seen": 0.0, "loss": 0.0, "correct": 0.0}
        order = batch_indices(len(data.x_train_nchw), tcfg.batch_size, gen)
        with dist.training(model):
            for shard, x, y in dist.batches(order, data.x_train_nchw, data.y_train, device, augment):
                loss, logits = teacher_step(ddp, opt.optimizer, x, y, loss_weight=dist.loss_weight(shard),
                                            amp=tcfg.amp, scaler=scaler)
                sums["seen"] += len(shard)
                sums["loss"] += float(loss.detach()) * len(shard)
                sums["correct"] += int((logits.argmax(-1) == y).sum())
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{sums['loss'] / sums['seen']:.3f}")
        opt.scheduler.step()
        recalibrate_batchnorm(model, data.x_train_nchw, 256, device)
        model.eval()
        sums = dist.sum(sums, device)
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / sums["seen"],
            "train_accuracy": sums["correct"] / sums["seen"],
            "test_accuracy": sharded_accuracy(model, data.x_test_nchw, data.y_test, 256, device, dist),
            "lr": opt.scheduler.get_last_lr()[0],
            **dist.record(),
        }
        checkpoints.end_epoch(record)
    bar.close()
    if dist.is_main and not path.exists():  # zero epochs (e.g. a user's pre-trained external teacher)
        opt.state.history = []
        checkpoints.save()
    dist.barrier()  # the checkpoint is on disk before any rank goes on to read it
    model.eval()
    test_acc = sharded_accuracy(model, data.x_test_nchw, data.y_test, 256, device, dist)
    return TeacherResult(model, test_acc, opt.state.history, path)


@torch.no_grad()
def teacher_features(
    model: nn.Module, x_nchw: torch.Tensor, batch_size: int = 256, device: torch.device | None = None
) -> torch.Tensor:
    """f_T for every sample, computed in batches (CPU result ``[N, D]``)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model.features(x_nchw[idx].to(device)).float().cpu() for idx in batch_indices(len(x_nchw), batch_size, None)]
    return torch.cat(out)
