"""``sne pipeline``: every stage in one run folder (sequenced by :mod:`sne_loihi.pipeline`)."""

from __future__ import annotations

from typing import Any

import typer

from sne_loihi.cli.app import app, friendly
from sne_loihi.cli.flags import (
    DATA_FLAGS, EXECUTION_FLAGS, PIPELINE_FLAGS, REPORT_FLAGS, STUDENT_FLAGS, TEACHER_FLAGS, config_flags,
)
from sne_loihi.cli.options import (
    check_resume_target, echo_engine, echo_preset, job_options, new_run_options, run_config, run_folder,
)
from sne_loihi.run_files import REPORT_FILE


@app.command()
@friendly
@config_flags(DATA_FLAGS, TEACHER_FLAGS, STUDENT_FLAGS, EXECUTION_FLAGS, PIPELINE_FLAGS, REPORT_FLAGS)
@new_run_options
@job_options
def pipeline(new_run: Any = None, overrides: Any = None, job: Any = None) -> None:
    """Teacher -> partition -> students -> export + Lava simulation -> evaluation -> report, in one run folder."""
    from sne_loihi.pipeline import run_pipeline

    src = new_run
    check_resume_target(src.run_dir, job.resume)
    cfg = run_config(src.dataset, src.config, src.run_dir if job.resume else None, overrides, src.preset)
    echo_preset(cfg)
    with run_folder(src.run_dir, cfg) as run_dir:
        echo_engine(cfg)
        run_pipeline(cfg, run_dir, resume=job.resume, progress=job.progress)  # report, dropout variants: cfg.report, cfg.pipeline
    typer.echo(f"report: {run_dir / REPORT_FILE}")
