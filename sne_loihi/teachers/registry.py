"""The ``TEACHERS`` registry: ``name -> builder(in_shape, num_classes) -> nn.Module``.

Every teacher follows one protocol: ``forward(x_nchw) -> logits``,
``features(x_nchw) -> features_nd`` (the penultimate vector f_T, post-ReLU, flattened) and an
attribute ``feature_dim: int``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sne_loihi.registry import Registry

TeacherBuilder = Callable[[tuple[int, int, int], int], nn.Module]

#: Built-in teacher architectures.
TEACHERS: Registry[TeacherBuilder] = Registry("teacher")
