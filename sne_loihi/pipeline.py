"""The top floor: ``sne pipeline`` sequences the stages in one run folder.

teacher (``train``) -> [teacher fine-tuning] -> partition + students (``train``) -> [dropout
variants] -> export (``export``) + Lava simulation (``sim``) -> evaluation and report
(``analysis``). This module and the CLI are the only code that imports more than one stage
package; the stages themselves live in ``train/``, ``export/`` and ``sim/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from sne_loihi.config import DEFAULT_ENERGY_PROFILE, ReportConfig, RunConfig
from sne_loihi.distributed import current
from sne_loihi.run import CASCADE_HEAD_FILE, ENSEMBLE_FILE, EXPORT_DIR, LAVA_FILE, TEACHER_FILE, Run, as_run
from sne_loihi.run_files import STUDENT_METRICS, TEACHER_METRICS, dropout_dir

__all__ = ["lava_stage", "report_run", "run_pipeline"]


def _teacher_not_retrained_under_students(run: Any) -> None:
    """A larger teacher budget on ``--resume`` trains the teacher on; with students (or a
    partition) already made from it, that would orphan them (the next stage then refuses the
    folder for good), so it is refused before anything is written.

    Raises:
        ConfigError: Students or a partition exist and the teacher would train further.
    """
    from sne_loihi.errors import ConfigError
    from sne_loihi.io import load_checkpoint
    from sne_loihi.run import PARTITION_FILE

    made = [n for n in (ENSEMBLE_FILE, PARTITION_FILE) if run.file(n).exists()]
    teacher = run.file(TEACHER_FILE)
    if not made or not teacher.is_file():
        return
    trained = len(load_checkpoint(teacher).get("history") or [])
    if run.config.teacher.epochs > trained:
        raise ConfigError(f"{run.file(made[0])} was made from the teacher of {trained} epochs; training it to "
                          f"{run.config.teacher.epochs} would orphan it: keep teacher.epochs = {trained}, or use a new "
                          "run folder (copy teacher.pt and config.toml there)")


def run_pipeline(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resume: bool,
    progress: bool = True,
    report: Any = None,
    dropout_ks: list[int] | None = None,
) -> dict[str, Any]:
    """The whole job: teacher -> partition -> students -> [dropout-trained variants,
    ``cfg.pipeline.dropout_k``] -> export + Lava simulation (``cfg.lava``) -> evaluation ->
    report (``cfg.report``).

    Args:
        report: A :class:`~sne_loihi.analysis.options.ReportOptions` in place of ``cfg.report``
            (``None``: the config's).
        dropout_ks: In place of ``cfg.pipeline.dropout_k`` (``None``: the config's).
        Either is recorded in the run's config.toml as if it had been configured.
    """
    from sne_loihi.analysis.options import ReportOptions
    from sne_loihi.checks import check_config, check_lava_stage
    from sne_loihi.report import print_table
    from sne_loihi.sim.stage import LAVA_COLUMNS
    from sne_loihi.train.finetune_stage import finetune_if_asked, stored_finetune
    from sne_loihi.train.stages import (
        check_teacher_buildable, dropout_stage, prepare_run_dir, stored_partition, students_stage,
    )
    from sne_loihi.train.teacher import train_teacher

    if report is not None:
        cfg = replace(cfg, report=ReportConfig(**{f.name: getattr(report, f.name) for f in fields(ReportConfig)}))
    if dropout_ks is not None:
        cfg = replace(cfg, pipeline=replace(cfg.pipeline, dropout_k=list(dropout_ks)))
    check_config(cfg)
    report = report if report is not None else ReportOptions.from_config(cfg.report)
    dropout_ks = cfg.pipeline.dropout_k
    t0 = time.time()
    run = Run(run_dir, cfg)
    data = run.data()
    check_teacher_buildable(cfg, data)
    check_lava_stage(cfg)  # more students than one graph holds: refused before training, not after
    if resume and run.dir.is_dir():  # what a later stage would refuse, before config.toml is rewritten
        stored_finetune(run)
        stored_partition(run)
        _teacher_not_retrained_under_students(run)
    prepare_run_dir(run, resume=resume, checkpoints=(TEACHER_FILE, ENSEMBLE_FILE))
    timings: dict[str, float] = {"setup": time.time() - t0}
    _time_training(timings, "teacher", run.file(TEACHER_METRICS), lambda: train_teacher(run, resume=resume,
                                                                                        progress=progress))
    t = time.time()
    if finetune_if_asked(run, progress=progress) is not None:  # partition "finetune" only
        timings["teacher_finetune"] = time.time() - t
    _time_training(timings, "students", run.file(STUDENT_METRICS),
                   lambda: students_stage(run, resume=resume, progress=progress))
    for k in dropout_ks or []:
        _time_training(timings, f"dropout_k{k}", dropout_dir(run.dir, k) / STUDENT_METRICS,
                       lambda k=k: dropout_stage(run, k, resume=resume, progress=progress))
    if not current().is_main:  # under torchrun: export, Lava and the report are rank 0's
        return {}
    t = time.time()
    lava, earlier_s = _lava_stage(run, energy=report.energy_profile, progress=progress, resume=resume)  # -> RUN/lava.json
    if lava is not None and earlier_s is None:
        timings["export_and_lava"] = time.time() - t
    elif lava is not None:  # kept from an earlier invocation: its time, under its own name
        timings["export_and_lava_earlier_invocation"] = earlier_s
    t2 = time.time()
    out = report_run(run, f"sne-loihi run: {cfg.data.name}", report, timings)
    timings["report"] = time.time() - t2
    timings["total"] = time.time() - t0
    print_table(out["rows"], f"{run_dir} ({timings['total']:.0f} s)")
    if lava is not None:
        print_table(lava.rows(), f"Lava ({lava.backend}) on the first {lava.samples} test samples", LAVA_COLUMNS)
    return out


def _time_training(timings: dict[str, float], name: str, metrics: Path, stage: Callable[[], object]) -> None:
    """Run a training stage and record its seconds under ``name``, or under ``name_kept`` when
    it trained no epoch (a finished stage kept by ``--resume``: the seconds only loaded it)."""
    before = _records(metrics)
    t = time.time()
    stage()
    timings[name if _records(metrics) > before else f"{name}_kept"] = time.time() - t


def _records(metrics: Path) -> int:
    """The number of epoch records in a learning-curve file (0 when there is none yet)."""
    try:
        with metrics.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    except FileNotFoundError:
        return 0


def lava_stage(run: Run, *, energy: str = DEFAULT_ENERGY_PROFILE, progress: bool = True, resume: bool = False) -> Any:
    """The pipeline's last stage: with ``cfg.lava.cascade`` thresholds, make sure the run has
    a current cascade head (``RUN/cascade_head.pt``, trained now if missing or older than
    ``RUN/ensemble.pt``); export ``RUN/ensemble.pt`` (and that head) to ``RUN/export``,
    parity-checked on ``cfg.lava.samples`` test samples; simulate those samples for every
    configured active set and threshold on one graph, compared with torch.

    With ``resume``, a finished stage is kept (:func:`finished_lava`): ``RUN/lava.json`` from
    this ``ensemble.pt`` and cascade head, with these settings, beside its export.

    Returns:
        The :class:`~sne_loihi.sim.stage.SimulationReport` (also written to ``RUN/lava.json``),
        or ``None`` when the stage is disabled.
    """
    return _lava_stage(run, energy=energy, progress=progress, resume=resume)[0]


def _lava_stage(run: Run, *, energy: str, progress: bool, resume: bool) -> tuple[Any, float | None]:
    """:func:`lava_stage`, and the seconds the kept result took in an earlier invocation
    (``None`` when this one ran the stage)."""
    cfg = run.config
    lava = cfg.lava  # its values were checked with the config (sne_loihi.checks)
    if not lava.enabled or lava.samples == 0:
        return None, None
    from sne_loihi.export.stage import export_run
    from sne_loihi.io import atomic_write_json, file_key, sha256_file
    from sne_loihi.sim.stage import simulate_export

    if lava.cascade:
        from sne_loihi.ensemble.cascade import ensure_cascade_head

        loaded, data = run.ensemble(), run.data()
        ensure_cascade_head(run.dir, loaded.model, data.x_train_nchw, data.y_train, config=cfg.to_dict(), seed=cfg.train.seed)
    if resume:
        done = finished_lava(run, energy)
        if done is not None:
            print(f"Lava stage: kept {run.file(LAVA_FILE)} (same ensemble, cascade head and settings; "
                  f"its export and simulation took {done[1]:.0f} s in an earlier invocation)")
            return done
    t0 = time.time()
    export_run(run, run.file(EXPORT_DIR), samples=lava.samples, overwrite=True, capacity=lava.capacity)
    rep = simulate_export(run.file(EXPORT_DIR), samples=lava.samples, active=list(lava.active), backend=lava.backend,
                          energy=energy, capacity=lava.capacity, seed=cfg.train.seed,
                          torch_checkpoint=run.file(ENSEMBLE_FILE), cascade=list(lava.cascade) or None,
                          progress=progress)
    rep.checkpoint_key = file_key(run.file(ENSEMBLE_FILE))
    rep.checkpoint_sha256 = sha256_file(run.file(ENSEMBLE_FILE))
    atomic_write_json(run.file(LAVA_FILE), {**rep.to_dict(), LAVA_STAGE_KEY: {
        "inputs": _lava_stage_inputs(run, energy), "seconds": round(time.time() - t0, 3)}})
    return rep, None


#: The key of ``RUN/lava.json`` under which the pipeline records what the stage ran from.
LAVA_STAGE_KEY = "pipeline_stage"


def _lava_stage_inputs(run: Run, energy: str) -> dict[str, Any]:
    """What the Lava stage's result depends on: the keys (size, mtime) of the ensemble, the
    cascade head and the export's manifest, the ``[lava]`` settings, energy profile and seed."""
    from sne_loihi.io import file_key
    from sne_loihi.netx_format.manifest import MANIFEST_FILE

    def key(path: Path) -> str | None:
        return file_key(path) if path.is_file() else None

    return {"ensemble": key(run.file(ENSEMBLE_FILE)), "cascade_head": key(run.file(CASCADE_HEAD_FILE)),
            "manifest": key(run.file(EXPORT_DIR) / MANIFEST_FILE), "lava": run.config.to_dict()["lava"],
            "energy": energy, "seed": run.config.train.seed}


def finished_lava(run: Run, energy: str) -> tuple[Any, float] | None:
    """The Lava stage's earlier result and its seconds, when ``RUN/lava.json`` was written by
    this stage from the same inputs (:func:`_lava_stage_inputs`) and its export is still there;
    ``None`` otherwise (also for a lava.json written by ``sne simulate`` or an older version,
    and when the export was rewritten since)."""
    import json

    from sne_loihi.sim.stage import SimulationReport

    path = run.file(LAVA_FILE)
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        stage = d[LAVA_STAGE_KEY]
        if stage["inputs"] != json.loads(json.dumps(_lava_stage_inputs(run, energy))) or stage["inputs"]["manifest"] is None:
            return None
        return SimulationReport.from_dict(d), float(stage["seconds"])
    except (ValueError, KeyError, TypeError):
        return None


def report_run(run: Run | Path, title: str, options: Any, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Evaluate the run and write its report (:func:`~sne_loihi.analysis.runreport.build_report`),
    with the Lava section of ``RUN/lava.json`` when the simulation stage ran."""
    from sne_loihi.analysis.runreport import build_report
    from sne_loihi.sim.stage import LAVA_SECTION, load_lava_section

    run = as_run(run)
    lava = load_lava_section(run.dir)
    stage_sections = [(LAVA_SECTION, lava[0], "lava", lava[1])] if lava is not None else []
    return build_report(run, title, options, timings, stage_sections=stage_sections)
