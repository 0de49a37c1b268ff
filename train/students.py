"""Distillation of a teacher into the student ensemble (method.md sections 3 and 5)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sne_loihi.config import NeuronLibrary, RunConfig, StudentNorm
from sne_loihi.data import Dataset
from sne_loihi.distributed import DistContext, backward_step, to_device
from sne_loihi.ensemble import LossTerms, ensemble_loss, scale_features
from sne_loihi.ensemble import Ensemble
from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE, LoadedEnsemble, build_ensemble, ensemble_extra, load_ensemble
from sne_loihi.ensemble.evaluate import evaluate_ensemble
from sne_loihi.errors import ConfigError
from sne_loihi.partition import Partition
from sne_loihi.students.fold import fold_student, recalibrate
from sne_loihi.teachers.frozen import FrozenTeacher, target_teacher
from sne_loihi.checks import check_config
from sne_loihi.run_files import STUDENT_METRICS
from sne_loihi.train.common import append_jsonl, batch_indices, make_optimizer
from sne_loihi.train.loop import EpochCheckpoints, EpochClock, augmenter, epoch_bar, start_optimisation, start_training


@dataclass
class StudentsResult:
    """The trained ensemble, its history and checkpoint path."""

    model: nn.Module
    history: list[dict[str, Any]]
    path: Path
    #: ``student.norm = "batch"``: the fold's record (see :func:`_fold`); ``test_accuracy``
    #: is then the stored (folded) ensemble's.
    fold: dict[str, Any] | None = None

    @property
    def test_accuracy(self) -> float:
        """The stored ensemble's test accuracy at the end of training."""
        return stored_accuracy(self.fold, self.history)


def stored_accuracy(fold: dict[str, Any] | None, history: list[dict[str, Any]]) -> float:
    """The stored ensemble's test accuracy: the fold record's (after its fine-tuning, if any) for a
    folded run, else the last epoch's (``nan`` without epochs)."""
    if fold is not None:
        return float(fold.get("test_accuracy_fine_tuned", fold["test_accuracy_folded"]))
    return float(history[-1]["test_accuracy"]) if history else float("nan")


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
    teacher: nn.Module | FrozenTeacher | None,
    feature_scale: torch.Tensor,
    groups: list[list[int]],
    alpha: float,
    loss_weight: float | None = None,
) -> tuple[LossTerms, torch.Tensor]:
    """One optimisation step of the ensemble on a batch (also what ``benchmarks/bench_train.py``
    times): teacher features as targets, students with the ``active_n`` mask, loss, update.

    Under torchrun ``x_nchw`` is this rank's shard of the global batch: the KD targets are the
    teacher's features of exactly these samples (each computed once, by the rank that trains on
    it), and ``loss_weight`` (:meth:`~sne_loihi.distributed.DistContext.loss_weight`) makes
    DDP's gradient average the global batch's mean.

    Returns:
        ``(loss terms, logits [B, classes])`` (unweighted).
    """
    targets = None
    if teacher is not None and alpha > 0:
        with torch.no_grad():
            targets = scale_features(teacher.features(x_nchw), feature_scale)
    out = model(x_nchw, active_n.to(x_nchw.device))
    terms = ensemble_loss(out.logits, y, out.rates, targets, groups, alpha, active_n.tolist())
    backward_step(terms.total if loss_weight is None else terms.total * loss_weight, optimizer)
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
    start = start_training(tcfg.device, tcfg.threads, tcfg.seed)
    device, dist, gen = start.device, start.dist, start.generator
    run_dir = Path(run_dir)
    path, metrics = run_dir / ENSEMBLE_FILE, run_dir / STUDENT_METRICS
    if resume and cfg.student.norm is StudentNorm.BATCH and path.exists():
        folded = _finished_fold(path)
        if folded is not None:  # the run ended with the fold: nothing is left to train
            return StudentsResult(folded.model.to(device), folded.history, path, folded.fold)
    model = build_ensemble(cfg.student, partition, data.in_shape, data.num_classes).to(device)
    opt = start_optimisation(tcfg, model, path, cfg.to_dict(), resume=resume, start=start, metrics=metrics)
    dist.check_last_batch(len(data.x_train_nchw), tcfg.batch_size, "student training")
    ddp = dist.wrap(model, device, find_unused=0 < ecfg.train_active < partition.num_groups)
    kd_teacher: nn.Module | FrozenTeacher | None = teacher  # what computes the KD targets
    if teacher is not None:
        teacher.to(device).eval()
        if ecfg.alpha > 0:
            example = to_device(data.x_train_nchw[:tcfg.batch_size], device)
            targets = target_teacher(teacher, example, frozen=tcfg.frozen_teacher)
            kd_teacher = targets.teacher
            if dist.is_main:
                print(targets.description, flush=True)
    groups = partition.groups
    extra = {**ensemble_extra(model, partition, feature_scale, data.in_shape, data.num_classes, data.class_names),
             **(provenance or {})}
    checkpoints = EpochCheckpoints(path, metrics, cfg.to_dict(), model, opt, start, extra)
    augment = augmenter(cfg.data.augment, gen, cfg.train.translate)
    bar = epoch_bar(len(data.x_train_nchw), tcfg, opt.state.epoch,
                    f"students {partition.num_groups}x{cfg.student.arch}", progress and dist.is_main)
    loop = _DistillLoop(data, kd_teacher, feature_scale, groups, ecfg.alpha, ecfg.train_active, tcfg.batch_size,
                        device, dist, gen, augment, bar)
    for epoch in range(opt.state.epoch, tcfg.epochs):
        record = loop.epoch(model, ddp, opt.optimizer, epoch + 1)
        opt.scheduler.step()
        checkpoints.end_epoch({**record, "lr": opt.scheduler.get_last_lr()[0], **dist.record()})
    bar.close()
    fold = None
    if cfg.student.norm is StudentNorm.BATCH and NeuronLibrary(cfg.student.neuron_library) is NeuronLibrary.SLAYER:
        model, fold = _fold(model, loop, tcfg, checkpoints, progress)  # SpikingJelly students keep their float norm
    dist.barrier()  # the checkpoint is on disk before any rank goes on
    model.eval()
    return StudentsResult(model, opt.state.history, path, fold)


