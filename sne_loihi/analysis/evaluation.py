"""The cost table of a run: teacher, each student alone and the full ensemble on the test set
(what ``sne evaluate`` and every report start with)."""

from __future__ import annotations

from collections.abc import Sequence
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


def first_layer_choices(run: Run, model: Any, option: Any = None) -> list[Any]:
    """Per student how its first layer is driven (:func:`sne_loihi.cost.first_layer.resolve_first_layer`)
    for ``option``, default the run's ``lava.first_layer`` (``config.toml``, else the
    ensemble's stored config).

    Raises:
        ConfigError: ``bias`` for a student that does not allow it.
    """
    from sne_loihi.cost.first_layer import resolve_first_layer

    if option is None:
        try:
            option = run.config.lava.first_layer
        except ConfigError:
            option = run.ensemble().config.lava.first_layer
    return resolve_first_layer(option, list(model.students), ConfigError)


def evaluate_run(run: Run | Path, *, energy_profile: str = DEFAULT_ENERGY_PROFILE, batch_size: int = 256,
                 first_layer: Any = None) -> Evaluation:
    """Teacher, each student alone (head with only its share), and the full ensemble.

    Accuracy on the test set; per-sample cost: teacher MACs; student MACs (graded first
    layer) and ACs counted by :func:`sne_loihi.cost.count_student_ops`; energy from the
    named profile; the full ensemble's spiking activity per layer (same pass).
    ``first_layer`` (default: the run's ``lava.first_layer``): a first layer driven by a
    per-sample bias has its MACs counted once per sample; every student row says how
    (``first_layer``: ``bias`` / ``synaptic`` per student) and the meta data why not
    (``first_layer`` entries with a ``first_layer_note``).
    """
    from sne_loihi.cost import teacher_macs
    from sne_loihi.cost.energy import energy_pj, resolve_profile
    from sne_loihi.cost.ops import neuron_updates_per_sample
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
    choices = first_layer_choices(run, model, first_layer)
    modes = [c.mode for c in choices]
    n_params = [sum(p.numel() for p in s.parameters()) for s in model.students]
    head_params = sum(p.numel() for p in model.head.parameters())
    updates = [float(neuron_updates_per_sample(s.spec)) for s in model.students]
    for i in range(n):
        r = evaluate_ensemble(model, data.x_test_nchw, data.y_test, active=[i], batch_size=batch_size, first_layer=modes)
        rows.append(_student_row(f"student {i} alone", str(i), r, n_params[i] + head_params, profile, modes[i:i + 1],
                                 updates[i]))
    activity = ActivityCounter(model.students)
    full = evaluate_ensemble(model, data.x_test_nchw, data.y_test, active=None, batch_size=batch_size,
                             on_student_output=activity.add, first_layer=modes)
    rows.append(_student_row(f"ensemble {n}x{cfg.student.arch}", f"{n}/{n}", full, sum(n_params) + head_params, profile,
                             modes, sum(updates)))
    meta = {
        "dataset": cfg.data.name,
        "test_samples": len(data.y_test),
        "energy_profile": energy_profile,
        "partition": loaded.partition.to_dict(),
        "student_ops": full.student_ops,
        "first_layer": [c.to_dict() for c in choices],
        "time_steps": cfg.student.time_steps,
        "input_bits": cfg.student.input_bits,
        "alpha": cfg.ensemble.alpha,
        "epochs": loaded.epoch,
    }
    return Evaluation(rows, meta, activity.rows())


def _student_row(name: str, active: str, r: Any, params: int, profile: Any, modes: Sequence[Any],
                 neuron_updates: float) -> dict[str, Any]:
    """One row of the cost table; its energy prices the same ops and neuron updates as every
    other table and plot of the report (a profile may price neuron updates)."""
    from sne_loihi.cost.energy import energy_pj

    kinds = sorted({m.value for m in modes})
    return {
        "model": name, "active": active, "accuracy": r.accuracy, "params": params,
        "macs": r.macs_per_sample, "acs": r.acs_per_sample, "neuron_updates": neuron_updates,
        "energy_pj": energy_pj(profile, macs=r.macs_per_sample, acs=r.acs_per_sample, neuron_updates=neuron_updates),
        "first_layer": kinds[0] if len(kinds) == 1 else "mixed",
    }
