"""What the benchmark scripts say about the machine they measured on (a timing without the CPU
beside it cannot be compared: ratios move between machines)."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def cpu_name() -> str:
    """The CPU's model name as ``lscpu`` reports it (else the platform's processor string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine_info(device: str, threads: int) -> dict[str, Any]:
    """CPU model, cores, platform, Python/torch versions and the device the runs used."""
    import torch

    from sne_loihi.device import resolve_device

    dev = resolve_device(device)
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "device": str(dev), "threads": threads or torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}
