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
from sne_loihi.distributed import current, is_main_process
from sne_loihi.errors import ConfigError

CONFIG_FILE = "config.toml"
FEATURES_FILE = "teacher_features.pt"
PARTITION_FILE = "partition.json"
FINETUNE_FILE = "finetune.json"
PRE_FINETUNE_TEACHER = "teacher_pre_finetune.pt"


def prepare_run_dir(
    run_dir: Path, cfg: RunConfig, *, resume: bool, allow_existing: bool = False, checkpoints: tuple[str, ...] = (),
) -> None:
    """Create the run folder and write its resolved config, after every check has passed.

    Never loses earlier results: an existing non-empty folder needs ``resume`` (continue it)
    or ``allow_existing`` (a later stage adding to it), and each of ``checkpoints`` present in
    it must be resumable with ``cfg`` (:func:`check_resumable`) before ``config.toml`` is
    rewritten, so a refused command leaves the folder as it was. Under torchrun this starts
    the process group (:func:`sne_loihi.distributed.setup`).
    """
    from sne_loihi.distributed import setup
    from sne_loihi.io import LOCK_FILE
    from sne_loihi.train.common import resolve_device

    dist = setup(resolve_device(cfg.train.device))  # under torchrun: the process group, once
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} exists and is not a folder")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()) and not (resume or allow_existing):
        raise ConfigError(f"run folder {run_dir} already holds results; pass --resume to continue it or choose another --run-dir")
    for name in checkpoints:
        check_resumable(run_dir / name, cfg, resume=resume)
    dist.barrier()  # under torchrun every rank has checked the folder before rank 0 alone writes
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_toml(cfg, run_dir / CONFIG_FILE)


def check_resumable(path: Path, cfg: RunConfig, *, resume: bool) -> dict[str, Any] | None:
    """Fail now, before anything is written, if the training loop would refuse ``path``.

    Returns:
        The checkpoint that will be resumed, or ``None`` when there is none yet.

    Raises:
        CheckpointError: ``path`` exists without ``resume``, cannot be read, or its config
            differs from ``cfg`` in a key that may not change on resume.
    """
    from sne_loihi.errors import CheckpointError
    from sne_loihi.train.common import load_resume_checkpoint

    path = Path(path)
    if not path.exists():
        return None
    if not resume:
        raise CheckpointError(f"{path} already exists; pass --resume to continue it or use another run folder")
    return load_resume_checkpoint(path, cfg.to_dict())


def load_data(cfg: RunConfig):  # -> Dataset
    """Load the data set named by the config."""
    from sne_loihi.data import load_dataset

    return load_dataset(cfg.data, seed=cfg.train.seed)


def cached_teacher_features(teacher: torch.nn.Module, data: Any, run_dir: Path, teacher_path: Path) -> torch.Tensor:
    """Teacher features over the (un-augmented) training set, cached in the run folder.

    The cache is keyed by the teacher checkpoint's modification time and size, so a
    fine-tuned or retrained teacher never reuses stale features. An unreadable cache is
    reported on stderr and recomputed (:func:`sne_loihi.io.load_cache`). Under torchrun each
    rank computes its shard of the training set and the shards are gathered (each feature
    computed once); rank 0 writes the cache.

    Raises:
        UnsafeFileError: The cache file would run code if loaded.
    """
    from sne_loihi.io import load_cache, save_checkpoint
    from sne_loihi.train.teacher import teacher_features

    stat = teacher_path.stat()
    key = f"{teacher_path.name}:{stat.st_size}:{stat.st_mtime_ns}:{len(data.x_train_nchw)}"
    cache = Path(run_dir) / FEATURES_FILE
    if cache.exists():
        payload = load_cache(cache, what="teacher feature cache")  # code-bearing: error; corrupt: warned
        feats = payload.get("features") if payload is not None else None
        if payload is not None and payload.get("key") == key and isinstance(feats, torch.Tensor):
            return feats
    dist = current()
    device = next(teacher.parameters()).device
    shard = dist.shard(len(data.x_train_nchw))
    feats = teacher_features(teacher, data.x_train_nchw[shard.start : shard.stop])
    feats = dist.gather_rows(feats, len(data.x_train_nchw), device)
    if dist.is_main:
        save_checkpoint(cache, {"key": key, "features": feats})
    return feats


