"""Teachers: built-in architectures, external teacher wrapper, MAC counting, a short digits training."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.config import DataConfig, TeacherConfig
from sne_loihi.errors import CheckpointError, ConfigError
from sne_loihi.teachers import TEACHERS, ExternalTeacher, build_teacher, teacher_macs

EXPECTED_DIMS = {"airbench": 256, "airbench95": 384, "auto": 512, "digits_cnn": 64, "vgg11": 512, "vgg19": 512, "resnet18": 512}


def _shape(name: str) -> tuple[int, int, int]:
    return (1, 8, 8) if name == "digits_cnn" else (3, 32, 32)


def test_registry_contents() -> None:
    assert TEACHERS.names() == sorted(EXPECTED_DIMS)
    with pytest.raises(ConfigError, match="unknown teacher 'vgg7'"):
        build_teacher(TeacherConfig(arch="vgg7"), (3, 32, 32), 10)


@pytest.mark.parametrize("name", TEACHERS.names())
def test_teacher_shapes_and_features(name: str) -> None:
    torch.manual_seed(0)
    shape = _shape(name)
    model = build_teacher(TeacherConfig(arch=name), shape, 7)
    x_nchw = torch.rand(3, *shape)
    model.train()
    assert model(x_nchw).shape == (3, 7)  # train mode (BatchNorm batch statistics)
    model.eval()
    with torch.no_grad():
        logits = model(x_nchw)
        feats = model.features(x_nchw)
    assert logits.shape == (3, 7)
    assert model.feature_dim == EXPECTED_DIMS[name]
    assert feats.shape == (3, model.feature_dim)
    assert torch.all(feats >= 0) and feats.abs().sum() > 0
    if hasattr(model, "classifier"):  # built-ins: the classifier reads exactly f_T
        assert torch.allclose(model.classifier(feats), logits, atol=1e-5)


def test_vgg_rejects_images_too_small() -> None:
    with pytest.raises(ConfigError, match="vgg11 needs images of at least 32x32"):
        build_teacher(TeacherConfig(arch="vgg11"), (1, 8, 8), 10)


# ------------------------------------------------------------ MAC counting


def test_teacher_macs_hand_computed() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 5))
    # conv: 2 output channels x 16 positions x 9 taps = 288; linear: 32 x 5 = 160
    assert teacher_macs(model, (1, 4, 4)) == 288 + 160
    strided = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False))
    # 4 x (2 x 2) positions x (3 x 9) taps
    assert teacher_macs(strided, (3, 4, 4)) == 4 * 4 * 27


def test_teacher_macs_restores_mode_and_matches_paper_scale() -> None:
    model = TEACHERS.get("digits_cnn")((1, 8, 8), 10)
    model.train()
    macs = teacher_macs(model, (1, 8, 8))
    assert model.training
    # conv 1->32 (64 px x 9), 32->64 (64 px x 288), 64->64 (16 px x 576), fc 256->64, fc 64->10
    assert macs == 32 * 64 * 9 + 64 * 64 * 288 + 64 * 16 * 576 + 256 * 64 + 64 * 10


# ------------------------------------------------------------ external teacher

FACTORY_SRC = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 6)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(6, 10)

    def forward(self, x):
        return self.out(self.act2(self.fc(torch.flatten(self.act(self.conv(x)), 1))))

def make():
    torch.manual_seed(0)
    return Net()

def make_other():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

def not_a_module():
    return 42

class SeqFirst(nn.Module):  # its feature layer's first axis is not the batch
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.seq = nn.Identity()

    def forward(self, x):
        self.seq(torch.flatten(x, 1).t())
        return self.fc(torch.flatten(x, 1))

def seq_first():
    return SeqFirst()

def frozen():
    net = make()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
"""


