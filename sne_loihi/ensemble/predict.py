"""Predictions of a trained ensemble on a batch of images, under an active set or the
per-sample policy, with their exact cost: what the run report measures, for any images (no
labels needed).

Every student runs once on every image (:func:`~sne_loihi.ensemble.policies.student_table`);
a policy then picks, per sample, which students count. Students are independent of one
another, so the result equals running only the chosen students (see
:mod:`sne_loihi.ensemble.policies`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sne_loihi.config import DEFAULT_ENERGY_PROFILE
from sne_loihi.ensemble.model import Ensemble
from sne_loihi.errors import ConfigError, DataError, one_line

if TYPE_CHECKING:
    from sne_loihi.cost.energy import EnergyProfile


@dataclass
class Prediction:
    """What :func:`predict` returns: predictions and their cost, per sample.

    Attributes:
        predictions: ``[S]`` predicted class indices.
        logits: ``[S, classes]`` head output.
        ran_sn: ``[S, N]`` bool: the students each sample ran.
        macs_s: ``[S]`` synaptic ops on graded input (the first layer, fed pixels).
        acs_s: ``[S]`` synaptic ops on binary spikes (every later layer).
        neuron_updates_s: ``[S]`` neuron updates (the students run: neurons x T).
    """

    predictions: torch.Tensor
    logits: torch.Tensor
    ran_sn: torch.Tensor
    macs_s: torch.Tensor
    acs_s: torch.Tensor
    neuron_updates_s: torch.Tensor

    def students_per_sample(self) -> float:
        """Mean number of students run per sample."""
        return float(self.ran_sn.sum(1).double().mean())

    def energy_pj(self, profile: EnergyProfile | str | Path = DEFAULT_ENERGY_PROFILE) -> float:
        """Mean energy per sample in picojoules.

        Args:
            profile: A registered profile name (``cmos45nm``, ``loihi``), a TOML profile file,
                or an :class:`~sne_loihi.cost.energy.EnergyProfile`.

        Raises:
            ConfigError: Unknown profile or an invalid profile file.
        """
        from sne_loihi.cost.energy import energy_pj

        return energy_pj(profile, float(self.macs_s.mean()), float(self.acs_s.mean()),
                         float(self.neuron_updates_s.mean()))


def _images(x_nchw: Any, in_shape: Sequence[int] | None) -> torch.Tensor:
    """``x_nchw`` as a float32 tensor, checked: real numbers, ``[S, C, H, W]`` in [0, 1], the
    ensemble's shape."""
    if isinstance(x_nchw, torch.Tensor):
        if x_nchw.is_complex():
            raise DataError(f"images must be real numbers, got a {str(x_nchw.dtype).removeprefix('torch.')} tensor")
        x = x_nchw.detach().float()
    else:
        try:
            arr = np.asarray(x_nchw)
        except ValueError as exc:  # ragged nested lists
            raise DataError(f"images must be a numeric [S, C, H, W] array: {one_line(exc)}") from None
        if arr.dtype.kind not in "biuf":
            raise DataError(f"images must be a numeric [S, C, H, W] array, got {type(x_nchw).__name__} of dtype {arr.dtype}")
        x = torch.as_tensor(arr).float()
    if x.dim() != 4 or len(x) == 0:
        raise DataError(f"images must be a non-empty [S, C, H, W] array, got shape {list(x.shape)}")
    if in_shape is not None and list(x.shape[1:]) != list(in_shape):
        raise DataError(f"images are {list(x.shape[1:])} (C, H, W), the ensemble expects {list(in_shape)}")
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise DataError("images must hold pixel values in [0, 1]")
    return x


def _threshold(threshold: Any) -> float:
    """The per-sample threshold as a float, checked: a finite number >= 0."""
    try:
        value = float(threshold) if not isinstance(threshold, (str, bytes, bool)) else None
    except (TypeError, ValueError):
        value = None
    if value is None or not (np.isfinite(value) and value >= 0):
        raise ConfigError(f"the per-sample threshold must be a finite number >= 0, got {threshold!r}")
    return value


def _check_head(head: Any, own: torch.nn.Linear) -> torch.nn.Linear:
    """``head`` checked: a linear layer of the ensemble's own head's shape (rates -> classes)."""
    if not isinstance(head, torch.nn.Linear):
        raise ConfigError(f"head must be a torch.nn.Linear over the students' rates (e.g. Run.current_cascade_head), "
                          f"got {type(head).__name__}")
    if (head.in_features, head.out_features) != (own.in_features, own.out_features):
        raise ConfigError(f"head is Linear({head.in_features}, {head.out_features}); this ensemble needs "
                          f"Linear({own.in_features}, {own.out_features}) (rates of all students -> classes)")
    return head


