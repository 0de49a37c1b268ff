"""Evaluation of an ensemble under an activation policy, with exact op counting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from sne_loihi.config import FirstLayer
from sne_loihi.distributed import to_device
from sne_loihi.ensemble.model import Ensemble
from sne_loihi.students.base import StudentOutput


@dataclass
class EvalResult:
    """Accuracy and per-sample cost of one evaluation.

    Attributes:
        accuracy: Top-1 accuracy in [0, 1].
        macs_per_sample: Mean synaptic ops in layers fed graded (non-binary) input.
        acs_per_sample: Mean synaptic ops in layers fed binary spikes.
        student_ops: ``student_ops[i][l]`` mean ops per sample of student i, layer l,
            averaged over ALL evaluated samples (0 where the student did not run).
        student_active_fraction: Fraction of samples each student ran on.
        logits: ``[N, classes]`` CPU logits.
    """

    accuracy: float
    macs_per_sample: float = 0.0
    acs_per_sample: float = 0.0
    student_ops: list[list[float]] = field(default_factory=list)
    student_active_fraction: list[float] = field(default_factory=list)
    logits: torch.Tensor | None = None

    @property
    def ops_per_sample(self) -> float:
        """MACs + ACs per sample."""
        return self.macs_per_sample + self.acs_per_sample


def _batch_active(
    active: int | Sequence[int] | None, num_students: int, generator: torch.Generator | None
) -> torch.Tensor:
    """``[N]`` mask: ``None``/``K >= N`` all; ``int K`` random K; a sequence: those indices."""
    mask = torch.zeros(num_students, dtype=torch.bool)
    if active is None or (isinstance(active, int) and active >= num_students):
        mask[:] = True
    elif isinstance(active, int):
        from sne_loihi.errors import ConfigError

        if active < 1:
            raise ConfigError(f"number of active students must be >= 1, got {active}")
        mask[torch.randperm(num_students, generator=generator)[:active]] = True
    else:
        from sne_loihi.ensemble.model import active_mask

        mask = active_mask(active, 1, num_students, torch.device("cpu"))[0].clone()
    return mask


@torch.no_grad()
def evaluate_ensemble(
    model: Ensemble,
    x_nchw: torch.Tensor,
    y: torch.Tensor,
    *,
    active: int | Sequence[int] | None = None,
    batch_size: int = 256,
    count_ops: bool = True,
    seed: int = 0,
    on_student_output: Callable[[int, StudentOutput], None] | None = None,
    first_layer: FirstLayer | Sequence[FirstLayer] = FirstLayer.SYNAPTIC,
) -> EvalResult:
    """Evaluate with a fixed subset, random K per batch, or all students.

    Args:
        model: The ensemble.
        x_nchw: Test images in [0, 1]; ``y``: labels.
        active: ``None`` = all; ``int K`` = K random students per batch (method.md 5);
            a sequence of indices = that subset for every batch.
        count_ops: Count synaptic ops with :func:`sne_loihi.cost.count_student_ops`.
        seed: Seed of the per-batch draws for ``int K``.
        on_student_output: Called with ``(student index, its output)`` for every batch a
            student ran (e.g. :class:`sne_loihi.analysis.activity.ActivityCounter.add`).
        first_layer: How each student's first layer is driven (one value for all, or one
            per student): ``BIAS`` counts its MACs once per sample (see
            :func:`sne_loihi.cost.count_student_ops`).
    """
    from sne_loihi.cost import count_student_ops

    device = next(model.parameters()).device
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    n_students = model.num_students
    modes = [FirstLayer(first_layer)] * n_students if isinstance(first_layer, (str, FirstLayer)) else \
        [FirstLayer(m) for m in first_layer]
    if len(modes) != n_students:
        from sne_loihi.errors import ConfigError

        raise ConfigError(f"first_layer: {len(modes)} values for {n_students} students")
    logits_all, macs, acs = [], 0.0, 0.0
    per_layer: list[torch.Tensor | None] = [None] * n_students
    ran = torch.zeros(n_students)
    for start in range(0, len(x_nchw), batch_size):
        x = to_device(x_nchw[start : start + batch_size], device)
        mask = _batch_active(active, n_students, gen).to(device)
        out = model(x, mask)
        logits_all.append(out.logits.float().cpu())
        ran += out.active_bn.sum(0).float().cpu()
        if on_student_output is not None:
            for i, sout in enumerate(out.student_outputs):
                if sout is not None:
                    on_student_output(i, sout)
        if not count_ops:
            continue
        for i, (student, sout) in enumerate(zip(model.students, out.student_outputs)):
            if sout is None:
                continue
            ops = count_student_ops(student, sout, modes[i])
            layer_tot = ops.ops_nl.sum(0).double().cpu()
            per_layer[i] = layer_tot if per_layer[i] is None else per_layer[i] + layer_tot
            for l, kind in enumerate(ops.kinds):
                if kind.value == "mac":
                    macs += float(layer_tot[l])
                else:
                    acs += float(layer_tot[l])
    logits = torch.cat(logits_all)
    n = max(len(x_nchw), 1)
    acc = float((logits.argmax(-1) == y.cpu()).float().mean()) if len(y) else float("nan")
    student_ops = []
    for i, student in enumerate(model.students):
        tot = per_layer[i]
        student_ops.append([0.0] * len(student.spec.weighted_layers()) if tot is None else (tot / n).tolist())
    return EvalResult(
        accuracy=acc,
        macs_per_sample=macs / n,
        acs_per_sample=acs / n,
        student_ops=student_ops if count_ops else [],
        student_active_fraction=(ran / n).tolist(),
        logits=logits,
    )
