"""Dynamic-activation analysis of a trained run: random K, all subsets, per-sample cascade.

Produces the numbers behind the paper's Tables V/VI (accuracy and ops per number of
active students) and the per-sample policy's accuracy-vs-cost curve.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from sne_loihi.cost.energy import EnergyProfile, energy_pj
from sne_loihi.ensemble.model import Ensemble
from sne_loihi.ensemble.policies import (
    PolicyPoint,
    StudentTable,
    cascade_points,
    random_k_point,
    student_table,
    subset_points,
)

DEFAULT_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.01)


class Head(str, enum.Enum):
    """Which linear head reads the (masked) student rates.

    ``ENSEMBLE``: the head trained with the students (all of them active).
    ``CASCADE``: the ensemble's head refit on training-set rates under random prefix masks
    (:mod:`sne_loihi.ensemble.cascade`), so that partial feature vectors are meaningful.
    """

    ENSEMBLE = "ensemble head"
    CASCADE = "cascade head"


@dataclass
class ActivationAnalysis:
    """Every policy point plus per-K summaries.

    ``random_k`` and ``subsets`` use the ensemble's head, ``cascade`` the cascade head (the
    deployed pairing); ``random_k_cascade_head`` and ``cascade_ensemble_head`` swap the heads,
    so each policy is also seen with the other's head (like-for-like comparisons).
    """

    random_k: list[PolicyPoint] = field(default_factory=list)
    subsets: dict[int, list[PolicyPoint]] = field(default_factory=dict)
    cascade: list[PolicyPoint] = field(default_factory=list)
    random_k_cascade_head: list[PolicyPoint] = field(default_factory=list)
    cascade_ensemble_head: list[PolicyPoint] = field(default_factory=list)

    def random_points(self, head: Head) -> list[PolicyPoint]:
        """Random K = 1..N read by ``head``."""
        return self.random_k if head == Head.ENSEMBLE else self.random_k_cascade_head

    def cascade_curve(self, head: Head) -> list[PolicyPoint]:
        """The per-sample threshold sweep decided and read by ``head``."""
        return self.cascade if head == Head.CASCADE else self.cascade_ensemble_head

    def equal_cost(self, head: Head) -> list[dict[str, Any]]:
        """Per-sample vs random K at random K's cost, both with ``head``
        (:func:`equal_cost_rows`)."""
        return equal_cost_rows(self.random_points(head), self.cascade_curve(head))

    def subset_mean(self, k: int) -> dict[str, float]:
        """Mean accuracy/ops over all C(N, K) subsets."""
        pts = self.subsets[k]
        return {
            "k": k,
            "accuracy": sum(p.accuracy for p in pts) / len(pts),
            "macs": sum(p.macs for p in pts) / len(pts),
            "acs": sum(p.acs for p in pts) / len(pts),
            "subsets": len(pts),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "random_k": [asdict(p) for p in self.random_k],
            "subsets": {str(k): [asdict(p) for p in v] for k, v in self.subsets.items()},
            "subset_means": [self.subset_mean(k) for k in sorted(self.subsets)],
            "cascade": [asdict(p) for p in self.cascade],
            "random_k_cascade_head": [asdict(p) for p in self.random_k_cascade_head],
            "cascade_ensemble_head": [asdict(p) for p in self.cascade_ensemble_head],
            "equal_cost": {h.value: self.equal_cost(h) for h in Head
                           if self.random_points(h) and self.cascade_curve(h)},
        }


def analyse_activation(
    model: Ensemble,
    test_table: StudentTable,
    cascade_head: torch.nn.Linear | None = None,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    batch_size: int = 256,
    seed: int = 0,
) -> ActivationAnalysis:
    """Random K, all subsets and (with a ``cascade_head``, e.g. from
    :func:`~sne_loihi.ensemble.cascade.ensure_cascade_head`) the per-sample threshold sweep,
    all on one test table; random K draws a new subset every ``batch_size`` samples. With a
    cascade head, random K is also read by it and the sweep is also decided and read by the
    ensemble's head (the same random draws and thresholds)."""
    head = model.head.cpu()
    n = test_table.num_students
    out = ActivationAnalysis()
    for k in range(1, n + 1):
        out.random_k.append(random_k_point(head, test_table, k, batch_size=batch_size, seed=seed))
        out.subsets[k] = subset_points(head, test_table, k)
    if cascade_head is not None:
        out.cascade = cascade_points(cascade_head, test_table, thresholds)
        out.cascade_ensemble_head = [replace(p, policy=f"per-sample ({Head.ENSEMBLE.value})")
                                     for p in cascade_points(head, test_table, thresholds)]
        out.random_k_cascade_head = [
            replace(random_k_point(cascade_head, test_table, k, batch_size=batch_size, seed=seed),
                    policy=f"random ({Head.CASCADE.value})") for k in range(1, n + 1)]
    return out


def accuracy_at_cost(points: Sequence[PolicyPoint], ops: float) -> float | None:
    """The best accuracy a policy curve reaches at ``ops`` (MACs + ACs per sample) or fewer:
    the running maximum of accuracy over the points sorted by cost, linearly interpolated
    (flat beyond the dearest point). ``None`` below the cheapest point or for no points."""
    import numpy as np

    pts = sorted((p.macs + p.acs, p.accuracy) for p in points)
    if not pts or ops < pts[0][0]:
        return None
    xs, ys = np.array([x for x, _ in pts]), np.maximum.accumulate(np.array([y for _, y in pts]))
    return float(np.interp(ops, xs, ys))


def equal_cost_rows(random_k: Sequence[PolicyPoint], cascade: Sequence[PolicyPoint]) -> list[dict[str, Any]]:
    """For random K = 1..N-1: its ops and accuracy, the per-sample curve's accuracy at the same
    ops (:func:`accuracy_at_cost`) and the difference (per-sample - random; ``None`` where the
    curve starts above that cost). K = N is left out: both policies then run every student."""
    rows = []
    for p in random_k[:-1]:
        ops = p.macs + p.acs
        acc = accuracy_at_cost(cascade, ops)
        rows.append({"k": int(round(p.mean_active)), "ops": ops, "random_accuracy": p.accuracy,
                     "per_sample_accuracy": acc, "difference": None if acc is None else acc - p.accuracy})
    return rows


def point_energy_nj(point: PolicyPoint, profile: EnergyProfile) -> float:
    """Energy per inference of a policy point, in nJ."""
    return energy_pj(profile, macs=point.macs, acs=point.acs, neuron_updates=point.neuron_updates) / 1000.0


def test_table(model: Ensemble, data: Any, batch_size: int = 256, first_layer: Any = None) -> StudentTable:
    """The student table of the test set (``first_layer``: per student how its first layer
    is driven, see :func:`~sne_loihi.ensemble.policies.student_table`)."""
    return student_table(model, data.x_test_nchw, data.y_test, batch_size, first_layer)
