"""``sne teacher`` (and ``teacher finetune``), ``sne partition``, ``sne train``: the training stage."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sne_loihi.cli.app import app, friendly, teacher_app
from sne_loihi.cli.flags import (
    DATA_FLAGS, EXECUTION_FLAGS, FINETUNE_FLAGS, PARTITION_FLAGS, STUDENT_FLAGS, TEACHER_FLAGS, TRAIN_FLAGS,
    config_flags,
)
from sne_loihi.cli.options import (
    ConfigOpt, ExistingRunDirOpt, ProgressOpt, RunArg, TrustFactoryOpt, check_resume_target, echo_engine, echo_preset,
    job_options, new_run_options, one_run_folder, run_config, run_folder, stored_config,
)
from sne_loihi.errors import SneError


@teacher_app.callback()
@friendly
@config_flags(DATA_FLAGS, TEACHER_FLAGS, EXECUTION_FLAGS)
@new_run_options
@job_options
def teacher(ctx: typer.Context, new_run: Any = None, overrides: Any = None, job: Any = None) -> None:
    """Train an ANN teacher with cross-entropy and store it in the run folder."""
    src = new_run
    if ctx.invoked_subcommand is not None:
        passed_on = {"train.device", "teacher.factory"}  # what the sub-command uses from here
        unused = [f"--{k}" for k, v in (("dataset", src.dataset), ("config", src.config), ("preset", src.preset),
                                        ("resume", job.resume)) if v]
        flag_of = {f.key: f.flag.split("/")[0].split(" ")[0] for g in (DATA_FLAGS, TEACHER_FLAGS, EXECUTION_FLAGS)
                   for f in g}
        unused += sorted(flag_of.get(k, f"--set {k}") for k, v in (overrides or {}).items()
                         if v is not None and k not in passed_on)
        if unused:
            raise SneError(f"'sne teacher {ctx.invoked_subcommand}' does not use {unused[0]} (given before "
                           f"'{ctx.invoked_subcommand}'); it works on the run folder's teacher as it is")
        ctx.obj = {"run_dir": src.run_dir, "device": overrides["train.device"], "progress": job.progress,
                   "factory": overrides["teacher.factory"], "trust_factory": job.trust_factory}
        return
    from sne_loihi.run import FINETUNE_FILE, TEACHER_FILE, Run
    from sne_loihi.train.stages import check_teacher_buildable, prepare_run_dir
    from sne_loihi.train.teacher import train_teacher

    check_resume_target(src.run_dir, job.resume)
    if job.resume and src.run_dir is not None and (src.run_dir / FINETUNE_FILE).exists():
        raise SneError(f"{src.run_dir} holds a fine-tuned teacher ({FINETUNE_FILE}); training it on with "
                       "cross-entropy would undo the fine-tuning: use a new run folder")
    cfg = run_config(src.dataset, src.config, src.run_dir, overrides, src.preset)
    echo_preset(cfg)
    with run_folder(src.run_dir, cfg) as run_dir:
        run = Run(run_dir, cfg)
        data = run.data()
        check_teacher_buildable(cfg, data, students=False)  # a bad external checkpoint fails before anything is written
        prepare_run_dir(run, resume=job.resume, checkpoints=(TEACHER_FILE,))
        result = train_teacher(run, resume=job.resume, progress=job.progress)
    typer.echo(f"teacher {cfg.teacher.arch}: test accuracy {100 * result.test_accuracy:.2f}% -> {result.path}")


@teacher_app.command("finetune")
@friendly
@config_flags(FINETUNE_FLAGS)
def teacher_finetune(
    ctx: typer.Context,
    run_dir: ExistingRunDirOpt = None,
    overrides: Any = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto (CUDA if present), cpu, cuda[:i].")] = None,
    progress: ProgressOpt = True,
    trust_factory: TrustFactoryOpt = False,
) -> None:
    """Disentangle the teacher: fine-tune with CE + beta * L_sim (method.md section 4).

    Settings not given as flags come from the run's config.toml (``ensemble.num_students``
    and the ``finetune`` section), else from the config defaults. The run folder, device,
    progress and trust options may also come before ``finetune`` (``sne teacher --run-dir R
    finetune``).
    """
    from dataclasses import asdict

    from sne_loihi.distributed import is_main_process
    from sne_loihi.io import run_lock
    from sne_loihi.progress import progress_bars
    from sne_loihi.run import FINETUNE_FILE, Run
    from sne_loihi.teachers.external import trusted_factories
    from sne_loihi.train.finetune_stage import finetune_stage

    locked_by_friendly = run_dir is not None  # this command's own --run-dir: friendly holds its lock
    opts = dict(ctx.obj or {})
    given = {"run_dir": run_dir, "device": device, "progress": None if progress else False,
             "trust_factory": trust_factory or None}
    opts.update({k: v for k, v in given.items() if v is not None})
    if opts.get("run_dir") is None:
        raise SneError("teacher finetune needs --run-dir RUN, a run folder holding teacher.pt")
    run_dir = Path(opts["run_dir"])
    cfg = stored_config(run_dir, overrides)  # reads no code; finetune_stage checks the finetune values
    own_lock = is_main_process() and not locked_by_friendly  # torchrun: rank 0
    lock = run_lock(run_dir) if own_lock else contextlib.nullcontext()
    with (lock, trusted_factories([opts.get("factory")], trust_all=bool(opts.get("trust_factory"))),
          progress_bars(opts.get("progress", True))):  # also a --no-progress given before 'finetune'
        summary = finetune_stage(Run(run_dir), students=cfg.ensemble.num_students, **asdict(cfg.finetune),
                                 device=opts.get("device"), progress=opts.get("progress", True))
    b, a = summary["before"], summary["after"]
    typer.echo(f"teacher test accuracy {100 * b['test_accuracy']:.2f}% -> {100 * a['test_accuracy']:.2f}%, "
               f"L_sim {b['l_sim']:.4f} -> {a['l_sim']:.4f} ({run_dir / FINETUNE_FILE})")


@app.command()
@friendly
@config_flags(PARTITION_FLAGS)
def partition(
    run: RunArg = None,
    run_dir: ExistingRunDirOpt = None,
    overrides: Any = None,
    trust_factory: TrustFactoryOpt = False,
    progress: ProgressOpt = True,  # friendly switches every bar off with --no-progress
) -> None:
    """Split the teacher's feature dimensions into N groups and store partition.json."""
    from sne_loihi.run import Run
    from sne_loihi.train.stages import partition_stage

    run_dir = one_run_folder(run, run_dir)
    part = partition_stage(Run(run_dir, run_config(None, None, run_dir, overrides)))
    typer.echo(f"{part.strategy.value} partition of {part.feature_dim} features, group sizes {list(part.sizes)}")


@app.command()
@friendly
@config_flags(STUDENT_FLAGS, TRAIN_FLAGS, EXECUTION_FLAGS)
@job_options
def train(
    run: RunArg = None,
    run_dir: ExistingRunDirOpt = None,
    config: ConfigOpt = None,
    overrides: Any = None,
    job: Any = None,
) -> None:
    """Distil the run's teacher (teacher.pt, from 'sne teacher') into an ensemble of SLAYER students."""
    from sne_loihi.run import Run
    from sne_loihi.train.stages import students_stage

    run_dir = one_run_folder(run, run_dir)
    cfg = run_config(None, config, run_dir, overrides)
    echo_engine(cfg)
    result = students_stage(Run(run_dir, cfg), resume=job.resume, progress=job.progress)
    typer.echo(f"ensemble: test accuracy {100 * result.test_accuracy:.2f}% -> {result.path}"
               f" (run 'sne evaluate {run_dir}' for the full report)")
