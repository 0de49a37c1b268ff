"""Distillation losses (method.md section 3) and teacher-feature scaling, as pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sne_loihi.config import FeatureScaling
from sne_loihi.errors import ConfigError


@dataclass
class LossTerms:
    """``total = ce + alpha * kd`` and its parts (detached floats for logging)."""

    total: torch.Tensor
    ce: float
    kd: float


def fit_feature_scale(
    features_nd: torch.Tensor, scaling: FeatureScaling, percentile: float
) -> torch.Tensor:
    """Per-dimension divisor that maps teacher features into the rate range [0, 1].

    Args:
        features_nd: Teacher features over the training set (post-ReLU, >= 0).
        scaling: ``MAX`` divides by the ``percentile`` of each column; ``NONE`` by 1.
        percentile: In (0, 100].

    Returns:
        ``[D]`` positive scale (dead columns get 1 so they map to 0).
    """
    if scaling == FeatureScaling.NONE:
        return torch.ones(features_nd.shape[1])
    if not 0 < percentile <= 100:
        raise ConfigError(f"feature percentile must be in (0, 100], got {percentile}")
    q = torch.quantile(features_nd.float(), percentile / 100.0, dim=0)
    return torch.where(q > 0, q, torch.ones_like(q))


def scale_features(features_nd: torch.Tensor, scale_d: torch.Tensor) -> torch.Tensor:
    """``clip(f / scale, 0, 1)``: teacher features as target firing rates."""
    return (features_nd / scale_d.to(features_nd.device)).clamp(0.0, 1.0)


def kd_loss(
    rates: Sequence[torch.Tensor],
    targets_nd: torch.Tensor,
    groups: Sequence[Sequence[int]],
    active_n: Sequence[bool] | None = None,
) -> torch.Tensor:
    """``L_KD = sum_i MSE(f_T^(i), f_S^(i))`` over the (active) students.

    Args:
        rates: Student i's rates ``[B, |group_i|]``.
        targets_nd: Scaled teacher features ``[B, D]``.
        groups: Teacher feature indices per student, in partition order.
        active_n: Which students ran for this batch (inactive ones are excluded: their
            zeros carry no information about the features they would have learnt).
    """
    total = targets_nd.new_zeros(())
    for i, (rate, group) in enumerate(zip(rates, groups)):
        if active_n is not None and not active_n[i]:
            continue
        idx = torch.as_tensor(list(group), dtype=torch.long, device=targets_nd.device)
        total = total + F.mse_loss(rate, targets_nd.index_select(1, idx))
    return total


def ensemble_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    rates: Sequence[torch.Tensor],
    targets_nd: torch.Tensor | None,
    groups: Sequence[Sequence[int]],
    alpha: float,
    active_n: Sequence[bool] | None = None,
) -> LossTerms:
    """``L = CE(y, label) + alpha * L_KD``; ``alpha = 0`` (or no targets) is plain training."""
    ce = F.cross_entropy(logits, labels)
    if alpha == 0 or targets_nd is None:
        return LossTerms(ce, float(ce.detach()), 0.0)
    kd = kd_loss(rates, targets_nd, groups, active_n)
    return LossTerms(ce + alpha * kd, float(ce.detach()), float(kd.detach()))
