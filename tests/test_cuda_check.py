"""benchmarks/cuda_check.py, the prepared GPU check, runs its exactness part on the CPU: every
architecture's fast engine against itself and SLAYER, 0 mismatches, and the report is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_modules import load_benchmark


def test_the_exactness_part_finds_no_mismatch_on_the_cpu(tmp_path: Path) -> None:
    load_benchmark("cuda_check").main(["--out", str(tmp_path), "--device", "cpu", "--skip", "speed,paper"])
    payload = json.loads((tmp_path / "cuda_check.json").read_text())
    rows = payload["exactness"]
    assert {r["arch"] for r in rows} >= {"vgg5mini", "digits_tiny"} and len(rows) >= 5
    for r in rows:
        assert r["fast_device_vs_cpu_mismatches_per_layer"] == [0] * len(r["spikes_per_layer"]), r
        assert r["slayer_device_vs_fast_cpu_final_mismatches"] == 0, r
        assert sum(r["spikes_per_layer"]) > 0, r  # not a comparison of silent layers
        assert r["grad_rel_fast_device_vs_cpu"] == 0.0 and r["grad_rel_slayer_device_vs_fast_cpu"] <= 1e-4, r
    assert "## Exactness" in (tmp_path / "cuda_check.md").read_text()


@pytest.mark.parametrize(("args", "message"), [(["--skip", "speed,,paper"], "empty item"),
                                               (["--skip", "warp"], "unknown parts ['warp']")])
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        load_benchmark("cuda_check").main(["--out", str(tmp_path / "o"), "--device", "cpu", *args])
    assert str(info.value).startswith("error: ") and message in str(info.value)
    assert not (tmp_path / "o").exists()
