"""The frozen teacher that computes the KD targets: same features as the eager teacher up to
float rounding, for every built-in teacher, any batch size; eager where it cannot be traced."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sne_loihi.errors import SneError
from sne_loihi.teachers import TEACHERS, ExternalTeacher
from sne_loihi.teachers import frozen as frozen_module
from sne_loihi.teachers.frozen import FROZEN_TOLERANCE, FrozenTeacher, target_teacher


def _teacher(arch: str) -> tuple[nn.Module, tuple[int, int, int]]:
    shape = (1, 8, 8) if arch == "digits_cnn" else (3, 32, 32)
    torch.manual_seed(0)
    teacher = TEACHERS.get(arch)(shape, 10).eval()
    for module in teacher.modules():  # batch norms with statistics, so the fold changes the weights
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return teacher, shape


@pytest.mark.parametrize("arch", TEACHERS.names())
def test_frozen_features_equal_the_eager_teachers_up_to_rounding(arch: str) -> None:
    teacher, shape = _teacher(arch)
    gen = torch.Generator().manual_seed(1)
    targets = target_teacher(teacher, torch.rand(4, *shape, generator=gen), frozen=True)
    assert isinstance(targets.teacher, FrozenTeacher)
    assert targets.description.startswith("teacher targets: frozen TorchScript graph")
    for batch in (3, 9):  # other batch sizes than the traced one (an epoch's last batch is smaller)
        x = torch.rand(batch, *shape, generator=gen)
        with torch.no_grad():
            eager = teacher.features(x)
        got = targets.teacher.features(x)
        assert got.shape == eager.shape and not got.requires_grad
        assert float((got - eager).abs().max()) <= FROZEN_TOLERANCE * float(eager.abs().max())


def test_off_external_and_non_cpu_teachers_stay_eager() -> None:
    teacher, shape = _teacher("digits_cnn")
    x = torch.rand(2, *shape)
    off = target_teacher(teacher, x, frozen=False)
    assert off.teacher is teacher and "train.frozen_teacher = false" in off.description
    external = ExternalTeacher(_teacher("digits_cnn")[0], "body", shape, 10)
    kept = target_teacher(external, x, frozen=True)
    assert kept.teacher is external and "external" in kept.description
    meta = target_teacher(teacher, torch.empty(2, *shape, device="meta"), frozen=True)
    assert meta.teacher is teacher and "for the CPU" in meta.description


def test_a_frozen_graph_that_disagrees_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def shifted(graph: torch.jit.ScriptModule):
        return lambda x_nchw: graph(x_nchw) + 1.0

    monkeypatch.setattr(frozen_module.torch.jit, "optimize_for_inference", shifted)
    teacher, shape = _teacher("digits_cnn")
    with pytest.raises(SneError, match="train.frozen_teacher = false"):
        target_teacher(teacher, torch.rand(2, *shape), frozen=True)
