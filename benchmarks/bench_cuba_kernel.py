"""The fast engine's native CUBA forward with float64 lanes against SLAYER's int64 arithmetic,
in one process: one layer's call, and the students' whole training step.

Usage::

    python benchmarks/bench_cuba_kernel.py --out OUT_DIR [--preset cifar10-full] [--widths 0.5,1.0:0.5]

The kernel (``sne_loihi.students.native_cuba``) holds SLAYER's integers in float64 lanes, which
vectorise on AVX2; the int64 kernel it replaced (still there for states past 2**52) has no AVX2
instruction for its int64 conversions and products. This times both on the same inputs:

- one ``cuba_forward_native`` call at the preset's first-layer shape (batch x C x 32 x 32
  neurons, T steps; the largest layer), ``--calls`` times each, the median;
- the students' training step (forward, backward, Adam) of the preset's ensemble (4 students,
  batch norm, a fixed partition of 256 features) at each ``--widths`` entry (``W`` or
  ``W:FIRST`` for ``student.width`` and ``student.first_width``), on random images, both kernels
  alternating batch by batch, the median of ``--batches``; the teacher's forward pass and data
  loading are not in it. Extrapolated to a 50,000-image epoch.

Both kernels' spikes and voltages are compared on every timed layer call. Writes
``bench_cuba_kernel.md`` and ``.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

FULL_CIFAR_TRAIN = 50_000


def layer_call_ms(batch: int, channels: int, steps: int, calls: int) -> dict[str, Any]:
    """Median milliseconds of one forward call per kernel at a first layer's shape, and whether
    the two kernels' outputs are equal."""
    from sne_loihi.students.native_cuba import cuba_forward_native, native_kernel

    lib = native_kernel()
    gen = torch.Generator().manual_seed(0)
    z_tm = torch.round((torch.rand(steps, batch * channels * 32 * 32, generator=gen) * 3 - 1) * 32) / 32
    times: dict[str, list[float]] = {"int64": [], "float64": []}
    equal = True
    for i in range(calls + 1):
        outs = {}
        for name in times:
            t0 = time.perf_counter()
            outs[name] = cuba_forward_native(lib, z_tm, 0, 3973, 4096.0, 1.0, int64=name == "int64")
            if i:
                times[name].append(time.perf_counter() - t0)
        equal &= all(torch.equal(a, b) for a, b in zip(outs["int64"], outs["float64"]))
    return {"neurons": z_tm.shape[1], "steps": steps, **{f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()},
            "equal": equal}


def step_seconds(preset_name: str, width: float, first_width: float | None, batch: int, batches: int) -> dict[str, Any]:
    """Median seconds of the students' training step with each kernel (alternating)."""
    from dataclasses import replace

    from sne_loihi.config import PartitionStrategy, resolve
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.partition import Partition
    from sne_loihi.students import fast_cuba

    cfg = resolve(None, preset_name=preset_name)
    student = replace(cfg.student, width=width, first_width=first_width)
    groups = tuple(tuple(range(i * 64, (i + 1) * 64)) for i in range(cfg.ensemble.num_students))
    part = Partition(PartitionStrategy.FIXED, groups=groups, feature_dim=64 * len(groups))
    torch.manual_seed(0)
    model = build_ensemble(student, part, (3, 32, 32), 10).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 3, 32, 32)
    native = fast_cuba.cuba_forward_native
    kernels = {"int64": functools.partial(native, int64=True), "float64": native}
    times: dict[str, list[float]] = {name: [] for name in kernels}
    try:
        for i in range(batches + 1):
            for name, kernel in kernels.items():
                fast_cuba.cuba_forward_native = kernel
                t0 = time.perf_counter()
                out = model(x)
                loss = out.logits.square().mean() + sum(r.square().mean() for r in out.rates)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
    finally:
        fast_cuba.cuba_forward_native = native
    per_batch = {name: statistics.median(v) for name, v in times.items()}
    epoch = {name: s * -(-FULL_CIFAR_TRAIN // batch) for name, s in per_batch.items()}
    return {"width": width, "first_width": first_width, "time_steps": student.time_steps, "batch": batch,
            **{f"{k}_s_per_batch": v for k, v in per_batch.items()},
            **{f"{k}_s_per_epoch": v for k, v in epoch.items()}, "ratio": per_batch["int64"] / per_batch["float64"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="cifar10-full")
    p.add_argument("--widths", default="0.5,1.0:0.5", help="W or W:FIRST per entry, comma-separated")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    opts = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine_info

    from sne_loihi.config import resolve
    from sne_loihi.students.fast_cuba import forward_path
    from sne_loihi.train.common import keep_freed_memory

    torch.set_num_threads(opts.threads)
    keep_freed_memory()  # as the training loops do
    student = resolve(None, preset_name=opts.preset).student
    first = round(64 * (student.first_width or student.width))
    layer = layer_call_ms(opts.batch, first, student.time_steps, opts.calls)
    steps = []
    for entry in opts.widths.split(","):
        width, _, first_width = entry.partition(":")
        steps.append(step_seconds(opts.preset, float(width), float(first_width) if first_width else None, opts.batch,
                                  opts.batches))
    result = {"machine": machine_info("cpu", opts.threads), "forward_path": forward_path("cpu"), "preset": opts.preset,
              "layer_call": layer, "steps": steps, "command": "python benchmarks/bench_cuba_kernel.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(opts).items() if k != "out")}
    m = result["machine"]
    lines = [
        "# Native CUBA forward: float64 lanes against int64", "",
        f"- machine: {m['cpu']}, {m['cores']} CPUs, torch {m['torch']}, {m['threads']} threads; forward path: "
        f"{result['forward_path']}",
        f"- command: `{result['command']}`", "",
        f"One forward call at the `{opts.preset}` first layer's shape ({layer['neurons']:,} neurons, T = "
        f"{layer['steps']}): int64 {layer['int64_ms']:.1f} ms, float64 {layer['float64_ms']:.1f} ms "
        f"(**{layer['int64_ms'] / layer['float64_ms']:.1f}x**); outputs equal: {layer['equal']}.", "",
        f"Students' training step (4 students, batch {opts.batch}, random images, forward + backward + Adam; no "
        f"teacher, no data loading), median of {opts.batches} batches per kernel, alternating:", "",
        "| width | first width | int64 s/batch | float64 s/batch | int64 / float64 | students' s per 50,000-image epoch "
        "(int64 -> float64) |",
        "| --- | --- | --- | --- | --- | --- |",
        *(f"| {s['width']} | {s['first_width'] or s['width']} | {s['int64_s_per_batch']:.3f} | "
          f"{s['float64_s_per_batch']:.3f} | {s['ratio']:.2f}x | {s['int64_s_per_epoch']:.0f} -> "
          f"{s['float64_s_per_epoch']:.0f} |" for s in steps), "",
    ]
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "bench_cuba_kernel.json").write_text(json.dumps(result, indent=2) + "\n")
    (opts.out / "bench_cuba_kernel.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
