"""The airbench teacher and its training recipe: shapes, whitening init, config checks, a tiny run."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sne_loihi.checks import check_config
from sne_loihi.config import FlipMode, LrSchedule, Optimizer, RunConfig, TeacherConfig, TestTimeAugment
from sne_loihi.errors import ConfigError
from sne_loihi.teachers import TEACHERS, build_teacher
from sne_loihi.teachers.airbench import AirbenchNet, min_side
from sne_loihi.train.teacher_recipe import (
    AlternatingFlips,
    Lookahead,
    param_groups,
    random_cutout,
    random_translate,
    tta_forward,
    warmup_linear,
)


def _images(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=gen) * torch.rand(n, shape[0], 1, 1, generator=gen)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_builds_and_features_are_the_classifiers_input(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_teacher(TeacherConfig(arch="airbench"), shape, 7)
    model.init_whitening(_images(16, shape))
    x = _images(4, shape, seed=1)
    model.train()
    assert model(x).shape == (4, 7)
    model.eval()
    with torch.no_grad():
        feats, logits = model.features(x), model(x)
    assert model.feature_dim == 256 and feats.shape == (4, 256)
    assert torch.all(feats >= 0) and feats.abs().sum() > 0
    assert torch.allclose(model.classifier(feats), logits, atol=1e-5)
    assert model.whiten.out_channels == 2 * shape[0] * 4


def test_too_small_images_are_refused_in_one_line() -> None:
    side = min_side()
    with pytest.raises(ConfigError, match=f"airbench needs images of at least {side}x{side}, got 8x8"):
        TEACHERS.get("airbench")((1, 8, 8), 10)
    TEACHERS.get("airbench")((1, side, side), 10)  # the smallest accepted


def test_whitening_is_data_dependent_frozen_and_in_the_state_dict() -> None:
    shape = (3, 16, 16)
    a, b = AirbenchNet(shape, 10), AirbenchNet(shape, 10)
    a.init_whitening(_images(32, shape, seed=0))
    b.init_whitening(_images(32, shape, seed=5) * 0.5)
    assert not torch.allclose(a.whiten.weight, b.whiten.weight)
    assert not torch.allclose(a.input_mean, b.input_mean)
    assert not a.whiten.weight.requires_grad
    w = a.whiten.weight
    assert torch.allclose(w[: len(w) // 2], -w[len(w) // 2 :])  # eigenvectors and their negatives
    # whitened patches of the init images have (about) unit covariance in the top directions
    rebuilt = AirbenchNet(shape, 10)
    rebuilt.load_state_dict(a.state_dict())
    for key in ("whiten.weight", "input_mean", "input_std"):
        assert torch.equal(rebuilt.state_dict()[key], a.state_dict()[key])
    a.eval(), rebuilt.eval()
    x = _images(2, shape, seed=3)
    assert torch.equal(rebuilt(x), a(x))
    a.set_epoch(a.whiten_bias_epochs)
    assert not a.whiten.bias.requires_grad
    a.set_epoch(0)
    assert a.whiten.bias.requires_grad


def test_recipe_settings_validate_and_defaults_keep_todays_behaviour() -> None:
    default = TeacherConfig()
    assert (default.schedule, default.flip, default.tta) == (LrSchedule.COSINE, FlipMode.RANDOM, TestTimeAugment.NONE)
    assert (default.label_smoothing, default.bias_lr_scale, default.lookahead_every, default.translate) == (0.0, 1.0, 0, 4)
    cfg = RunConfig()
    cfg.teacher = dataclasses.replace(
        TeacherConfig(arch="airbench"), optimizer=Optimizer.SGD, momentum=0.85, label_smoothing=0.2,
        schedule=LrSchedule.WARMUP_LINEAR, bias_lr_scale=64.0, lookahead_every=5, flip=FlipMode.ALTERNATING,
        translate=2, tta=TestTimeAugment.FLIP_TRANSLATE, channels_last=True,
    )
    check_config(cfg)
    assert RunConfig.from_dict(cfg.to_dict()).teacher == cfg.teacher  # TOML-able, enums round-trip
    for key, bad in [("label_smoothing", 1.0), ("warmup_fraction", -0.1), ("bias_lr_scale", 0.0),
                     ("lookahead_every", -1), ("translate", 1.5), ("momentum", 1.0)]:
        broken = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, **{key: bad}))
        with pytest.raises(ConfigError, match=f"teacher.{key} must be"):
            check_config(broken)
    adam = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, optimizer=Optimizer.ADAM))
    with pytest.raises(ConfigError, match="teacher.momentum 0.85 is SGD's"):
        check_config(adam)


def test_recipe_pieces() -> None:
    assert warmup_linear(0, 100, 0.23) == pytest.approx(0.2)
    assert warmup_linear(23, 100, 0.23) == pytest.approx(1.0)
    assert warmup_linear(100, 100, 0.23) == pytest.approx(0.07)
    model = AirbenchNet((3, 16, 16), 10)
    groups = param_groups(model, 1.0, 1e-3, 64.0)
    assert groups[1]["lr"] == 64.0 and groups[1]["weight_decay"] == pytest.approx(1e-3 / 64)
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    x = _images(6, (3, 16, 16))
    flips = AlternatingFlips(x, seed=0)
    idx = torch.arange(6)
    even, odd = flips.view(0)[idx], flips.view(1)[idx]
    assert torch.equal(even.flip(-1), odd)
    shifted = random_translate(x, torch.Generator().manual_seed(0), 2)
    assert shifted.shape == x.shape and torch.equal(random_translate(x, torch.Generator(), 0), x)
    model.eval()
    with torch.no_grad():
        assert tta_forward(model, TestTimeAugment.FLIP_TRANSLATE)(x).shape == (6, 10)
    look = Lookahead(model, every=5, total_steps=10)
    with torch.no_grad():
        model.classifier.linear.weight.add_(1.0)
    look.finish(model)  # back to the slow copy
    assert torch.equal(model.classifier.linear.weight, look.state["classifier.linear.weight"])


def _recipe_config(epochs: int) -> RunConfig:
    cfg = RunConfig()
    cfg.data.augment = True
    cfg.teacher = dataclasses.replace(
        TeacherConfig(arch="airbench"), epochs=epochs, batch_size=16, lr=0.2, optimizer=Optimizer.SGD, momentum=0.85,
        weight_decay=1e-3, label_smoothing=0.2, schedule=LrSchedule.WARMUP_LINEAR, bias_lr_scale=64.0,
        lookahead_every=2, flip=FlipMode.ALTERNATING, translate=2, tta=TestTimeAugment.FLIP, channels_last=True,
    )
    cfg.train.device, cfg.train.threads = "cpu", 1
    return cfg


def test_recipe_trains_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path) -> None:
    from sne_loihi.data import Dataset
    from sne_loihi.run import Run
    from sne_loihi.train.teacher import train_teacher

    shape = (3, 12, 12)
    gen = torch.Generator().manual_seed(0)
    data = Dataset("tiny", _images(40, shape), torch.randint(0, 3, (40,), generator=gen),
                   _images(12, shape, seed=2), torch.randint(0, 3, (12,), generator=gen), ("a", "b", "c"))
    whole = train_teacher(Run(tmp_path / "whole", _recipe_config(3)), progress=False, data=data)
    assert len(whole.history) == 3 and "test_accuracy_tta" in whole.history[-1]
    assert whole.test_accuracy == whole.history[-1]["test_accuracy_tta"]

    class Killed(Exception):
        pass

    def kill_after_two(record: dict) -> None:
        if record["epoch"] == 2:
            raise Killed

    cut = Run(tmp_path / "cut", _recipe_config(3))
    with pytest.raises(Killed):
        train_teacher(cut, progress=False, data=data, on_epoch=kill_after_two)
    assert "lookahead" in torch.load(cut.dir / "teacher.pt", weights_only=True)
    resumed = train_teacher(cut, resume=True, progress=False, data=data)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.test_accuracy == whole.test_accuracy


def test_cutout_zeroes_one_clipped_square_per_image() -> None:
    x = torch.ones(64, 3, 8, 8)
    cut = random_cutout(x, torch.Generator().manual_seed(0), 4)
    holes = (cut == 0).all(dim=1)  # [N, H, W]: every channel zeroed at the same pixels
    assert torch.equal((cut == 0).any(dim=1), holes)
    sizes = holes.sum(dim=(1, 2))
    assert sizes.max() == 16 and sizes.min() >= 4  # a full 4x4 square, or clipped at a corner (>= 2x2)
    for n in range(64):  # the zeroed pixels form one rectangle
        rows, cols = holes[n].nonzero(as_tuple=True)
        assert (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) == sizes[n]
    assert torch.equal(random_cutout(x, torch.Generator(), 0), x) and torch.equal(x, torch.ones(64, 3, 8, 8))
    bad = RunConfig(teacher=TeacherConfig(cutout=-1))
    with pytest.raises(ConfigError, match="teacher.cutout"):
        check_config(bad)
