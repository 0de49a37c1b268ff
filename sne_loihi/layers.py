"""The layer kinds of a student and of a netx network: one enum for the spec, the op
counter, the netx reader and both exports."""

from __future__ import annotations

from enum import Enum


class LayerKind(str, Enum):
    """The layer types netx can run (platform notes): no pooling, no skips. ``flatten`` only
    reshapes; ``conv`` and ``dense`` are the weighted layers."""

    CONV = "conv"
    FLATTEN = "flatten"
    DENSE = "dense"
