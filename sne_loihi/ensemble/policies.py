"""Activation policies (method.md section 5): random K, all C(N, K) subsets, per-sample cascade.

All policies are evaluated from one :class:`StudentTable`: every student's rates and exact
per-sample op counts on the evaluation set. Students are independent of one another (each
sees only the input), so the output of any subset, and of any per-sample choice, is exactly
the head applied to the table's rates with the inactive students zeroed, and its cost is the
sum of the active students' counted ops. The K = N configuration therefore reproduces the
full ensemble bit for bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sne_loihi.ensemble.model import Ensemble
from sne_loihi.errors import ConfigError
from sne_loihi.indices import check_student_indices


@dataclass
class StudentTable:
    """Per-sample outputs and costs of every student on one data set.

    Attributes:
        rates: Per student ``[S, F_i]`` firing rates.
        macs_sn: ``[S, N]`` synaptic ops on graded input per sample and student.
        acs_sn: ``[S, N]`` synaptic ops on binary spikes per sample and student.
        labels: ``[S]``.
        neuron_updates_n: ``[N]`` neuron updates of one sample per student (its weighted
            layers' neurons x T; the same for every sample), or ``None`` if not known.
    """

    rates: list[torch.Tensor]
    macs_sn: torch.Tensor
    acs_sn: torch.Tensor
    labels: torch.Tensor
    neuron_updates_n: torch.Tensor | None = None

    @property
    def num_students(self) -> int:
        return len(self.rates)


@torch.no_grad()
def student_table(model: Ensemble, x_nchw: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                  first_layer: Sequence[Any] | None = None) -> StudentTable:
    """Run every student on every sample once, keeping rates and exact op counts
    (``first_layer``: per student how its first layer is driven, default all synaptic; a
    bias-driven one counts its MACs once per sample, :func:`sne_loihi.cost.count_student_ops`)."""
    from sne_loihi.config import FirstLayer
    from sne_loihi.cost import OpKind, count_student_ops, neuron_updates_per_sample

    modes = [FirstLayer.SYNAPTIC] * model.num_students if first_layer is None else [FirstLayer(m) for m in first_layer]

    device = next(model.parameters()).device
    model.eval()
    n = model.num_students
    rates: list[list[torch.Tensor]] = [[] for _ in range(n)]
    macs, acs = [], []
    for start in range(0, len(x_nchw), batch_size):
        x = x_nchw[start : start + batch_size].to(device)
        out = model(x, None)
        m = torch.zeros(len(x), n, dtype=torch.float64)
        a = torch.zeros(len(x), n, dtype=torch.float64)
        for i, (student, sout) in enumerate(zip(model.students, out.student_outputs)):
            rates[i].append(out.rates[i].float().cpu())
            ops = count_student_ops(student, sout, modes[i])
            for l, kind in enumerate(ops.kinds):
                target = m if kind == OpKind.MAC else a
                target[:, i] += ops.ops_nl[:, l].double().cpu()
        macs.append(m)
        acs.append(a)
    updates = torch.tensor([float(neuron_updates_per_sample(s.spec)) for s in model.students], dtype=torch.float64)
    return StudentTable([torch.cat(r) for r in rates], torch.cat(macs), torch.cat(acs), y.cpu(), updates)


@dataclass
class PolicyPoint:
    """Accuracy and mean cost per sample of one policy setting.

    ``neuron_updates`` counts the active students' neurons x T (what the Lava evaluation
    counts too); profiles that price neuron updates (``loihi``) charge them.
    """

    policy: str
    setting: str
    accuracy: float
    macs: float
    acs: float
    mean_active: float
    neuron_updates: float = 0.0


@torch.no_grad()
def head_logits(head: torch.nn.Module, table: StudentTable, mask_sn: torch.Tensor) -> torch.Tensor:
    """Head output with inactive students' rates zeroed (``mask_sn``: ``[S, N]`` bool)."""
    device = head.weight.device
    parts = [r.to(device) * mask_sn[:, i : i + 1].to(device) for i, r in enumerate(table.rates)]
    return head(torch.cat(parts, dim=1)).float().cpu()


