"""Seconds per training epoch of the CIFAR-10 teachers and student ensembles on this machine.

Usage::

    python benchmarks/bench_train.py --out OUT_DIR [--data-dir ../shared/data/cifar10-subset]
        [--teachers vgg11,vgg19,resnet18] [--students vgg5mini] [--backends fast,slayer,spikingjelly]
        [--batches 3] [--threads 2]

Nothing is trained to the end: for each model the real optimisation step of the pipeline
(``train.teacher.teacher_step``, ``train.students.distill_step`` with the teacher's features as
targets and augmentation on, exactly as the training loops call them) runs on ``--warmup`` +
``--batches`` batches of the data set, and the median measured batch time is EXTRAPOLATED to an
epoch: ``s/epoch = s/batch x ceil(train samples / batch size)``, plus the per-epoch test
evaluation, measured on ``--eval-batches`` batches (of the size the loop uses: 256 for a
teacher, the training batch for students) and extrapolated to the test set.
The same is extrapolated to the full 50,000-image CIFAR-10 training set. Weights are untrained
(speed does not depend on what they learned). SLAYER and SpikingJelly students of the same
shape run in this one process, so their ratio is measured under the same load.

Student "backends": ``fast`` = SLAYER blocks run by the project's fast engine
(``student.engine = "fast"``), ``slayer`` = the same blocks run by SLAYER itself
(``student.engine = "slayer"``), ``spikingjelly`` = the paper's LIF reference. The "ideal"
column is the students' training FLOPs per batch (forward + input gradient + weight
gradient = 3 x the forward MACs x 2, every layer at every step, as SLAYER computes them) over
this machine's float32 matmul rate, measured here at the same thread count.
Writes ``bench_train.md`` and ``bench_train.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10-subset"
FULL_CIFAR_TRAIN = 50_000
TEACHER_EVAL_BATCH = 256  # the batch of the teacher loop's per-epoch test evaluation


@dataclass
class Row:
    """One measured model."""

    model: str
    backend: str
    batch_size: int
    measured_batches: int
    s_per_batch: float
    train_s_per_epoch: float
    eval_s_per_epoch: float
    epoch_s: float
    full_cifar_train_s_per_epoch: float
    teacher_forward_s_per_batch: float = 0.0
    students_gflop_per_batch: float = 0.0
    ideal_s_per_batch: float = 0.0

    @property
    def students_only_s_per_batch(self) -> float:
        """A distillation step without the teacher's forward pass for the KD targets."""
        return self.s_per_batch - self.teacher_forward_s_per_batch


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul rate (GFLOP/s) at torch's current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - t0) / 1e9


def forward_macs(spec) -> int:
    """Synaptic multiply-accumulates of one sample at one time step, every weighted layer."""
    total = 0
    for layer, (in_shape, out_shape) in zip(spec.layers, spec.layer_shapes()):
        if layer.weighted:
            fan_in = in_shape[0] * layer.kernel**2 if len(in_shape) == 3 else in_shape[0]
            total += math.prod(out_shape) * fan_in
    return total


def _seconds(step: Callable[[int], None], warmup: int, batches: int) -> list[float]:
    """Wall time of each of ``batches`` calls of ``step(i)`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        step(i)
    times = []
    for i in range(batches):
        t0 = time.perf_counter()
        step(warmup + i)
        times.append(time.perf_counter() - t0)
    return times


class _TimedFeatures:
    """Stands in for the teacher in ``distill_step`` and records how long each
    ``features`` call (the KD targets) takes, so it can be taken out of the same batch's time."""

    def __init__(self, teacher: torch.nn.Module) -> None:
        self.teacher, self.seconds = teacher, []

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.teacher.features(x_nchw)
        self.seconds.append(time.perf_counter() - t0)
        return out


def _batch(x_nchw: torch.Tensor, y: torch.Tensor, i: int, size: int, gen: torch.Generator, augment: bool):
    from sne_loihi.data import augment_nchw

    start = (i * size) % max(len(x_nchw) - size, 1)
    x = x_nchw[start:start + size]
    return (augment_nchw(x, gen) if augment else x), y[start:start + size]


