"""The top floor: ``sne pipeline`` sequences the stages in one run folder.

teacher (``train``) -> [teacher fine-tuning] -> partition + students (``train``) -> [dropout
variants] -> export (``export``) + Lava simulation (``sim``) -> evaluation and report
(``analysis``). This module and the CLI are the only code that imports more than one stage
package; the stages themselves live in ``train/``, ``export/`` and ``sim/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sne_loihi.config import RunConfig
from sne_loihi.config import DEFAULT_ENERGY_PROFILE
from sne_loihi.distributed import current
from sne_loihi.errors import ConfigError
from sne_loihi.run import ENSEMBLE_FILE, EXPORT_DIR, LAVA_FILE, TEACHER_FILE, load_data

__all__ = ["lava_stage", "load_data", "report_run", "run_pipeline"]


def run_pipeline(
    cfg: RunConfig,
    run_dir: Path,
    *,
    resume: bool,
    progress: bool = True,
    report: Any = None,
    dropout_ks: list[int] | None = None,
) -> dict[str, Any]:
    """The whole job: teacher -> partition -> students -> [dropout-trained variants] ->
    export + Lava simulation (``cfg.lava``) -> evaluation -> report (``report`` is an :class:`~sne_loihi.analysis.runreport.ReportOptions`).
    """
    from dataclasses import replace

    from sne_loihi.analysis.runreport import ReportOptions
    from sne_loihi.report import print_table
    from sne_loihi.sim.stage import LAVA_COLUMNS
    from sne_loihi.train.finetune_stage import finetune_if_asked, stored_finetune
    from sne_loihi.train.stages import (
        check_teacher_buildable, dropout_stage, prepare_run_dir, stored_partition, students_stage,
    )
    from sne_loihi.train.teacher import train_teacher

    report = report or ReportOptions()
    for k in dropout_ks or []:
        if not 0 < k < cfg.ensemble.num_students:
            raise ConfigError(f"--dropout-k {k} must be in 1..{cfg.ensemble.num_students - 1}")
    t0 = time.time()
    run_dir = Path(run_dir)
    data = load_data(cfg)
    check_teacher_buildable(cfg, data)
    if resume and run_dir.is_dir():  # what a later stage would refuse, before config.toml is rewritten
        stored_finetune(cfg, run_dir)
        stored_partition(cfg, run_dir)
    prepare_run_dir(run_dir, cfg, resume=resume, checkpoints=(TEACHER_FILE, ENSEMBLE_FILE))
    timings: dict[str, float] = {}
    train_teacher(cfg, data, run_dir, resume=resume, progress=progress)
    timings["teacher"] = time.time() - t0
    t = time.time()
    if finetune_if_asked(cfg, run_dir, progress=progress) is not None:  # partition "finetune" only
        timings["teacher_finetune"] = time.time() - t
    t1 = time.time()
    students_stage(cfg, run_dir, resume=resume, progress=progress)
    timings["students"] = time.time() - t1
    for k in dropout_ks or []:
        t = time.time()
        dropout_stage(replace(cfg, ensemble=replace(cfg.ensemble, train_active=k)), run_dir, resume=resume, progress=progress)
        timings[f"dropout_k{k}"] = time.time() - t
    if not current().is_main:  # under torchrun: export, Lava and the report are rank 0's
        return {}
    t = time.time()
    lava = lava_stage(cfg, run_dir, energy=report.energy_profile, progress=progress)  # -> RUN/lava.json
    if lava is not None:
        timings["export_and_lava"] = time.time() - t
    t2 = time.time()
    out = report_run(run_dir, f"sne-loihi run: {cfg.data.name}", report, timings)
    timings["report"] = time.time() - t2
    timings["total"] = time.time() - t0
    print_table(out["rows"], f"{run_dir} ({timings['total']:.0f} s)")
    if lava is not None:
        print_table(lava.rows(), f"Lava ({lava.backend}) on the first {lava.samples} test samples", LAVA_COLUMNS)
    return out


def lava_stage(cfg: RunConfig, run_dir: Path, *, energy: str = DEFAULT_ENERGY_PROFILE, progress: bool = True) -> Any:
    """The pipeline's last stage: with ``cfg.lava.cascade`` thresholds, make sure the run has
    a current cascade head (``RUN/cascade_head.pt``, trained now if missing or older than
    ``RUN/ensemble.pt``); export ``RUN/ensemble.pt`` (and that head) to ``RUN/export``,
    parity-checked on ``cfg.lava.samples`` test samples; simulate those samples for every
    configured active set and threshold on one graph, compared with torch.

    Returns:
        The :class:`~sne_loihi.sim.stage.SimulationReport` (also written to ``RUN/lava.json``),
        or ``None`` when the stage is disabled.
    """
    lava = cfg.lava
    if not lava.enabled or lava.samples == 0:
        return None
    if lava.samples < 0 or lava.capacity < 1:
        raise ConfigError(f"lava.samples must be >= 0 and lava.capacity >= 1, got {lava.samples}, {lava.capacity}")
    from sne_loihi.export.stage import export_run
    from sne_loihi.io import atomic_write_json, file_key
    from sne_loihi.sim.stage import simulate_export

    run_dir = Path(run_dir)
    if lava.cascade:
        from sne_loihi.ensemble.cascade import ensure_cascade_head
        from sne_loihi.ensemble.checkpoint import load_ensemble

        loaded, data = load_ensemble(run_dir), load_data(cfg)
        ensure_cascade_head(run_dir, loaded.model, data.x_train_nchw, data.y_train, config=cfg.to_dict(), seed=cfg.train.seed)
    export_run(run_dir, run_dir / EXPORT_DIR, samples=lava.samples, overwrite=True, capacity=lava.capacity)
    rep = simulate_export(run_dir / EXPORT_DIR, samples=lava.samples, active=list(lava.active), backend=lava.backend,
                           energy=energy, capacity=lava.capacity, seed=cfg.train.seed, torch_checkpoint=run_dir / ENSEMBLE_FILE,
                           cascade=list(lava.cascade) or None, progress=progress)
    rep.checkpoint_key = file_key(run_dir / ENSEMBLE_FILE)
    atomic_write_json(run_dir / LAVA_FILE, rep.to_dict())
    return rep


def report_run(run_dir: Path, title: str, options: Any, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Evaluate the run and write its report (:func:`~sne_loihi.analysis.runreport.build_report`),
    with the Lava section of ``RUN/lava.json`` when the simulation stage ran."""
    from sne_loihi.analysis.runreport import build_report
    from sne_loihi.sim.stage import LAVA_SECTION, load_lava_section

    lava = load_lava_section(run_dir)
    stage_sections = [(LAVA_SECTION, lava[0], "lava", lava[1])] if lava is not None else []
    return build_report(run_dir, title, options, timings, stage_sections=stage_sections)
