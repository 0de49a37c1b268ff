"""The fast engine on a CUDA GPU: exactness, training speed, and a few minutes of the paper preset.

Usage::

    python benchmarks/cuda_check.py --out OUT [--data-dir CIFAR10_SUBSET] [--device cuda]
        [--stage-timeout 240]

For a machine with a GPU (the tests and every other benchmark run on CPUs). Three parts, each
written to ``OUT/cuda_check.{md,json}`` as soon as it is done, so a run cut short keeps what
finished:

1. **Exactness.** Every registered student architecture (small input) and ``vgg5mini`` at
   CIFAR-10's 3x32x32: the same parameters run by the fast engine on the GPU, by the fast engine
   on the CPU (the path Lava matches spike for spike, ``tests/test_fast_engine.py``) and by
   SLAYER itself on the GPU (its CUDA kernels). Reported: spike mismatches per weighted layer
   (fast GPU vs fast CPU; the contract is 0), final-layer spike mismatches of SLAYER's GPU path
   against the fast CPU path, and the relative difference of the weight gradients of one loss
   (summation order differs between devices, so close, not equal).
2. **Speed.** ``train.students.distill_step`` (the training loop's step: teacher features as KD
   targets, 4 students, loss, update) for the ``cifar10-full`` preset's students at batch 64 and
   256, fast engine against SLAYER's engine on the GPU and the fast engine on this machine's
   CPU, median of timed batches after warm-up (``torch.cuda.synchronize`` around each),
   extrapolated to one epoch of 50,000 images. Synthetic images: dense compute does not depend
   on what the pixels show.
3. **Paper preset.** ``sne teacher`` then ``sne train`` with ``--preset paper-cifar10`` on
   ``--data-dir`` (the CIFAR-10 subset) on the GPU, one epoch each, each stage in a subprocess
   with ``--stage-timeout`` seconds; their per-epoch wall times and accuracies from the metrics
   logs, and the paper schedule's 200 + 200 epochs extrapolated. Skipped without ``--data-dir``.

The CPU of the machine is named next to every timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
FULL_CIFAR_TRAIN = 50_000
SMALL_RGB = (3, 16, 16)  # every registered architecture still leaves a map at its last conv
DIGITS = (1, 8, 8)


# ---- 1. exactness -------------------------------------------------------------------------------


def _student_trio(arch: str, in_shape: tuple[int, int, int], width: float, time_steps: int, device: torch.device,
                  seed: int) -> tuple[Any, Any, Any, Any]:
    """The same student (same parameters): fast on the CPU, fast on ``device``, SLAYER on ``device``."""
    from sne_loihi.config import StudentConfig, StudentEngine
    from sne_loihi.students import build_student, student_spec

    cfg = StudentConfig(arch=arch, width=width, time_steps=time_steps, input_bits=4, engine=StudentEngine.FAST)
    spec = student_spec(cfg, in_shape, 12)
    torch.manual_seed(seed)
    fast_cpu = build_student(spec)
    fast_dev = build_student(spec)
    slayer_dev = build_student(dataclasses.replace(spec, engine=StudentEngine.SLAYER))
    for model in (fast_dev, slayer_dev):
        model.load_state_dict(fast_cpu.state_dict())
    return spec, fast_cpu, fast_dev.to(device), slayer_dev.to(device)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).double().norm() / b.double().norm().clamp_min(1e-30))


def exactness(device: torch.device, samples: int = 8) -> list[dict[str, Any]]:
    """One row per architecture: spike mismatches and gradient differences (see the module doc)."""
    from sne_loihi.students import STUDENT_ARCHS, encode_input
    from sne_loihi.students.fast_cuba import run_fast

    cases = [(arch, DIGITS if arch.startswith("digits") else SMALL_RGB, 0.25, 3)
             for arch in sorted(set(STUDENT_ARCHS.names()) - {"auto"})]
    cases.append(("vgg5mini", (3, 32, 32), 0.5, 3))
    rows = []
    for arch, in_shape, width, steps in cases:
        spec, fast_cpu, fast_dev, slayer_dev = _student_trio(arch, in_shape, width, steps, device, seed=0)
        gen = torch.Generator().manual_seed(1)
        x = encode_input(torch.rand(samples, *in_shape, generator=gen), spec.time_steps, spec.input_bits)
        with torch.no_grad():
            ref = run_fast(fast_cpu.blocks, x).layer_spikes
            got = run_fast(fast_dev.blocks, x.to(device)).layer_spikes
            slayer_out = slayer_dev(x.to(device)).spikes_nft.cpu()
        layer_bad = [int((a.cpu() != b).sum()) for a, b in zip(got, ref)]
        target = torch.rand(samples, spec.out_features, generator=gen)
        grads = {}
        for name, model, dev in (("fast_cpu", fast_cpu, torch.device("cpu")), ("fast_dev", fast_dev, device),
                                 ("slayer_dev", slayer_dev, device)):
            model.zero_grad()
            loss = torch.nn.functional.mse_loss(model.rates(model(x.to(dev))), target.to(dev))
            loss.backward()
            grads[name] = [p.grad.detach().cpu() for p in model.parameters() if p.grad is not None]
        rows.append({
            "arch": arch, "in_shape": list(in_shape), "width": width, "time_steps": steps, "samples": samples,
            "spikes_per_layer": [int(s.sum()) for s in ref],
            "fast_device_vs_cpu_mismatches_per_layer": layer_bad,
            "slayer_device_vs_fast_cpu_final_mismatches": int((slayer_out != ref[-1]).sum()),
            "final_spikes": int(ref[-1].numel()),
            "grad_rel_fast_device_vs_cpu": max(_relative(a, b) for a, b in zip(grads["fast_dev"], grads["fast_cpu"])),
            "grad_rel_slayer_device_vs_fast_cpu": max(_relative(a, b) for a, b in
                                                      zip(grads["slayer_dev"], grads["fast_cpu"])),
        })
        print(f"exactness {arch} {in_shape}: fast {device.type} vs cpu mismatches {layer_bad}, "
              f"slayer {device.type} final {rows[-1]['slayer_device_vs_fast_cpu_final_mismatches']}", flush=True)
    return rows


# ---- 2. speed -----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(step: Callable[[int], None], device: torch.device, warmup: int, batches: int) -> float:
    times = []
    for i in range(warmup + batches):
        _sync(device)
        t0 = time.perf_counter()
        step(i)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def distill_seconds(engine: str, device: torch.device, batch: int, warmup: int, batches: int) -> float:
    """Median seconds of one ``distill_step`` of the ``cifar10-full`` preset's ensemble."""
    import numpy as np

    from sne_loihi.config import PartitionStrategy, StudentEngine, resolve
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.partition import compute_partition
    from sne_loihi.teachers import build_teacher
    from sne_loihi.train.common import make_optimizer
    from sne_loihi.train.students import distill_step, random_active

    cfg = resolve(None, preset_name="cifar10-full")
    in_shape, classes = (3, 32, 32), 10
    teacher = build_teacher(cfg.teacher, in_shape, classes).to(device).eval()
    part = compute_partition(PartitionStrategy.FIXED, np.zeros((2, teacher.feature_dim)), cfg.ensemble.num_students, 0)
    scfg = dataclasses.replace(cfg.student, engine=StudentEngine(engine))
    model = build_ensemble(scfg, part, in_shape, classes).to(device).train()
    opt = make_optimizer(cfg.train.optimizer, model.parameters(), cfg.train.lr, cfg.train.weight_decay)
    scale = torch.ones(teacher.feature_dim, device=device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *in_shape, generator=gen).to(device)
    y = torch.randint(0, classes, (batch,), generator=gen).to(device)

    def step(_: int) -> None:
        distill_step(model, opt, x, y, random_active(part.num_groups, 0, gen), teacher=teacher, feature_scale=scale,
                     groups=part.groups, alpha=cfg.ensemble.alpha)

    return _median_seconds(step, device, warmup, batches)


