"""The teacher's training step in float32 against bfloat16 autocast on this CPU, in one process.

Usage::

    python benchmarks/bench_amp.py --out OUT_DIR [--preset cifar10-full] [--batch 256] [--batches 2]

Times ``train.teacher.teacher_step`` (the step the training loop runs: cross-entropy with the
preset's label smoothing, Nesterov SGD, channels-last when the preset says so) of the preset's
teacher on random 32x32 images, ``--warmup`` untimed and ``--batches`` timed batches per
precision, and extrapolates the median to a 50,000-image epoch. Both precisions run in this
process at the same thread count, so their ratio is this machine's. Also prints whether oneDNN
has bfloat16 kernels here (:func:`sne_loihi.distributed.cpu_has_bf16_kernels`), which decides
whether ``teacher.amp = true`` trains in bfloat16 or falls back to float32. Writes
``bench_amp.md`` and ``bench_amp.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

FULL_CIFAR_TRAIN = 50_000


def step_seconds(preset_name: str, amp: bool, batch: int, warmup: int, batches: int) -> list[float]:
    """Seconds of each timed ``teacher_step`` of the preset's teacher in one precision."""
    from sne_loihi.config import resolve
    from sne_loihi.teachers import build_teacher
    from sne_loihi.train.teacher import teacher_step

    tcfg = resolve(None, preset_name=preset_name).teacher
    torch.manual_seed(0)
    model = build_teacher(tcfg, (3, 32, 32), 10)
    if tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.85, nesterov=True)
    x = torch.rand(batch, 3, 32, 32)
    if tcfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(batch) % 10
    times = []
    for i in range(warmup + batches):
        t0 = time.perf_counter()
        teacher_step(model, opt, x, y, amp=amp, label_smoothing=tcfg.label_smoothing)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    from machine import machine_info

    from sne_loihi.distributed import cpu_has_bf16_kernels

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="cifar10-full")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if min(a.batch, a.batches, a.threads) < 1 or a.warmup < 0:
        p.error("--batch, --batches and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(a.threads)
    rows: list[dict[str, Any]] = []
    for amp in (False, True):
        times = step_seconds(a.preset, amp, a.batch, a.warmup, a.batches)
        s_batch = statistics.median(times)
        rows.append({"precision": "bfloat16 autocast" if amp else "float32", "s_per_batch": s_batch,
                     "timed": [round(t, 3) for t in times],
                     "s_per_epoch_full_cifar10": s_batch * FULL_CIFAR_TRAIN / a.batch})
        print(f"{rows[-1]['precision']}: {s_batch:.3f} s per batch of {a.batch}", flush=True)
    ratio = rows[1]["s_per_batch"] / rows[0]["s_per_batch"]
    result = {"machine": machine_info("cpu", a.threads), "bf16_kernels": cpu_has_bf16_kernels(),
              "preset": a.preset, "batch": a.batch, "batches": a.batches, "warmup": a.warmup,
              "rows": rows, "bf16_over_fp32": ratio}
    m = result["machine"]
    lines = [f"# Teacher training step: float32 against bfloat16 autocast (preset `{a.preset}`)", "",
             f"- machine: {m['cpu']}, {m['cores']} CPUs, torch {m['torch']}, {a.threads} threads",
             f"- oneDNN bfloat16 kernels on this CPU: {'yes' if result['bf16_kernels'] else 'no'} "
             f"(`teacher.amp = true` trains in {'bfloat16' if result['bf16_kernels'] else 'float32, with a warning'})",
             f"- command: `python benchmarks/bench_amp.py --out OUT --preset {a.preset} --batch {a.batch} "
             f"--batches {a.batches} --warmup {a.warmup} --threads {a.threads}`", "",
             "| precision | s per batch (median) | timed batches (s) | s per 50,000-image epoch (extrapolated) |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {r['precision']} | {r['s_per_batch']:.3f} | {', '.join(map(str, r['timed']))} | "
              f"{r['s_per_epoch_full_cifar10']:,.0f} |" for r in rows]
    lines += ["", f"bfloat16 / float32 time per batch: **{ratio:.2f}x** "
              f"({'bfloat16 slower' if ratio > 1 else 'bfloat16 faster'})."]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "bench_amp.json").write_text(json.dumps(result, indent=2) + "\n")
    (a.out / "bench_amp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
