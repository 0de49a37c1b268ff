"""Shared fixtures: tiny configurations that keep the suite fast on 2 CPU cores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_SUBSET = REPO.parent / "shared" / "data" / "cifar10-subset"

#: CLI flags for a tiny digits pipeline (seconds, not minutes).
TINY_PIPELINE = [
    "--dataset", "digits", "--teacher-epochs", "2", "--student-epochs", "1", "--max-train", "300",
    "--max-test", "100", "--student-arch", "digits_tiny", "--time-steps", "2", "--no-progress",
    "--threads", "2", "--lava-samples", "6",
]


@pytest.fixture(scope="session")
def tiny_pipeline_args() -> list[str]:
    """The tiny pipeline flags (tests cannot import conftest under --import-mode=importlib)."""
    return list(TINY_PIPELINE)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny digits pipeline run shared by read-only tests."""
    from typer.testing import CliRunner

    from sne_loihi.cli import app

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = CliRunner().invoke(app, ["pipeline", "--run-dir", str(run_dir), *TINY_PIPELINE])
    assert result.exit_code == 0, result.stderr + result.stdout
    return run_dir


@pytest.fixture()
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished tiny run, for tests that change it (file times and links
    kept, so cache keys still match)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run", symlinks=True))
