"""Named presets (``--preset``): every shipped preset resolves and validates, precedence is
preset < --config < flags, and the paper's CIFAR-10 preset runs end to end for a few batches
on the CPU (teacher, partition, students, ops, netx export and Lava parity), so it is ready
for a GPU."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sne_loihi.cli import app
from sne_loihi.config import ConfigError, StudentNorm, preset_names, resolve
from sne_loihi.checks import check_config


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_resolves_validates_and_is_recorded(name: str) -> None:
    cfg = resolve(None, None, {}, name)
    check_config(cfg)
    assert cfg.preset == name
    assert cfg.data.name in ("cifar10", "imagefolder")  # the python batches or the image tree
    assert cfg.to_dict()["preset"] == name


def test_shipped_presets_include_the_paper_and_cpu_budgets() -> None:
    assert {"paper-cifar10", "cpu-cifar10"} <= set(preset_names())


def test_preset_precedence_file_then_flags(tmp_path: Path) -> None:
    paper = resolve(None, None, {}, "paper-cifar10")
    (tmp_path / "c.toml").write_text("[train]\nepochs = 3\nlr = 0.5\n")
    cfg = resolve(None, tmp_path / "c.toml", {"train.lr": 0.25, "teacher.epochs": None}, "paper-cifar10")
    assert cfg.train.epochs == 3  # the file beats the preset
    assert cfg.train.lr == 0.25  # a flag beats the file
    assert cfg.teacher.epochs == paper.teacher.epochs  # an unset flag changes nothing
    assert cfg.student.arch == paper.student.arch


def test_unknown_preset_and_contradicting_dataset() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'nope'; known: "):
        resolve(None, None, {}, "nope")
    with pytest.raises(ConfigError, match="contradicts preset paper-cifar10"):
        resolve("digits", None, {}, "paper-cifar10")
    result = CliRunner().invoke(app, ["pipeline", "--preset", "nope", "--run-dir", "/nonexistent/x"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: unknown preset 'nope'; known: {', '.join(preset_names())}"]


def _random_cifar(folder: Path, n_train: int, n_test: int) -> Path:
    """A CIFAR-10 python-batch folder of random images (each class present)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        payload = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                   b"labels": [i % 10 for i in range(n)], b"batch_label": b"random"}
        (folder / name).write_bytes(pickle.dumps(payload, protocol=4))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return folder


def test_paper_preset_runs_end_to_end_for_a_few_batches(tmp_path: Path) -> None:
    data_dir = _random_cifar(tmp_path / "cifar", n_train=40, n_test=10)
    run_dir = tmp_path / "run"
    lava = tmp_path / "lava.toml"  # one sample, one active set: the full-width graph compiles once
    lava.write_text('[lava]\nsamples = 1\nactive = ["all"]\n')
    result = CliRunner().invoke(app, [
        "pipeline", "--preset", "paper-cifar10", "--config", str(lava), "--data-dir", str(data_dir),
        "--run-dir", str(run_dir), "--teacher-epochs", "1", "--student-epochs", "1", "--lava-cascade", "none",
        "--repeats", "1", "--no-progress", "--threads", "2",
    ])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert "preset paper-cifar10; resolved config:" in result.stdout
    cfg = resolve(None, run_dir / "config.toml", {})
    assert (cfg.preset, cfg.teacher.arch, cfg.student.arch, cfg.student.time_steps) == (
        "paper-cifar10", "vgg19", "vgg5mini", 4)
    assert cfg.student.norm is StudentNorm.BATCH and cfg.student.neuron.current_decay == 1.0
    report = json.loads((run_dir / "report.json").read_text())
    assert {"test_accuracy_batch_norm", "test_accuracy_folded"} <= set(report["fold"])  # folded before the export
    rows = {row["model"]: row for row in report["evaluation"]["rows"]}
    assert rows["teacher vgg19"]["macs"] > 3e8  # VGG19 on 32x32: about 398M MACs (the paper's figure)
    ensemble = next(row for name, row in rows.items() if name.startswith("ensemble"))
    assert ensemble["acs"] + ensemble["macs"] > 0
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    assert len(manifest["students"]) == 4
    lava = json.loads((run_dir / "lava.json").read_text())
    assert lava["samples"] == 1 and manifest["parity"]["mismatches"] == 0


def test_files_a_preset_cites_exist() -> None:
    """A preset's comments name the results they were measured with; those files exist."""
    import re

    from sne_loihi.config import PRESET_DIR

    repo = PRESET_DIR.parents[1]
    for path in PRESET_DIR.glob("*.toml"):
        for cited in re.findall(r"((?:benchmarks|docs)/[\w./*-]+\w)", path.read_text()):
            assert list(repo.glob(cited)), f"{path.name} cites {cited}, which does not exist"
        assert "README \"" not in path.read_text(), f"{path.name} cites a README section"
