"""A head for per-sample activation, trained so that partial features are meaningful.

The cascade head starts from the ensemble's head and is fine-tuned on the training set's
cached student rates with random *prefix* masks: for each sample a K in 1..N is drawn and
only the first K students (in cascade order) keep their rates, the rest read zeros. The
students are frozen, so this costs one pass of the students over the training set plus a
few seconds of logistic-regression-sized training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sne_loihi.ensemble.policies import StudentTable, check_order


def prefix_masks(
    num_samples: int, order: Sequence[int], generator: torch.Generator, num_students: int | None = None
) -> torch.Tensor:
    """``[S, N]`` bool: for each sample the first K students of ``order``, K uniform in 1..len(order).

    Args:
        num_samples: S.
        order: Cascade order (distinct student indices).
        generator: Source of the K draws.
        num_students: N (default ``len(order)``); students not in ``order`` are never on.
    """
    n = len(order) if num_students is None else int(num_students)
    order = check_order(order, n)
    k = torch.randint(1, len(order) + 1, (num_samples,), generator=generator)
    rank = torch.full((n,), n, dtype=torch.long)  # students outside the order: never reached
    rank[torch.as_tensor(order)] = torch.arange(len(order))
    return rank.unsqueeze(0) < k.unsqueeze(1)


def train_cascade_head(
    head: torch.nn.Linear,
    table: StudentTable,
    *,
    order: Sequence[int] | None = None,
    epochs: int = 60,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> torch.nn.Linear:
    """Fine-tune a copy of ``head`` on masked training-set rates (the original is untouched)."""
    order = check_order(order, table.num_students)
    gen = torch.Generator().manual_seed(seed)
    cascade = copy.deepcopy(head).cpu().train()
    opt = torch.optim.Adam(cascade.parameters(), lr=lr)
    rates = [r.float() for r in table.rates]
    s = len(table.labels)
    for _ in range(epochs):
        perm = torch.randperm(s, generator=gen)
        for start in range(0, s, batch_size):
            idx = perm[start : start + batch_size]
            mask = prefix_masks(len(idx), order, gen, table.num_students)
            x = torch.cat([r[idx] * mask[:, i : i + 1] for i, r in enumerate(rates)], dim=1)
            loss = F.cross_entropy(cascade(x), table.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return cascade.eval()
