"""Lava per-sample activation: cost of the in-graph decision process and cascade throughput.

Usage::

    python benchmarks/bench_cascade.py [RUN/ensemble.pt | EXPORT_DIR] [--samples 20] [--capacity 20]

Measures, in one process on the same samples: plain runs (all students) on a graph without
the cascade decision process and on one with it (its overhead), then the cascade at
threshold 0 (first student only), at a middle threshold and above 1 (every student), with
the mean number of students run, synaptic ops per sample and samples per second (all
stages, compilation excluded). Without a path an untrained 4-student ``digits_small``
ensemble and a random cascade head are used (speed does not depend on what was learned);
an export without a cascade head also gets a random one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lava import _export_dir  # noqa: E402


def _random_head(manifest: object) -> object:
    from sne_loihi.export import CascadeHead

    w, _ = manifest.head_arrays()
    rng = np.random.default_rng(0)
    return CascadeHead(weight=(rng.standard_normal(w.shape) * 2).tolist(), bias=[0.0] * w.shape[0],
                       order=list(range(len(manifest.students))), source="random (benchmark)")


def _steady(sim: object, x: np.ndarray, run: object) -> tuple[object, float]:
    run(sim, x)  # first run compiles
    t0 = time.perf_counter()
    result = run(sim, x)
    return result, len(x) / (time.perf_counter() - t0)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="RUN/ensemble.pt or an export folder")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--capacity", type=int, default=None, help="samples per Lava run (default: all)")
    args = parser.parse_args()

    from sne_loihi.export import load_manifest
    from sne_loihi.sim import Backend, EnsembleSimulator

    with tempfile.TemporaryDirectory() as tmp:
        manifest = load_manifest(_export_dir(args.path, Path(tmp)))
        head = manifest.cascade or _random_head(manifest)
        x = np.random.default_rng(0).random((args.samples, *manifest.input.shape_chw))
        cap = args.capacity or args.samples
        print(f"{len(manifest.students)} students, T={manifest.input.time_steps}, {args.samples} samples, "
              f"capacity {cap}, cascade head: {head.source or 'from the export'}, CPU fixed-point simulation")
        import lava.lib.dl.netx  # noqa: F401  (cold import kept out of the timings)

        plain = {}
        for with_decision in (False, True):
            with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=cap, cascade=with_decision,
                                   layout="tapped") as sim:  # the decision process exists in the tapped graph only
                _, plain[with_decision] = _steady(sim, x, lambda s, v: s.run(v))
        print(f"plain run, no decision process  : {plain[False]:7.2f} samples/s")
        print(f"plain run, with decision process: {plain[True]:7.2f} samples/s "
              f"({100 * (plain[False] / plain[True] - 1):+.1f}% time per sample)")
        with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=cap, layout="tapped") as sim:
            for threshold in (0.0, 0.9, 1.01):
                res, rate = _steady(sim, x, lambda s, v, t=threshold: s.run_cascade(v, t, head))
                print(f"cascade thr={threshold:<5g}: {rate:7.2f} samples/s, {res.students_run.mean():.2f} students/sample, "
                      f"{res.ops_n().mean():,.0f} ops/sample, stages per chunk {res.stages}")
            print(f"compilations: {sim.compilations}")


if __name__ == "__main__":
    main()
