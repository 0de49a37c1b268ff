"""airbench94-style teacher (Keller Jordan's CIFAR-10 speed-run network, 2024).

Input normalisation (per-channel mean/std of the training images) -> frozen 2x2 patch-whitening
convolution (its bias trains for the first :attr:`AirbenchNet.whiten_bias_epochs` epochs) -> GELU
-> three groups ``conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU`` (64 / 256 / 256
channels) -> global max pool -> ReLU (f_T) -> linear without bias, logits times 1/9. The
BatchNorm scales are frozen at 1 (only their biases train). The whitening weights and the
normalisation statistics are data-dependent (:meth:`AirbenchNet.init_whitening`) and live in the
``state_dict`` (a frozen parameter and two buffers), so a checkpoint rebuilds the model exactly.

Inputs are float ``[0, 1]`` NCHW like every built-in teacher's; the normalisation the original
does in its data loader happens inside the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.errors import ConfigError
from sne_loihi.teachers.registry import TEACHERS

#: Channels of the three conv groups (airbench94).
AIRBENCH_WIDTHS: tuple[int, int, int] = (64, 256, 256)
#: airbench95's wider groups (Jordan's time-to-95% variant: the same network 2x/1.5x/1.5x wide,
#: 15 epochs at lr 10 instead of 11.5 per 1024 examples; about 3.9x airbench94's training FLOPs).
AIRBENCH95_WIDTHS: tuple[int, int, int] = (128, 384, 384)
#: Side of the whitening convolution's patches.
WHITEN_KERNEL = 2
#: airbench94's logit scale.
LOGIT_SCALE = 1.0 / 9.0
#: Training images whose patches estimate the whitening (airbench94: 5,000).
WHITEN_IMAGES = 5000
#: Added to the patch covariance's eigenvalues before the inverse square root.
WHITEN_EPS = 5e-4


def min_side(kernel: int = WHITEN_KERNEL, pools: int = 3) -> int:
    """Smallest image side the network accepts: the last group's map must be at least 1x1."""
    return 2**pools + kernel - 1


class ConvGroup(nn.Module):
    """``conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU`` (BN scales frozen at 1)."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = _batchnorm(out_channels, bn_momentum)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _batchnorm(out_channels, bn_momentum)
        for conv in (self.conv1, self.conv2):  # airbench: identity on the first in_channels outputs
            nn.init.dirac_(conv.weight.data[: conv.weight.shape[1]])

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x_nchw), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


def _batchnorm(channels: int, momentum: float | None) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=momentum)
    norm.weight.requires_grad_(False)
    return norm


class ScaledLinear(nn.Module):
    """``scale * (x @ W.T)``: the classifier reads exactly f_T."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.scale = scale

    def forward(self, features_nd: torch.Tensor) -> torch.Tensor:
        return self.linear(features_nd) * self.scale


