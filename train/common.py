"""Shared training machinery: seeding, optimisers, epoch checkpoints (devices, batching and
accuracy are core code: :mod:`sne_loihi.device`, :mod:`sne_loihi.metrics`)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sne_loihi.config import Optimizer, RunConfig, TrainConfig
from sne_loihi.distributed import DistContext, to_device
from sne_loihi.errors import CheckpointError, ConfigError, one_line
from sne_loihi.io import atomic_write_bytes, load_checkpoint, save_checkpoint
from sne_loihi.device import resolve_device  # noqa: F401  (re-exported for the training code)
from sne_loihi.metrics import accuracy, batch_indices, predict_logits  # noqa: F401  (likewise)
from sne_loihi.registry import Registry


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for data order/augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def set_threads(threads: int) -> None:
    """Set torch's intra-op threads when ``threads > 0``."""
    if threads > 0:
        torch.set_num_threads(threads)


#: glibc ``mallopt`` parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Let glibc reuse freed CPU tensor memory instead of unmapping it at every free.

    glibc serves allocations above its mmap threshold (at most 32 MB) with ``mmap`` and
    returns them with ``munmap``, so each CIFAR-size activation tensor is page-faulted in anew
    at every step (measured: one vgg5mini student's training step 1.5-2.1 s with it,
    1.2-1.5 s from the heap, a quarter of the step was system time). This serves them from
    the heap and never trims it, so a training process keeps its peak memory mapped.
    Process-wide, for training on the CPU; a no-op off glibc or with ``SNE_KEEP_MEMORY=0``.

    Returns:
        Whether the setting was applied.
    """
    import ctypes
    import ctypes.util
    import os

    if os.environ.get("SNE_KEEP_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


OPTIMIZERS: Registry = Registry("optimizer")


@OPTIMIZERS.register(Optimizer.ADAM.value)
def _adam(params: Any, lr: float, weight_decay: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register(Optimizer.ADAMW.value)
def _adamw(params: Any, lr: float, weight_decay: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register(Optimizer.SGD.value)
def _sgd(params: Any, lr: float, weight_decay: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)


def make_optimizer(
    kind: Optimizer, params: Any, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """Build an optimiser from the :class:`Optimizer` enum (``momentum``: SGD's, Nesterov)."""
    if lr <= 0:
        raise ConfigError(f"learning rate must be > 0, got {lr}")
    return OPTIMIZERS.get(Optimizer(kind).value)(params, lr, weight_decay, momentum)


def sharded_accuracy(
    model: nn.Module, x_nchw: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device,
    dist: DistContext,
) -> float:
    """Top-1 accuracy of ``model`` over ``x_nchw``, each rank predicting its :meth:`~DistContext.shard`."""
    shard = dist.shard(len(x_nchw))
    part = slice(shard.start, shard.stop)
    logits = predict_logits(model, x_nchw[part], batch_size, device)
    correct = float((logits.argmax(-1) == labels[part]).sum()) if len(shard) else 0.0
    total = dist.sum({"correct": correct, "n": float(len(shard))}, device)
    return total["correct"] / total["n"] if total["n"] else float("nan")


#: At most this many (evenly spaced) training images re-estimate BatchNorm statistics.
BN_RECALIBRATION_SAMPLES = 4096


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, x_nchw: torch.Tensor, batch_size: int, device: torch.device,
    max_samples: int = BN_RECALIBRATION_SAMPLES,
) -> None:
    """Re-estimate every BatchNorm layer's running mean/variance for the current weights.

    The running averages collected during an epoch mix statistics of weights that have
    since changed; after a short training (few batches) they can be so far off that the
    model in eval mode predicts one class (measured: a VGG11 after 2 epochs on 1000 CIFAR
    images, 27% in train mode, 10% in eval mode; 27% in eval mode after this). Runs the
    un-augmented images (evenly spaced, at most ``max_samples``) with only the BatchNorm
    layers in training mode and a cumulative average (``momentum=None``); other layers
    (dropout) stay in eval mode, so no random numbers are drawn.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(x_nchw) == 0:
        return
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    x_nchw = x_nchw[:: max(1, -(-len(x_nchw) // max_samples))]
    for idx in batch_indices(len(x_nchw), batch_size, None):
        if len(idx) > 1 or len(x_nchw) == 1:  # BatchNorm1d cannot normalise a lone sample
            model(to_device(x_nchw[idx], device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


@dataclass
class EpochState:
    """What an epoch checkpoint restores on ``--resume``."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Capture RNG states (torch CPU + data generator) for exact resume."""
    return {"torch": torch.get_rng_state(), "data": generator.get_state()}


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (per-epoch metrics)."""
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def rewrite_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite a metrics file from a checkpoint's history (used on resume)."""
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())