def _row(name: str, backend: str, batch: int, batches: int, s_batch: float, s_eval_batch: float,
         eval_batch: int, n_train: int, n_test: int) -> Row:
    train = s_batch * math.ceil(n_train / batch)
    evaluation = s_eval_batch * math.ceil(n_test / eval_batch)
    return Row(name, backend, batch, batches, s_batch, train, evaluation, train + evaluation,
               s_batch * math.ceil(FULL_CIFAR_TRAIN / batch))


def bench_teacher(arch: str, data, args: argparse.Namespace) -> Row:
    """Time ``teacher_step`` (cross-entropy, Adam) and the test-set forward pass."""
    from sne_loihi.config import preset
    from sne_loihi.teachers import build_teacher
    from sne_loihi.train.common import make_optimizer, predict_logits
    from sne_loihi.train.teacher import teacher_step

    tcfg = replace(preset("cifar10").teacher, arch=arch)
    model = build_teacher(tcfg, data.in_shape, data.num_classes)
    opt = make_optimizer(tcfg.optimizer, model.parameters(), tcfg.lr, tcfg.weight_decay)
    gen = torch.Generator().manual_seed(0)

    def step(i: int) -> None:
        model.train()
        x, y = _batch(data.x_train_nchw, data.y_train, i, tcfg.batch_size, gen, True)
        teacher_step(model, opt, x, y)

    s_batch = statistics.median(_seconds(step, args.warmup, args.batches))
    model.eval()
    x_eval = data.x_test_nchw[: TEACHER_EVAL_BATCH * args.eval_batches]
    t0 = time.perf_counter()
    predict_logits(model, x_eval, TEACHER_EVAL_BATCH, torch.device("cpu"))
    s_eval = (time.perf_counter() - t0) / args.eval_batches
    return _row(f"teacher {arch}", "torch", tcfg.batch_size, args.batches, s_batch, s_eval, TEACHER_EVAL_BATCH,
                len(data.y_train), len(data.y_test))


#: Benchmark name -> (neuron library, engine) of the students.
STUDENT_VARIANTS = {"fast": ("slayer", "fast"), "slayer": ("slayer", "slayer"), "spikingjelly": ("spikingjelly", "fast")}


def bench_students(arch: str, backend: str, data, args: argparse.Namespace) -> Row:
    """Time ``distill_step`` of N students (teacher vgg11 features as KD targets) and the
    per-epoch test evaluation of the ensemble."""
    import numpy as np

    from sne_loihi.config import PartitionStrategy, StudentBackend, StudentEngine, preset
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.partition import compute_partition
    from sne_loihi.teachers import build_teacher
    from sne_loihi.train.common import make_optimizer
    from sne_loihi.train.students import distill_step, random_active

    cfg = preset("cifar10")
    library, engine = STUDENT_VARIANTS[backend]
    scfg = replace(cfg.student, arch=arch, backend=StudentBackend(library), engine=StudentEngine(engine))
    teacher = build_teacher(cfg.teacher, data.in_shape, data.num_classes).eval()
    part = compute_partition(PartitionStrategy.FIXED, np.zeros((2, teacher.feature_dim)), args.num_students, 0)
    model = build_ensemble(scfg, part, data.in_shape, data.num_classes)
    opt = make_optimizer(cfg.train.optimizer, model.parameters(), cfg.train.lr, cfg.train.weight_decay)
    scale = torch.ones(teacher.feature_dim)
    timed = _TimedFeatures(teacher)
    gen = torch.Generator().manual_seed(0)
    batch = cfg.train.batch_size

    def step(i: int) -> None:
        model.train()
        x, y = _batch(data.x_train_nchw, data.y_train, i, batch, gen, True)
        active = random_active(part.num_groups, 0, gen)
        distill_step(model, opt, x, y, active, teacher=timed, feature_scale=scale, groups=part.groups,
                     alpha=cfg.ensemble.alpha)

    steps = _seconds(step, args.warmup, args.batches)
    teacher_s = timed.seconds[args.warmup:]
    s_batch = statistics.median(steps)
    s_teacher = s_batch - statistics.median(a - b for a, b in zip(steps, teacher_s))
    n_eval = batch * args.eval_batches
    t0 = time.perf_counter()
    evaluate_ensemble(model, data.x_test_nchw[:n_eval], data.y_test[:n_eval], batch_size=batch, count_ops=False)
    s_eval = (time.perf_counter() - t0) / args.eval_batches
    name = f"students {args.num_students}x{arch} T={scfg.time_steps}"
    gflop = sum(6 * forward_macs(s.spec) for s in model.students) * scfg.time_steps * batch / 1e9
    return replace(_row(name, backend, batch, args.batches, s_batch, s_eval, batch, len(data.y_train), len(data.y_test)),
                   teacher_forward_s_per_batch=s_teacher, students_gflop_per_batch=gflop,
                   ideal_s_per_batch=gflop / args.gflops)


