"""A run's teacher checkpoint (``RUN/teacher.pt``), read back without the training package."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from sne_loihi.config import RunConfig
from sne_loihi.device import resolve_device
from sne_loihi.errors import CheckpointError, one_line
from sne_loihi.io import load_checkpoint
from sne_loihi.run_files import TEACHER_FILE
from sne_loihi.teachers import EXTERNAL, build_teacher
from sne_loihi.teachers.external import require_trusted_factory

__all__ = ["TEACHER_FILE", "load_teacher"]


def load_teacher(path: Path, device: str = "cpu") -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    """Rebuild a teacher from its checkpoint alone (config + state dict, no code executed).

    An external teacher's factory (user code) is imported only when the caller trusts it
    (:func:`sne_loihi.teachers.external.trusted_factories`), never because the checkpoint
    names it.

    Returns:
        ``(model in eval mode, run config, checkpoint metadata)``.

    Raises:
        UnsafeFileError: The file would run code if loaded.
        CheckpointError: Missing, corrupt or not a teacher checkpoint.
        ConfigError: The checkpoint names an external factory the caller did not trust.
    """
    ckpt = load_checkpoint(path)
    for key in ("config", "model", "in_shape", "num_classes"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is not a teacher checkpoint (no {key!r})")
    cfg = RunConfig.from_dict(ckpt["config"])
    if cfg.teacher.arch == EXTERNAL:
        require_trusted_factory(cfg.teacher.factory, path)
    # the checkpoint's own weights replace any the config's external --checkpoint gave: that file
    # is not read again (it may be gone, or be a relative path from another working folder)
    model = build_teacher(replace(cfg.teacher, checkpoint=None), tuple(ckpt["in_shape"]), int(ckpt["num_classes"]))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit teacher {cfg.teacher.arch!r}: {one_line(exc)}") from None
    model.to(resolve_device(device)).eval()
    meta = {k: ckpt[k] for k in ("in_shape", "num_classes", "class_names", "dataset", "epoch", "history") if k in ckpt}
    return model, cfg, meta