def speed(device: torch.device, batches: int, cpu_batches: int) -> list[dict[str, Any]]:
    """Seconds per batch and per 50,000-image epoch, per engine, device and batch size."""
    runs = [("fast", device), ("slayer", device)] + ([("fast", torch.device("cpu"))] if device.type != "cpu" else [])
    rows = []
    for batch in (64, 256):
        for engine, dev in runs:
            n = cpu_batches if dev.type == "cpu" else batches
            s = distill_seconds(engine, dev, batch, warmup=1 if dev.type == "cpu" else 3, batches=n)
            rows.append({"engine": engine, "device": str(dev), "batch": batch, "timed_batches": n, "s_per_batch": s,
                         "s_per_full_epoch": s * -(-FULL_CIFAR_TRAIN // batch)})
            print(f"speed {engine} on {dev} batch {batch}: {s * 1e3:.1f} ms/batch, "
                  f"{rows[-1]['s_per_full_epoch']:.0f} s per 50,000-image epoch", flush=True)
    return rows


# ---- 3. the paper preset ------------------------------------------------------------------------


def _metrics(path: Path) -> list[dict[str, Any]]:
    from sne_loihi.json_files import read_jsonl_file

    return read_jsonl_file(path, "metrics log") if path.is_file() else []


def paper_preset(data_dir: Path, out: Path, device: str, timeout_s: float, max_train: int = 0,
                 max_test: int = 0) -> list[dict[str, Any]]:
    """``sne teacher`` and ``sne train`` of ``paper-cifar10``, one epoch each, in subprocesses
    (``max_train`` / ``max_test``: at most that many images, 0 = all)."""
    run = out / "paper_run"
    if run.exists():
        raise SystemExit(f"error: {run} exists (an earlier check's run); choose a new --out")
    common = ["--run-dir", str(run), "--no-progress"]
    stages = [
        ("teacher", ["teacher", "--preset", "paper-cifar10", "--data-dir", str(data_dir), "--device", device,
                     "--teacher-epochs", "1", "--max-train", str(max_train), "--max-test", str(max_test), *common], "metrics_teacher.jsonl", 200),
        ("students", ["train", "--student-epochs", "1", *common], "metrics_students.jsonl", 200),
    ]
    rows: list[dict[str, Any]] = []
    train_images = 0
    for name, args, log, paper_epochs in stages:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "sne_loihi", *args], capture_output=True, text=True,
                                  timeout=timeout_s, cwd=out)  # not the source tree: the installed package
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired as exc:
            rc, tail = None, f"stopped after {timeout_s:.0f} s: {str(exc.stderr or '')[-1500:]}"
        wall = time.perf_counter() - t0
        epochs = _metrics(run / log)
        last = epochs[-1] if epochs else {}
        if not train_images and (run / "config.toml").is_file():
            from sne_loihi.data import load_dataset
            from sne_loihi.run import Run

            train_images = len(load_dataset(Run(run).config.data).y_train)
        rows.append({"stage": name, "returncode": rc, "wall_s": wall, "epoch_s": last.get("seconds"),
                     "train_images": train_images,
                     "test_accuracy": last.get("test_accuracy"), "train_accuracy": last.get("train_accuracy"),
                     "paper_epochs": paper_epochs, "output_tail": tail})
        print(f"paper preset {name}: rc {rc}, {wall:.0f} s, epoch {last.get('seconds')} s, "
              f"test {last.get('test_accuracy')}", flush=True)
        if rc != 0:
            break
    return rows


# ---- report -------------------------------------------------------------------------------------


def _machine(device: torch.device) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "python": sys.version.split()[0]}


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = ["# The fast engine on CUDA", "", f"Machine: {m['gpu'] or 'no GPU'}; CPU {m['cpu']}, {m['cores']} cores; "
             f"torch {m['torch']}, Python {m['python']}. Command: `{payload['command']}`", ""]
    if payload.get("exactness"):
        lines += ["## Exactness (same parameters)", "",
                  "| arch | input | spikes per layer (CPU) | fast GPU vs fast CPU: mismatches per layer | "
                  "SLAYER GPU vs fast CPU: final-layer mismatches | weight grad rel. diff fast GPU / SLAYER GPU |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in payload["exactness"]:
            lines.append(f"| {r['arch']} | {r['in_shape']} | {r['spikes_per_layer']} | "
                         f"{r['fast_device_vs_cpu_mismatches_per_layer']} | "
                         f"{r['slayer_device_vs_fast_cpu_final_mismatches']} of {r['final_spikes']:,} | "
                         f"{r['grad_rel_fast_device_vs_cpu']:.1e} / {r['grad_rel_slayer_device_vs_fast_cpu']:.1e} |")
        lines.append("")
    if payload.get("speed"):
        lines += ["## Training step speed (`distill_step`, cifar10-full students, synthetic images)", "",
                  "| engine | device | batch | timed batches | ms per batch | s per 50,000-image epoch |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in payload["speed"]:
            lines.append(f"| {r['engine']} | {r['device']} | {r['batch']} | {r['timed_batches']} | "
                         f"{r['s_per_batch'] * 1e3:.1f} | {r['s_per_full_epoch']:,.0f} |")
        lines.append("")
    if payload.get("paper_preset"):
        lines += ["## paper-cifar10, one epoch per stage on the data given", "",
                  "| stage | exit code | wall s | training images | epoch s | test accuracy | "
                  "one 50,000-image epoch, and the paper's epochs (extrapolated) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in payload["paper_preset"]:
            full = r["epoch_s"] * FULL_CIFAR_TRAIN / r["train_images"] if r["epoch_s"] and r["train_images"] else None
            est = f"{full:,.0f} s; x {r['paper_epochs']}: {full * r['paper_epochs'] / 3600:.1f} h" if full else "-"
            acc = f"{100 * r['test_accuracy']:.2f}%" if r["test_accuracy"] is not None else "-"
            ep = f"{r['epoch_s']:.0f}" if r["epoch_s"] else "-"
            lines.append(f"| {r['stage']} | {r['returncode']} | {r['wall_s']:.0f} | {r['train_images']:,} | {ep} | "
                         f"{acc} | {est} |")
        lines.append("")
    return "\n".join(lines)


def _write(out: Path, payload: dict[str, Any]) -> None:
    from sne_loihi.io import atomic_write_bytes, atomic_write_json

    atomic_write_json(out / "cuda_check.json", payload)
    atomic_write_bytes(out / "cuda_check.md", markdown(payload).encode())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 subset for the paper preset (else skipped)")
    p.add_argument("--device", default="cuda", help="the GPU (cpu only to try the script itself)")
    p.add_argument("--batches", type=int, default=10, help="timed GPU batches per speed row")
    p.add_argument("--cpu-batches", type=int, default=2, help="timed CPU batches per speed row")
    p.add_argument("--stage-timeout", type=float, default=240.0, help="seconds per paper-preset stage")
    p.add_argument("--max-train", type=int, default=0, help="paper preset: at most N training images (0 = all)")
    p.add_argument("--max-test", type=int, default=0, help="paper preset: at most N test images (0 = all)")
    p.add_argument("--skip", default="", help="parts to leave out: exactness,speed,paper")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from sne_loihi.config import comma_items
    from sne_loihi.device import resolve_device
    from sne_loihi.errors import SneError

    try:
        device = resolve_device(args.device)
        skip = set(comma_items(args.skip, "--skip")) if args.skip else set()
    except SneError as exc:
        raise SystemExit(f"error: {exc}") from None
    if skip - {"exactness", "speed", "paper"}:
        raise SystemExit(f"error: --skip names unknown parts {sorted(skip - {'exactness', 'speed', 'paper'})}")
    args.out = args.out.resolve()  # the paper preset's stages run in it
    if args.data_dir is not None:
        args.data_dir = args.data_dir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"machine": _machine(device), "command": " ".join(sys.argv)}
    if "exactness" not in skip:
        payload["exactness"] = exactness(device)
        _write(args.out, payload)
    if "speed" not in skip:
        payload["speed"] = speed(device, args.batches, args.cpu_batches)
        _write(args.out, payload)
    if "paper" not in skip and args.data_dir is not None:
        payload["paper_preset"] = paper_preset(args.data_dir, args.out, args.device, args.stage_timeout,
                                               args.max_train, args.max_test)
    _write(args.out, payload)
    print(f"wrote {args.out / 'cuda_check.md'}")


if __name__ == "__main__":
    main()
