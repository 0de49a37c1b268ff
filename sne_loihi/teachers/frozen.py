"""The teacher's features for the distillation targets, as a frozen graph optimised for CPU inference.

Every distillation step runs the teacher on the augmented batch for the KD targets; on the
CPU preset that forward pass is about a fifth of the step. ``torch.jit.optimize_for_inference``
on a frozen trace of ``teacher.features`` folds each batch norm into its convolution and runs
the convolutions and poolings in oneDNN's blocked layout: measured 1.5-1.8x faster features
and a 1.07-1.14x faster whole distillation step of the ``cpu-cifar10-bn`` preset on a 2-core
CPU (``benchmarks/bench_teacher_targets.py``). The features
are the same up to float rounding (about 1e-6 at CIFAR-10's scale), not bit for bit, so
``train.frozen_teacher = false`` keeps the eager teacher (the targets of runs made before
this option existed).

Only the built-in teachers are traced (their ``features`` is plain tensor code; an external
teacher reads its features through a forward hook, which a trace does not keep), and only on
the CPU. Each frozen graph is checked against the eager teacher on the first training batch
when it is built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from sne_loihi.errors import SneError
from sne_loihi.teachers.external import ExternalTeacher

#: Largest relative difference (max abs difference / max abs feature) the frozen graph may
#: show against the eager teacher on the check batch; float rounding gives about 1e-7.
FROZEN_TOLERANCE = 1e-4


class _Features(nn.Module):
    """``teacher.features`` as a module's forward, so it can be traced."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.teacher.features(x_nchw)


class FrozenTeacher:
    """A teacher's ``features`` run by a frozen TorchScript graph (no gradients, eval mode)."""

    def __init__(self, graph: torch.jit.ScriptModule, feature_dim: int) -> None:
        self.graph = graph
        self.feature_dim = feature_dim

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """f_T ``[N, feature_dim]``, as the eager teacher's up to float rounding."""
        with torch.no_grad():
            return self.graph(x_nchw)


@dataclass(frozen=True)
class TargetTeacher:
    """What computes the KD targets, and a line saying which path that is."""

    teacher: nn.Module | FrozenTeacher
    description: str


def target_teacher(teacher: nn.Module, example_nchw: torch.Tensor, *, frozen: bool) -> TargetTeacher:
    """The teacher that computes the distillation targets: a :class:`FrozenTeacher` when
    ``frozen`` and the teacher is a built-in one on the CPU, else ``teacher`` itself.

    Args:
        teacher: The trained teacher, on its device, in eval mode.
        example_nchw: A batch as training feeds it (on the teacher's device): traced and
            used for the check.
        frozen: ``train.frozen_teacher``.

    Raises:
        SneError: The frozen graph's features differ from the eager teacher's by more than
            :data:`FROZEN_TOLERANCE` (set ``train.frozen_teacher = false`` to go on).
    """
    device = example_nchw.device
    if not frozen:
        return TargetTeacher(teacher, "teacher targets: eager teacher (train.frozen_teacher = false)")
    if isinstance(teacher, ExternalTeacher):
        return TargetTeacher(teacher, "teacher targets: eager teacher (an external teacher is not traced)")
    if device.type != "cpu":
        return TargetTeacher(teacher, f"teacher targets: eager teacher (the frozen graph is for the CPU; here {device})")
    with torch.no_grad():
        eager = teacher.features(example_nchw)
        traced = torch.jit.trace(_Features(copy.deepcopy(teacher)).eval(), example_nchw)
        graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        got = graph(example_nchw)
    scale = float(eager.abs().max().clamp_min(1e-30))
    worst = float((got - eager).abs().max()) / scale if got.shape == eager.shape else float("inf")
    if not worst <= FROZEN_TOLERANCE:
        raise SneError(f"the frozen teacher's features differ from the eager teacher's by {worst:.3g} (relative, "
                       f"over {FROZEN_TOLERANCE:g}); set train.frozen_teacher = false")
    return TargetTeacher(FrozenTeacher(graph, int(eager.shape[1])),
                         f"teacher targets: frozen TorchScript graph, oneDNN (max relative difference "
                         f"to the eager teacher {worst:.1g} on the first batch)")
