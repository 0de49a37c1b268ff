"""Distillation loss and feature scaling (method.md section 3)."""

from __future__ import annotations

import pytest
import torch

from sne_loihi.config import FeatureScaling
from sne_loihi.ensemble import ensemble_loss, fit_feature_scale, kd_loss, scale_features


def test_kd_loss_is_sum_of_per_student_mse_over_their_groups() -> None:
    targets = torch.tensor([[0.0, 1.0, 0.5, 0.25], [1.0, 0.0, 0.5, 0.75]])
    groups = [(2, 0), (1, 3)]
    rates = [torch.tensor([[0.5, 0.0], [0.5, 1.0]]), torch.tensor([[0.0, 0.0], [0.0, 0.0]])]
    # student 0 matches its group exactly -> 0; student 1: mean of (1, .0625, 0, .5625) = 0.40625
    assert float(kd_loss(rates, targets, groups)) == pytest.approx(0.40625)
    # inactive students are left out
    assert float(kd_loss(rates, targets, groups, active_n=[True, False])) == pytest.approx(0.0)


def test_ensemble_loss_adds_alpha_times_kd_and_alpha_zero_is_plain_ce() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    targets = torch.tensor([[1.0], [0.0]])
    rates = [torch.tensor([[0.0], [0.0]])]
    ce = torch.nn.functional.cross_entropy(logits, labels)
    terms = ensemble_loss(logits, labels, rates, targets, [(0,)], alpha=3.0)
    assert float(terms.total) == pytest.approx(float(ce) + 3.0 * 0.5)
    assert terms.kd == pytest.approx(0.5)
    plain = ensemble_loss(logits, labels, rates, targets, [(0,)], alpha=0.0)
    assert float(plain.total) == pytest.approx(float(ce)) and plain.kd == 0.0


def test_kd_gradient_reaches_rates() -> None:
    rates = [torch.zeros(2, 1, requires_grad=True)]
    kd_loss(rates, torch.ones(2, 1), [(0,)]).backward()
    assert torch.all(rates[0].grad < 0)


def test_feature_scaling_maps_into_unit_range_and_handles_dead_columns() -> None:
    feats = torch.tensor([[0.0, 2.0, 0.0], [1.0, 4.0, 0.0], [3.0, 8.0, 0.0]])
    scale = fit_feature_scale(feats, FeatureScaling.MAX, 100.0)
    assert scale.tolist() == [3.0, 8.0, 1.0]
    scaled = scale_features(feats, scale)
    assert scaled.min() >= 0 and scaled.max() <= 1
    assert scaled[:, 2].abs().sum() == 0
    assert fit_feature_scale(feats, FeatureScaling.NONE, 99.0).tolist() == [1.0, 1.0, 1.0]