def fold_ensemble(model: Ensemble) -> Ensemble:
    """A new ensemble whose batch-norm students are folded (:func:`~sne_loihi.students.fold.fold_student`),
    with the same head."""
    folded = Ensemble([fold_student(s) for s in model.students], model.head.out_features)
    folded.head.load_state_dict(model.head.state_dict())
    return folded.to(next(model.parameters()).device).eval()


@dataclass
class _DistillLoop:
    """What every distillation epoch needs besides the model and its optimiser."""

    data: Dataset
    teacher: nn.Module | FrozenTeacher | None
    feature_scale: torch.Tensor
    groups: list[list[int]]
    alpha: float
    train_active: int
    batch_size: int
    device: torch.device
    dist: DistContext
    generator: torch.Generator
    augment: Any
    bar: Any

    def epoch(self, model: nn.Module, ddp: nn.Module, optimizer: torch.optim.Optimizer, number: int) -> dict[str, Any]:
        """Train one epoch; returns its record (losses, train and test accuracy)."""
        model.train()
        dist, n_students = self.dist, len(self.groups)
        sums = {"seen": 0.0, "loss": 0.0, "ce": 0.0, "kd": 0.0, "correct": 0.0}
        order = batch_indices(len(self.data.x_train_nchw), self.batch_size, self.generator)
        for shard, x, y in dist.batches(order, self.data.x_train_nchw, self.data.y_train, self.device, self.augment):
            active = random_active(n_students, self.train_active, self.generator)
            terms, logits = distill_step(
                ddp, optimizer, x, y, active, teacher=self.teacher, feature_scale=self.feature_scale,
                groups=self.groups, alpha=self.alpha, loss_weight=dist.loss_weight(shard),
            )
            n = len(shard)
            sums["seen"] += n
            sums["loss"] += float(terms.total.detach()) * n
            sums["ce"] += terms.ce * n
            sums["kd"] += terms.kd * n
            sums["correct"] += float((logits.argmax(-1) == y).sum())
            self.bar.update(1)
            self.bar.set_postfix(epoch=number, loss=f"{sums['loss'] / sums['seen']:.3f}",
                                 kd=f"{sums['kd'] / sums['seen']:.4f}")
        sums = dist.sum(sums, self.device)
        seen = sums["seen"]
        return {
            "epoch": number,
            "loss": sums["loss"] / seen,
            "ce": sums["ce"] / seen,
            "kd": sums["kd"] / seen,
            "train_accuracy": sums["correct"] / seen,
            "test_accuracy": self.test_accuracy(model),
        }

    def test_accuracy(self, model: nn.Module) -> float:
        """The per-epoch test accuracy (a dropout ensemble's with its K)."""
        return _test_accuracy(model, self.data, self.train_active, len(self.groups), self.batch_size, self.device,
                              self.dist)


#: The folded students' fine-tuning learning rate, as a fraction of ``train.lr``.
FOLD_LR_FRACTION = 0.1


