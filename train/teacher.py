"""Teacher training (cross-entropy) with epoch checkpoints and resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.run import Run
from sne_loihi.data import Dataset
from sne_loihi.distributed import amp_in_use, autocast, backward_step, grad_scaler
from sne_loihi.teachers import build_teacher
from sne_loihi.teachers.checkpoint import TEACHER_FILE, load_teacher  # noqa: F401  (TEACHER_FILE: re-exported)
from sne_loihi.checks import check_config
from sne_loihi.config import FlipMode, TestTimeAugment
from sne_loihi.io import load_checkpoint
from sne_loihi.run_files import TEACHER_METRICS
from sne_loihi.train.common import TEACHER_RESUME_MAY_CHANGE, batch_indices, recalibrate_batchnorm, sharded_accuracy
from sne_loihi.train.loop import EpochCheckpoints, epoch_bar, start_optimisation, start_training
from sne_loihi.train.teacher_recipe import (
    AlternatingFlips,
    Lookahead,
    param_groups,
    steps_per_epoch,
    teacher_augmenter,
    tta_forward,
)


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
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One cross-entropy optimisation step (also what ``benchmarks/bench_train.py`` times).

    Args:
        loss_weight: Factor on the loss before ``backward`` (a rank's share of the global
            batch, :meth:`~sne_loihi.distributed.DistContext.loss_weight`); ``None``: none.
        amp: Forward pass in mixed precision (:func:`sne_loihi.distributed.autocast`).
        scaler: Loss scaler for float16 AMP (:func:`sne_loihi.distributed.grad_scaler`).
        label_smoothing: Cross-entropy label smoothing.

    Returns:
        ``(loss, logits [B, classes])`` (the unweighted mean loss over ``x_nchw``).
    """
    with autocast(x_nchw.device, amp):
        logits = model(x_nchw)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    backward_step(loss if loss_weight is None else loss * loss_weight, optimizer, scaler)
    return loss, logits


