"""Untrusted config values and labels at the front door: a config section, a neuron parameter,
a config file, a seed or a data set's labels that no run can use is one ``error:`` line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cli_checks import one_error_line
from sne_loihi.cli import app
from sne_loihi.errors import ExportError

runner = CliRunner()


CONFIG_CASES = [
    ({"train": {"seed": 2 ** 32}}, "train.seed must be at most 4,294,967,295, got 4294967296"),
    ({"train": {"seed": -1}}, "train.seed must be an integer >= 0, got -1"),
    ({"train": {"threads": 10 ** 6}}, "train.threads must be at most 1,024, got 1000000"),
    ({"train": {"epochs": 10 ** 9}}, "train.epochs must be at most 10,000, got 1000000000"),
    ({"teacher": {"epochs": 10 ** 9}}, "teacher.epochs must be at most 10,000, got 1000000000"),
    ({"finetune": {"epochs": 10 ** 9}}, "finetune.epochs must be at most 10,000, got 1000000000"),
    ({"student": {"width": 1000.0}}, "student.width must be at most 64, got 1000.0"),
    ({"student": {"first_width": 1000.0}}, "student.first_width must be at most 64, got 1000.0"),
    ({"student": {"first_width": 0}}, "student.first_width must be > 0 (unset: student.width), got 0"),
    ({"student": {"time_steps": 10 ** 6}}, "student.time_steps must be at most 1,024, got 1000000"),
    ({"data": {"test_fraction": 1e-9}}, "data.test_fraction must be in [0.01, 0.99] (both splits non-empty), got 1e-09"),
    ({"data": {"test_fraction": 0.999}}, "data.test_fraction must be in [0.01, 0.99]"),
]


@pytest.mark.parametrize(("section", "message"), CONFIG_CASES, ids=[m.split(" must")[0] + str(i)
                                                                     for i, (_, m) in enumerate(CONFIG_CASES)])
def test_config_values_beyond_what_a_run_can_use_are_refused(section: dict[str, Any], message: str) -> None:
    from sne_loihi.checks import check_config
    from sne_loihi.config import RunConfig
    from sne_loihi.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        check_config(RunConfig.from_dict(section))
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_neuron_parameter_beyond_the_float_range_is_one_line() -> None:
    """A stored spec (manifest, checkpoint) may hold any JSON / pickle integer; 10**400 once
    raised OverflowError in math.isfinite / float()."""
    from sne_loihi.errors import ConfigError
    from sne_loihi.netx_format.manifest import _check_spec_neuron
    from sne_loihi.students import StudentSpec

    with pytest.raises(ExportError, match="student 0 spec neuron.threshold must be > 0"):
        _check_spec_neuron({"neuron": {"threshold": 10 ** 400}}, "student 0 spec neuron")
    spec = {"layers": [], "in_shape": [1], "out_features": 1, "time_steps": 1, "input_bits": 1,
            "neuron": {"threshold": 10 ** 400}}
    with pytest.raises(ConfigError, match="a value beyond the float range"):
        StudentSpec.from_dict(spec)


def test_the_time_step_bounds_agree() -> None:
    from sne_loihi import checks
    from sne_loihi.netx_format import limits

    assert checks.MAX_TIME_STEPS == limits.MAX_TIME_STEPS


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("deep-array.toml", b"a = " + b"[" * 1000 + b"]" * 1000 + b"\n", "nested deeper than a config goes"),
    ("deep-tables.toml", b"[" + b".".join([b"t"] * 100) + b"]\nx = 1\n", "tables or arrays nested more than 16 levels"),
    ("latin1.toml", b'[data]\nname = "caf\xe9"\n', "not UTF-8 text (byte 18)"),
], ids=["deep-array", "deep-tables", "latin1"])
def test_a_config_file_nested_too_deep_or_not_utf8_is_one_line(tmp_path: Path, name: str, content: bytes,
                                                               needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(app, ["pipeline", "--run-dir", str(tmp_path / "run"), "--config", str(path)])
    one_error_line(result, f"cannot read config file {path}: {needle}")
    assert not (tmp_path / "run").exists()


def test_a_seed_numpy_cannot_take_is_one_line_on_the_cli(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pipeline", "--run-dir", str(tmp_path / "run"), "--set", "train.seed=4294967296"])
    one_error_line(result, "train.seed must be at most 4,294,967,295, got 4294967296")


def _npz_data(path: Path, y_train: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (len(y_train), 8, 8), dtype=np.uint8), y_train=y_train,
             x_test=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8), y_test=np.arange(4))
    return path


@pytest.mark.parametrize(("labels", "needle"), [
    (np.linspace(0.7, 9.7, 10), "y_train must hold integers, got float64"),
    (np.array([0, 1, 2, 10 ** 18]), "y_train holds label 1000000000000000000, beyond the 100,000 classes"),
    (np.array([0, 1, 2, 2 ** 63 + 5], dtype=np.uint64), "y_train holds label 9223372036854775813, beyond"),
])
def test_labels_a_data_set_cannot_have_are_one_line(tmp_path: Path, labels: np.ndarray, needle: str) -> None:
    from sne_loihi.config import DataConfig
    from sne_loihi.data import load_dataset
    from sne_loihi.errors import DataError

    path = _npz_data(tmp_path / "d.npz", labels)
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="npz", data_dir=str(path)))
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)
    result = runner.invoke(app, ["teacher", "--run-dir", str(tmp_path / "run"), "--dataset", "npz", "--data-dir",
                                 str(path)])
    one_error_line(result, needle)


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_the_test_fraction_bounds_leave_both_digits_splits_non_empty(fraction: float) -> None:
    from sne_loihi.config import DataConfig
    from sne_loihi.data import load_dataset

    data = load_dataset(DataConfig(name="digits", test_fraction=fraction))
    assert len(data.y_train) >= 10 and len(data.y_test) >= 10
