"""ANN teachers: ``TEACHERS`` registry (digits_cnn, vgg11, vgg19, resnet18, airbench) and external models.

Protocol: ``forward(x_nchw) -> logits``, ``features(x_nchw) -> features_nd`` (f_T, post-ReLU,
flattened) and ``feature_dim: int``. Importing this package registers the built-ins.
"""

from __future__ import annotations

from torch import nn

from sne_loihi.config import TeacherConfig
from sne_loihi.teachers import airbench as _airbench  # noqa: F401  (registers)
from sne_loihi.teachers import digits_cnn as _digits_cnn  # noqa: F401  (registers)
from sne_loihi.teachers import resnet as _resnet  # noqa: F401  (registers)
from sne_loihi.teachers import vgg as _vgg  # noqa: F401  (registers)
from sne_loihi.teachers.external import ExternalTeacher, build_external
from sne_loihi.teachers.macs import teacher_macs
from sne_loihi.teachers.registry import TEACHERS

EXTERNAL = "external"


def build_teacher(cfg: TeacherConfig, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the teacher named by ``cfg.arch`` (a registered name or ``"external"``).

    Raises:
        ConfigError: Unknown architecture or a bad external-teacher setting.
        CheckpointError: The external teacher's checkpoint is missing, corrupt or mismatched.
    """
    if cfg.arch == EXTERNAL:
        return build_external(cfg, tuple(in_shape), num_classes)
    return TEACHERS.get(cfg.arch)(tuple(in_shape), num_classes)


__all__ = ["EXTERNAL", "TEACHERS", "ExternalTeacher", "build_teacher", "teacher_macs"]
