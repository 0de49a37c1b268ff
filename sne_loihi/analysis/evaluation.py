"""The cost table of a run: teacher, each student alone and the full ensemble on the test set
(what ``sne evaluate`` and every report start with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sne_loihi.analysis.activity import ActivityCounter, LayerActivity
from sne_loihi.config import DEFAULT_ENERGY_PROFILE
from sne_loihi.errors import ConfigError
from sne_loihi.run import ENSEMBLE_FILE, TEACHER_FILE, Run, as_run, file_sha256, load_data


@dataclass
class Evaluation:
    """What ``sne evaluate`` reports (JSON-ready via :meth:`to_dict`)."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    activity: list[LayerActivity] = field(default_factory=list)  # of the full ensemble's pass

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, **self.meta}


def evaluate_run(run: Run | Path, *, energy_profile: str = DEFAULT_ENERGY_PROFILE, batch_size: int = 256) -> Evaluation:
    """Teacher, each student alone (head with only its share), and the full ensemble.

    Accuracy on the test set; per-sample cost: teacher MACs; student MACs (graded first
    layer) and ACs counted by :func:`sne_loihi.cost.count_student_ops`; energy from the
    named profile; the full ensemble's spiking activity per layer (same pass).
    """
    from sne_loihi.cost import teacher_macs
    from sne_loihi.cost.energy import energy_pj, resolve_profile
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.metrics import accuracy, predict_logits

    run = as_run(run)
    run_dir = run.dir
    loaded = run.ensemble()
    cfg = loaded.config
    data = load_data(cfg)
    profile = resolve_profile(energy_profile)
    rows: list[dict[str, Any]] = []
    teacher_path = run_dir / TEACHER_FILE
    if teacher_path.exists():
        from sne_loihi.data.dataset import split_mismatch

        teacher, tcfg, _ = run.teacher()
        why = split_mismatch(tcfg.data, tcfg.train.seed, cfg.data, cfg.train.seed)
        if why:  # e.g. another run's ensemble.pt copied in: its test set is the teacher's training data
            raise ConfigError(f"{teacher_path} does not fit {run_dir / ENSEMBLE_FILE}: {why}")
        if loaded.teacher_sha256 is not None:
            if file_sha256(teacher_path) != loaded.teacher_sha256:  # the report would describe another teacher
                raise ConfigError(f"{teacher_path} is not the teacher {run_dir / ENSEMBLE_FILE} was distilled from "
                                  "(its content differs); put that teacher back or evaluate in its own run folder")
        t_acc = accuracy(predict_logits(teacher, data.x_test_nchw, batch_size, torch.device("cpu")), data.y_test)
        macs = teacher_macs(teacher, data.in_shape)
        rows.append({
            "model": f"teacher {tcfg.teacher.arch}", "active": "-", "accuracy": t_acc,
            "params": sum(p.numel() for p in teacher.parameters()),
            "macs": float(macs), "acs": 0.0, "energy_pj": energy_pj(profile, macs=macs, acs=0),
        })
    model = loaded.model
    n = model.num_students
    n_params = [sum(p.numel() for p in s.parameters()) for s in model.students]
    head_params = sum(p.numel() for p in model.head.parameters())
    for i in range(n):
        r = evaluate_ensemble(model, data.x_test_nchw, data.y_test, active=[i], batch_size=batch_size)
        rows.append(_student_row(f"student {i} alone", str(i), r, n_params[i] + head_params, profile))
    activity = ActivityCounter(model.students)
    full = evaluate_ensemble(model, data.x_test_nchw, data.y_test, active=None, batch_size=batch_size,
                             on_student_output=activity.add)
    rows.append(_student_row(f"ensemble {n}x{cfg.student.arch}", f"{n}/{n}", full, sum(n_params) + head_params, profile))
    meta = {
        "dataset": cfg.data.name,
        "test_samples": len(data.y_test),
        "energy_profile": energy_profile,
        "partition": loaded.partition.to_dict(),
        "student_ops": full.student_ops,
        "time_steps": cfg.student.time_steps,
        "input_bits": cfg.student.input_bits,
        "alpha": cfg.ensemble.alpha,
        "epochs": loaded.epoch,
    }
    return Evaluation(rows, meta, activity.rows())


def _student_row(name: str, active: str, r: Any, params: int, profile: Any) -> dict[str, Any]:
    from sne_loihi.cost.energy import energy_pj

    return {
        "model": name, "active": active, "accuracy": r.accuracy, "params": params,
        "macs": r.macs_per_sample, "acs": r.acs_per_sample,
        "energy_pj": energy_pj(profile, macs=r.macs_per_sample, acs=r.acs_per_sample),
    }