def _fast_engine_paths() -> str:
    from sne_loihi.students.fast_cuba import engine_paths

    return engine_paths("cpu")


def _markdown(rows: list[Row], meta: dict) -> str:
    head = ("| model | backend | batch | measured batches | s/batch (median) | train s/epoch | "
            "test-eval s/epoch | s/epoch | train s/epoch, full CIFAR-10 | of s/batch: teacher fwd (KD targets) | "
            "students GFLOP/batch | ideal s/batch | students-only s/batch / ideal |")
    lines = [
        "# Training speed: seconds per epoch (extrapolated)",
        "",
        f"EXTRAPOLATED, not a full epoch: {meta['note']}",
        "",
        f"- data: `{meta['data_dir']}` ({meta['train_samples']} train / {meta['test_samples']} test images); "
        f"full CIFAR-10 column: {FULL_CIFAR_TRAIN} train images",
        f"- machine: {meta['machine']}; torch {meta['torch']}, {meta['threads']} threads; "
        f"load average {meta['load_before']} before, {meta['load_after']} after (other jobs share these cores)",
        f"- command: `{meta['command']}`",
        f"- float32 matmul rate (2048^2, same threads, this process): {meta['matmul_gflops']:.1f} GFLOP/s",
        f"- freed CPU memory kept mapped (train.common.keep_freed_memory, as the training loops do; every "
        f"variant alike): {meta['keep_freed_memory']}",
        f"- fast engine on this CPU: {meta['fast_engine_paths']}",
        "",
        head,
        "| " + " | ".join("---" for _ in range(13)) + " |",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.backend} | {r.batch_size} | {r.measured_batches} | {r.s_per_batch:.2f} | "
            f"{r.train_s_per_epoch:,.0f} | {r.eval_s_per_epoch:,.0f} | {r.epoch_s:,.0f} | "
            f"{r.full_cifar_train_s_per_epoch:,.0f} | "
            f"{f'{r.teacher_forward_s_per_batch:.2f}' if r.model.startswith('students') else '-'} | "
            + (f"{r.students_gflop_per_batch:.1f} | {r.ideal_s_per_batch:.2f} | "
               f"{r.students_only_s_per_batch / r.ideal_s_per_batch:.2f}x |" if r.ideal_s_per_batch else "- | - | - |")
        )
    if meta["ratios"]:
        lines += ["", "Time per training batch, same shape, same process (whole distillation step; students only "
                  "= step minus the teacher's forward pass); > 1 means the second is faster:"]
        lines += [f"- {name}, {pair}: {r['step']:.2f}x whole step, {r['students_only']:.2f}x students only"
                  for name, pairs in meta["ratios"].items() for pair, r in pairs.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure, print the table, write it as Markdown and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_train.md / bench_train.json")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--teachers", default="vgg11,vgg19,resnet18")
    parser.add_argument("--students", default="vgg5mini", help="student architectures (comma-separated)")
    parser.add_argument("--backends", default="fast,slayer,spikingjelly",
                        help=f"student variants, of {', '.join(STUDENT_VARIANTS)}")
    parser.add_argument("--num-students", type=int, default=4)
    parser.add_argument("--batches", type=int, default=3, help="timed batches per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    parser.add_argument("--eval-batches", type=int, default=2, help="timed test batches")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    parser.add_argument("--no-keep-freed-memory", dest="keep_freed_memory", action="store_false",
                        help="leave glibc's allocator as it is (the toolkit's state before the fast engine)")
    args = parser.parse_args()
    if min(args.batches, args.eval_batches, args.num_students) < 1 or args.warmup < 0:
        parser.error("--batches, --eval-batches and --num-students must be >= 1, --warmup >= 0")
    unknown = [b for b in args.backends.split(",") if b and b not in STUDENT_VARIANTS]
    if unknown:
        parser.error(f"unknown --backends {unknown}; choose from {', '.join(STUDENT_VARIANTS)}")
    md_path, json_path = args.out / "bench_train.md", args.out / "bench_train.json"
    if not args.overwrite and (md_path.exists() or json_path.exists()):
        parser.error(f"{md_path} or {json_path} exists; pass --overwrite or choose another --out")

    from machine import cpu_name
    from tqdm.auto import tqdm

    from sne_loihi.config import DataConfig
    from sne_loihi.data import load_dataset
    from sne_loihi.train.common import keep_freed_memory, set_threads

    set_threads(args.threads)
    # What the training loops do on a CPU; process-wide, so it applies to every variant alike.
    kept = keep_freed_memory() if args.keep_freed_memory else False
    args.gflops = matmul_gflops()
    torch.manual_seed(0)
    data = load_dataset(DataConfig(name="cifar10", data_dir=str(args.data_dir), augment=True))
    load_before = " ".join(f"{v:.1f}" for v in os.getloadavg())
    jobs = [(f"teacher {a}", lambda a=a: bench_teacher(a, data, args)) for a in args.teachers.split(",") if a]
    jobs += [(f"students {a} {b}", lambda a=a, b=b: bench_students(a, b, data, args))
             for a in args.students.split(",") if a for b in args.backends.split(",") if b]
    rows: list[Row] = []
    for name, job in tqdm(jobs, desc="bench_train", unit="model"):
        tqdm.write(f"measuring {name} ...")
        rows.append(job())
        r = rows[-1]
        tqdm.write(f"  {r.s_per_batch:.2f} s/batch -> {r.epoch_s:,.0f} s/epoch (extrapolated)")
    ratios: dict[str, dict[str, dict[str, float]]] = {}
    for arch in args.students.split(","):
        by_backend = {r.backend: r for r in rows if r.model.startswith(f"students {args.num_students}x{arch} ")}
        pairs = {}
        for slow, fast in (("slayer", "fast"), ("spikingjelly", "fast"), ("slayer", "spikingjelly")):
            if slow in by_backend and fast in by_backend:
                a, b = by_backend[slow], by_backend[fast]
                pairs[f"{slow} / {fast}"] = {
                    "step": a.s_per_batch / b.s_per_batch,
                    "students_only": a.students_only_s_per_batch / b.students_only_s_per_batch,
                }
        ratios[f"{args.num_students}x{arch}"] = pairs
    meta = {
        "note": (f"the median of {args.batches} timed training batches (after {args.warmup} warm-up) times the "
                 f"batches per epoch, plus {args.eval_batches} timed test batches (teacher: {TEACHER_EVAL_BATCH} "
                 "images each, students: the training batch, as the loops evaluate) times the test batches per epoch."),
        "data_dir": str(args.data_dir),
        "train_samples": len(data.y_train),
        "test_samples": len(data.y_test),
        "machine": f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, "
                   + ("CPU only" if not torch.cuda.is_available() else "CUDA present but not used"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": " ".join(f"{v:.1f}" for v in os.getloadavg()),
        "command": "python benchmarks/bench_train.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "overwrite", "gflops", "keep_freed_memory"))
            + ("" if args.keep_freed_memory else " --no-keep-freed-memory"),
        "ratios": ratios,
        "matmul_gflops": args.gflops,
        "keep_freed_memory": kept,
        "fast_engine_paths": _fast_engine_paths(),
    }
    text = _markdown(rows, meta)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    rows_json = [{**asdict(r), "students_only_s_per_batch": r.students_only_s_per_batch} for r in rows]
    json_path.write_text(json.dumps({"rows": rows_json, **meta}, indent=2) + "\n")
    print(f"written: {md_path}, {json_path}")


if __name__ == "__main__":
    main()
