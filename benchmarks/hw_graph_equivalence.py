"""Check the hardware-shaped graph against the tapped reference graph on an export.

Usage::

    python benchmarks/hw_graph_equivalence.py RUN/export [--samples 20] [--capacity 10]
        [--thresholds 0,0.6,0.9,1.01] [--data digits|cifar10] [--data-dir DIR] [--head RUN/cascade_head.pt]

Runs every non-empty active set and every cascade threshold on the same test images in both
graphs (CPU, fixed point) and prints the number of differing output spikes, op counts,
cascade decisions and stage counts (the contract: all 0). Not a timing benchmark.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np


def _images(name: str, data_dir: str | None, samples: int) -> np.ndarray:
    from sne_loihi.config import DataConfig
    from sne_loihi.data import DATASETS

    cfg = DataConfig(name=name, data_dir=data_dir) if data_dir else DataConfig(name=name)
    return DATASETS.get(name)(cfg, 0).x_test_nchw[:samples].float().numpy()


def _diff(a, b) -> tuple[int, int]:  # noqa: ANN001
    spikes = sum(int(np.count_nonzero(x != y)) for x, y in zip(a.spikes_nft, b.spikes_nft))
    ops = sum(int(np.count_nonzero(x != y)) for x, y in zip(a.ops_nl, b.ops_nl))
    return spikes, ops


def main() -> None:
    """Run both graphs and print the differences."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--capacity", type=int, default=10)
    ap.add_argument("--thresholds", default="0,0.6,0.9,1.01")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--head", type=Path, default=None, help="cascade head file (default: the export's)")
    args = ap.parse_args()

    from sne_loihi.sim import Backend, EnsembleSimulator

    x = _images(args.data, args.data_dir, args.samples)
    with EnsembleSimulator(args.export, backend=Backend.CPU, capacity=args.capacity, layout="tapped") as tapped, \
            EnsembleSimulator(args.export, backend=Backend.CPU, capacity=args.capacity) as hardware:
        k = tapped.num_students
        head = None
        if args.head is not None:
            from sne_loihi.ensemble.cascade import load_cascade_head
            from sne_loihi.export import CascadeHead

            linear, order = load_cascade_head(args.head, k)
            head = CascadeHead.from_linear(linear, order, source=str(args.head))
        total = [0, 0]
        for r in range(1, k + 1):
            for active in itertools.combinations(range(k), r):
                d = _diff(tapped.run(x, active=active), hardware.run(x, active=active))
                total = [total[0] + d[0], total[1] + d[1]]
        print(f"{2 ** k - 1} active sets x {len(x)} samples: {total[0]} differing output spikes, {total[1]} differing op counts")
        for thr in (float(v) for v in args.thresholds.split(",")):
            a, b = tapped.run_cascade(x, thr, head), hardware.run_cascade(x, thr, head)
            s, o = _diff(a, b)
            decisions = int(np.count_nonzero(a.ran_nk != b.ran_nk))
            print(f"cascade threshold {thr:g}: {decisions} differing decisions, stages {a.stages} vs {b.stages}, "
                  f"{s} differing spikes, {o} differing op counts; students/sample {b.students_run.mean():.2f}")
        print(f"compilations: tapped {tapped.compilations}, hardware-shaped {hardware.compilations}")


if __name__ == "__main__":
    main()
