"""What Loihi-exactness costs: the same student recipe with SLAYER's fixed-point CUBA students
(what the toolkit exports) and SpikingJelly's float LIF students (the paper's neuron), over
several seeds, distilled from one teacher.

Usage::

    python benchmarks/exactness_cost.py --teacher-run RUN --seeds 0,1,2 --epochs 20 --out OUT

``RUN`` is a run folder holding ``teacher.pt`` and ``config.toml`` (e.g. from ``sne teacher
--preset cpu-cifar10-bn --dataset cifar10 --data-dir SUBSET``); its config is the recipe. Per
neuron library L and seed S, ``OUT/L-seedS`` gets a copy of the teacher and its config, and
``sne train`` distils the students there (``--resume`` when it was interrupted; a finished one
is kept). Both libraries train the same architecture, width, T, batch norm, KD weight,
optimiser, schedule, augmentation and data order. What differs is the neuron and its numbers:
SLAYER students take the 4-bit quantised input, have 8-bit weights and fixed-point CUBA
dynamics, and their batch norm is folded into neuron biases at the end (the stored, exported
ensemble is scored); SpikingJelly students take the float image, keep float weights, LIF
(tau 2) and their float batch norm.

Writes ``OUT/exactness_cost.{md,json,png}``: test accuracy per seed and library, the paired
difference (SLAYER - SpikingJelly) with its mean, SEM and 95% t interval, the wall and CPU
time of each run (summed over its attempts when it was interrupted and resumed), and the
learning curves.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LIBRARIES = ("slayer", "spikingjelly")
#: What a student run needs from the teacher's run folder (the features and partition are
#: recomputed when absent, identically for every run).
TEACHER_FILES = ("config.toml", "teacher.pt", "metrics_teacher.jsonl", "teacher_features.pt", "partition.json")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher-run", type=Path, required=True, help="run folder with teacher.pt and config.toml")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, required=True, help="student epochs (both libraries)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another config key for every run (both libraries), e.g. data.max_train=2000")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from what OUT holds")
    return p.parse_args(argv)


def run_one(teacher_run: Path, run_dir: Path, library: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Distil the students of one (library, seed) in ``run_dir`` (resumed if interrupted)."""
    from sne_loihi.run_files import ENSEMBLE_FILE

    done = run_dir / "result.json"
    if done.is_file():
        return finished_result(run_dir)
    fresh = not run_dir.exists()
    if fresh:
        run_dir.mkdir(parents=True)
        for name in TEACHER_FILES:
            if (teacher_run / name).is_file():
                shutil.copy2(teacher_run / name, run_dir / name)
    cmd = [sys.executable, "-m", "sne_loihi", "train", str(run_dir), "--seed", str(seed),
           "--student-epochs", str(args.epochs), "--threads", str(args.threads), "--no-progress",
           "--set", f"student.neuron_library={json.dumps(library)}"]
    cmd += [a for kv in args.set for a in ("--set", kv)]
    if not fresh and any(run_dir.glob(f"{ENSEMBLE_FILE}*")):
        cmd.append("--resume")
    timing_file = run_dir / "timing.json"  # summed over every attempt (an interrupted run resumes)
    spent = json.loads(timing_file.read_text()) if timing_file.is_file() else {"wall_s": 0.0, "cpu_s": 0.0, "attempts": 0}
    t0, c0 = time.time(), _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    spent = {"wall_s": spent["wall_s"] + time.time() - t0, "cpu_s": spent["cpu_s"] + _children_cpu() - c0,
             "attempts": spent["attempts"] + 1}
    timing_file.write_text(json.dumps(spent))
    wall, cpu = spent["wall_s"], spent["cpu_s"]
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{library} seed {seed}: sne train failed: {tail}")
    from sne_loihi.analysis.runreport import epoch_time_totals
    from sne_loihi.ensemble.checkpoint import load_ensemble

    loaded = load_ensemble(run_dir / ENSEMBLE_FILE)
    fold = loaded.fold
    accuracy = (float(fold.get("test_accuracy_fine_tuned", fold["test_accuracy_folded"])) if fold
                else float(loaded.history[-1]["test_accuracy"]))
    result = {"library": library, "seed": seed, "test_accuracy": accuracy, "wall_s": wall, "cpu_s": cpu,
              "attempts": spent["attempts"], "epoch_time": epoch_time_totals(loaded.history),
              "epochs": loaded.epoch, "fold": fold,
              "curve": [(h["epoch"], h.get("train_accuracy"), h.get("test_accuracy")) for h in loaded.history]}
    done.write_text(json.dumps(result, indent=1))
    return result


