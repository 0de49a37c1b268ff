"""Data-parallel scaling on this machine: 1 vs P processes (torchrun, gloo, CPU), same global batch.

Usage::

    python benchmarks/bench_distributed.py --out OUT_DIR [--procs 1,2] [--dataset digits]
        [--teacher digits_cnn] [--students 2 --student-arch digits_tiny] [--batch 64] [--steps 8]
        [--warmup 2] [--threads 1] [--max-train 1024]

For each process count the script launches itself under ``python -m torch.distributed.run
--standalone --nproc-per-node P`` (``--worker`` mode) and times the real optimisation steps of the
training loops (``train.teacher.teacher_step`` and ``train.students.distill_step``, wrapped in
DistributedDataParallel and fed by ``DistContext.batches``: the global batch is sharded over the
ranks exactly as in training, BatchNorm synced, dropout sharded). Per process count it reports:

* samples/s: global batch / median step time (max over ranks);
* communication share: ``1 - t_no_sync / t``, where ``t_no_sync`` is the same step under DDP's
  ``no_sync()`` (no gradient all-reduce; the synced BatchNorm's small all-reduces still run).

Each process uses ``--threads`` torch threads, so P processes use P x threads cores. Writes
``bench_distributed.md`` and ``bench_distributed.json`` into ``--out``, with the machine and
its load average at the start and the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def _time_steps(step: Any, batches: list, steps: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        step(batches[i % len(batches)])
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def worker(args: argparse.Namespace) -> None:
    """One rank: time the teacher and the ensemble steps, with and without the all-reduce."""
    from sne_loihi.config import DataConfig, RunConfig, StudentConfig, TeacherConfig
    from sne_loihi.data import load_dataset
    from sne_loihi.distributed import setup
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.partition import compute_partition
    from sne_loihi.config import PartitionStrategy
    from sne_loihi.teachers import build_teacher
    from sne_loihi.train.common import batch_indices, make_optimizer
    from sne_loihi.train.students import distill_step
    from sne_loihi.train.teacher import teacher_features, teacher_step

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    dist = setup(device)
    cfg = RunConfig(data=DataConfig(name=args.dataset, data_dir=args.data_dir, max_train=args.max_train),
                    teacher=TeacherConfig(arch=args.teacher),
                    student=StudentConfig(arch=args.student_arch, time_steps=args.time_steps))
    data = load_dataset(cfg.data)
    gen = torch.Generator().manual_seed(0)
    order = list(batch_indices(len(data.x_train_nchw), args.batch, gen))
    order = [idx for idx in order if len(idx) == args.batch]
    batches = [(s, x, y) for s, x, y in dist.batches(iter(order), data.x_train_nchw, data.y_train, device)]
    torch.manual_seed(0)
    teacher = build_teacher(cfg.teacher, data.in_shape, data.num_classes)
    results: dict[str, Any] = {}

    def measure(name: str, model: torch.nn.Module, ddp: torch.nn.Module, step: Any) -> None:
        per_mode = {}
        for mode in ("sync", "no_sync"):
            def run(batch: tuple) -> None:
                shard, x, y = batch
                ctx = ddp.no_sync() if mode == "no_sync" and dist.distributed else contextlib.nullcontext()
                with dist.step(shard), ctx:
                    step(ddp, x, y, dist.loss_weight(shard))
            model.train()
            with dist.training(model):
                times = _time_steps(run, batches, args.steps, args.warmup)
            t = torch.tensor([statistics.median(times)], dtype=torch.float64)
            if dist.distributed:
                torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            per_mode[mode] = float(t)
        results[name] = {
            "s_per_step": per_mode["sync"],
            "samples_per_s": args.batch / per_mode["sync"],
            "s_per_step_no_sync": per_mode["no_sync"],
            "comm_share": max(0.0, 1 - per_mode["no_sync"] / per_mode["sync"]) if dist.distributed else 0.0,
        }

    opt = make_optimizer(cfg.teacher.optimizer, teacher.parameters(), 1e-3, 0.0)
    measure(f"teacher {args.teacher}", teacher, dist.wrap(teacher, device),
            lambda m, x, y, w: teacher_step(m, opt, x, y, loss_weight=w))
    if args.students > 0:
        teacher.eval()
        feats = teacher_features(teacher, data.x_train_nchw[:256])
        part = compute_partition(PartitionStrategy.FIXED, feats.numpy(), args.students, 0)
        ens = build_ensemble(cfg.student, part, data.in_shape, data.num_classes)
        scale = feats.amax(0).clamp_min(1e-6)
        eopt = make_optimizer(cfg.train.optimizer, ens.parameters(), 1e-3, 0.0)
        active = torch.ones(args.students, dtype=torch.bool)
        measure(f"ensemble {args.students}x{args.student_arch}", ens, dist.wrap(ens, device),
                lambda m, x, y, w: distill_step(m, eopt, x, y, active, teacher=teacher, feature_scale=scale,
                                                groups=part.groups, alpha=5.0, loss_weight=w))
    if dist.is_main:
        Path(args.result).write_text(json.dumps({"world_size": dist.world_size, "backend": dist.backend or "none",
                                                 "models": results}))


def _load() -> list[float]:
    return list(os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir")
    parser.add_argument("--teacher", default="digits_cnn")
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--student-arch", default="digits_tiny")
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=1024)
    parser.add_argument("--note", default="")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    load_before, t0 = _load(), time.time()
    runs = []
    passthrough = [a for a in sys.argv[1:]]
    for p in [int(v) for v in args.procs.split(",")]:
        result = args.out / f".bench_distributed_p{p}.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={p}",
               str(Path(__file__).resolve()), *passthrough, "--worker", "--result", str(result)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"{p} process(es) failed:\n{out.stderr[-3000:]}")
        runs.append(json.loads(result.read_text()))
        result.unlink()
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "processor": platform.processor()},
        "load_average_start": load_before, "load_average_end": _load(), "wall_s": time.time() - t0,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "worker", "result")},
        "runs": runs,
    }
    (args.out / "bench_distributed.json").write_text(json.dumps(report, indent=2))
    base = {name: m["samples_per_s"] for name, m in runs[0]["models"].items()}
    lines = [
        "# Data-parallel scaling (torchrun, gloo, CPU, same global batch)", "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} CPUs, torch {torch.__version__}; "
        f"load average (1/5/15 min) at the start {', '.join(f'{v:.2f}' for v in load_before)}, at the end "
        f"{', '.join(f'{v:.2f}' for v in report['load_average_end'])}.",
        f"Settings: {args.dataset}, global batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up, "
        f"{args.threads} thread(s) per process. {args.note}", "",
        "| model | processes | s/step | samples/s | speed-up | communication share |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        for name, m in run["models"].items():
            lines.append(f"| {name} | {run['world_size']} | {m['s_per_step']:.4f} | {m['samples_per_s']:.1f} | "
                         f"{m['samples_per_s'] / base[name]:.2f}x | {100 * m['comm_share']:.0f}% |")
    lines += ["", "Communication share = 1 - (step time under DDP `no_sync()`) / (step time): the gradient "
              "all-reduce's part of a step (the synced BatchNorm's all-reduces are in both)."]
    (args.out / "bench_distributed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
