"""The run object: a pipeline loads the data set once and each ensemble once; a rewritten
file is loaded anew; config.toml is parsed once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sne_loihi import io as sne_io
from sne_loihi import run as run_mod
from sne_loihi.cli import app
from sne_loihi.data.dataset import DATASETS

#: A default-like digits pipeline (export + Lava + report with activation and noise) with one
#: dropout variant, shrunk to seconds.
PIPELINE = [
    "--dataset", "digits", "--teacher-epochs", "1", "--student-epochs", "1", "--students", "3", "--max-train", "150",
    "--max-test", "40", "--student-arch", "digits_tiny", "--time-steps", "2", "--no-progress", "--threads", "1",
    "--lava-samples", "3", "--dropout-k", "2", "--noise", "0.1", "--repeats", "1", "--seed", "1",
]


@pytest.fixture()
def real_loads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every real read of a torch file (by file name) and every data-set load."""
    counts: Counter[str] = Counter()
    refuse_code = sne_io.refuse_code

    def counting_refuse_code(data: bytes, path: Path, what: str) -> None:
        counts[Path(path).name] += 1
        refuse_code(data, path, what)

    digits = DATASETS.get("digits")

    def counting_digits(*args: Any, **kwargs: Any) -> Any:
        counts["data set"] += 1
        return digits(*args, **kwargs)

    monkeypatch.setattr(sne_io, "refuse_code", counting_refuse_code)
    monkeypatch.setitem(DATASETS._items, "digits", counting_digits)
    run_mod.clear_cache()
    return counts


def test_a_pipeline_loads_the_data_set_once_and_each_ensemble_once(tmp_path: Path, real_loads: Counter[str]) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["pipeline", "--run-dir", str(run_dir), *PIPELINE])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert (run_dir / "dropout-k2" / "ensemble.pt").is_file() and (run_dir / "lava.json").is_file()
    assert real_loads["data set"] == 1
    assert real_loads["ensemble.pt"] == 2  # the run's ensemble and the dropout variant's, once each
    assert real_loads["teacher.pt"] == 1  # read back once (students, variant, cost table and noise share it)
    assert run_mod.LOADS["data"] == 1 and run_mod.LOADS["ensemble"] == 2


def test_a_rewritten_file_is_loaded_anew_and_config_parsed_once(tmp_path: Path) -> None:
    from sne_loihi.config import RunConfig, dump_toml
    from sne_loihi.run import CONFIG_FILE, Run

    run_mod.clear_cache()
    cfg = RunConfig()
    cfg.train.epochs = 3
    dump_toml(cfg, tmp_path / CONFIG_FILE)
    assert Run(tmp_path).config.train.epochs == 3
    assert Run(tmp_path).config.train.epochs == 3
    assert run_mod.LOADS["config"] == 1
    cfg.train.epochs = 5
    dump_toml(cfg, tmp_path / CONFIG_FILE)  # atomic rewrite: a new file
    assert Run(tmp_path).config.train.epochs == 5
    assert run_mod.LOADS["config"] == 2
