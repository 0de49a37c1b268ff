"""Student capacity for groups of unequal size (agglomerative and k-means partitions)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sne_loihi.errors import ConfigError


def group_widths(sizes: Sequence[int], base_width: float) -> list[float]:
    """Width multipliers giving each student capacity in proportion to its share.

    Rule: ``width_i = base_width * sqrt(N * size_i / D)`` with ``D = sum(sizes)`` and
    ``N = len(sizes)``. A convolution's cost (MACs/ACs and parameters) scales roughly with
    width squared (input channels x output channels), so student ``i``'s cost is
    proportional to ``width_i**2 = base_width**2 * N * size_i / D``: proportional to its
    share ``size_i / D``, and the ensemble's total ``sum_i width_i**2 = N * base_width**2``
    equals that of N students of ``base_width`` (the equal split). For equal sizes every
    width is exactly ``base_width``.

    Args:
        sizes: Feature dimensions per group (positive integers), in student order.
        base_width: The width every student gets under an equal split (> 0).

    Returns:
        One width multiplier per group.

    Raises:
        ConfigError: Empty ``sizes``, a non-positive size or a non-positive ``base_width``.
    """
    if len(sizes) == 0:
        raise ConfigError("group_widths needs at least one group size")
    if any(isinstance(s, bool) or int(s) != s or s < 1 for s in sizes):
        raise ConfigError(f"group sizes must be positive integers, got {list(sizes)}")
    if not (isinstance(base_width, (int, float)) and math.isfinite(base_width) and base_width > 0):
        raise ConfigError(f"base width must be a positive number, got {base_width!r}")
    n, d = len(sizes), sum(int(s) for s in sizes)
    if all(int(s) == int(sizes[0]) for s in sizes):
        return [float(base_width)] * n
    return [float(base_width) * math.sqrt(n * int(s) / d) for s in sizes]
