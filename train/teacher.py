"""Teacher training (cross-entropy) with epoch checkpoints and resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sne_loihi.config import RunConfig
from sne_loihi.data import Dataset, augment_nchw
from sne_loihi.errors import CheckpointError, one_line
from sne_loihi.io import load_checkpoint
from sne_loihi.teachers import EXTERNAL, build_teacher
from sne_loihi.teachers.external import require_trusted_factory
from sne_loihi.train.checks import check_config
from sne_loihi.train.common import (
    accuracy,
    append_jsonl,
    batch_indices,
    make_optimizer,
    predict_logits,
    recalibrate_batchnorm,
    resolve_device,
    restore_or_start,
    save_epoch_checkpoint,
    seed_everything,
    keep_freed_memory,
    set_threads,
)

TEACHER_FILE = "teacher.pt"
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
    model: nn.Module, optimizer: torch.optim.Optimizer, x_nchw: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One cross-entropy optimisation step (also what ``benchmarks/bench_train.py`` times).

    Returns:
        ``(loss, logits [B, classes])``.
    """
    logits = model(x_nchw)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def train_teacher(
    cfg: RunConfig,
    data: Dataset,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TeacherResult:
    """Train ``cfg.teacher`` with cross-entropy; checkpoint every epoch to ``RUN/teacher.pt``.

    Args:
        cfg: Resolved run config (teacher section and train.seed/device/threads are used).
        data: The data set.
        run_dir: Run folder.
        resume: Continue an interrupted run from its last epoch checkpoint.

    Raises:
        CheckpointError: ``teacher.pt`` exists and ``resume`` is False, or it does not
            match the config.
    """
    check_config(cfg)
    tcfg = cfg.teacher
    device = resolve_device(cfg.train.device)
    set_threads(cfg.train.threads)
    if device.type == "cpu":
        keep_freed_memory()
    gen = seed_everything(cfg.train.seed)
    path = Path(run_dir) / TEACHER_FILE
    metrics = Path(run_dir) / TEACHER_METRICS
    model = build_teacher(tcfg, data.in_shape, data.num_classes).to(device)
    optimizer = make_optimizer(tcfg.optimizer, model.parameters(), tcfg.lr, tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(tcfg.epochs, 1))
    state = restore_or_start(
        path, cfg.to_dict(), resume=resume, model=model, optimizer=optimizer, scheduler=sched,
        generator=gen, metrics=metrics, epochs=tcfg.epochs,
    )

    n_batches = -(-len(data.x_train_nchw) // tcfg.batch_size)
    bar = tqdm(
        total=tcfg.epochs * n_batches,
        initial=state.epoch * n_batches,
        desc=f"teacher {tcfg.arch}",
        disable=not progress,
        unit="batch",
    )
    for epoch in range(state.epoch, tcfg.epochs):
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        for idx in batch_indices(len(data.x_train_nchw), tcfg.batch_size, gen):
            x = data.x_train_nchw[idx]
            if cfg.data.augment:
                x = augment_nchw(x, gen)
            x, y = x.to(device), data.y_train[idx].to(device)
            loss, logits = teacher_step(model, optimizer, x, y)
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}")
        sched.step()
        recalibrate_batchnorm(model, data.x_train_nchw, 256, device)
        model.eval()
        test_acc = accuracy(predict_logits(model, data.x_test_nchw, 256, device), data.y_test)
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "test_accuracy": test_acc,
            "lr": sched.get_last_lr()[0],
        }
        state.epoch, state.history = epoch + 1, state.history + [record]
        append_jsonl(metrics, record)
        save_epoch_checkpoint(
            path,
            config=cfg.to_dict(),
            model=model,
            optimizer=optimizer,
            state=state,
            generator=gen,
            extra={"scheduler": sched.state_dict(), **_meta(data)},
        )
    bar.close()
    if not path.exists():  # zero epochs (e.g. a user's pre-trained external teacher)
        state.history = []
        save_epoch_checkpoint(
            path, config=cfg.to_dict(), model=model, optimizer=optimizer, state=state,
            generator=gen, extra={"scheduler": sched.state_dict(), **_meta(data)},
        )
    model.eval()
    test_acc = accuracy(predict_logits(model, data.x_test_nchw, 256, device), data.y_test)
    return TeacherResult(model, test_acc, state.history, path)


def load_teacher(path: Path, device: str = "cpu") -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    """Rebuild a teacher from its checkpoint alone (config + state dict, no code executed).

    An external teacher's factory (user code) is imported only when the caller trusts it
    (:func:`sne_loihi.teachers.external.trusted_factories`), never because the checkpoint
    names it.

    Returns:
        ``(model in eval mode, run config, checkpoint metadata)``.

    Raises:
        UnsafeFileError: The file would run code if loaded.
        CheckpointError: Missing, corrupt or not a teacher checkpoint.
        ConfigError: The checkpoint names an external factory the caller did not trust.
    """
    ckpt = load_checkpoint(path)
    for key in ("config", "model", "in_shape", "num_classes"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is not a teacher checkpoint (no {key!r})")
    cfg = RunConfig.from_dict(ckpt["config"])
    if cfg.teacher.arch == EXTERNAL:
        require_trusted_factory(cfg.teacher.factory, path)
    model = build_teacher(cfg.teacher, tuple(ckpt["in_shape"]), int(ckpt["num_classes"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit teacher {cfg.teacher.arch!r}: {one_line(exc)}") from None
    model.to(resolve_device(device)).eval()
    meta = {k: ckpt[k] for k in ("in_shape", "num_classes", "class_names", "dataset", "epoch") if k in ckpt}
    return model, cfg, meta


@torch.no_grad()
def teacher_features(
    model: nn.Module, x_nchw: torch.Tensor, batch_size: int = 256, device: torch.device | None = None
) -> torch.Tensor:
    """f_T for every sample, computed in batches (CPU result ``[N, D]``)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model.features(x_nchw[idx].to(device)).float().cpu() for idx in batch_indices(len(x_nchw), batch_size, None)]
    return torch.cat(out)
