"""Lava samples per second: one compiled graph for all samples vs one compilation per sample.

Usage::

    python benchmarks/bench_lava.py [RUN/ensemble.pt | EXPORT_DIR] [--samples 20] [--capacity 20]

Without a path an untrained 4-student ``digits_small`` ensemble is built (8x8 digits shape,
random pixels: speed does not depend on what the weights learned). Both ways run the same
networks on the same samples in this one process and the ratio is printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _untrained_export(out_dir: Path) -> Path:
    """Export an untrained 4-student digits_small ensemble (no parity check: a benchmark)."""
    from sne_loihi.config import StudentConfig
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.export import export_model
    from sne_loihi.partition import Partition

    partition = Partition.from_dict({"strategy": "fixed", "feature_dim": 64,
                                     "groups": [list(range(i * 16, (i + 1) * 16)) for i in range(4)]})
    model = build_ensemble(StudentConfig(arch="digits_small"), partition, (1, 8, 8), 10).eval()
    export_model(model, out_dir, partition=partition.to_dict(), in_shape_chw=(1, 8, 8),
                 class_names=[str(i) for i in range(10)], config={}, verify_samples=0)
    return out_dir


def _export_dir(path: Path | None, tmp: Path) -> Path:
    if path is None:
        return _untrained_export(tmp / "export")
    if path.is_dir() and (path / "manifest.json").is_file():
        return path
    from sne_loihi.export import export_ensemble

    return export_ensemble(path, tmp / "export", verify_samples=0).directory


def main() -> None:
    """Measure and print both rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="RUN/ensemble.pt or an export folder")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--capacity", type=int, default=None, help="samples per Lava run (default: all)")
    args = parser.parse_args()

    from sne_loihi.export import load_manifest
    from sne_loihi.sim import Backend, EnsembleSimulator

    with tempfile.TemporaryDirectory() as tmp:
        manifest = load_manifest(_export_dir(args.path, Path(tmp)))
        rng = np.random.default_rng(0)
        x_nchw = rng.random((args.samples, *manifest.input.shape_chw))
        print(f"{len(manifest.students)} students, T={manifest.input.time_steps}, "
              f"{manifest.input.bits}-bit input, {args.samples} samples, CPU fixed-point simulation")

        import lava.lib.dl.netx  # noqa: F401  (a cold import takes ~13 s here: keep it out of the timing)

        t0 = time.perf_counter()
        with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=args.capacity or args.samples) as sim:
            one = sim.run(x_nchw)
            steady = sim.run(x_nchw)
        one_graph_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        per_sample = []
        for n in range(args.samples):
            with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=1) as sim:
                per_sample.append(sim.run(x_nchw[n:n + 1]).spikes_nft)
        per_sample_s = time.perf_counter() - t0

        same = all(np.array_equal(one.spikes_nft[k][n], per_sample[n][k][0])
                   for n in range(args.samples) for k in range(len(manifest.students)))
        rate_one = 2 * args.samples / one_graph_s
        rate_per = args.samples / per_sample_s
        print(f"one compiled graph   : {rate_one:8.2f} samples/s ({2 * args.samples} samples incl. 1 compile, "
              f"{one_graph_s:.1f} s); steady state {steady.samples_per_second:.2f} samples/s")
        print(f"compile per sample   : {rate_per:8.2f} samples/s ({args.samples} compiles, {per_sample_s:.1f} s)")
        print(f"ratio                : {rate_one / rate_per:8.1f}x incl. the one compile, "
              f"{steady.samples_per_second / rate_per:.1f}x steady state   (same spikes both ways: {same})")


if __name__ == "__main__":
    main()