def _first_layer_modes(modes: Sequence[Any], num_students: int) -> list[Any]:
    """``first_layer`` checked: one ``synaptic`` or ``bias`` per student."""
    from sne_loihi.config import FirstLayer

    allowed = (FirstLayer.SYNAPTIC, FirstLayer.BIAS)
    values = list(modes)
    try:
        out = [FirstLayer(m) for m in values]
    except ValueError:
        out = []
    if len(values) != num_students or len(out) != num_students or any(m not in allowed for m in out):
        raise ConfigError(f"first_layer needs one of synaptic, bias per student ({num_students}), got {values}")
    return out


@torch.no_grad()
def predict(
    ensemble: Any,
    x_nchw: Any,
    *,
    active: Sequence[int] | torch.Tensor | None = None,
    threshold: float | None = None,
    head: torch.nn.Linear | None = None,
    order: Sequence[int] | None = None,
    batch_size: int = 256,
    first_layer: Sequence[Any] | None = None,
) -> Prediction:
    """Classify images with an active set of students or the per-sample policy.

    Args:
        ensemble: An :class:`~sne_loihi.ensemble.model.Ensemble`, or what
            :func:`~sne_loihi.ensemble.checkpoint.load_ensemble` / ``Run.ensemble()`` return.
        x_nchw: ``[S, C, H, W]`` images in [0, 1] (a torch tensor or a numpy array).
        active: The students switched on for every sample (``None``: all): indices (a
            sequence, or a 1-D integer tensor), or a ``[N]`` / ``[S, N]`` bool mask. Not
            together with ``threshold``.
        threshold: Per-sample activation: students run in ``order``; after each one a sample
            stops when the head's top softmax probability on the rates so far (zeros for the
            students not run) reaches ``threshold`` (0: the first student only; above 1:
            every student).
        head: The linear head that reads the rates (default: the ensemble's own). For
            per-sample activation the run's cascade head, trained with random prefix masks,
            decides better: ``Run.current_cascade_head(N)``.
        order: The cascade order (default ``0 .. N-1``).
        batch_size: Images per forward pass.
        first_layer: Per student how its exported first layer is driven (``synaptic``,
            ``bias``; see ``lava.first_layer``), which decides whether its MACs are counted
            every time step or once per sample; default: all synaptic.

    Returns:
        The predictions, the students each sample ran, and the exact op counts.

    Raises:
        ConfigError: Both ``active`` and ``threshold``, ``order`` without ``threshold``, an
            invalid index, order, threshold or batch size, or a ``head`` that is not a linear
            layer of the ensemble head's shape.
        DataError: Images that are not real numbers, of the wrong shape or outside [0, 1].
    """
    from sne_loihi.ensemble.policies import cascade_mask, head_logits, student_table

    model: Ensemble = getattr(ensemble, "model", ensemble)
    if not isinstance(model, Ensemble):
        raise ConfigError(f"predict needs an Ensemble or a loaded ensemble, got {type(ensemble).__name__}")
    if active is not None and threshold is not None:
        raise ConfigError("give either an active set or a per-sample threshold, not both")
    if order is not None and threshold is None:
        raise ConfigError("order is the per-sample policy's cascade order: give it with a threshold")
    if threshold is not None:
        threshold = _threshold(threshold)
    try:
        batch_size = operator.index(batch_size)
    except TypeError:
        raise ConfigError(f"batch size must be an integer, got {batch_size!r}") from None
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    head = _check_head(head, model.head) if head is not None else model.head
    x = _images(x_nchw, getattr(ensemble, "in_shape", None))
    n = model.num_students
    if first_layer is not None:
        first_layer = _first_layer_modes(first_layer, n)
    if threshold is None:  # checked before the students run
        from sne_loihi.ensemble.model import active_mask

        mask_sn = active_mask(active, len(x), n, torch.device("cpu")).clone()
        if not bool(mask_sn.any(dim=1).all()):  # as `--active` refuses an empty set
            raise ConfigError("an active set switches on at least one student for every sample, got none")
    table = student_table(model, x.to(next(model.parameters()).device), torch.zeros(len(x), dtype=torch.long),
                          batch_size, first_layer=first_layer)
    if threshold is not None:
        mask_sn = cascade_mask(head, table, threshold, order)
    logits = head_logits(head, table, mask_sn)
    maskf = mask_sn.double()
    updates = table.neuron_updates_n if table.neuron_updates_n is not None else torch.zeros(n, dtype=torch.float64)
    return Prediction(
        predictions=logits.argmax(-1), logits=logits, ran_sn=mask_sn,
        macs_s=(table.macs_sn * maskf).sum(1), acs_s=(table.acs_sn * maskf).sum(1),
        neuron_updates_s=maskf @ updates.double(),
    )
