"""What the benchmark scripts say about the machine they measured on (a timing without the CPU
beside it cannot be compared: ratios move between machines)."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def cpu_name() -> str:
    """The CPU's model name as ``lscpu`` reports it (else the platform's processor string),
    with its class where ``/proc/cpuinfo`` tells it (:func:`cpu_class`): a cloud CPU is often
    named only "AMD EPYC", and the teacher's bfloat16 step ran 54.7x slower on one of two such machines."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or "unknown CPU"
    detail = cpu_class()
    return f"{name} ({detail})" if detail else name


def cpu_class(cpuinfo: str | None = None) -> str:
    """``"family 25 model 1, AVX2, no AVX-512"`` from ``/proc/cpuinfo`` (``""`` where there is none):
    the vector instructions decide float32 and bfloat16 speed more than the model name."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read(65536)
        except OSError:
            return ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    if not flags:
        return ""
    isa = ["AVX-512"] if "avx512f" in flags else ["AVX2" if "avx2" in flags else "no AVX2", "no AVX-512"]
    isa += [name for flag, name in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX-BF16")) if flag in flags]
    model = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields and "model" in fields else ""
    return ", ".join(p for p in [model, *isa] if p)


def machine_info(device: str, threads: int) -> dict[str, Any]:
    """CPU model, cores, platform, Python/torch versions and the device the runs used."""
    import torch

    from sne_loihi.device import resolve_device

    dev = resolve_device(device)
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "device": str(dev), "threads": threads or torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}
