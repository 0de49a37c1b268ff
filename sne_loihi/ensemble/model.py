"""The student ensemble: N spiking students + a linear head over their concatenated rates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sne_loihi.config import NeuronLibrary
from sne_loihi.errors import ConfigError
from sne_loihi.indices import check_student_indices
from sne_loihi.students.base import encode_for  # noqa: F401  (re-exported: the ensemble's callers use it)


@dataclass
class EnsembleOutput:
    """One forward pass of the ensemble.

    Attributes:
        logits: ``[B, classes]`` head output.
        rates: Per student ``[B, F_i]`` firing rates (zeros where the student was inactive).
        active_bn: ``[B, N]`` bool, which student ran for which sample.
        student_outputs: Per student the ``StudentOutput`` of the samples it ran on
            (``None`` when it ran on none); ``sample_index[i]`` says which samples those are.
        sample_index: Per student the indices (into the batch) it ran on.
    """

    logits: torch.Tensor
    rates: list[torch.Tensor]
    active_bn: torch.Tensor
    student_outputs: list[object | None]
    sample_index: list[torch.Tensor]


def active_mask(
    active: torch.Tensor | Sequence[int] | None, batch: int, num_students: int, device: torch.device
) -> torch.Tensor:
    """Normalise an activation spec to a ``[B, N]`` bool mask.

    Args:
        active: ``None`` (all), student indices (same for every sample: a sequence, or a
            1-D integer tensor or array), a ``[N]`` bool mask, or a per-sample ``[B, N]`` bool
            mask (bool masks: a tensor or a numpy array).

    Raises:
        ConfigError: Invalid indices, a mask of the wrong shape, or a tensor that is neither a
            bool mask nor 1-D integer indices.
    """
    if active is None:
        return torch.ones(batch, num_students, dtype=torch.bool, device=device)
    if not isinstance(active, torch.Tensor) and str(getattr(active, "dtype", "")) == "bool":
        active = torch.as_tensor(active)  # a numpy bool mask
    if isinstance(active, torch.Tensor) and active.dtype != torch.bool:
        # integer tensors hold indices: read as a mask, [2, 3, 1, 0] would silently switch on 0, 1, 2
        if active.dim() != 1 or active.is_floating_point() or active.is_complex():
            raise ConfigError(f"an active tensor is a bool mask [{num_students}] or [{batch}, {num_students}], or 1-D "
                              f"integer student indices; got {str(active.dtype).removeprefix('torch.')} of shape "
                              f"{list(active.shape)}")
        active = active.tolist()
    if not isinstance(active, torch.Tensor):
        idx = check_student_indices(active, num_students, "active student")
        mask = torch.zeros(num_students, dtype=torch.bool, device=device)
        mask[torch.as_tensor(idx, dtype=torch.long, device=device)] = True
        return mask.expand(batch, num_students)
    mask = active.to(device=device, dtype=torch.bool)
    if mask.shape == (num_students,):
        return mask.expand(batch, num_students)
    if mask.shape != (batch, num_students):
        raise ConfigError(
            f"active mask must have shape [{num_students}] or [{batch}, {num_students}], "
            f"got {list(mask.shape)}"
        )
    return mask


class Ensemble(nn.Module):
    """N students that see the same input, a linear head over their concatenated rates.

    ``y = W [f_S^(1); ...; f_S^(N)] + b`` with inactive students contributing zeros
    (method.md sections 1 and 5). Students only run on the samples they are active for, so
    their counted operations are exactly those of the active set.

    Args:
        students: Student modules (``forward(x_nchwt) -> StudentOutput``, ``rates(out)``,
            ``spec``); see :mod:`sne_loihi.students`.
        num_classes: Number of output classes.
    """

    def __init__(self, students: Sequence[nn.Module], num_classes: int) -> None:
        super().__init__()
        if not students:
            raise ConfigError("an ensemble needs at least one student")
        self.students = nn.ModuleList(students)
        self.sizes = [int(s.spec.out_features) for s in students]
        self.head = nn.Linear(sum(self.sizes), num_classes)

    @property
    def num_students(self) -> int:
        """N."""
        return len(self.students)

    def forward(
        self,
        x_nchw: torch.Tensor,
        active: torch.Tensor | Sequence[int] | None = None,
    ) -> EnsembleOutput:
        """Run the active students and the head.

        Args:
            x_nchw: Images in [0, 1].
            active: See :func:`active_mask`.
        """
        batch = x_nchw.shape[0]
        mask = active_mask(active, batch, self.num_students, x_nchw.device)
        rates: list[torch.Tensor] = []
        outputs: list[object | None] = []
        indices: list[torch.Tensor] = []
        encoded: dict[tuple, torch.Tensor] = {}
        for i, student in enumerate(self.students):
            idx = mask[:, i].nonzero(as_tuple=True)[0]
            rate = x_nchw.new_zeros(batch, self.sizes[i])
            out = None
            if len(idx) > 0:
                spec = student.spec
                key = (NeuronLibrary(spec.neuron_library), spec.time_steps, spec.input_bits)
                if key not in encoded:
                    encoded[key] = encode_for(spec, x_nchw)
                x_in = encoded[key] if len(idx) == batch else encoded[key][idx]
                out = student(x_in)
                r = student.rates(out)
                rate = r if len(idx) == batch else rate.index_copy(0, idx, r)
            rates.append(rate)
            outputs.append(out)
            indices.append(idx)
        logits = self.head(torch.cat(rates, dim=1))
        return EnsembleOutput(logits, rates, mask, outputs, indices)
