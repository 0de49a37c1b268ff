"""Ensemble checkpoints that rebuild themselves: ``load_ensemble(RUN/ensemble.pt)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sne_loihi.config import RunConfig, StudentConfig
from sne_loihi.ensemble.model import Ensemble
from sne_loihi.errors import CheckpointError, one_line
from sne_loihi.io import load_checkpoint
from sne_loihi.partition import Partition, group_widths
from sne_loihi.run_files import ENSEMBLE_FILE



def build_ensemble(
    student_cfg: StudentConfig,
    partition: Partition,
    in_shape: tuple[int, int, int],
    num_classes: int,
) -> Ensemble:
    """One student per partition group, sized by the capacity rule, plus the head.

    Students of unequal groups get widths from :func:`sne_loihi.partition.group_widths`; a
    ``first_width`` keeps its ratio to ``width``.
    """
    from dataclasses import replace

    from sne_loihi.students import build_student, student_spec

    widths = group_widths(partition.sizes, student_cfg.width)
    first = student_cfg.first_width
    students = [
        build_student(student_spec(replace(student_cfg, width=w, first_width=None if first is None else
                                           first * w / student_cfg.width), in_shape, size))
        for w, size in zip(widths, partition.sizes)
    ]
    return Ensemble(students, num_classes)


def rebuild_ensemble(specs: Sequence[dict[str, Any]], num_classes: int) -> Ensemble:
    """Rebuild from stored student specs (exact shapes, independent of the capacity rule)."""
    from sne_loihi.students import StudentSpec, build_student

    return Ensemble([build_student(StudentSpec.from_dict(s)) for s in specs], num_classes)


def ensemble_extra(
    ensemble: Ensemble,
    partition: Partition,
    feature_scale: torch.Tensor,
    in_shape: Sequence[int],
    num_classes: int,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """The non-training part of an ensemble checkpoint."""
    return {
        "student_specs": [s.spec.to_dict() for s in ensemble.students],
        "partition": partition.to_dict(),
        "feature_scale": feature_scale.detach().cpu(),
        "in_shape": list(in_shape),
        "num_classes": int(num_classes),
        "class_names": list(class_names),
    }


@dataclass
class LoadedEnsemble:
    """An ensemble rebuilt from its checkpoint alone (:func:`load_ensemble`).

    Attributes:
        model: The students and the head, in eval mode.
        config: The config the ensemble was trained with.
        partition: The teacher-feature groups, one per student.
        feature_scale: ``[D]`` per teacher feature the positive divisor that maps it into
            the rate range [0, 1] (the distillation targets, ``clip(f / scale, 0, 1)``).
        in_shape: ``(C, H, W)`` of the input images.
        class_names: The class names, in label order.
        epoch: Training epochs done.
        history: One dict per epoch (``metrics_students.jsonl``'s lines).
        teacher_sha256: SHA-256 of the teacher it was distilled from, if recorded.
        fold: ``student.norm = "batch"``: the fold's record (recalibration samples, test
            accuracy with batch norm, folded, and after the fine-tuning), ``None`` otherwise.
    """

    model: Ensemble
    config: RunConfig
    partition: Partition
    feature_scale: torch.Tensor
    in_shape: tuple[int, int, int]
    class_names: list[str]
    epoch: int
    history: list[dict[str, Any]]
    teacher_sha256: str | None = None
    fold: dict[str, Any] | None = None


def load_ensemble(path: Path | str, device: str | torch.device = "cpu") -> LoadedEnsemble:
    """Load ``RUN/ensemble.pt`` (no code executed) and rebuild the model from it.

    Args:
        path: The checkpoint, or the run folder holding ``ensemble.pt``.
        device: Where the model goes (``"cpu"``, ``"auto"``, ``"cuda[:i]"``, a ``torch.device``).

    Returns:
        The model in eval mode with its config, partition, feature scale, input shape, class
        names and training history.

    Raises:
        CheckpointError: Missing/corrupt file or one that is not an ensemble checkpoint.
        ConfigError: Unknown or unavailable ``device``.
    """
    from sne_loihi.device import resolve_device

    where = device if isinstance(device, torch.device) else resolve_device(device)
    path = Path(path)
    if path.is_dir():
        path = path / ENSEMBLE_FILE
    ckpt = load_checkpoint(path)
    need = ("config", "model", "student_specs", "partition", "feature_scale", "in_shape", "num_classes")
    missing = [k for k in need if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not an ensemble checkpoint (missing {', '.join(missing)})")
    cfg = RunConfig.from_dict(ckpt["config"])
    partition = Partition.from_dict(ckpt["partition"])
    model = rebuild_ensemble(ckpt["student_specs"], int(ckpt["num_classes"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored student specs: {one_line(exc)}") from None
    model.to(where).eval()
    return LoadedEnsemble(
        model=model,
        config=cfg,
        partition=partition,
        feature_scale=ckpt["feature_scale"],
        in_shape=tuple(int(v) for v in ckpt["in_shape"]),
        class_names=[str(c) for c in ckpt.get("class_names", [])],
        epoch=int(ckpt.get("epoch", 0)),
        history=list(ckpt.get("history", [])),
        teacher_sha256=ckpt.get("teacher_sha256") if isinstance(ckpt.get("teacher_sha256"), str) else None,
        fold=ckpt["fold"] if isinstance(ckpt.get("fold"), dict) else None,
    )