def make_partition(cfg: RunConfig, features_nd: torch.Tensor, run_dir: Path):  # -> Partition
    """Compute (or, on resume, reuse) the partition and store it as ``partition.json``.

    Under torchrun rank 0 computes (or reads) it and sends it to the other ranks.
    """
    from sne_loihi.partition import Partition

    dist = current()
    part = _rank0_partition(cfg, features_nd, run_dir) if dist.is_main else None
    if not dist.distributed:
        return part
    return Partition.from_dict(dist.broadcast_json(part.to_dict() if part is not None else None,
                                                   _comm_device(cfg)))


def _comm_device(cfg: RunConfig) -> torch.device:
    from sne_loihi.train.common import resolve_device

    return resolve_device(cfg.train.device)


def _rank0_partition(cfg: RunConfig, features_nd: torch.Tensor, run_dir: Path):  # -> Partition
    from sne_loihi.partition import compute_partition

    path = Path(run_dir) / PARTITION_FILE
    strategy = PartitionStrategy(cfg.ensemble.partition)
    part = stored_partition(cfg, run_dir, feature_dim=features_nd.shape[1])
    if part is not None:
        return part
    if strategy == PartitionStrategy.FINETUNE:
        _check_finetuned(Path(run_dir), cfg.ensemble.num_students)
    part = compute_partition(strategy, features_nd.numpy(), cfg.ensemble.num_students, cfg.train.seed)
    part.save(path)
    return part


def stored_partition(cfg: RunConfig, run_dir: Path, feature_dim: int | None = None):  # -> Partition | None
    """The run folder's ``partition.json`` if it fits the config, ``None`` if there is none.

    Raises:
        ConfigError: It holds another strategy or number of groups.
        CheckpointError: It cannot be read or was made for another feature size.
    """
    from sne_loihi.partition import Partition

    path = Path(run_dir) / PARTITION_FILE
    if not path.exists():
        return None
    strategy = PartitionStrategy(cfg.ensemble.partition)
    part = Partition.load(path, feature_dim=feature_dim)
    if part.strategy == strategy and part.num_groups == cfg.ensemble.num_students:
        return part
    raise ConfigError(
        f"{path} holds a {part.strategy.value} partition into {part.num_groups} groups; "
        f"the config asks for {strategy.value} into {cfg.ensemble.num_students}: use another run folder"
    )


