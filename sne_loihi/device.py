"""Which torch device a run uses (``auto``, ``cpu``, ``cuda[:i]``; under torchrun the local rank's GPU)."""

from __future__ import annotations

import torch

from sne_loihi.distributed import rank_device
from sne_loihi.errors import ConfigError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; otherwise ``cpu`` / ``cuda[:i]``.

    Under ``torchrun`` a CUDA device is the GPU of the process's local rank
    (:func:`sne_loihi.distributed.rank_device`).

    Raises:
        ConfigError: Unknown device or CUDA asked for but absent.
    """
    if spec == "auto":
        return rank_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu or cuda[:i]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for but CUDA is not available here")
    return rank_device(device)