def save_epoch_checkpoint(
    path: Path,
    *,
    config: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: EpochState,
    generator: torch.Generator,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically write a resumable checkpoint that also rebuilds the model on its own."""
    payload = {
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": state.epoch,
        "history": state.history,
        "rng": rng_state(generator),
    }
    payload.update(extra or {})
    save_checkpoint(path, payload)


#: What a resumable checkpoint holds only to go on training; a finished one drops it.
TRAINING_STATE_KEYS = ("optimizer", "scheduler", "rng")


def save_final_checkpoint(
    path: Path, *, config: dict[str, Any], model: nn.Module, state: EpochState, extra: dict[str, Any] | None = None,
) -> None:
    """Atomically write a finished run's checkpoint: what rebuilds and describes the model
    (config, weights, epoch, history, ``extra``), without :data:`TRAINING_STATE_KEYS`.

    A run whose students were folded is finished (``--resume`` returns it as it is), and its
    Adam moments belong to the unfolded weights: at width 0.5 on CIFAR-10 they were two
    thirds of the 7.8 MB ``ensemble.pt``, the file an export ships beside its netx files.
    """
    payload = {"config": config, "model": model.state_dict(), "epoch": state.epoch, "history": state.history,
               "finished": True}
    payload.update({k: v for k, v in (extra or {}).items() if k not in TRAINING_STATE_KEYS})
    save_checkpoint(path, payload)


def drop_training_state(path: Path) -> int:
    """Rewrite a checkpoint without :data:`TRAINING_STATE_KEYS` (atomically); returns the
    bytes saved (0 when it held none). For a finished run written before
    :func:`save_final_checkpoint` existed.

    Raises:
        CheckpointError: Missing or unreadable (:func:`~sne_loihi.io.load_checkpoint`).
    """
    before = Path(path).stat().st_size if Path(path).is_file() else 0
    ckpt = load_checkpoint(path)
    if not any(k in ckpt for k in TRAINING_STATE_KEYS):
        return 0
    save_checkpoint(path, {**{k: v for k, v in ckpt.items() if k not in TRAINING_STATE_KEYS}, "finished": True})
    return before - Path(path).stat().st_size


#: Config keys (or ``section.`` prefixes) that may change on ``--resume``: the epoch budgets
#: (to extend a run, or shorten it to no fewer epochs than it has trained; a run whose students are already folded is not fine-tuned again), where and with how many threads (and whether in mixed
#: precision, with which student engine or teacher-target path) it runs, and the later stages (Lava, the report, the pipeline's dropout variants).
#: The world size is no config key at all.
RESUME_MAY_CHANGE: tuple[str, ...] = (
    "train.epochs", "train.fold_epochs", "teacher.epochs", "train.device", "train.threads", "teacher.amp", "student.engine",
    "teacher.channels_last", "teacher.tta",
    "train.frozen_teacher", "lava.",
    "report.", "pipeline.",
    # recorded from the data when the run is made (older runs have none); the data loader
    # itself refuses data whose classes differ from a recorded list
    "data.class_names",
)


#: What a teacher's checkpoint may differ in on resume besides :data:`RESUME_MAY_CHANGE`: the
#: sections and keys the teacher's training does not read (the students', the partition's,
#: the fine-tuning's, and every ``train`` key but the seed). A finished teacher is then reused
#: by a run whose student recipe changed since (e.g. a key added to ``train``).
TEACHER_RESUME_MAY_CHANGE: tuple[str, ...] = RESUME_MAY_CHANGE + ("student.", "ensemble.", "finetune.") + tuple(
    f"train.{f.name}" for f in dataclasses.fields(TrainConfig) if f.name != "seed")


def load_resume_checkpoint(
    path: Path, config: dict[str, Any], ignore: tuple[str, ...] = RESUME_MAY_CHANGE, *,
    epochs: int | None = None, epochs_key: str = "the epoch budget",
) -> dict[str, Any]:
    """Load a checkpoint for ``--resume`` and check it belongs to the same run config.

    Only the keys in ``ignore`` (exact, or a prefix ending in ``.``) may differ. With
    ``epochs``, a checkpoint that has already trained more epochs than that is refused: the
    run cannot be cut back, and going on would record a budget (``epochs_key``, in
    ``config.toml``) that its weights did not get.

    Raises:
        CheckpointError: Missing/corrupt checkpoint, a different configuration, or more
            epochs done than ``epochs``.
    """
    ckpt = load_checkpoint(path)
    # a finished checkpoint (save_final_checkpoint) has nothing to go on with, but its config is checked alike
    needed = ("config", "model", "epoch", "history") + (() if ckpt.get("finished") is True else TRAINING_STATE_KEYS)
    for key in needed:
        if key not in ckpt:
            raise CheckpointError(f"{path} is not a resumable checkpoint (no {key!r})")
    old, new = _flatten(with_defaults(ckpt["config"])), _flatten(with_defaults(config))
    exact = {k for k in ignore if not k.endswith(".")}
    prefixes = tuple(k for k in ignore if k.endswith("."))
    diff = sorted(
        k for k in set(old) | set(new)
        if k not in exact and not k.startswith(prefixes) and old.get(k) != new.get(k)
    )
    if diff:
        raise CheckpointError(
            f"cannot resume {path}: its config differs in {', '.join(diff[:5])}"
        )
    done = ckpt["epoch"]
    if epochs is not None and isinstance(done, int) and done > epochs:
        raise CheckpointError(f"cannot resume {path}: it has already trained {done} epochs, more than {epochs_key} "
                              f"= {epochs}; resume with at least {done} epochs or use another run folder")
    return ckpt


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A stored run config with the keys it predates filled in with their defaults.

    A checkpoint written before a config section or key existed (e.g. ``[lava]``) then
    compares equal to a current config that leaves that key at its default. A config that
    no longer parses (a removed key) is compared as stored.
    """
    try:
        return RunConfig.from_dict(config).to_dict()
    except ConfigError:
        return config


def retarget_cosine(sched: torch.optim.lr_scheduler.CosineAnnealingLR, epochs: int) -> None:
    """Continue a restored cosine schedule on the curve of a changed epoch budget.

    A resumed run with another ``--epochs`` would otherwise keep the old ``T_max``: past it
    the cosine climbs back up from ``eta_min``. Here the remaining epochs follow the cosine
    of the new budget from the epoch reached (the recursive torch update stays on it).
    """
    t_max = max(epochs, 1)
    if sched.T_max == t_max:
        return
    sched.T_max = t_max
    done = min(sched.last_epoch, t_max)
    for group, base in zip(sched.optimizer.param_groups, sched.base_lrs):
        group["lr"] = sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * done / t_max)) / 2
    sched._last_lr = [group["lr"] for group in sched.optimizer.param_groups]