def _check_finetuned(run_dir: Path, num_students: int) -> None:
    """The ``finetune`` partition is the contiguous split of a teacher fine-tuned for N chunks."""
    import json

    summary = run_dir / FINETUNE_FILE
    if not summary.is_file():
        raise ConfigError(
            f"partition 'finetune' needs a fine-tuned teacher: run 'sne teacher --run-dir {run_dir} finetune "
            f"--students {num_students}' first (or 'sne pipeline --partition finetune')"
        )
    try:
        chunks = json.loads(summary.read_text()).get("students")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot read {summary}: {type(exc).__name__}") from None
    if chunks != num_students:
        raise ConfigError(f"the teacher in {run_dir} was fine-tuned for {chunks} chunks, not {num_students} students")


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
    from sne_loihi.analysis.runreport import resolve_profile
    from sne_loihi.cost import teacher_macs
    from sne_loihi.cost.energy import energy_pj
    from sne_loihi.ensemble.checkpoint import load_ensemble
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.train.common import accuracy, predict_logits
    from sne_loihi.train.teacher import TEACHER_FILE, load_teacher

    run_dir = Path(run_dir)
    loaded = load_ensemble(run_dir)
    cfg = loaded.config
    data = load_data(cfg)
    profile = resolve_profile(energy_profile)
    rows: list[dict[str, Any]] = []
    teacher_path = run_dir / TEACHER_FILE
    if teacher_path.exists():
        from sne_loihi.data.dataset import split_mismatch

        teacher, tcfg, _ = load_teacher(teacher_path)
        why = split_mismatch(tcfg.data, tcfg.train.seed, cfg.data, cfg.train.seed)
        if why:  # e.g. another run's ensemble.pt copied in: its test set is the teacher's training data
            raise ConfigError(f"{teacher_path} does not fit {run_dir / 'ensemble.pt'}: {why}")
        if loaded.teacher_sha256 is not None:
            from sne_loihi.export.manifest import sha256_file

            if sha256_file(teacher_path) != loaded.teacher_sha256:  # the report would describe another teacher
                raise ConfigError(f"{teacher_path} is not the teacher {run_dir / 'ensemble.pt'} was distilled from "
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


def _teacher_for(run_dir: Path, cfg: RunConfig):
    """The run's teacher, refused when it was trained on another data set or split."""
    from sne_loihi.data.dataset import split_mismatch
    from sne_loihi.errors import CheckpointError, ConfigError
    from sne_loihi.train.teacher import TEACHER_FILE, load_teacher

    path = Path(run_dir) / TEACHER_FILE
    if not path.exists():
        raise CheckpointError(f"no teacher in {run_dir} (expected {path}); run 'sne teacher --run-dir {run_dir}' first")
    model, tcfg, _ = load_teacher(path, device=cfg.train.device)
    why = split_mismatch(tcfg.data, tcfg.train.seed, cfg.data, cfg.train.seed)
    if why:
        raise ConfigError(f"{path} does not fit this run: {why}; use the teacher's settings or train a new teacher")
    return model, path


def partition_stage(cfg: RunConfig, run_dir: Path):  # -> Partition
    """Teacher features over the training set (cached) -> partition.json."""
    data = load_data(cfg)
    teacher, tpath = _teacher_for(run_dir, cfg)
    feats = cached_teacher_features(teacher, data, run_dir, tpath)
    return make_partition(cfg, feats, run_dir)


def students_stage(
    cfg: RunConfig, run_dir: Path, *, resume: bool, progress: bool = True, out_dir: Path | None = None
):
    """Partition (reused when present) + distillation into ``ensemble.pt`` in ``out_dir``
    (default: the run folder; dropout variants use a sub-folder)."""
    from sne_loihi.ensemble import fit_feature_scale
    from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE
    from sne_loihi.train.students import train_students

    from sne_loihi.distributed import setup
    from sne_loihi.train.common import resolve_device

    out_dir = Path(out_dir or run_dir)
    data = load_data(cfg)
    setup(resolve_device(cfg.train.device))  # under torchrun: the process group, before the first collective
    teacher, tpath = _teacher_for(run_dir, cfg)
    resumed = check_resumable(out_dir / ENSEMBLE_FILE, cfg, resume=resume)  # before any cache is (re)written
    teacher_sha256 = _same_teacher(resumed, out_dir / ENSEMBLE_FILE, tpath)
    feats = cached_teacher_features(teacher, data, run_dir, tpath)
    part = make_partition(cfg, feats, run_dir)
    scale = fit_feature_scale(feats, cfg.ensemble.feature_scaling, cfg.ensemble.feature_percentile)
    if is_main_process():  # config.toml only after every check (the partition's included)
        dump_toml(cfg, out_dir / CONFIG_FILE)
    return train_students(cfg, data, teacher, part, scale, out_dir, resume=resume, progress=progress,
                          provenance={"teacher_sha256": teacher_sha256})


def _same_teacher(resumed: dict[str, Any] | None, ensemble_path: Path, teacher_path: Path) -> str:
    """SHA-256 of the teacher file; refuses to continue an ensemble distilled from another one.

    Args:
        resumed: The ensemble checkpoint being resumed (from :func:`check_resumable`), if any.

    Raises:
        CheckpointError: ``resumed`` records a different teacher (ensembles written before
            teachers were recorded carry no key and are accepted).
    """
    from sne_loihi.errors import CheckpointError
    from sne_loihi.export.manifest import sha256_file

    key = sha256_file(teacher_path)
    if resumed is not None:
        stored = resumed.get("teacher_sha256")
        if stored is not None and stored != key:
            raise CheckpointError(f"{ensemble_path} was distilled from another teacher than {teacher_path} "
                                  "(its content differs); resume with that teacher or use a new run folder")
    return key


def finetune_stage(
    run_dir: Path, *, students: int, beta: float, epochs: int, lr: float,
    device: str | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the run's teacher with ``CE + beta * L_sim`` and record test accuracy and
    L_sim before and after in ``finetune.json``.

    The original teacher is first copied to ``teacher_pre_finetune.pt`` and fine-tuning always
    starts from that copy, so an interrupted fine-tune is simply redone; ``finetune.json``,
    written last, marks it finished.

    Raises:
        ConfigError: Bad settings, the run was already fine-tuned, or students were already
            distilled from its teacher.
        CheckpointError: No teacher in the run folder.
    """
    from sne_loihi.config import FinetuneConfig
    from sne_loihi.errors import CheckpointError
    from sne_loihi.io import atomic_write_bytes, atomic_write_json, load_checkpoint, save_checkpoint
    from sne_loihi.distributed import setup
    from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE
    from sne_loihi.partition import finetune_teacher, similarity_loss
    from sne_loihi.train.common import resolve_device, sharded_accuracy
    from sne_loihi.train.teacher import TEACHER_FILE, load_teacher, teacher_features

    FinetuneConfig(beta=beta, epochs=epochs, lr=lr)  # validates (one-line ConfigError)
    run_dir = Path(run_dir)
    path, backup, summary_path = run_dir / TEACHER_FILE, run_dir / PRE_FINETUNE_TEACHER, run_dir / FINETUNE_FILE
    if summary_path.exists():
        raise ConfigError(f"{run_dir} was already fine-tuned ({summary_path} exists); use a fresh run folder")
    if (run_dir / ENSEMBLE_FILE).exists():  # rewriting teacher.pt would orphan the students distilled from it
        raise ConfigError(f"{run_dir / ENSEMBLE_FILE} was distilled from this teacher; fine-tune in a new run folder "
                          "(copy teacher.pt and config.toml there)")
    if not backup.exists() and not path.exists():
        raise CheckpointError(f"no teacher in {run_dir} (expected {path}); run 'sne teacher --run-dir {run_dir}' first")
    dist = setup(resolve_device(device or cfg_device(run_dir)))
    if not backup.exists() and dist.is_main:
        atomic_write_bytes(backup, path.read_bytes())
    dist.barrier()  # the backup exists before any rank reads it
    model, cfg, _ = load_teacher(backup, device=device or cfg_device(run_dir))
    data = load_data(cfg)
    dev = next(model.parameters()).device

    def measure() -> dict[str, float]:
        acc = sharded_accuracy(model, data.x_test_nchw, data.y_test, 256, dev, dist)
        feats = teacher_features(model, data.x_test_nchw)
        return {"test_accuracy": acc, "l_sim": float(similarity_loss(feats, students))}

    before = measure()
    history = finetune_teacher(
        model, data.x_train_nchw, data.y_train, num_chunks=students, beta=beta, epochs=epochs,
        lr=lr, batch_size=cfg.teacher.batch_size, device=resolve_device(device or cfg.train.device),
        progress=progress,
    )
    after = measure()
    settings = {"students": students, "beta": beta, "epochs": epochs, "lr": lr}
    summary = {"before": before, "after": after, **settings, "history": history,
               **({"world_size": dist.world_size, "backend": dist.backend} if dist.distributed else {})}
    if dist.is_main:
        ckpt = load_checkpoint(backup)
        ckpt["model"] = model.state_dict()
        ckpt["finetune"] = {**settings, "history": history}
        save_checkpoint(path, ckpt)
        atomic_write_json(summary_path, summary)
    dist.barrier()  # the fine-tuned teacher is on disk before any rank reads it
    return summary


def finetune_if_asked(cfg: RunConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any] | None:
    """The pipeline's fine-tuning step: only for ``ensemble.partition = "finetune"``, with the
    settings of ``cfg.finetune``; a finished fine-tune (``finetune.json``) is reused.

    Raises:
        ConfigError: The run folder was fine-tuned with other settings.
    """
    from dataclasses import asdict

    if PartitionStrategy(cfg.ensemble.partition) != PartitionStrategy.FINETUNE:
        return None
    run_dir = Path(run_dir)
    want = {"students": cfg.ensemble.num_students, **asdict(cfg.finetune)}
    summary_path = run_dir / FINETUNE_FILE
    if not summary_path.exists():
        return finetune_stage(run_dir, **want, device=cfg.train.device, progress=progress)
    return stored_finetune(cfg, run_dir)


def stored_finetune(cfg: RunConfig, run_dir: Path) -> dict[str, Any] | None:
    """``finetune.json`` of a ``finetune``-partition run if it fits the config (``None``: none).

    Raises:
        ConfigError: Unreadable, or the teacher was fine-tuned with other settings.
    """
    import json
    from dataclasses import asdict

    summary_path = Path(run_dir) / FINETUNE_FILE
    if PartitionStrategy(cfg.ensemble.partition) != PartitionStrategy.FINETUNE or not summary_path.exists():
        return None
    want = {"students": cfg.ensemble.num_students, **asdict(cfg.finetune)}
    try:
        done = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {summary_path}: {str(exc).splitlines()[0]}") from None
    got = {k: done.get(k) for k in want} if isinstance(done, dict) else {}
    if got != want:
        raise ConfigError(f"{run_dir} was fine-tuned with {got}; the config asks for {want}: use another run folder")
    return done


def cfg_device(run_dir: Path) -> str:
    """The device recorded in a run folder's config (``auto`` if none)."""
    from sne_loihi.config import load_toml

    path = Path(run_dir) / CONFIG_FILE
    return load_toml(path).get("train", {}).get("device", "auto") if path.exists() else "auto"


def check_teacher_buildable(cfg: RunConfig, data: Any) -> None:
    """Build the configured teacher once before anything is written, so a bad setting fails
    while the run folder is still untouched: an external teacher's checkpoint is read and
    checked against its model, and N students need at least N teacher features.

    The feature size of a registered teacher is read off an untrained instance (an external
    teacher's only after it is built, by the partition stage).
    """
    from sne_loihi.teachers import EXTERNAL, build_teacher

    teacher = build_teacher(cfg.teacher, data.in_shape, data.num_classes)
    if cfg.teacher.arch == EXTERNAL:
        return
    dim = int(teacher.feature_dim)
    if cfg.ensemble.num_students > dim:
        raise ConfigError(f"ensemble.num_students {cfg.ensemble.num_students} exceeds teacher {cfg.teacher.arch}'s "
                          f"{dim} features (each student needs at least one)")


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

    from sne_loihi.analysis.runreport import ReportOptions, build_report
    from sne_loihi.lava_stage import LAVA_COLUMNS, lava_stage
    from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE
    from sne_loihi.report import print_table
    from sne_loihi.train.teacher import TEACHER_FILE, train_teacher

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
    out = build_report(run_dir, f"sne-loihi run: {cfg.data.name}", report, timings)
    timings["report"] = time.time() - t2
    timings["total"] = time.time() - t0
    print_table(out["rows"], f"{run_dir} ({timings['total']:.0f} s)")
    if lava is not None:
        print_table(lava.rows(), f"Lava ({lava.backend}) on the first {lava.samples} test samples", LAVA_COLUMNS)
    return out


def dropout_stage(cfg: RunConfig, run_dir: Path, *, resume: bool, progress: bool = True):
    """Train a dropout variant (fixed K) in ``RUN/dropout-k{K}``, same teacher and partition."""
    sub = Path(run_dir) / f"dropout-k{cfg.ensemble.train_active}"
    if is_main_process():
        sub.mkdir(exist_ok=True)
    current().barrier()
    return students_stage(cfg, run_dir, resume=resume, progress=progress, out_dir=sub)
