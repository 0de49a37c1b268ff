"""Decoding an image tree once, then reading it from the cache (the ``imagefolder`` data set).

Usage::

    python benchmarks/bench_imagefolder.py [--source ../shared/data/cifar10-images.tar.gz]
        [--out benchmarks/results] [--rounds 3]

In one process: ``--rounds`` times (a) decode the whole source with an empty cache (every
JPEG through Pillow, read from the archive without extracting it, arrays + manifest written)
and (b) load it again from that cache; then, for comparison, the CIFAR-10 python-batch loader
on the shared subset (2,000 + 10,000 images). Each time is the whole ``load_dataset`` call
(float32 NCHW tensors ready for training). Writes ``bench_imagefolder.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "cifar10-images.tar.gz"
SUBSET = REPO.parent / "shared" / "data" / "cifar10-subset"


def cpu_model() -> str:
    """The CPU's model name (``lscpu``)."""
    from machine import cpu_name

    return cpu_name()


def main() -> None:
    """Measure, print, write the Markdown and JSON reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from sne_loihi.config import DataConfig
    from sne_loihi.data import load_dataset

    torch.set_num_threads(args.threads)
    decode, cached, n_images, shape = [], [], 0, None
    for _ in range(args.rounds):
        cache = Path(tempfile.mkdtemp(prefix="bench-imagefolder-"))
        try:
            cfg = DataConfig(name="imagefolder", data_dir=str(args.source), cache_dir=str(cache))
            t = time.perf_counter()
            data = load_dataset(cfg)
            decode.append(time.perf_counter() - t)
            t = time.perf_counter()
            again = load_dataset(cfg)
            cached.append(time.perf_counter() - t)
            if not torch.equal(data.x_train_nchw, again.x_train_nchw) or not torch.equal(data.y_test, again.y_test):
                raise SystemExit("error: the cached reload differs from the decode")
            n_images, shape = len(data.y_train) + len(data.y_test), data.in_shape
            cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    batches = []
    if SUBSET.is_dir():
        for _ in range(args.rounds):
            t = time.perf_counter()
            sub = load_dataset(DataConfig(name="cifar10", data_dir=str(SUBSET)))
            batches.append(time.perf_counter() - t)
        n_subset = len(sub.y_train) + len(sub.y_test)
    med = statistics.median
    result = {
        "cpu": cpu_model(), "threads": args.threads, "source": args.source.name, "images": n_images,
        "shape_chw": list(shape), "rounds": args.rounds, "decode_s": decode, "cached_reload_s": cached,
        "decode_median_s": med(decode), "cached_median_s": med(cached), "speedup": med(decode) / med(cached),
        "cache_bytes": cache_bytes,
        "python_batches_subset_s": batches, "python_batches_subset_images": n_subset if batches else 0,
    }
    lines = [
        "# Image-tree loader: decode once, then the cache",
        "",
        f"CPU: {result['cpu']}, {args.threads} threads. Source `{args.source.name}`: {n_images:,} images, "
        f"{'x'.join(map(str, shape))}. {args.rounds} rounds in one process, medians; each time is the whole "
        "`load_dataset` call (float32 NCHW tensors ready).",
        "",
        "| path | median (s) | all rounds (s) | images/s |",
        "|---|---|---|---|",
        f"| decode from the archive (Pillow), cache written | {med(decode):.2f} | "
        f"{', '.join(f'{v:.2f}' for v in decode)} | {n_images / med(decode):,.0f} |",
        f"| cached reload (`.npy`) | {med(cached):.2f} | {', '.join(f'{v:.2f}' for v in cached)} | "
        f"{n_images / med(cached):,.0f} |",
    ]
    if batches:
        lines.append(f"| CIFAR-10 python batches, shared subset ({n_subset:,} images) | {med(batches):.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in batches)} | {n_subset / med(batches):,.0f} |")
    lines += ["", f"Cached reload is **{result['speedup']:.1f}x** faster than decoding; the cache takes "
              f"{cache_bytes / 2**20:.0f} MiB (uint8 NHWC arrays + manifest)."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_imagefolder.md").write_text("\n".join(lines) + "\n")
    (args.out / "bench_imagefolder.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
