"""The frame both training loops (teacher, students) share: start, optimiser, progress, epoch end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Callable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from sne_loihi.config import LrSchedule, Optimizer
from sne_loihi.data import augment_nchw
from sne_loihi.distributed import DistContext, setup
from sne_loihi.train.common import (
    RESUME_MAY_CHANGE,
    EpochState,
    append_jsonl,
    keep_freed_memory,
    make_optimizer,
    resolve_device,
    restore_or_start,
    save_epoch_checkpoint,
    save_final_checkpoint,
    seed_everything,
    set_threads,
)
from sne_loihi.train.teacher_recipe import make_scheduler, per_step


class OptimiserSection(Protocol):
    """A config section that says how to optimise (``teacher`` or ``train``)."""

    optimizer: Optimizer
    lr: float
    weight_decay: float
    epochs: int
    batch_size: int


@dataclass
class TrainingStart:
    """Where and how a training loop runs: its device, data-parallel context and data RNG."""

    device: torch.device
    dist: DistContext
    generator: torch.Generator


def start_training(device: str, threads: int, seed: int) -> TrainingStart:
    """Resolve the device, join the process group, set threads and seed every RNG (in that order)."""
    resolved = resolve_device(device)
    dist = setup(resolved)
    set_threads(threads)
    if resolved.type == "cpu":
        keep_freed_memory()
    return TrainingStart(resolved, dist, seed_everything(seed))


@dataclass
class Optimisation:
    """The optimiser, its schedule and the epoch state (restored on ``--resume``)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state: EpochState
    per_step: bool = False  # the scheduler steps after every batch, not every epoch


def start_optimisation(
    section: OptimiserSection,
    model: nn.Module,
    path: Path,
    config: dict[str, Any],
    *,
    resume: bool,
    start: TrainingStart,
    metrics: Path,
    params: Iterable[Any] | None = None,
    momentum: float = 0.9,
    schedule: LrSchedule = LrSchedule.COSINE,
    steps_per_epoch: int = 1,
    warmup_fraction: float = 0.0,
    may_change: tuple[str, ...] = RESUME_MAY_CHANGE,
) -> Optimisation:
    """Build the optimiser and schedule of ``section``; restore both from ``path`` on resume.

    Args:
        params: Parameters or parameter groups; ``None``: ``model.parameters()``.
        momentum: SGD's momentum.
        schedule, steps_per_epoch, warmup_fraction: The learning-rate schedule
            (:func:`sne_loihi.train.teacher_recipe.make_scheduler`); cosine per epoch by default.
        may_change: Config keys a resumed checkpoint may differ in (the teacher's loop
            passes :data:`~sne_loihi.train.common.TEACHER_RESUME_MAY_CHANGE`).

    Raises:
        CheckpointError: ``path`` exists without ``resume``, or does not match ``config``.
    """
    params = model.parameters() if params is None else params
    optimizer = make_optimizer(section.optimizer, params, section.lr, section.weight_decay, momentum)
    sched = make_scheduler(schedule, optimizer, section.epochs, steps_per_epoch, warmup_fraction)
    state = restore_or_start(
        path, config, resume=resume, model=model, optimizer=optimizer, scheduler=sched,
        generator=start.generator, metrics=metrics, epochs=section.epochs, main=start.dist.is_main, may_change=may_change,
    )
    return Optimisation(optimizer, sched, state, per_step(schedule))


def augmenter(
    enabled: bool, generator: torch.Generator, translate: int = 4
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The training augmentation (random flip + crop shifted by up to ``translate`` pixels)
    drawing from ``generator``, or ``None`` when off."""
    return (lambda x_nchw: augment_nchw(x_nchw, generator, pad=translate)) if enabled else None


def epoch_bar(
    n_samples: int, section: OptimiserSection, first_epoch: int, desc: str, show: bool
) -> tqdm:
    """A progress bar over every batch of every epoch, starting at ``first_epoch``."""
    n_batches = -(-n_samples // section.batch_size)
    return tqdm(
        total=section.epochs * n_batches,
        initial=first_epoch * n_batches,
        desc=desc,
        disable=not show,
        unit="batch",
    )


class EpochClock:
    """Times training epochs: wall time and the process's CPU time (all its threads) since the
    previous :meth:`lap` (or since it was made). CPU time is what a paused (SIGSTOPped) or crowded
    run does not inflate."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> dict[str, float]:
        """``seconds`` and ``cpu_seconds`` since the previous lap, then start the next one."""
        wall, cpu = time.perf_counter(), time.process_time()
        span = {"seconds": round(wall - self._wall, 3), "cpu_seconds": round(cpu - self._cpu, 3)}
        self._wall, self._cpu = wall, cpu
        return span


@dataclass
class EpochCheckpoints:
    """Where a training loop writes: its epoch checkpoint ``path`` and metrics file, and what
    every checkpoint holds besides the model (the run config, ``extra``)."""

    path: Path
    metrics: Path
    config: dict[str, Any]
    model: nn.Module
    opt: Optimisation
    start: TrainingStart
    extra: dict[str, Any]

    def __post_init__(self) -> None:
        self._clock = EpochClock()

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Add an epoch's record to the history, with ``seconds``: the wall time since the
        previous epoch's checkpoint (or since the loop started), and ``cpu_seconds``: the
        process's CPU time (all its threads) in that span, which a paused (SIGSTOPped) or
        crowded run does not inflate; a run's training time is the sum over its history
        whatever resumed it. Rank 0 appends it to ``metrics`` and checkpoints."""
        record = {**record, **self._clock.lap()}
        state = self.opt.state
        state.epoch, state.history = record["epoch"], state.history + [record]
        if self.start.dist.is_main:
            append_jsonl(self.metrics, record)
            self.save()

    def save(self) -> None:
        """Write the epoch checkpoint (model, optimiser, schedule, RNG, history, ``extra``)."""
        opt = self.opt
        save_epoch_checkpoint(
            self.path, config=self.config, model=self.model, optimizer=opt.optimizer, state=opt.state,
            generator=self.start.generator, extra={"scheduler": opt.scheduler.state_dict(), **self.extra},
        )

    def save_final(self) -> None:
        """Write the finished run's checkpoint: model, config, history and ``extra``, without the
        optimiser, schedule and RNG state (:func:`~sne_loihi.train.common.save_final_checkpoint`)."""
        save_final_checkpoint(self.path, config=self.config, model=self.model, state=self.opt.state, extra=self.extra)
