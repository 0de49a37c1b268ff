"""Lava CPU simulation: Lava's own process models (``reference``) vs the fast engine.

Usage::

    python benchmarks/bench_lava.py [--cifar-samples 8] [--digits-samples 40] [--out benchmarks/results/bench_lava]

Builds two untrained ensembles (speed does not depend on what the weights learned; firing is
reported so the spike comparison means something): the CIFAR preset's 4 x ``vgg5mini``
(3x32x32, T=4, 4-bit input) and the digits preset's 4 x ``digits_small`` (1x8x8), exports
them to netx, and simulates the same random images with both engines in this one process,
each on one compiled graph holding all samples (``capacity`` = samples, the in-graph cascade
decision included as in the pipeline). Reported per engine: compile seconds (graph
compilation and start of Lava's processes), steady-state samples/s (the Lava run itself),
end-to-end samples/s (building the graph from the files, compiling, running, reading the
results), and whether both engines gave the same output spikes and op counts.
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread per Lava process (many processes, few cores)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ENGINES = ("reference", "fast")


def _untrained_export(out_dir: Path, arch: str, in_chw: tuple[int, int, int], features: int, seed: int) -> Path:
    """Export an untrained 4-student ensemble (no parity check: tests/test_lava_fast.py covers it)."""
    import torch

    from sne_loihi.config import StudentConfig
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.export import export_model
    from sne_loihi.partition import Partition

    torch.manual_seed(seed)
    per = features // 4
    partition = Partition.from_dict({"strategy": "fixed", "feature_dim": features,
                                     "groups": [list(range(i * per, (i + 1) * per)) for i in range(4)]})
    model = build_ensemble(StudentConfig(arch=arch, time_steps=4, input_bits=4), partition, in_chw, 10).eval()
    export_model(model, out_dir, partition=partition.to_dict(), in_shape_chw=in_chw,
                 class_names=[str(i) for i in range(10)], config={}, verify_samples=0)
    return out_dir


def _one_engine(export_dir: Path, x_nchw: np.ndarray, engine: str) -> tuple[dict[str, Any], Any]:
    from sne_loihi.sim import Backend, EnsembleSimulator

    t0 = time.perf_counter()
    with EnsembleSimulator(export_dir, backend=Backend.CPU, capacity=len(x_nchw), engine=engine) as sim:
        result = sim.run(x_nchw)
        steps = sim.graph.steps
    end_to_end = time.perf_counter() - t0
    n = len(x_nchw)
    return {
        "compile_s": round(result.compile_seconds, 2),
        "run_s": round(n / result.samples_per_second, 2),
        "steady_samples_per_s": round(result.samples_per_second, 4),
        "end_to_end_s": round(end_to_end, 2),
        "end_to_end_samples_per_s": round(n / end_to_end, 4),
        "lava_steps": steps,
        "ms_per_step": round(1000 * n / result.samples_per_second / steps, 1),
    }, result


def bench(name: str, export_dir: Path, samples: int) -> dict[str, Any]:
    """Both engines on ``samples`` random images of the export's shape."""
    from sne_loihi.export import load_manifest

    manifest = load_manifest(export_dir)
    x_nchw = np.random.default_rng(0).random((samples, *manifest.input.shape_chw))
    row: dict[str, Any] = {"ensemble": name, "students": len(manifest.students), "samples": samples,
                           "in_shape": list(manifest.input.shape_chw), "time_steps": manifest.input.time_steps}
    results = {}
    for engine in ENGINES:
        row[engine], results[engine] = _one_engine(export_dir, x_nchw, engine)
        print(f"  {name:7s} {engine:9s} {row[engine]}", flush=True)
    ref, fast = results["reference"], results["fast"]
    row["same_spikes"] = all(np.array_equal(a, b) for a, b in zip(ref.spikes_nft, fast.spikes_nft))
    row["same_ops"] = all(np.array_equal(a, b) for a, b in zip(ref.ops_nl, fast.ops_nl))
    row["output_firing"] = round(float(np.mean([s.mean() for s in ref.spikes_nft])), 4)
    row["ops_per_sample_per_layer"] = [np.round(o.mean(axis=0), 1).tolist() for o in ref.ops_nl]
    row["speedup_steady"] = round(row["fast"]["steady_samples_per_s"] / row["reference"]["steady_samples_per_s"], 1)
    row["speedup_end_to_end"] = round(row["fast"]["end_to_end_samples_per_s"]
                                      / row["reference"]["end_to_end_samples_per_s"], 1)
    return row


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The results as a markdown section."""
    lines = [
        "# Lava benchmark: Lava's own process models (reference) vs the fast engine",
        "",
        f"Measured {meta['date']} on this {meta['cpus']}-core CPU machine ({meta['note']}), both engines in one "
        "process, back to back, on the same exported untrained ensembles and the same random images; one compiled "
        "graph per engine holding all samples (capacity = samples, in-graph cascade decision included).",
        "",
        "```",
        f"python benchmarks/bench_lava.py --cifar-samples {meta['cifar_samples']} "
        f"--digits-samples {meta['digits_samples']}",
        "```",
        "",
        "| ensemble | engine | compile s | run s | ms / Lava step | steady samples/s | end-to-end samples/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for engine in ENGINES:
            r = row[engine]
            lines.append(f"| {row['ensemble']} ({row['students']} students, {row['samples']} samples) | {engine} | "
                         f"{r['compile_s']} | {r['run_s']} | {r['ms_per_step']} | {r['steady_samples_per_s']:.3g} | "
                         f"{r['end_to_end_samples_per_s']:.3g} |")
    lines += ["", "| ensemble | speed-up steady | speed-up end to end | same spikes | same ops | output firing | "
              "ops per sample per layer (student 0, Lava counters) |", "|---|---:|---:|---|---|---:|---|"]
    for row in rows:
        lines.append(f"| {row['ensemble']} | {row['speedup_steady']}x | {row['speedup_end_to_end']}x | "
                     f"{row['same_spikes']} | {row['same_ops']} | {row['output_firing']} | "
                     f"{row['ops_per_sample_per_layer'][0]} |")
    lines += [
        "",
        "End to end = building the graph from the netx files + compiling + the run + reading the records. "
        "Steady = the Lava run alone (what `SimResult.samples_per_second` reports; compilation is reported "
        "apart in `compile_seconds`). Every Lava run has `flush` extra steps (the deepest network's depth rounded "
        "up to T) so larger capacities amortise them.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run both ensembles with both engines, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-samples", type=int, default=8)
    parser.add_argument("--digits-samples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_lava")
    parser.add_argument("--note", default="other jobs may share the 2 cores", help="machine note for the report")
    args = parser.parse_args()
    if args.cifar_samples < 1 or args.digits_samples < 1:
        parser.error("sample counts must be >= 1")

    import torch

    torch.set_num_threads(1)
    import lava.lib.dl.netx  # noqa: F401  (a cold import takes seconds: keep it out of the timing)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cifar = _untrained_export(Path(tmp) / "cifar", "vgg5mini", (3, 32, 32), 512, seed=0)
        digits = _untrained_export(Path(tmp) / "digits", "digits_small", (1, 8, 8), 64, seed=0)
        print("4 x vgg5mini (CIFAR preset) and 4 x digits_small (digits preset), T=4, 4-bit input, CPU fixed point")
        rows.append(bench("cifar", cifar, args.cifar_samples))
        rows.append(bench("digits", digits, args.digits_samples))
    meta = {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(), "note": args.note,
            "python": platform.python_version(), "cifar_samples": args.cifar_samples,
            "digits_samples": args.digits_samples}
    for row in rows:
        print(f"{row['ensemble']:7s} speed-up steady {row['speedup_steady']}x, end to end {row['speedup_end_to_end']}x, "
              f"same spikes {row['same_spikes']}, same ops {row['same_ops']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, meta))
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
