"""Batched prediction and top-1 accuracy, shared by training, evaluation and reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from sne_loihi.distributed import to_device
from sne_loihi.errors import ConfigError


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """Yield index batches over ``range(n)``, shuffled when a generator is given."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def predict_logits(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x_nchw: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Run ``forward`` over ``x_nchw`` in batches; returns CPU logits."""
    out = []
    for idx in batch_indices(len(x_nchw), batch_size, None):
        out.append(forward(to_device(x_nchw[idx], device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(-1) == labels.to(logits.device)).float().mean())
