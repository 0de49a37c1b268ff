"""CIFAR-style VGG with BatchNorm (f_T: the 512-d vector before the classifier)."""

from __future__ import annotations

import torch
from torch import nn

from sne_loihi.errors import ConfigError
from sne_loihi.teachers.registry import TEACHERS

POOL = "M"

#: Channel tables: an int is conv3x3 -> BN -> ReLU with that many channels, "M" a 2x2 max-pool.
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    "vgg19": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL,
              512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL],
}


def make_vgg_layers(cfg: list[int | str], in_channels: int) -> nn.Sequential:
    """Convolutional body from a channel table (see ``VGG_CFGS``)."""
    layers: list[nn.Module] = []
    c = in_channels
    for item in cfg:
        if item == POOL:
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(int(item)), nn.ReLU(inplace=True)]
            c = int(item)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG body -> global average pool -> flatten (f_T) -> linear classifier.

    For 32x32 input the body already ends at 1x1, so the pool is the identity there.

    Args:
        cfg: Channel table.
        in_shape: ``(C, H, W)``; H and W at least ``2 ** number_of_pools``.
        num_classes: Output classes.
        name: Used in error messages.
    """

    def __init__(self, cfg: list[int | str], in_shape: tuple[int, int, int], num_classes: int, name: str = "vgg") -> None:
        super().__init__()
        c, h, w = in_shape
        min_side = 2 ** sum(1 for item in cfg if item == POOL)
        if h < min_side or w < min_side:
            raise ConfigError(f"{name} needs images of at least {min_side}x{min_side}, got {h}x{w}")
        self.body = make_vgg_layers(cfg, c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = int([item for item in cfg if item != POOL][-1])
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """f_T ``[N, 512]`` (post-ReLU, pooled)."""
        return torch.flatten(self.pool(self.body(x_nchw)), 1)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, num_classes]``."""
        return self.classifier(self.features(x_nchw))


def _register(name: str) -> None:
    @TEACHERS.register(name)
    def build(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        return VGG(VGG_CFGS[name], in_shape, num_classes, name)

    build.__doc__ = f"{name.upper()} (CIFAR variant, BatchNorm)."


for _name in VGG_CFGS:
    _register(_name)