def restore_or_start(
    path: Path,
    config: dict[str, Any],
    *,
    resume: bool,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    metrics: Path,
    epochs: int,
    main: bool = True,
    may_change: tuple[str, ...] = RESUME_MAY_CHANGE,
) -> EpochState:
    """Start a training loop, or restore it from its epoch checkpoint ``path`` on ``--resume``.

    Restores model, optimizer, scheduler (a cosine re-targeted to ``epochs``), RNG states and history,
    and rewrites ``metrics`` from the checkpoint's history: a line written for an epoch whose
    checkpoint never landed (interrupted in between) is dropped, never duplicated. Only the
    ``main`` process (rank 0) writes; every rank restores the same checkpoint.

    Raises:
        CheckpointError: ``path`` exists without ``resume``, or does not match ``config``.
    """
    state = EpochState()
    if path.exists():
        if not resume:
            raise CheckpointError(f"{path} already exists; pass --resume to continue it or use another run folder")
        ckpt = load_resume_checkpoint(path, config, may_change, epochs=epochs)
        if ckpt.get("finished") is True:
            raise CheckpointError(f"{path} is a finished run's checkpoint (its optimiser state was not kept); "
                                  "train into another run folder to go on from it")
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot resume {path}: {one_line(exc)}") from None
        scheduler.load_state_dict(ckpt["scheduler"])
        if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            retarget_cosine(scheduler, epochs)
        restore_rng(ckpt["rng"], generator)
        state = EpochState(int(ckpt["epoch"]), list(ckpt["history"]))
    if main:
        rewrite_jsonl(metrics, state.history)
    return state


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out
