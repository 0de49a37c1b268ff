"""``sne pipeline``: every stage in one run folder (sequenced by :mod:`sne_loihi.pipeline`)."""

from __future__ import annotations

from typing import Any

import typer

from sne_loihi.cli.app import app, friendly
from sne_loihi.cli.flags import DATA_FLAGS, PIPELINE_FLAGS, REPORT_FLAGS, STUDENT_FLAGS, config_flags
from sne_loihi.cli.options import (
    ConfigOpt, DatasetOpt, PresetOpt, ProgressOpt, ResumeOpt, RunDirOpt, TrustFactoryOpt, default_run_dir, echo_engine,
    echo_preset, run_config,
)
from sne_loihi.run_files import REPORT_FILE


@app.command()
@friendly
@config_flags(DATA_FLAGS, STUDENT_FLAGS, PIPELINE_FLAGS, REPORT_FLAGS)
def pipeline(
    dataset: DatasetOpt = None,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    run_dir: RunDirOpt = None,
    overrides: Any = None,
    resume: ResumeOpt = False,
    progress: ProgressOpt = True,
    trust_factory: TrustFactoryOpt = False,
) -> None:
    """Teacher -> partition -> students -> export + Lava simulation -> evaluation -> report, in one run folder."""
    from sne_loihi.pipeline import run_pipeline

    cfg = run_config(dataset, config, run_dir if resume else None, overrides, preset)
    echo_preset(cfg)
    run_dir = default_run_dir(run_dir, cfg)
    echo_engine(cfg)
    run_pipeline(cfg, run_dir, resume=resume, progress=progress)  # report and dropout variants: cfg.report, cfg.pipeline
    typer.echo(f"report: {run_dir / REPORT_FILE}")
