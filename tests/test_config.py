"""Config resolution, TOML round trips and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sne_loihi.config import (
    Optimizer,
    PartitionStrategy,
    RunConfig,
    StudentBackend,
    dump_toml,
    load_toml,
    preset,
    resolve,
)
from sne_loihi.errors import ConfigError


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_preset_round_trips_through_dict_and_toml(dataset: str, tmp_path: Path) -> None:
    cfg = preset(dataset)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    dump_toml(cfg, tmp_path / "c.toml")
    assert RunConfig.from_dict(load_toml(tmp_path / "c.toml")) == cfg


def test_precedence_preset_file_flags(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[train]\nepochs = 7\nlr = 0.5\n[ensemble]\npartition = "kmeans"\n')
    cfg = resolve("digits", tmp_path / "c.toml", {"train.epochs": 2, "train.seed": None})
    assert cfg.train.epochs == 2  # flag beats file
    assert cfg.train.lr == 0.5  # file beats preset
    assert cfg.train.seed == preset("digits").train.seed  # None flag ignored
    assert cfg.ensemble.partition is PartitionStrategy.KMEANS
    assert cfg.train.optimizer is Optimizer.ADAM
    assert cfg.student.backend is StudentBackend.SLAYER


def test_file_dataset_is_used_when_no_flag(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[data]\nname = "cifar10"\n')
    assert resolve(None, tmp_path / "c.toml").teacher.arch == preset("cifar10").teacher.arch


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nepochs = 'many'\n", "train.epochs: expected an integer"),
        ("[train]\nepocs = 3\n", "unknown config key"),
        ('[ensemble]\npartition = "magic"\n', "not one of"),
        ("[train\n", "cannot read config file"),
    ],
)
def test_bad_config_files_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        resolve("digits", tmp_path / "c.toml")
    assert "\n" not in str(info.value)


def test_missing_config_file_and_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve("digits", tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="no preset"):
        resolve("mnist")


def test_contradicting_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[data]\nname = "cifar10"\n')
    with pytest.raises(ConfigError, match="contradicts"):
        resolve("digits", tmp_path / "c.toml")


@pytest.mark.parametrize("text", ["data = 5\n", "[data]\nname = 5\n"])
def test_a_config_file_with_a_bad_data_section_is_a_config_error(tmp_path, text: str) -> None:
    from sne_loihi.config import resolve

    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="data"):
        resolve(None, path)