class AirbenchNet(nn.Module):
    """airbench94 network for any ``(C, H, W)`` with ``H, W >= min_side()`` (9).

    Attributes:
        feature_dim: Width of f_T (the last group's channels, 256).
        whiten_bias_epochs: The whitening bias trains in epochs ``0 .. whiten_bias_epochs - 1``
            (:meth:`set_epoch`), then freezes.

    Args:
        in_shape: ``(C, H, W)``.
        num_classes: Output classes.
        widths: Channels of the three groups.
        bn_momentum: PyTorch BatchNorm momentum; ``None`` (default): a cumulative average.
            airbench94 tracks with 0.4 (its "0.6"), but here the running statistics are never
            used as they stand: the teacher loop re-estimates them for the final weights after
            every epoch (:func:`sne_loihi.train.common.recalibrate_batchnorm`). The cumulative
            average keeps an untrained model's eval mode sane after a few training batches
            (with 0.4, one batch shifts the running means so far that every f_T entry is 0).

    Raises:
        ConfigError: Images smaller than ``min_side() x min_side()``.
    """

    whiten_bias_epochs = 3

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        widths: tuple[int, int, int] = AIRBENCH_WIDTHS,
        bn_momentum: float | None = None,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        side = min_side()
        if h < side or w < side:
            raise ConfigError(f"airbench needs images of at least {side}x{side}, got {h}x{w}")
        self.register_buffer("input_mean", torch.zeros(c))
        self.register_buffer("input_std", torch.ones(c))
        whiten_width = 2 * c * WHITEN_KERNEL**2
        self.whiten = nn.Conv2d(c, whiten_width, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        groups, prev = [], whiten_width
        for width in widths:
            groups.append(ConvGroup(prev, width, bn_momentum))
            prev = width
        self.groups = nn.Sequential(*groups)
        self.feature_dim = prev
        self.classifier = ScaledLinear(prev, num_classes, LOGIT_SCALE)

    @torch.no_grad()
    def init_whitening(self, x_train_nchw: torch.Tensor, max_images: int = WHITEN_IMAGES,
                       eps: float = WHITEN_EPS) -> None:
        """Data-dependent init: normalisation statistics and the whitening convolution.

        Sets ``input_mean``/``input_std`` to the per-channel statistics of at most
        ``max_images`` evenly spaced training images (data sets stored sorted by class are
        sampled across classes) and the whitening weights to the eigenvectors of their
        (normalised) 2x2 patch covariance, each scaled by ``1 / sqrt(eigenvalue + eps)``,
        followed by their negatives (GELU then keeps both signs). Call once, before training
        (not on resume: the checkpoint holds the result).

        Args:
            x_train_nchw: Training images, float ``[0, 1]``, ``[N, C, H, W]``.
            max_images: Use at most this many (evenly spaced).
            eps: Added to every eigenvalue.
        """
        dev = self.whiten.weight.device
        x = x_train_nchw[:: max(1, -(-len(x_train_nchw) // max_images))].to(dev, torch.float32)
        c = x.shape[1]
        self.input_mean.copy_(x.mean(dim=(0, 2, 3)))
        self.input_std.copy_(x.std(dim=(0, 2, 3)).clamp_min(1e-6))
        x = self._normalise(x)
        k = WHITEN_KERNEL
        patches = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)  # largest first
        scaled = (eigenvectors / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).reshape(-1, c, k, k)
        self.whiten.weight.copy_(torch.cat([scaled, -scaled]).to(self.whiten.weight.dtype))

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before epoch ``epoch`` (0-based): freezes the whitening
        bias from epoch :attr:`whiten_bias_epochs` on."""
        self.whiten.bias.requires_grad_(epoch < self.whiten_bias_epochs)

    def _normalise(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return (x_nchw - self.input_mean[:, None, None]) / self.input_std[:, None, None]

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """f_T ``[N, feature_dim]``: the last group's post-GELU maps, global max pool, then ReLU.

        GELU outputs reach down to -0.17, so the max of a channel whose map is negative
        everywhere would be slightly negative; the ReLU after the pool makes every feature
        ``>= 0`` (the protocol's post-ReLU range, which ``FeatureScaling.MAX`` assumes). The
        classifier reads exactly this vector.
        """
        x = F.gelu(self.whiten(self._normalise(x_nchw)))
        x = self.groups(x)
        return F.relu(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, num_classes]``."""
        return self.classifier(self.features(x_nchw))


@TEACHERS.register("airbench")
def airbench(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """airbench94 (whitening conv, 64/256/256 groups, GELU; needs images >= 9x9)."""
    return AirbenchNet(tuple(in_shape), num_classes)


@TEACHERS.register("airbench95")
def airbench95(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """airbench95 (airbench with 128/384/384 groups: f_T is 384-d; needs images >= 9x9)."""
    return AirbenchNet(tuple(in_shape), num_classes, widths=AIRBENCH95_WIDTHS)
