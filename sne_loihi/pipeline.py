"""Pipeline stages shared by the CLI commands: teacher -> partition -> students -> evaluate.

Each stage reads and writes the run folder only, so stages can run separately
(``sne teacher``, ``sne partition``, ``sne train``, ``sne evaluate``) or together
(``sne pipeline``), and ``--resume`` picks up wherever a previous run stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sne_loihi.config import PartitionStrategy, RunConfig, dump_toml
from sne_loihi.errors import ConfigError, SneError

CONFIG_FILE = "config.toml"
FEATURES_FILE = "teacher_features.pt"
PARTITION_FILE = "partition.json"


def prepare_run_dir(run_dir: Path, cfg: RunConfig, *, resume: bool, allow_existing: bool = False) -> None:
    """Create the run folder and write its resolved config.

    Never loses earlier results: an existing non-empty folder needs ``resume`` (continue it)
    or ``allow_existing`` (a later stage adding to it).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} exists and is not a folder")
    if run_dir.exists() and any(run_dir.iterdir()) and not (resume or allow_existing):
        raise ConfigError(f"run folder {run_dir} already holds results; pass --resume to continue it or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_toml(cfg, run_dir / CONFIG_FILE)


def load_data(cfg: RunConfig):  # -> Dataset
    """Load the data set named by the config."""
    from sne_loihi.data import load_dataset

    return load_dataset(cfg.data, seed=cfg.train.seed)


def cached_teacher_features(teacher: torch.nn.Module, data: Any, run_dir: Path, teacher_path: Path) -> torch.Tensor:
    """Teacher features over the (un-augmented) training set, cached in the run folder.

    The cache is keyed by the teacher checkpoint's modification time and size, so a
    fine-tuned or retrained teacher never reuses stale features.
    """
    from sne_loihi.io import load_checkpoint, save_checkpoint
    from sne_loihi.train.teacher import teacher_features

    stat = teacher_path.stat()
    key = f"{teacher_path.name}:{stat.st_size}:{stat.st_mtime_ns}:{len(data.x_train_nchw)}"
    cache = Path(run_dir) / FEATURES_FILE
    if cache.exists():
        try:
            payload = load_checkpoint(cache)
            if payload.get("key") == key:
                return payload["features"]
        except SneError:
            pass  # a corrupt cache is recomputed below and overwritten
    feats = teacher_features(teacher, data.x_train_nchw)
    save_checkpoint(cache, {"key": key, "features": feats})
    return feats


def make_partition(cfg: RunConfig, features_nd: torch.Tensor, run_dir: Path):  # -> Partition
    """Compute (or, on resume, reuse) the partition and store it as ``partition.json``."""
    from sne_loihi.partition import Partition, compute_partition

    path = Path(run_dir) / PARTITION_FILE
    strategy = PartitionStrategy(cfg.ensemble.partition)
    if path.exists():
        part = Partition.load(path, feature_dim=features_nd.shape[1])
        if part.strategy == strategy and part.num_groups == cfg.ensemble.num_students:
            return part
        raise ConfigError(
            f"{path} holds a {part.strategy.value} partition into {part.num_groups} groups; "
            f"the config asks for {strategy.value} into {cfg.ensemble.num_students}: use another run folder"
        )
    part = compute_partition(strategy, features_nd.numpy(), cfg.ensemble.num_students, cfg.train.seed)
    part.save(path)
    return part


@dataclass
class Evaluation:
    """What ``sne evaluate`` reports (JSON-ready via :meth:`to_dict`)."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, **self.meta}


def evaluate_run(run_dir: Path, *, energy_profile: str = "cmos45nm", batch_size: int = 256) -> Evaluation:
    """Teacher, each student alone (head with only its share), and the full ensemble.

    Accuracy on the test set; per-sample cost: teacher MACs; student MACs (graded first
    layer) and ACs counted by :func:`sne_loihi.cost.count_student_ops`; energy from the
    named profile.
    """
    from sne_loihi.cost import teacher_macs
    from sne_loihi.cost.energy import ENERGY_PROFILES, energy_pj
    from sne_loihi.ensemble.checkpoint import load_ensemble
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.train.common import accuracy, predict_logits
    from sne_loihi.train.teacher import TEACHER_FILE, load_teacher

    run_dir = Path(run_dir)
    loaded = load_ensemble(run_dir)
    cfg = loaded.config
    data = load_data(cfg)
    profile = ENERGY_PROFILES.get(energy_profile)()
    rows: list[dict[str, Any]] = []
    teacher_path = run_dir / TEACHER_FILE
    if teacher_path.exists():
        teacher, tcfg, _ = load_teacher(teacher_path)
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
    full = evaluate_ensemble(model, data.x_test_nchw, data.y_test, active=None, batch_size=batch_size)
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
    return Evaluation(rows, meta)


def _student_row(name: str, active: str, r: Any, params: int, profile: Any) -> dict[str, Any]:
    from sne_loihi.cost.energy import energy_pj

    return {
        "model": name, "active": active, "accuracy": r.accuracy, "params": params,
        "macs": r.macs_per_sample, "acs": r.acs_per_sample,
        "energy_pj": energy_pj(profile, macs=r.macs_per_sample, acs=r.acs_per_sample),
    }


def _teacher_for(run_dir: Path, device: str):
    from sne_loihi.errors import CheckpointError
    from sne_loihi.train.teacher import TEACHER_FILE, load_teacher

    path = Path(run_dir) / TEACHER_FILE
    if not path.exists():
        raise CheckpointError(f"no teacher in {run_dir} (expected {path}); run 'sne teacher --run-dir {run_dir}' first")
    model, _, _ = load_teacher(path, device=device)
    return model, path


def partition_stage(cfg: RunConfig, run_dir: Path):  # -> Partition
    """Teacher features over the training set (cached) -> partition.json."""
    data = load_data(cfg)
    teacher, tpath = _teacher_for(run_dir, cfg.train.device)
    feats = cached_teacher_features(teacher, data, run_dir, tpath)
    return make_partition(cfg, feats, run_dir)


def students_stage(cfg: RunConfig, run_dir: Path, *, resume: bool, progress: bool = True):
    """Partition (reused when present) + distillation into ``ensemble.pt``."""
    from sne_loihi.ensemble import fit_feature_scale
    from sne_loihi.train.students import train_students

    data = load_data(cfg)
    teacher, tpath = _teacher_for(run_dir, cfg.train.device)
    feats = cached_teacher_features(teacher, data, run_dir, tpath)
    part = make_partition(cfg, feats, run_dir)
    scale = fit_feature_scale(feats, cfg.ensemble.feature_scaling, cfg.ensemble.feature_percentile)
    dump_toml(cfg, Path(run_dir) / CONFIG_FILE)
    return train_students(cfg, data, teacher, part, scale, run_dir, resume=resume, progress=progress)


def finetune_stage(
    run_dir: Path, *, students: int, beta: float, epochs: int, lr: float,
    device: str | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the run's teacher with ``CE + beta * L_sim``; keep the original as
    ``teacher_pre_finetune.pt`` and record accuracy and L_sim before and after."""
    import shutil

    from sne_loihi.io import atomic_write_json, load_checkpoint, save_checkpoint
    from sne_loihi.partition import finetune_teacher, similarity_loss
    from sne_loihi.train.common import accuracy, predict_logits, resolve_device
    from sne_loihi.train.teacher import TEACHER_FILE, load_teacher, teacher_features

    run_dir = Path(run_dir)
    path = run_dir / TEACHER_FILE
    backup = run_dir / "teacher_pre_finetune.pt"
    if backup.exists():
        raise ConfigError(f"{run_dir} was already fine-tuned ({backup} exists); use a fresh run folder")
    model, cfg, meta = load_teacher(path, device=device or cfg_device(run_dir))
    data = load_data(cfg)
    dev = next(model.parameters()).device

    def measure() -> dict[str, float]:
        acc = accuracy(predict_logits(model, data.x_test_nchw, 256, dev), data.y_test)
        feats = teacher_features(model, data.x_test_nchw)
        return {"test_accuracy": acc, "l_sim": float(similarity_loss(feats, students))}

    before = measure()
    history = finetune_teacher(
        model, data.x_train_nchw, data.y_train, num_chunks=students, beta=beta, epochs=epochs,
        lr=lr, batch_size=cfg.teacher.batch_size, device=resolve_device(device or cfg.train.device),
        progress=progress,
    )
    after = measure()
    shutil.copy2(path, backup)
    ckpt = load_checkpoint(path)
    ckpt["model"] = model.state_dict()
    ckpt["finetune"] = {"students": students, "beta": beta, "epochs": epochs, "lr": lr, "history": history}
    save_checkpoint(path, ckpt)
    summary = {"before": before, "after": after, "students": students, "beta": beta, "epochs": epochs, "history": history}
    atomic_write_json(run_dir / "finetune.json", summary)
    return summary


def cfg_device(run_dir: Path) -> str:
    """The device recorded in a run folder's config (``auto`` if none)."""
    from sne_loihi.config import load_toml

    path = Path(run_dir) / CONFIG_FILE
    return load_toml(path).get("train", {}).get("device", "auto") if path.exists() else "auto"


def run_pipeline(cfg: RunConfig, run_dir: Path, *, resume: bool, progress: bool = True) -> dict[str, Any]:
    """The whole job: teacher -> partition -> students -> evaluation -> report."""
    from sne_loihi.report import markdown_table, print_table, write_report
    from sne_loihi.train.teacher import train_teacher

    t0 = time.time()
    run_dir = Path(run_dir)
    data = load_data(cfg)
    prepare_run_dir(run_dir, cfg, resume=resume)
    timings: dict[str, float] = {}
    teacher_result = train_teacher(cfg, data, run_dir, resume=resume, progress=progress)
    timings["teacher_s"] = time.time() - t0
    t1 = time.time()
    students_stage(cfg, run_dir, resume=resume, progress=progress)
    timings["students_s"] = time.time() - t1
    t2 = time.time()
    evaluation = evaluate_run(run_dir)
    timings["evaluate_s"] = time.time() - t2
    timings["total_s"] = time.time() - t0
    data_out = {
        "config": cfg.to_dict(),
        "teacher_test_accuracy": teacher_result.test_accuracy,
        "evaluation": evaluation.to_dict(),
        "timings": timings,
    }
    sections = [
        ("Summary", _summary(evaluation)),
        ("Accuracy and cost per sample (test set)", markdown_table(evaluation.rows)
         + f"\n\nEnergy profile: `{evaluation.meta['energy_profile']}`. MACs are synaptic ops on "
         "graded (pixel) input, ACs on binary spikes; student ops are counted exactly "
         "(non-zero inputs x fan-out of non-zero quantised weights, summed over layers and steps)."),
        ("Partition", f"strategy `{evaluation.meta['partition']['strategy']}`, group sizes "
         f"{[len(g) for g in evaluation.meta['partition']['groups']]}"),
        ("Timings (s)", ", ".join(f"{k} {v:.1f}" for k, v in timings.items())),
        ("Config", "```toml\n" + (run_dir / CONFIG_FILE).read_text() + "```"),
    ]
    write_report(run_dir, f"sne-loihi run: {cfg.data.name}", sections, data_out)
    print_table(evaluation.rows, f"{run_dir} ({timings['total_s']:.0f} s)")
    return data_out


def _summary(evaluation: Evaluation) -> str:
    rows = {r["model"].split()[0]: r for r in evaluation.rows if r["active"] in ("-",) or "/" in r["active"]}
    lines = []
    t, e = rows.get("teacher"), rows.get("ensemble")
    if t:
        lines.append(f"- Teacher test accuracy: **{100 * t['accuracy']:.2f}%**, {t['macs']:,.0f} MACs per sample.")
    if e:
        lines.append(
            f"- Ensemble ({e['active']} students active) test accuracy: **{100 * e['accuracy']:.2f}%**, "
            f"{e['acs']:,.0f} ACs + {e['macs']:,.0f} MACs per sample."
        )
    return "\n".join(lines)