def finished_result(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/result.json``, with ``epoch_time`` (the sums of its epochs' recorded seconds)
    read from the run's stored history when the file predates that field."""
    result = json.loads((run_dir / "result.json").read_text())
    if "epoch_time" in result or not (run_dir / "ensemble.pt").is_file():
        return result
    from sne_loihi.analysis.runreport import epoch_time_totals
    from sne_loihi.ensemble.checkpoint import load_ensemble

    return {**result, "epoch_time": epoch_time_totals(load_ensemble(run_dir / "ensemble.pt").history)}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _last_epoch_accuracy(result: dict[str, Any]) -> float:
    """The last training epoch's test accuracy (SLAYER: before batch norm is folded)."""
    return float(result["curve"][-1][2])


def paired(results: list[dict[str, Any]]) -> dict[str, Any]:
    """SLAYER - SpikingJelly test accuracy per seed, with mean, SEM and a 95% t interval, and the
    split of the mean into training (last epochs compared) and the fold (SLAYER's stored minus last)."""
    from scipy import stats

    by = {(r["library"], r["seed"]): r["test_accuracy"] for r in results}
    seeds = sorted({r["seed"] for r in results if ("slayer", r["seed"]) in by and ("spikingjelly", r["seed"]) in by})
    diffs = [100 * (by[("slayer", s)] - by[("spikingjelly", s)]) for s in seeds]
    out: dict[str, Any] = {"seeds": seeds, "difference_points": diffs}
    last = {(r["library"], r["seed"]): _last_epoch_accuracy(r) for r in results}
    if seeds:
        training = [100 * (last[("slayer", s)] - last[("spikingjelly", s)]) for s in seeds]
        fold = [100 * (by[("slayer", s)] - last[("slayer", s)]) for s in seeds]
        out["split"] = {"training_points": sum(training) / len(seeds), "fold_points": sum(fold) / len(seeds),
                        "training_points_per_seed": training, "fold_points_per_seed": fold}
    if len(diffs) >= 2:
        mean = sum(diffs) / len(diffs)
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
        sem = sd / math.sqrt(len(diffs))
        half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sem
        out.update(mean=mean, sem=sem, ci95=(mean - half, mean + half))
    elif diffs:
        out.update(mean=diffs[0])
    return out


def write_report(out: Path, results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """``exactness_cost.{md,json,png}`` in ``out``."""
    from sne_loihi.analysis.plots import _pyplot, save_figure

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_name

    summary = paired(results)
    lines = [
        "# The cost of Loihi-exactness: SLAYER fixed-point CUBA vs SpikingJelly float LIF students", "",
        f"Teacher run `{args.teacher_run.name}`; {args.epochs} student epochs; every other setting is the teacher "
        f"run's config{' with ' + ', '.join(args.set) if args.set else ''}. CPU: {cpu_name()}, "
        f"{args.threads or 'default'} torch threads. SLAYER: the stored (folded, exported) ensemble's test "
        "accuracy; SpikingJelly: the last epoch's.", "",
        "Run time two ways: `sne train`'s wall and CPU time summed over the attempts this script "
        "started (an attempt ended by a session stop is not counted), and the epochs' own records "
        "(`seconds`: wall, including any time the run was paused; `cpu_seconds`: the process's CPU, "
        "recorded since a later version, so some epochs may lack it).", "",
        "| library | seed | test acc. (%) | last epoch, before any fold (%) | wall (min) | CPU (min) "
        "| epochs' wall (min) | epochs' CPU (min, epochs with a record) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(results, key=lambda r: (r["library"], r["seed"])):
        t = r.get("epoch_time") or {}
        timed = (f"{t['seconds'] / 60:.1f} | {t['cpu_seconds'] / 60:.1f}"
                 f" ({t.get('cpu_timed', t['timed'])} of {t['epochs']})") if t else "- | -"
        lines.append(f"| {r['library']} | {r['seed']} | {100 * r['test_accuracy']:.2f} | "
                     f"{100 * _last_epoch_accuracy(r):.2f} | {r['wall_s'] / 60:.1f} | {r['cpu_s'] / 60:.1f} | {timed} |")
    lines += ["", "Paired difference SLAYER - SpikingJelly (points), per seed: "
              + ", ".join(f"{d:+.2f}" for d in summary["difference_points"])]
    if "sem" in summary:
        lo, hi = summary["ci95"]
        lines.append(f"Mean {summary['mean']:+.2f} +/- {summary['sem']:.2f} (SEM), 95% t interval [{lo:+.2f}, {hi:+.2f}].")
    split = summary.get("split")
    if split:
        lines += ["", "Where the points go (means over the paired seeds): training with SLAYER's neuron, 4-bit input "
                  f"and 8-bit weights {split['training_points']:+.2f}; folding batch norm into the neuron biases "
                  f"{split['fold_points']:+.2f}."]
    lines += ["", "![learning curves](exactness_cost.png)"]
    (out / "exactness_cost.md").write_text("\n".join(lines) + "\n")
    (out / "exactness_cost.json").write_text(json.dumps({"results": results, "paired": summary,
                                                         "epochs": args.epochs, "set": args.set}, indent=1))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        epochs = [c[0] for c in r["curve"]]
        ax.plot(epochs, [100 * c[2] for c in r["curve"]], color="C0" if r["library"] == "slayer" else "C1",
                alpha=0.8, label=f"{r['library']} seed {r['seed']}")
    ax.set_title("Student ensemble test accuracy per epoch (before the fold)", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(plt, fig, out / "exactness_cost.png")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.teacher_run / "teacher.pt").is_file():
        raise SystemExit(f"error: {args.teacher_run} holds no teacher.pt")
    from sne_loihi.config import comma_items
    from sne_loihi.errors import ConfigError

    try:
        seeds = [int(s) for s in comma_items(args.seeds, "--seeds")]
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    except ValueError:
        raise SystemExit(f"error: --seeds expects comma-separated integers, got {args.seeds!r}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in seeds:
        for library in LIBRARIES:
            run_dir = args.out / f"{library}-seed{seed}"
            if args.report_only:
                if (run_dir / "result.json").is_file():
                    results.append(finished_result(run_dir))
                continue
            print(f"{library} seed {seed} ...", flush=True)
            r = run_one(args.teacher_run, run_dir, library, seed, args)
            print(f"{library} seed {seed}: {100 * r['test_accuracy']:.2f}% ({r['wall_s'] / 60:.1f} min)", flush=True)
            results.append(r)
    write_report(args.out, results, args)
    print(f"report: {args.out / 'exactness_cost.md'}")


if __name__ == "__main__":
    main()
