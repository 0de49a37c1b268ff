"""Student ensemble, distillation losses and ensemble checkpoints."""

from sne_loihi.ensemble.loss import LossTerms, ensemble_loss, fit_feature_scale, kd_loss, scale_features
from sne_loihi.ensemble.model import Ensemble, EnsembleOutput, active_mask, encode_for

__all__ = [
    "Ensemble", "EnsembleOutput", "LossTerms", "active_mask", "encode_for", "ensemble_loss",
    "fit_feature_scale", "kd_loss", "scale_features",
]
