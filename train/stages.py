"""The training stages behind ``sne teacher``, ``sne partition``, ``sne train`` and the
pipeline: run-folder preparation, teacher features, partition, students, dropout variants
(teacher fine-tuning: :mod:`.finetune_stage`).

Each stage reads and writes the run folder only, so stages can run separately or together
(``sne pipeline``, sequenced by :mod:`sne_loihi.pipeline`), and ``--resume`` picks up wherever
a previous run stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sne_loihi.config import PartitionStrategy, RunConfig, dump_toml
from sne_loihi.device import resolve_device
from sne_loihi.distributed import current, is_main_process
from sne_loihi.errors import ConfigError
from sne_loihi.json_files import read_json_file
from sne_loihi.run import (
    CONFIG_FILE, ENSEMBLE_FILE, FEATURES_FILE, FINETUNE_FILE, PARTITION_FILE, TEACHER_FILE, Run, dropout_dir, file_sha256,
)


def prepare_run_dir(
    run: Run, *, resume: bool, allow_existing: bool = False, checkpoints: tuple[str, ...] = (),
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

    cfg, run_dir = run.config, run.dir
    dist = setup(resolve_device(cfg.train.device))  # under torchrun: the process group, once
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} exists and is not a folder")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()) and not (resume or allow_existing):
        raise ConfigError(f"run folder {run_dir} already holds results; pass --resume to continue it or choose another --run-dir")
    for name in checkpoints:
        check_resumable(run_dir / name, cfg, resume=resume, teacher=name == TEACHER_FILE)
    dist.barrier()  # under torchrun every rank has checked the folder before rank 0 alone writes
    if cfg.data.class_names is None:  # record the label order with the run (load_dataset checks it)
        cfg.data.class_names = list(run.data().class_names)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_toml(cfg, run_dir / CONFIG_FILE)


def check_resumable(path: Path, cfg: RunConfig, *, resume: bool, teacher: bool = False) -> dict[str, Any] | None:
    """Fail now, before anything is written, if the training loop would refuse ``path``
    (``teacher``: a teacher checkpoint, compared as the teacher's loop compares it,
    :data:`~sne_loihi.train.common.TEACHER_RESUME_MAY_CHANGE`).

    Returns:
        The checkpoint that will be resumed, or ``None`` when there is none yet.

    Raises:
        CheckpointError: ``path`` exists without ``resume``, cannot be read, its config
            differs from ``cfg`` in a key that may not change on resume, or it has trained
            more epochs than ``cfg`` asks for (``teacher.epochs`` / ``train.epochs``).
    """
    from sne_loihi.errors import CheckpointError
    from sne_loihi.train.common import RESUME_MAY_CHANGE, TEACHER_RESUME_MAY_CHANGE, load_resume_checkpoint

    path = Path(path)
    if not path.exists():
        return None
    if not resume:
        raise CheckpointError(f"{path} already exists; pass --resume to continue it or use another run folder")
    epochs, key = (cfg.teacher.epochs, "teacher.epochs") if teacher else (cfg.train.epochs, "train.epochs")
    return load_resume_checkpoint(path, cfg.to_dict(), TEACHER_RESUME_MAY_CHANGE if teacher else RESUME_MAY_CHANGE,
                                  epochs=epochs, epochs_key=key)


def cached_teacher_features(teacher: torch.nn.Module, data: Any, run: Run, teacher_path: Path) -> torch.Tensor:
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
    cache = run.file(FEATURES_FILE)
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


def make_partition(run: Run, features_nd: torch.Tensor):  # -> Partition
    """Compute (or, on resume, reuse) the partition and store it as ``partition.json``.

    Under torchrun rank 0 computes (or reads) it and sends it to the other ranks.
    """
    from sne_loihi.partition import Partition

    dist = current()
    part = _rank0_partition(run, features_nd) if dist.is_main else None
    if not dist.distributed:
        return part
    return Partition.from_dict(dist.broadcast_json(part.to_dict() if part is not None else None,
                                                   resolve_device(run.config.train.device)))


def _rank0_partition(run: Run, features_nd: torch.Tensor):  # -> Partition
    from sne_loihi.partition import compute_partition

    cfg, path = run.config, run.file(PARTITION_FILE)
    strategy = PartitionStrategy(cfg.ensemble.partition)
    part = stored_partition(run, feature_dim=features_nd.shape[1])
    if part is not None:
        return part
    if strategy == PartitionStrategy.FINETUNE:
        _check_finetuned(run.dir, cfg.ensemble.num_students)
    part = compute_partition(strategy, features_nd.numpy(), cfg.ensemble.num_students, cfg.train.seed)
    part.save(path)
    return part


def stored_partition(run: Run, feature_dim: int | None = None):  # -> Partition | None
    """The run folder's ``partition.json`` if it fits the config, ``None`` if there is none.

    Raises:
        ConfigError: It holds another strategy or number of groups.
        CheckpointError: It cannot be read or was made for another feature size.
    """
    from sne_loihi.partition import Partition

    cfg, path = run.config, run.file(PARTITION_FILE)
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
    summary = run_dir / FINETUNE_FILE
    if not summary.is_file():
        raise ConfigError(
            f"partition 'finetune' needs a fine-tuned teacher: run 'sne teacher --run-dir {run_dir} finetune "
            f"--students {num_students}' first (or 'sne pipeline --partition finetune')"
        )
    try:
        chunks = read_json_file(summary, FINETUNE_FILE, ConfigError).get("students")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot read {summary}: {type(exc).__name__}") from None
    if chunks != num_students:
        raise ConfigError(f"the teacher in {run_dir} was fine-tuned for {chunks} chunks, not {num_students} students")


def _teacher_for(run: Run):
    """The run's teacher, refused when it was trained on another data set or split."""
    from sne_loihi.data.dataset import split_mismatch
    from sne_loihi.errors import CheckpointError, ConfigError

    cfg, path = run.config, run.file(TEACHER_FILE)
    if not path.exists():
        raise CheckpointError(f"no teacher in {run.dir} (expected {path}); run 'sne teacher --run-dir {run.dir}' first")
    model, tcfg, _ = run.teacher(device=cfg.train.device)
    why = split_mismatch(tcfg.data, tcfg.train.seed, cfg.data, cfg.train.seed)
    if why:
        raise ConfigError(f"{path} does not fit this run: {why}; use the teacher's settings or train a new teacher")
    return model, path


