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

from sne_loihi.ensemble.policies import StudentTable


def prefix_masks(num_samples: int, order: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """``[S, N]`` bool: for each sample the first K students of ``order``, K uniform in 1..N."""
    n = len(order)
    k = torch.randint(1, n + 1, (num_samples,), generator=generator)
    rank = torch.empty(n, dtype=torch.long)
    rank[torch.as_tensor(list(order))] = torch.arange(n)
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
    order = list(range(table.num_students)) if order is None else list(order)
    gen = torch.Generator().manual_seed(seed)
    cascade = copy.deepcopy(head).cpu().train()
    opt = torch.optim.Adam(cascade.parameters(), lr=lr)
    rates = [r.float() for r in table.rates]
    s = len(table.labels)
    for _ in range(epochs):
        perm = torch.randperm(s, generator=gen)
        for start in range(0, s, batch_size):
            idx = perm[start : start + batch_size]
            mask = prefix_masks(len(idx), order, gen)
            x = torch.cat([r[idx] * mask[:, i : i + 1] for i, r in enumerate(rates)], dim=1)
            loss = F.cross_entropy(cascade(x), table.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return cascade.eval()