def policy_point(policy: str, setting: str, head: torch.nn.Module, table: StudentTable, mask_sn: torch.Tensor) -> PolicyPoint:
    """Accuracy and mean cost of any per-sample activation ``mask_sn`` (``[S, N]`` bool):
    the head on the masked rates, the ops of the students each sample ran only."""
    logits = head_logits(head, table, mask_sn)
    maskf = mask_sn.double()
    updates = 0.0 if table.neuron_updates_n is None else float((maskf @ table.neuron_updates_n.double()).mean())
    return PolicyPoint(
        policy=policy,
        setting=setting,
        accuracy=float((logits.argmax(-1) == table.labels).float().mean()),
        macs=float((table.macs_sn * maskf).sum(1).mean()),
        acs=float((table.acs_sn * maskf).sum(1).mean()),
        mean_active=float(maskf.sum(1).mean()),
        neuron_updates=updates,
    )


def subset_points(head: torch.nn.Module, table: StudentTable, k: int) -> list[PolicyPoint]:
    """Every one of the C(N, K) subsets, each applied to all samples."""
    n, s = table.num_students, len(table.labels)
    if not 1 <= k <= n:
        raise ConfigError(f"number of active students must be in 1..{n}, got {k}")
    points = []
    for subset in itertools.combinations(range(n), k):
        mask = torch.zeros(s, n, dtype=torch.bool)
        mask[:, list(subset)] = True
        points.append(policy_point("subset", ",".join(map(str, subset)), head, table, mask))
    return points


def random_k_mask(num_samples: int, num_students: int, k: int, batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    """``[S, N]`` bool: per batch of ``batch_size`` samples, K students drawn without replacement.

    The draws are those of :func:`~sne_loihi.ensemble.evaluate.evaluate_ensemble` with
    ``active=K`` and the same seed and batch size (one ``randperm`` per batch).

    Raises:
        ConfigError: K outside ``1..N`` or a batch size below 1.
    """
    if not 1 <= k <= num_students:
        raise ConfigError(f"number of active students must be in 1..{num_students}, got {k}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(num_samples, num_students, dtype=torch.bool)
    for start in range(0, num_samples, batch_size):
        mask[start : start + batch_size, torch.randperm(num_students, generator=gen)[:k]] = True
    return mask


def random_k_point(
    head: torch.nn.Module, table: StudentTable, k: int, batch_size: int = 256, seed: int = 0
) -> PolicyPoint:
    """Random K of N per batch (the paper's evaluation): one draw per ``batch_size`` samples."""
    mask = random_k_mask(len(table.labels), table.num_students, k, batch_size, seed)
    return policy_point("random", f"K={k}", head, table, mask)


def check_order(order: Sequence[int] | None, num_students: int) -> list[int]:
    """A cascade order: distinct student indices in ``0..N-1`` (``None``: ``0..N-1``).

    Raises:
        ConfigError: Empty order, an index out of range, or a repeated index.
    """
    if order is None:
        return list(range(num_students))
    if not list(order):
        raise ConfigError("a cascade order needs at least one student")
    return check_student_indices(order, num_students, "cascade order")


def cascade_mask(
    head: torch.nn.Module, table: StudentTable, threshold: float, order: Sequence[int] | None = None
) -> torch.Tensor:
    """Per-sample activation: run students in ``order``; after each, stop when the head's
    top softmax probability on the features so far (zeros for the rest) reaches ``threshold``.

    Returns:
        ``[S, N]`` bool mask of the students that ran for each sample.
    """
    n, s = table.num_students, len(table.labels)
    order = check_order(order, n)
    mask = torch.zeros(s, n, dtype=torch.bool)
    running = torch.ones(s, dtype=torch.bool)
    for student in order:
        mask[running, student] = True
        conf = torch.softmax(head_logits(head, table, mask), dim=-1).max(-1).values
        running = running & (conf < threshold)
        if not running.any():
            break
    return mask


def cascade_points(
    head: torch.nn.Module, table: StudentTable, thresholds: Sequence[float], order: Sequence[int] | None = None
) -> list[PolicyPoint]:
    """Accuracy-vs-cost curve of the per-sample policy over a threshold sweep."""
    return [policy_point("per-sample", f"thr={t:g}", head, table, cascade_mask(head, table, t, order)) for t in thresholds]