def partition_stage(run: Run):  # -> Partition
    """Teacher features over the training set (cached) -> partition.json; the run's
    config.toml then records the partition settings used (strategy, number of students), so
    the next stage (``sne train``) reads the partition it asked for."""
    teacher, tpath = _teacher_for(run)
    feats = cached_teacher_features(teacher, run.data(), run, tpath)
    part = make_partition(run, feats)
    if is_main_process():  # only after the partition is made (a refused one changes nothing)
        dump_toml(run.config, run.file(CONFIG_FILE))
    return part


def students_stage(run: Run, *, resume: bool, progress: bool = True, out_dir: Path | None = None):
    """Partition (reused when present) + distillation into ``ensemble.pt`` in ``out_dir``
    (default: the run folder; dropout variants use a sub-folder)."""
    from sne_loihi.distributed import setup
    from sne_loihi.ensemble import fit_feature_scale
    from sne_loihi.train.students import train_students

    cfg = run.config
    out_dir = Path(out_dir or run.dir)
    data = run.data()
    setup(resolve_device(cfg.train.device))  # under torchrun: the process group, before the first collective
    teacher, tpath = _teacher_for(run)
    resumed = check_resumable(out_dir / ENSEMBLE_FILE, cfg, resume=resume)  # before any cache is (re)written
    teacher_sha256 = _same_teacher(resumed, out_dir / ENSEMBLE_FILE, tpath)
    feats = cached_teacher_features(teacher, data, run, tpath)
    part = make_partition(run, feats)
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

    key = file_sha256(teacher_path)
    if resumed is not None:
        stored = resumed.get("teacher_sha256")
        if stored is not None and stored != key:
            raise CheckpointError(f"{ensemble_path} was distilled from another teacher than {teacher_path} "
                                  "(its content differs); resume with that teacher or use a new run folder")
    return key


#: Largest teacher-feature cache accepted (float32 features x training images), checked before
#: training: a conv map as the feature layer (65,536 features on CIFAR-10) would be 13 GB.
MAX_FEATURE_CACHE_BYTES = 8 * 2**30


def check_teacher_buildable(cfg: RunConfig, data: Any, *, students: bool = True) -> None:
    """Build the configured teacher once before anything is written, so a bad setting fails
    while the run folder is still untouched: an external teacher's checkpoint is read and
    checked against its model, and N students need at least N teacher features.

    The feature size is read off the built instance (an external teacher's from one probe of
    its feature layer): too many students for it, or an equal-size partition it does not
    divide, fail now rather than after the teacher has trained. A teacher that would train
    (``teacher.epochs`` > 0) needs trainable parameters. ``students=False`` (``sne teacher``
    alone: the students are chosen later, by ``sne partition`` / ``sne train``) skips the
    student checks.
    """
    from sne_loihi.partition.strategies import EQUAL_SIZE_STRATEGIES
    from sne_loihi.teachers import build_teacher

    teacher = build_teacher(cfg.teacher, data.in_shape, data.num_classes)
    dim = int(teacher.feature_dim)
    n = cfg.ensemble.num_students
    cache_bytes = 4 * dim * len(data.y_train)  # the teacher-feature cache the students train from (float32)
    if cache_bytes > MAX_FEATURE_CACHE_BYTES:
        raise ConfigError(f"teacher {cfg.teacher.arch}'s {dim:,} features x {len(data.y_train):,} training images "
                          f"would take {cache_bytes / 2**30:.1f} GiB; choose a feature layer with fewer features (e.g. "
                          "after pooling)")
    if not any(True for _ in teacher.parameters()):
        raise ConfigError(f"teacher {cfg.teacher.arch} has no parameters (nothing to train or to store)")
    if cfg.teacher.epochs > 0 and not any(p.requires_grad for p in teacher.parameters()):
        raise ConfigError(f"teacher {cfg.teacher.arch} has no trainable parameters; train it with --teacher-epochs 0 "
                          "(its weights are used as they are)")
    if not students:
        return
    if n > dim:
        raise ConfigError(f"ensemble.num_students {n} exceeds teacher {cfg.teacher.arch}'s {dim} features (each "
                          "student needs at least one)")
    strategy = PartitionStrategy(cfg.ensemble.partition)
    if strategy in EQUAL_SIZE_STRATEGIES and dim % n:
        raise ConfigError(f"partition {strategy.value!r} makes equal groups: teacher {cfg.teacher.arch}'s {dim} features "
                          f"are not divisible by ensemble.num_students {n}")


def dropout_stage(run: Run, k: int, *, resume: bool, progress: bool = True):
    """Train the dropout variant with ``k`` random active students per batch in
    ``RUN/dropout-k{k}``, same teacher and partition."""
    from dataclasses import replace

    cfg = run.config
    variant = run.with_config(replace(cfg, ensemble=replace(cfg.ensemble, train_active=k)))
    sub = dropout_dir(run.dir, k)
    if is_main_process():
        sub.mkdir(exist_ok=True)
    current().barrier()
    return students_stage(variant, resume=resume, progress=progress, out_dir=sub)
