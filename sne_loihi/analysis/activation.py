"""Dynamic-activation analysis of a trained run: random K, all subsets, per-sample cascade.

Produces the numbers behind the paper's Tables V/VI (accuracy and ops per number of
active students) and the per-sample policy's accuracy-vs-cost curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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


@dataclass
class ActivationAnalysis:
    """Every policy point plus per-K summaries."""

    random_k: list[PolicyPoint] = field(default_factory=list)
    subsets: dict[int, list[PolicyPoint]] = field(default_factory=dict)
    cascade: list[PolicyPoint] = field(default_factory=list)

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
    all on one test table; random K draws a new subset every ``batch_size`` samples."""
    head = model.head.cpu()
    n = test_table.num_students
    out = ActivationAnalysis()
    for k in range(1, n + 1):
        out.random_k.append(random_k_point(head, test_table, k, batch_size=batch_size, seed=seed))
        out.subsets[k] = subset_points(head, test_table, k)
    if cascade_head is not None:
        out.cascade = cascade_points(cascade_head, test_table, thresholds)
    return out


def point_energy_nj(point: PolicyPoint, profile: EnergyProfile) -> float:
    """Energy per inference of a policy point, in nJ."""
    return energy_pj(profile, macs=point.macs, acs=point.acs, neuron_updates=point.neuron_updates) / 1000.0


def test_table(model: Ensemble, data: Any, batch_size: int = 256) -> StudentTable:
    """The student table of the test set."""
    return student_table(model, data.x_test_nchw, data.y_test, batch_size)
