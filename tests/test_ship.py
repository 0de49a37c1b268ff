"""Shipping a trained ensemble (benchmarks/ship_ensemble.py): the folder holds the export, the
torch ensemble, the report and a provenance whose hashes match, and it simulates in Lava from
where it lies with 0 mismatches against torch. The shipped models under models/ are checked the
same way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_modules import load_benchmark
from typer.testing import CliRunner

from sne_loihi.cli import app

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent.parent for p in (REPO / "models").glob("*/export/manifest.json"))


def _ship_module():
    return load_benchmark('ship_ensemble')


def _simulate_without_mismatches(folder: Path, images_nchw: np.ndarray, tmp_path: Path) -> dict:
    x = tmp_path / "images.npy"
    np.save(x, images_nchw.astype(np.float32))
    out = tmp_path / "sim.json"
    result = CliRunner().invoke(app, ["simulate", str(folder / "export"), "--input", str(x), "--json", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.stdout + result.stderr
    rep = json.loads(out.read_text())
    for ev in rep["evaluations"]:
        check = ev["torch"]  # the shipped ensemble.pt beside the export
        assert check["spike_mismatches"] == 0 and check["op_mismatches"] == 0, check
        assert check["prediction_agreement"] == 1.0
        assert len(ev["predictions"]) == len(images_nchw)
    return rep


def test_a_shipped_run_is_complete_and_simulates_exactly(tiny_run: Path, tmp_path: Path) -> None:
    ship = _ship_module()
    out = ship.ship(tiny_run, tmp_path / "models" / "tiny", max_mb=10)
    prov = json.loads((out / "PROVENANCE.json").read_text())
    for rel, digest in prov["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest, rel
    assert {"export/manifest.json", "export/loihi2.md", "ensemble.pt", "report.md", "cascade_head.pt",
            "partition.json"} <= set(prov["files"])  # the head: a re-export keeps --cascade
    assert not (out / "teacher.pt").exists()
    assert prov["lava_parity"]["mismatches"] == 0 and any(k.startswith("ensemble") for k in prov["accuracies"])
    shape = prov["data"]["in_shape_chw"]
    _simulate_without_mismatches(out, np.random.default_rng(0).random((3, *shape)), tmp_path)
    assert prov["files"]["ensemble.pt"] == json.loads((out / "export" / "manifest.json").read_text())["ensemble_sha256"]
    with pytest.raises(SystemExit, match="exists"):
        ship.ship(tiny_run, out, max_mb=10)
    with pytest.raises(SystemExit, match="over --max-mb"):
        ship.ship(tiny_run, tmp_path / "models" / "small", max_mb=0.01)
    assert not (tmp_path / "models" / "small").exists() and not (tmp_path / "models" / "small.partial").exists()


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_shipped_models_simulate_with_no_mismatches(folder: Path, tmp_path: Path) -> None:
    """Each model under models/ on a few of its test images when the CIFAR-10 subset lies beside
    the repository (its images are part of the full test set), else on random images."""
    prov = json.loads((folder / "PROVENANCE.json").read_text())
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 10 * 2**20
    for rel, digest in prov["files"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest, rel
    subset = REPO.parent / "shared" / "data" / "cifar10-subset"
    shape = tuple(prov["data"]["in_shape_chw"])
    if subset.is_dir() and shape == (3, 32, 32):
        from sne_loihi.config import DataConfig
        from sne_loihi.data.cifar10 import load_cifar10

        x_nchw = load_cifar10(DataConfig(name="cifar10", data_dir=str(subset)), seed=0).x_test_nchw[:6].numpy()
    else:
        x_nchw = np.random.default_rng(0).random((4, *shape))
    _simulate_without_mismatches(folder, np.asarray(x_nchw), tmp_path)


def test_a_stale_export_is_not_shipped(tiny_run: Path, tmp_path: Path) -> None:
    """An ensemble.pt changed after the export (retrained) is refused, and so is a torch
    comparison of the export with it."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = bytearray((run / "ensemble.pt").read_bytes())
    (run / "ensemble.pt").write_bytes(bytes(data) + b"\0")  # any other bytes: another file
    with pytest.raises(SystemExit, match="is not the ensemble the export was made from"):
        _ship_module().ship(run, tmp_path / "models" / "stale", max_mb=10)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, *json.loads((run / "export" / "manifest.json").read_text())["input"]["shape_chw"]),
                        np.float32))
    result = CliRunner().invoke(app, ["simulate", str(run / "export"), "--input", str(x)])
    assert result.exit_code == 1 and "is not the ensemble this export was made from" in result.stderr
