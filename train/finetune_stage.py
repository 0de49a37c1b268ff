"""Teacher disentanglement (``sne teacher finetune`` and the pipeline's step for the
``finetune`` partition): fine-tune with ``CE + beta * L_sim``, record before/after in
``RUN/finetune.json``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sne_loihi.config import PartitionStrategy, dump_toml
from sne_loihi.device import resolve_device
from sne_loihi.errors import ConfigError
from sne_loihi.json_files import read_json_file
from sne_loihi.run import (
    CONFIG_FILE, ENSEMBLE_FILE, FINETUNE_FILE, PARTITION_FILE, PRE_FINETUNE_TEACHER, TEACHER_FILE, Run, load_data,
)


def finetune_stage(
    run: Run, *, students: int, beta: float, epochs: int, lr: float,
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
    from sne_loihi.checks import check_section
    from sne_loihi.config import FinetuneConfig
    from sne_loihi.errors import CheckpointError
    from sne_loihi.io import atomic_write_bytes, atomic_write_json, load_checkpoint, save_checkpoint
    from sne_loihi.distributed import setup
    from sne_loihi.partition import finetune_teacher, similarity_loss
    from sne_loihi.teachers.checkpoint import load_teacher
    from sne_loihi.train.common import sharded_accuracy
    from sne_loihi.train.teacher import teacher_features

    check_section(FinetuneConfig(beta=beta, epochs=epochs, lr=lr), "finetune")  # the config's rules, one line
    run_dir = run.dir
    path, backup, summary_path = run_dir / TEACHER_FILE, run_dir / PRE_FINETUNE_TEACHER, run_dir / FINETUNE_FILE
    if summary_path.exists():
        raise ConfigError(f"{run_dir} was already fine-tuned ({summary_path} exists); use a fresh run folder")
    if (run_dir / ENSEMBLE_FILE).exists():  # rewriting teacher.pt would orphan the students distilled from it
        raise ConfigError(f"{run_dir / ENSEMBLE_FILE} was distilled from this teacher; fine-tune in a new run folder "
                          "(copy teacher.pt and config.toml there)")
    if (run_dir / PARTITION_FILE).exists():  # its groups were chosen from the teacher before fine-tuning
        raise ConfigError(f"{run_dir / PARTITION_FILE} was computed from this teacher before fine-tuning; fine-tune "
                          "before 'sne partition', or in a new run folder (copy teacher.pt and config.toml there)")
    if not backup.exists() and not path.exists():
        raise CheckpointError(f"no teacher in {run_dir} (expected {path}); run 'sne teacher --run-dir {run_dir}' first")
    # a backup left by an unfinished fine-tune is stale when teacher.pt was trained again since
    # (a readable teacher.pt that differs from it and was not written by a fine-tune)
    stale = backup.exists() and path.exists() and backup.read_bytes() != path.read_bytes() and _plain_teacher(path)
    source = path if stale or not backup.exists() else backup
    device = device or _recorded_device(run)
    dist = setup(resolve_device(device))  # before the load: under torchrun it picks this rank's GPU
    model, cfg, _ = load_teacher(source, device=device)  # fine-tuned in place: never a shared copy
    dim = int(model.feature_dim)  # the chunk rule before anything is written
    if dim % students:
        raise ConfigError(f"fine-tuning for {students} students needs the teacher's {dim} features to be divisible "
                          f"by {students}")
    if source is path and dist.is_main:  # the backup holds the same bytes the model was loaded from
        atomic_write_bytes(backup, path.read_bytes())
    dist.barrier()  # the backup exists before the fine-tuned teacher replaces teacher.pt
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
               **({"world_size": dist.world_size, "dist_backend": dist.backend} if dist.distributed else {})}
    if dist.is_main:
        ckpt = load_checkpoint(backup)
        ckpt["model"] = model.state_dict()
        ckpt["finetune"] = {**settings, "history": history}
        save_checkpoint(path, ckpt)
        atomic_write_json(summary_path, summary)
        # config.toml records the fine-tuning settings, as the pipeline checks them on --resume
        stored = run.config
        dump_toml(replace(stored, finetune=replace(stored.finetune, beta=beta, epochs=epochs, lr=lr),
                          ensemble=replace(stored.ensemble, num_students=students)), run.file(CONFIG_FILE))
    dist.barrier()  # the fine-tuned teacher is on disk before any rank reads it
    return summary


def _plain_teacher(path: Path) -> bool:
    """Whether ``path`` is a readable teacher checkpoint that no fine-tune wrote."""
    from sne_loihi.errors import SneError
    from sne_loihi.io import load_checkpoint

    try:
        return "finetune" not in load_checkpoint(path)
    except SneError:  # half-written by an interrupted fine-tune
        return False


def finetune_if_asked(run: Run, *, progress: bool = True) -> dict[str, Any] | None:
    """The pipeline's fine-tuning step: only for ``ensemble.partition = "finetune"``, with the
    settings of ``cfg.finetune``; a finished fine-tune (``finetune.json``) is reused.

    Raises:
        ConfigError: The run folder was fine-tuned with other settings.
    """
    from dataclasses import asdict

    cfg = run.config
    if PartitionStrategy(cfg.ensemble.partition) != PartitionStrategy.FINETUNE:
        return None
    want = {"students": cfg.ensemble.num_students, **asdict(cfg.finetune)}
    if not run.file(FINETUNE_FILE).exists():
        return finetune_stage(run, **want, device=cfg.train.device, progress=progress)
    return stored_finetune(run)


def stored_finetune(run: Run) -> dict[str, Any] | None:
    """``finetune.json`` of a ``finetune``-partition run if it fits the config (``None``: none).

    Raises:
        ConfigError: Unreadable, or the teacher was fine-tuned with other settings.
    """
    from dataclasses import asdict

    cfg, summary_path = run.config, run.file(FINETUNE_FILE)
    if PartitionStrategy(cfg.ensemble.partition) != PartitionStrategy.FINETUNE or not summary_path.exists():
        return None
    want = {"students": cfg.ensemble.num_students, **asdict(cfg.finetune)}
    try:
        done = read_json_file(summary_path, FINETUNE_FILE, ConfigError)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {summary_path}: {str(exc).splitlines()[0]}") from None
    got = {k: done.get(k) for k in want} if isinstance(done, dict) else {}
    if got != want:
        raise ConfigError(f"{run.dir} was fine-tuned with {got}; the config asks for {want}: use another run folder")
    return done


def _recorded_device(run: Run) -> str:
    """The device of the run's config (``auto`` when the folder has no config.toml)."""
    return run.config.train.device if run.file(CONFIG_FILE).is_file() else "auto"
