"""Distillation step with the eager teacher against the frozen teacher (``train.frozen_teacher``).

Usage::

    python benchmarks/bench_teacher_targets.py --out OUT_DIR [--teacher RUN/teacher.pt]
        [--preset cpu-cifar10-bn] [--data-dir ../shared/data/cifar10-subset] [--rounds 12] [--threads 2]

In one process, alternating batch by batch (so both see the same machine load), times
``train.students.distill_step`` of the preset's student ensemble with the KD targets from
(a) the eager teacher and (b) the frozen TorchScript graph of
:mod:`sne_loihi.teachers.frozen`, on augmented training batches; and the teacher's
``features`` alone both ways. Also prints how far the frozen features are from the eager
ones on every batch. The first two rounds are warm-up. Writes ``bench_teacher_targets.md``
and ``.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10-subset"
WARMUP_ROUNDS = 2


def main() -> None:
    """Measure, print, write the Markdown and JSON reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, default=None, help="trained teacher.pt (default: untrained weights)")
    parser.add_argument("--preset", default="cpu-cifar10-bn")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.rounds <= WARMUP_ROUNDS:
        parser.error(f"--rounds must exceed the {WARMUP_ROUNDS} warm-up rounds")

    from sne_loihi.config import PartitionStrategy, resolve
    from sne_loihi.data import augment_nchw
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.partition import compute_partition
    from sne_loihi.run import load_data
    from sne_loihi.teachers import build_teacher
    from sne_loihi.teachers.checkpoint import load_teacher
    from sne_loihi.teachers.frozen import target_teacher
    from sne_loihi.train.common import keep_freed_memory, make_optimizer
    from sne_loihi.train.students import distill_step, random_active

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    cfg = resolve(None, preset_name=args.preset, overrides={"data.data_dir": str(args.data_dir)})
    data = load_data(cfg)
    if args.teacher is not None:
        teacher = load_teacher(args.teacher)[0].eval()
    else:
        teacher = build_teacher(cfg.teacher, data.in_shape, data.num_classes).eval()
    batch = cfg.train.batch_size
    frozen = target_teacher(teacher, data.x_train_nchw[:batch], frozen=True)
    print(frozen.description)
    part = compute_partition(PartitionStrategy.FIXED, np.zeros((2, teacher.feature_dim)), cfg.ensemble.num_students, 0)
    model = build_ensemble(cfg.student, part, data.in_shape, data.num_classes).train()
    opt = make_optimizer(cfg.train.optimizer, model.parameters(), cfg.train.lr, cfg.train.weight_decay)
    scale = torch.ones(teacher.feature_dim)
    gen = torch.Generator().manual_seed(0)
    paths = {"eager": teacher, "frozen": frozen.teacher}
    step_s: dict[str, list[float]] = {k: [] for k in paths}
    features_s: dict[str, list[float]] = {k: [] for k in paths}
    worst = 0.0
    for r in range(args.rounds):
        start = (r * batch) % (len(data.x_train_nchw) - batch)
        x = augment_nchw(data.x_train_nchw[start:start + batch], gen)
        y = data.y_train[start:start + batch]
        with torch.no_grad():
            eager = teacher.features(x)
        worst = max(worst, float((paths["frozen"].features(x) - eager).abs().max() / eager.abs().max()))
        for name, source in paths.items():
            t0 = time.perf_counter()
            with torch.no_grad():
                source.features(x)
            t1 = time.perf_counter()
            distill_step(model, opt, x, y, random_active(part.num_groups, 0, gen), teacher=source,
                         feature_scale=scale, groups=part.groups, alpha=cfg.ensemble.alpha)
            t2 = time.perf_counter()
            if r >= WARMUP_ROUNDS:
                features_s[name].append(t1 - t0)
                step_s[name].append(t2 - t1)
    med = {k: {"step_s": statistics.median(step_s[k]), "features_s": statistics.median(features_s[k])} for k in paths}
    result = {
        "preset": args.preset, "teacher": cfg.teacher.arch, "teacher_checkpoint": str(args.teacher),
        "batch_size": batch, "students": cfg.ensemble.num_students, "student_norm": cfg.student.norm.value,
        "rounds_timed": args.rounds - WARMUP_ROUNDS, "threads": args.threads, "median": med,
        "step_ratio_eager_over_frozen": med["eager"]["step_s"] / med["frozen"]["step_s"],
        "features_ratio_eager_over_frozen": med["eager"]["features_s"] / med["frozen"]["features_s"],
        "max_relative_feature_difference": worst,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "load_average": os.getloadavg(), "command": " ".join(sys.argv),
    }
    lines = [
        "# KD targets: eager teacher vs frozen TorchScript teacher, one process, batch by batch",
        "",
        f"- preset `{args.preset}` (teacher {cfg.teacher.arch}, {cfg.ensemble.num_students} x {cfg.student.arch}, "
        f"norm {cfg.student.norm.value}, batch {batch}), {args.threads} threads, {result['rounds_timed']} timed rounds "
        f"after {WARMUP_ROUNDS} warm-up; machine {result['machine']}; load average after "
        f"{', '.join(f'{v:.2f}' for v in result['load_average'])}",
        f"- teacher weights: {args.teacher or 'untrained'}; command: `{result['command']}`",
        "",
        "| teacher path | distillation step, s (median) | teacher features alone, s (median) |",
        "| --- | --- | --- |",
        *(f"| {k} | {v['step_s']:.3f} | {v['features_s']:.3f} |" for k, v in med.items()),
        "",
        f"Whole step: {result['step_ratio_eager_over_frozen']:.2f}x faster with the frozen teacher; teacher "
        f"features: {result['features_ratio_eager_over_frozen']:.2f}x. Largest difference of the frozen features "
        f"from the eager ones: {worst:.2g} of the largest feature (float rounding).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_teacher_targets.md").write_text("\n".join(lines) + "\n")
    (args.out / "bench_teacher_targets.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
