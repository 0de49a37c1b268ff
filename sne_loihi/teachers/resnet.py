"""CIFAR-style ResNet18: 3x3 stem, no max-pool (f_T: 512-d after global average pool)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.teachers.registry import TEACHERS

#: ``(channels, first stride)`` of each stage; ResNet18 has two basic blocks per stage.
RESNET18_STAGES: list[tuple[int, int]] = [(64, 1), (128, 2), (256, 2), (512, 2)]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x_nchw)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x_nchw))


class ResNet(nn.Module):
    """Stem conv3x3 -> stages of basic blocks -> global average pool (f_T) -> linear.

    Args:
        stages: ``(channels, first stride)`` per stage.
        blocks_per_stage: Basic blocks in each stage.
        in_shape: ``(C, H, W)``.
        num_classes: Output classes.
    """

    def __init__(
        self,
        stages: list[tuple[int, int]],
        blocks_per_stage: list[int],
        in_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        super().__init__()
        width = stages[0][0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_shape[0], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        c = width
        for (channels, stride), count in zip(stages, blocks_per_stage):
            for i in range(count):
                blocks.append(BasicBlock(c, channels, stride if i == 0 else 1))
                c = channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = c
        self.classifier = nn.Linear(c, num_classes)

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """f_T ``[N, 512]`` (average of post-ReLU maps)."""
        return torch.flatten(self.pool(self.blocks(self.stem(x_nchw))), 1)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, num_classes]``."""
        return self.classifier(self.features(x_nchw))


@TEACHERS.register("resnet18")
def resnet18(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet18, CIFAR variant (3x3 stem, no max-pool)."""
    return ResNet(RESNET18_STAGES, [2, 2, 2, 2], in_shape, num_classes)
