"""Gaussian-noise robustness (the paper's Table IV): mean +/- SEM over repeats."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from sne_loihi.analysis.stats import mean_sem
from sne_loihi.config import comma_items
from sne_loihi.errors import ConfigError

__all__ = ["NoiseResult", "add_pixel_noise", "mean_sem", "noise_sweep", "parse_levels"]


@dataclass
class NoiseResult:
    """Accuracy of one model at one noise level over ``repeats`` noise draws."""

    model: str
    sigma: float
    mean: float
    sem: float
    repeats: int


def add_pixel_noise(x_nchw: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``clip(x + N(0, sigma^2), 0, 1)`` on every pixel."""
    noise = torch.randn(x_nchw.shape, generator=generator, dtype=x_nchw.dtype)
    return (x_nchw + sigma * noise.to(x_nchw.device)).clamp(0.0, 1.0)


def noise_sweep(
    models: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    x_nchw: torch.Tensor,
    y: torch.Tensor,
    sigmas: Sequence[float],
    repeats: int,
    seed: int = 0,
) -> list[NoiseResult]:
    """Accuracy of each model (``x_nchw -> predicted labels``) under pixel noise.

    Every model sees the same noisy images for a given (sigma, repeat).
    """
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    if not all(math.isfinite(s) and s >= 0 for s in sigmas):
        raise ConfigError(f"noise levels must be finite numbers >= 0, got {list(sigmas)}")
    results = []
    for sigma in sigmas:
        accs: dict[str, list[float]] = {name: [] for name in models}
        for r in range(repeats):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + r)
            noisy = add_pixel_noise(x_nchw, sigma, gen)
            for name, predict in models.items():
                accs[name].append(float((predict(noisy).cpu() == y.cpu()).float().mean()))
        for name, values in accs.items():
            mean, sem = mean_sem(values)
            results.append(NoiseResult(name, float(sigma), mean, sem, repeats))
    return results


def parse_levels(text: str) -> list[float]:
    """``"0.01,0.03"`` -> ``[0.01, 0.03]`` with a one-line error on bad input (also an empty
    item, ``"0.01,,0.03"``)."""
    if not text.strip():
        raise ConfigError("--noise needs at least one level")
    items = comma_items(text, "--noise")
    try:
        levels = [float(t) for t in items]
    except ValueError:
        raise ConfigError(f"--noise expects comma-separated numbers, got {text!r}") from None
    from sne_loihi.checks import MAX_NOISE_SIGMA

    if not all(math.isfinite(s) and 0 <= s <= MAX_NOISE_SIGMA for s in levels):
        raise ConfigError(f"--noise levels must be finite numbers in 0..{MAX_NOISE_SIGMA:g}, got {text!r}")
    if len(set(levels)) != len(levels):
        raise ConfigError(f"--noise names a level twice: {text!r}")
    return levels