@pytest.fixture()
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(textwrap.dedent(FACTORY_SRC))
    (pkg / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userpkg.models"


def _ext(module: str, **kw) -> TeacherConfig:
    return TeacherConfig(arch="external", factory=kw.pop("factory", f"{module}:make"), **kw)


def test_external_teacher_round_trip(user_module: str, tmp_path: Path) -> None:
    import importlib

    reference = importlib.import_module(user_module).make()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.5)  # weights the factory alone would not give
    ckpt = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), ckpt)

    teacher = build_teacher(_ext(user_module, feature_layer="act2", checkpoint=str(ckpt)), (1, 8, 8), 10)
    assert isinstance(teacher, ExternalTeacher) and teacher.feature_dim == 6
    x_nchw = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        feats = teacher.features(x_nchw)
        expected = reference.act2(reference.fc(torch.flatten(reference.act(reference.conv(x_nchw)), 1)))
        assert torch.allclose(teacher(x_nchw), reference(x_nchw))
    assert torch.allclose(feats, expected) and torch.all(feats >= 0)

    conv_teacher = build_teacher(_ext(user_module, feature_layer="act"), (1, 8, 8), 10)
    assert conv_teacher.feature_dim == 4 * 8 * 8  # conv maps are flattened
    # the wrapper's own state_dict round-trips (as teacher.pt does)
    again = build_teacher(_ext(user_module, feature_layer="act2"), (1, 8, 8), 10)
    again.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        assert torch.allclose(again.features(x_nchw), feats)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("userpkg.models", "must look like 'package.module:function'"),
        (":make", "must look like"),
        ("userpkg.nothere:make", "cannot import teacher factory module 'userpkg.nothere'"),
        ("userpkg.broken:make", "boom at import"),
        ("userpkg.models:missing", "has no callable 'missing'"),
        ("userpkg.models:not_a_module", "returned int, expected a torch nn.Module"),
    ],
)
def test_external_teacher_factory_errors(user_module: str, factory: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_teacher(_ext(user_module, factory=factory, feature_layer="act2"), (1, 8, 8), 10)


def test_a_feature_layer_whose_first_axis_is_not_the_batch_is_refused(user_module: str) -> None:
    with pytest.raises(ConfigError, match=r"layer 'seq' gives shape \(64, 2\) for 2 images; its first axis must be the batch"):
        build_teacher(_ext(user_module, factory=f"{user_module}:seq_first", feature_layer="seq"), (1, 8, 8), 10)


def test_a_teacher_that_cannot_train_is_refused_before_training(user_module: str) -> None:
    from sne_loihi.config import RunConfig
    from sne_loihi.data import load_dataset
    from sne_loihi.train.stages import check_teacher_buildable

    cfg = RunConfig()
    data = load_dataset(replace(cfg.data, max_train=50, max_test=20))
    frozen = replace(cfg, teacher=_ext(user_module, factory=f"{user_module}:frozen", feature_layer="act2", epochs=2))
    with pytest.raises(ConfigError, match="has no trainable parameters; train it with --teacher-epochs 0"):
        check_teacher_buildable(frozen, data)
    check_teacher_buildable(replace(frozen, teacher=replace(frozen.teacher, epochs=0)), data, students=False)
    few = replace(cfg, teacher=_ext(user_module, feature_layer="act2"))  # 6 features, 4 students, balanced
    with pytest.raises(ConfigError, match="6 features are not divisible by ensemble.num_students 4"):
        check_teacher_buildable(replace(few, ensemble=replace(few.ensemble, partition="balanced-kmeans")), data)
    with pytest.raises(ConfigError, match="ensemble.num_students 8 exceeds teacher external's 6 features"):
        check_teacher_buildable(replace(few, ensemble=replace(few.ensemble, num_students=8)), data)


def test_external_teacher_layer_errors(user_module: str) -> None:
    with pytest.raises(ConfigError, match=r"no layer 'fc9'; valid names include: .*act2"):
        build_teacher(_ext(user_module, feature_layer="fc9"), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="feature_layer is required"):
        build_teacher(_ext(user_module), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"must return logits \[N, 3\]"):
        build_teacher(_ext(user_module, feature_layer="act2"), (1, 8, 8), 3)
    with pytest.raises(ConfigError, match="fails on input of shape"):
        build_teacher(_ext(user_module, feature_layer="act2"), (3, 32, 32), 10)


def test_external_teacher_checkpoint_errors(user_module: str, tmp_path: Path) -> None:
    def build(path: Path) -> None:
        build_teacher(_ext(user_module, feature_layer="act2", checkpoint=str(path)), (1, 8, 8), 10)

    with pytest.raises(CheckpointError, match="not found"):
        build(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="cannot load external teacher checkpoint"):
        build(corrupt)
    other = tmp_path / "other.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).state_dict(), other)
    with pytest.raises(CheckpointError, match=r"does not fit the factory's model: missing keys \['conv.weight'"):
        build(other)
    import importlib

    wrong_shape = importlib.import_module(user_module).make().state_dict()
    wrong_shape["out.weight"] = torch.zeros(10, 7)
    bad = tmp_path / "bad_shape.pt"
    torch.save(wrong_shape, bad)
    with pytest.raises(CheckpointError, match="size mismatch"):
        build(bad)
    pickled = tmp_path / "pickled_module.pt"
    torch.save(importlib.import_module(user_module).make(), pickled)  # a whole module: needs code
    with pytest.raises(CheckpointError, match="cannot load external teacher checkpoint") as info:
        build(pickled)
    assert "\n" not in str(info.value) and "save model.state_dict()" in str(info.value)


# ------------------------------------------------------------ training


def test_digits_cnn_trains_quickly() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny CNN: one thread is fastest, and robust to a busy machine
    try:
        acc = _train_digits_cnn(epochs=3)
    finally:
        torch.set_num_threads(threads)
    assert acc >= 0.90, acc


def _train_digits_cnn(epochs: int) -> float:
    from sne_loihi.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset(DataConfig(name="digits"), seed=0)
    model = TEACHERS.get("digits_cnn")(data.in_shape, data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(data.y_train), generator=gen).split(64):
            loss = F.cross_entropy(model(data.x_train_nchw[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(data.x_test_nchw).argmax(1) == data.y_test).float().mean().item()


def test_an_external_teachers_run_folder_does_not_need_its_checkpoint_again(
        user_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--checkpoint is stored as an absolute path and read once, by ``sne teacher``; later
    stages rebuild the teacher from teacher.pt (they re-read the file, which a relative path
    from another folder, or a deleted file, turned into an error)."""
    import importlib

    from typer.testing import CliRunner

    from sne_loihi.cli import app
    from sne_loihi.config import load_toml

    torch.save(importlib.import_module(user_module).make().state_dict(), tmp_path / "weights.pt")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["teacher", "--run-dir", str(run), "--dataset", "digits", "--teacher-arch", "external",
                                 "--factory", f"{user_module}:make", "--feature-layer", "act2", "--checkpoint",
                                 "weights.pt", "--teacher-epochs", "0", "--max-train", "60", "--max-test", "20",
                                 "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert load_toml(run / "config.toml")["teacher"]["checkpoint"] == str(tmp_path / "weights.pt")
    (tmp_path / "weights.pt").unlink()
    result = runner.invoke(app, ["train", "--run-dir", str(run), "--trust-factory", "--student-arch", "digits_tiny",
                                 "--student-epochs", "1", "--time-steps", "2", "--no-progress", "--threads", "2"])
    assert result.exit_code == 0, result.stderr


def test_a_factory_that_exits_at_import_and_a_huge_feature_layer_are_one_line_errors(
        user_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sne_loihi.config import RunConfig
    from sne_loihi.data import load_dataset
    from sne_loihi.train import stages

    import importlib

    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(2)\n")  # tmp_path is on sys.path
    importlib.invalidate_caches()
    with pytest.raises(ConfigError, match=r"'exits_at_import' exited while being imported \(SystemExit 2\)"):
        build_teacher(_ext(user_module, factory="exits_at_import:make", feature_layer="act"), (1, 8, 8), 10)
    cfg = RunConfig()
    data = load_dataset(replace(cfg.data, max_train=50, max_test=20))
    monkeypatch.setattr(stages, "MAX_FEATURE_CACHE_BYTES", 4 * 256 * 50 - 1)  # conv map "act": 256 features
    with pytest.raises(ConfigError, match="256 features x 50 training images would take"):
        stages.check_teacher_buildable(replace(cfg, teacher=_ext(user_module, feature_layer="act")), data)


def test_a_config_file_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    from sne_loihi.config import load_toml

    (tmp_path / "bom.toml").write_bytes("\ufeff[train]\nepochs = 2\n".encode("utf-8"))
    assert load_toml(tmp_path / "bom.toml") == {"train": {"epochs": 2}}
