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


def auto_teacher_arch(in_shape: tuple[int, int, int]) -> str:
    """The built-in teacher ``auto`` stands for: ``vgg11`` for images of at least 32x32 (it pools
    five times), else the small ``digits_cnn`` (at least 4x4)."""
    return "vgg11" if min(in_shape[1:]) >= 32 else "digits_cnn"


@TEACHERS.register("auto")
def auto_teacher(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The teacher :func:`auto_teacher_arch` picks for ``in_shape``."""
    return TEACHERS.get(auto_teacher_arch(in_shape))(in_shape, num_classes)