def train_teacher(
    run: Run,
    *,
    resume: bool = False,
    progress: bool = True,
    data: Dataset | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TeacherResult:
    """Train the run config's teacher with cross-entropy; checkpoint every epoch to ``RUN/teacher.pt``.

    The ``teacher.*`` recipe keys (:mod:`sne_loihi.train.teacher_recipe`) add airbench's
    tricks. A model with ``init_whitening(x_train_nchw)`` gets it before the first epoch of a
    fresh run (never on resume: the checkpoint holds the result); one with
    ``set_epoch(epoch)`` is told each epoch before it starts. With ``teacher.tta`` the last
    epoch's record also holds ``test_accuracy_tta``, which is then the result's accuracy.

    Args:
        run: The run (its config's teacher section and train.seed/device/threads are used).
        resume: Continue an interrupted run from its last epoch checkpoint.
        progress: Show a progress bar.
        data: The data set; ``None``: the run's (:meth:`~sne_loihi.run.Run.data`).
        on_epoch: Called with each epoch's record after its checkpoint is written (rank 0).

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
    if tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_train = len(data.x_train_nchw)
    fresh = not path.exists()
    if fresh and hasattr(model, "init_whitening"):
        model.init_whitening(data.x_train_nchw)
    steps = steps_per_epoch(n_train, tcfg.batch_size)
    opt = start_optimisation(
        tcfg, model, path, cfg.to_dict(), resume=resume, start=start, metrics=metrics,
        params=param_groups(model, tcfg.lr, tcfg.weight_decay, tcfg.bias_lr_scale), momentum=tcfg.momentum,
        schedule=tcfg.schedule, steps_per_epoch=steps, warmup_fraction=tcfg.warmup_fraction,
        may_change=TEACHER_RESUME_MAY_CHANGE,
    )
    dist.check_last_batch(n_train, tcfg.batch_size, "teacher training")
    lookahead = Lookahead(model, tcfg.lookahead_every, tcfg.epochs * steps) if tcfg.lookahead_every else None
    if lookahead is not None and not fresh:
        lookahead.load_state_dict(load_checkpoint(path)["lookahead"])
    ddp = dist.wrap(model, device)
    amp = amp_in_use(device, tcfg.amp)  # float32 on a CPU without bfloat16 kernels (it says so)
    scaler = grad_scaler(device, amp)
    extra = {**_meta(data), **({"lookahead": lookahead.state} if lookahead is not None else {})}
    checkpoints = EpochCheckpoints(path, metrics, cfg.to_dict(), model, opt, start, extra)
    augment = teacher_augmenter(tcfg, cfg.data.augment, gen)
    flips = AlternatingFlips(data.x_train_nchw, cfg.train.seed) if (
        cfg.data.augment and FlipMode(tcfg.flip) is FlipMode.ALTERNATING) else None
    bar = epoch_bar(n_train, tcfg, opt.state.epoch, f"teacher {tcfg.arch}", progress and dist.is_main)
    for epoch in range(opt.state.epoch, tcfg.epochs):
        if hasattr(model, "set_epoch"):
            model.set_epoch(epoch)
        model.train()
        sums = {"seen": 0.0, "loss": 0.0, "correct": 0.0}
        order = batch_indices(n_train, tcfg.batch_size, gen)
        images = flips.view(epoch) if flips is not None else data.x_train_nchw
        with dist.training(model):
            for i, (shard, x, y) in enumerate(dist.batches(order, images, data.y_train, device, augment)):
                if tcfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                loss, logits = teacher_step(ddp, opt.optimizer, x, y, loss_weight=dist.loss_weight(shard),
                                            amp=amp, scaler=scaler, label_smoothing=tcfg.label_smoothing)
                if opt.per_step:
                    opt.scheduler.step()
                if lookahead is not None:
                    lookahead.step(model, epoch * steps + i + 1)
                sums["seen"] += len(shard)
                sums["loss"] += float(loss.detach()) * len(shard)
                sums["correct"] += int((logits.argmax(-1) == y).sum())
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{sums['loss'] / sums['seen']:.3f}")
        if not opt.per_step:
            opt.scheduler.step()
        last = epoch + 1 == tcfg.epochs
        if lookahead is not None and last:
            lookahead.finish(model)
        recalibrate_batchnorm(model, data.x_train_nchw, 256, device)
        model.eval()
        sums = dist.sum(sums, device)
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / sums["seen"],
            "train_accuracy": sums["correct"] / sums["seen"],
            "test_accuracy": sharded_accuracy(model, data.x_test_nchw, data.y_test, 256, device, dist),
            "lr": opt.scheduler.get_last_lr()[0],
            "amp": amp,
            **dist.record(),
        }
        if last and TestTimeAugment(tcfg.tta) is not TestTimeAugment.NONE:
            record["test_accuracy_tta"] = _tta_accuracy(model, data, tcfg.tta, device, dist)
        checkpoints.end_epoch(record)
        if on_epoch is not None and dist.is_main:
            on_epoch(record)
    bar.close()
    if dist.is_main and not path.exists():  # zero epochs (e.g. a user's pre-trained external teacher)
        opt.state.history = []
        checkpoints.save()
    dist.barrier()  # the checkpoint is on disk before any rank goes on to read it
    model.eval()
    history = opt.state.history
    if history and history[-1]["epoch"] == tcfg.epochs and "test_accuracy_tta" in history[-1]:
        test_acc = history[-1]["test_accuracy_tta"]
    else:
        test_acc = _tta_accuracy(model, data, tcfg.tta, device, dist)
    return TeacherResult(model, test_acc, history, path)


def _tta_accuracy(model: nn.Module, data: Dataset, tta: TestTimeAugment, device: torch.device, dist: Any) -> float:
    """Test accuracy of ``model`` (eval mode) with the logits averaged over ``tta``'s views."""
    return sharded_accuracy(tta_forward(model, tta), data.x_test_nchw, data.y_test, 256, device, dist)


@torch.no_grad()
def teacher_features(
    model: nn.Module, x_nchw: torch.Tensor, batch_size: int = 256, device: torch.device | None = None
) -> torch.Tensor:
    """f_T for every sample, computed in batches (CPU result ``[N, D]``)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model.features(x_nchw[idx].to(device)).float().cpu() for idx in batch_indices(len(x_nchw), batch_size, None)]
    return torch.cat(out)