def _fold(model: Ensemble, loop: _DistillLoop, tcfg: Any, checkpoints: EpochCheckpoints,
          progress: bool) -> tuple[Ensemble, dict[str, Any]]:
    """Recalibrate the batch norms on the training images as training sees them (augmented when
    ``data.augment``: on CIFAR-10, seed 0 after 19 of 20 epochs, the folded ensemble reached
    65.40% with augmented statistics, 64.55% with the running averages and 62.90% before folding
    with clean-image statistics), fold them, fine-tune the folded
    students' weights for ``train.fold_epochs`` (biases fixed on their grid, learning rate
    :data:`FOLD_LR_FRACTION` of ``train.lr``, cosine), and checkpoint the folded ensemble in
    place of the trained one, with the record of the accuracies on the way."""
    data, dist, device = loop.data, loop.dist, loop.device
    every = torch.ones(len(loop.groups), dtype=torch.bool)
    shown = loop.augment or (lambda x_nchw: x_nchw)
    batches = ((shown(to_device(data.x_train_nchw[i:i + loop.batch_size], device)), every)
               for i in range(0, len(data.x_train_nchw), loop.batch_size))
    seen = recalibrate(model, batches)
    before = loop.test_accuracy(model)
    folded = fold_ensemble(model)
    after = loop.test_accuracy(folded)
    record: dict[str, Any] = {"recalibration_samples": seen, "test_accuracy_batch_norm": before,
                              "test_accuracy_folded": after, "fine_tune_epochs": tcfg.fold_epochs}
    if dist.is_main:
        print(f"batch norm folded into the students (statistics of {seen} training images): test accuracy "
              f"{before:.4f} with batch norm, {after:.4f} folded and requantised", flush=True)
    if tcfg.fold_epochs > 0:
        ddp = dist.wrap(folded, device, find_unused=0 < loop.train_active < len(loop.groups))
        trainable = [p for p in folded.parameters() if p.requires_grad]
        optimizer = make_optimizer(tcfg.optimizer, trainable, tcfg.lr * FOLD_LR_FRACTION, tcfg.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tcfg.fold_epochs)
        loop.bar = epoch_bar(len(data.x_train_nchw), dataclasses.replace(tcfg, epochs=tcfg.fold_epochs), 0,
                             "folded students", progress and dist.is_main)
        state = checkpoints.opt.state
        clock = EpochClock()  # timed as every training epoch is
        for number in range(tcfg.epochs + 1, tcfg.epochs + tcfg.fold_epochs + 1):
            line = {**loop.epoch(folded, ddp, optimizer, number), "phase": "folded"}
            schedule.step()
            line = {**line, "lr": schedule.get_last_lr()[0], **dist.record(), **clock.lap()}
            state.history = state.history + [line]
            if dist.is_main:
                append_jsonl(checkpoints.metrics, line)
        loop.bar.close()
        record["test_accuracy_fine_tuned"] = loop.test_accuracy(folded)
        if dist.is_main:
            print(f"folded students fine-tuned for {tcfg.fold_epochs} epochs: test accuracy "
                  f"{record['test_accuracy_fine_tuned']:.4f}", flush=True)
    checkpoints.model = folded
    checkpoints.extra = {**checkpoints.extra, "student_specs": [s.spec.to_dict() for s in folded.students],
                         "fold": record}
    if dist.is_main:
        checkpoints.save_final()  # a folded run is finished: no optimiser state for --resume
    return folded.eval(), record


def _finished_fold(path: Path) -> LoadedEnsemble | None:
    """The ensemble of ``path`` when its students are already folded (a finished run), else ``None``."""
    from sne_loihi.io import load_checkpoint

    specs = load_checkpoint(path).get("student_specs") or []
    if specs and all(isinstance(s, dict) and s.get("norm") == StudentNorm.FOLDED.value for s in specs):
        return load_ensemble(path)
    return None


def _test_accuracy(
    model: nn.Module, data: Dataset, train_active: int, num_students: int, batch_size: int,
    device: torch.device, dist: DistContext,
) -> float:
    """The per-epoch test accuracy, each rank evaluating its shard of the test set (a dropout
    ensemble's random-K evaluation draws K per test batch: every rank evaluates all of it, so
    the draws do not depend on the world size)."""
    active = _eval_active(train_active, num_students)
    shard = dist.shard(len(data.x_test_nchw)) if active == num_students else DistContext().shard(len(data.x_test_nchw))
    part = slice(shard.start, shard.stop)
    correct = 0.0
    if len(shard):
        evaluation = evaluate_ensemble(
            model, data.x_test_nchw[part], data.y_test[part], active=active,
            batch_size=batch_size, count_ops=False,  # SLAYER: 256 is ~40% slower per sample than 64
        )
        correct = float(round(evaluation.accuracy * len(shard)))
    if active != num_students:
        return correct / len(shard) if len(shard) else float("nan")
    total = dist.sum({"correct": correct, "n": float(len(shard))}, device)
    return total["correct"] / total["n"] if total["n"] else float("nan")


def _eval_active(train_active: int, num_students: int) -> int:
    """Dropout-trained ensembles are evaluated with the same K (method.md section 5)."""
    return train_active if 0 < train_active < num_students else num_students
