"""A small CNN for the 8x8 digits (f_T: a 64-d post-ReLU hidden layer)."""

from __future__ import annotations

import torch
from torch import nn

from sne_loihi.errors import ConfigError
from sne_loihi.teachers.registry import TEACHERS


class DigitsCNN(nn.Module):
    """conv32 -> conv64 -> pool -> conv64 -> pool -> fc(feature_dim) -> dropout -> fc(classes).

    Args:
        in_shape: ``(C, H, W)``; H and W at least 4.
        num_classes: Output classes.
        feature_dim: Width of the hidden layer whose post-ReLU output is f_T.
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, feature_dim: int = 64) -> None:
        super().__init__()
        c, h, w = in_shape
        if h < 4 or w < 4:
            raise ConfigError(f"digits_cnn needs images of at least 4x4, got {h}x{w}")
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (h // 4) * (w // 4), feature_dim), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """f_T ``[N, feature_dim]`` (post-ReLU)."""
        return self.body(x_nchw)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, num_classes]``."""
        return self.classifier(self.dropout(self.features(x_nchw)))


@TEACHERS.register("digits_cnn")
def digits_cnn(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Small CNN for 8x8x1 digits (about 80k parameters)."""
    return DigitsCNN(in_shape, num_classes)
