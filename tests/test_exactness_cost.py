"""benchmarks/exactness_cost.py: the paired difference, its split into training and fold, and the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from benchmark_modules import load_benchmark

REPO = Path(__file__).resolve().parents[1]


def _module():
    return load_benchmark('exactness_cost')


def _result(library: str, seed: int, stored: float, last: float) -> dict:
    return {"library": library, "seed": seed, "test_accuracy": stored, "wall_s": 60.0, "cpu_s": 110.0,
            "attempts": 1, "epochs": 2, "fold": None,
            "curve": [(1, 0.4, last - 0.1), (2, 0.5, last)]}


RESULTS = [
    {**_result("slayer", 0, 0.60, 0.62),
     "epoch_time": {"epochs": 2, "timed": 2, "cpu_timed": 1, "seconds": 90.0, "cpu_seconds": 66.0}},
    _result("spikingjelly", 0, 0.65, 0.65),
    _result("slayer", 1, 0.58, 0.59), _result("spikingjelly", 1, 0.64, 0.64),
    _result("slayer", 2, 0.61, 0.61), _result("spikingjelly", 2, 0.63, 0.63),
]


def test_paired_difference_and_its_split() -> None:
    summary = _module().paired(RESULTS)
    assert summary["seeds"] == [0, 1, 2]
    assert summary["difference_points"] == pytest.approx([-5.0, -6.0, -2.0])
    assert summary["mean"] == pytest.approx(-13.0 / 3)
    lo, hi = summary["ci95"]
    assert lo < summary["mean"] < hi
    split = summary["split"]
    # training: last epochs compared (-3, -5, -2); fold: stored minus last epoch (-2, -1, 0)
    assert split["training_points_per_seed"] == pytest.approx([-3.0, -5.0, -2.0])
    assert split["fold_points_per_seed"] == pytest.approx([-2.0, -1.0, 0.0])
    assert split["training_points"] + split["fold_points"] == pytest.approx(summary["mean"])


def test_unpaired_seed_is_left_out() -> None:
    summary = _module().paired(RESULTS[:3])  # seed 1 has no SpikingJelly run
    assert summary["seeds"] == [0]
    assert summary["difference_points"] == pytest.approx([-5.0])
    assert "sem" not in summary


def test_report_files(tmp_path: Path) -> None:
    args = argparse.Namespace(teacher_run=Path("teacher"), epochs=2, threads=2, set=[])
    _module().write_report(tmp_path, RESULTS, args)
    md = (tmp_path / "exactness_cost.md").read_text()
    assert "| slayer | 0 | 60.00 | 62.00 | 1.0 | 1.8 | 1.5 | 1.1 (1 of 2) |" in md
    assert "| slayer | 1 | 58.00 | 59.00 | 1.0 | 1.8 | - | - |" in md
    assert "Mean -4.33" in md
    assert "folding batch norm into the neuron biases -1.00" in md
    payload = json.loads((tmp_path / "exactness_cost.json").read_text())
    assert payload["paired"]["split"]["training_points"] == pytest.approx(-10.0 / 3)
    assert (tmp_path / "exactness_cost.png").stat().st_size > 0


@pytest.mark.parametrize(("seeds", "message"), [("0,,1", "--seeds '0,,1': empty item"),
                                                ("0,a", "--seeds expects comma-separated integers")])
def test_bad_seeds_are_one_line_errors_before_anything_is_written(tmp_path: Path, seeds: str, message: str) -> None:
    teacher_run = tmp_path / "teacher"
    teacher_run.mkdir()
    (teacher_run / "teacher.pt").write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        _module().main(["--teacher-run", str(teacher_run), "--seeds", seeds, "--epochs", "1", "--out", str(out)])
    assert str(info.value).startswith(f"error: {message}") and "\n" not in str(info.value)
    assert not out.exists()
