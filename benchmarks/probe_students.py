"""Why do the CIFAR-10 students plateau? Short distillation probes of named recipe variants.

Usage::

    python benchmarks/probe_students.py [--out /work/probe/students/runs]
        [--teacher /work/probe/teacher_run/teacher.pt] [--data cifar10-subset|imagefolder]
        [--epochs 5] [--variants base,noaug,width1,...] [--variant NAME:KEY=VALUE,KEY=VALUE ...]
        [--set KEY=VALUE ...] [--max-train 10000] [--max-test 2000] [--report-only] [--list]

Every variant is a base preset (``--preset``; by default ``cpu-cifar10-bn`` for the subset and
``cifar10-full`` for the image tree: 4 x vgg5mini, width 0.5, T = 3, 4-bit input, batch norm
folded, alpha 5, Adam 3e-3 with a per-epoch cosine to 0 over ``train.epochs``, batch 64; they
differ in the training shift, 4 and 2 pixels) with the data below, the given teacher (its ``[teacher]`` section copied from the
teacher checkpoint), ``train.epochs = --epochs`` and the variant's ``KEY=VALUE`` overrides
(the dotted config keys of ``sne --set``). Each runs in its own folder ``OUT/NAME`` through
the project's own training stage (:func:`sne_loihi.train.stages.students_stage`, what
``sne train --run-dir OUT/NAME`` runs), in a child process, one after the other:

* the teacher checkpoint is copied into the folder (``teacher.pt``), so ``students_stage``
  finds and checks it as ``sne train`` does (``_teacher_for``: refused when it was trained on
  another data set; see ``--data``);
* a finished variant (``probe_done.json``) is skipped, an unfinished one (``ensemble.pt``
  present) is continued with ``resume`` (the run's own checkpoint: model, optimiser, schedule,
  RNG);
* every epoch's train accuracy (on the augmented batches, batch norm in training mode), test
  accuracy (batch norm, before the fold), CE and KD losses come from the run's
  ``metrics_students.jsonl``; the probe adds ``epoch_times.jsonl`` (wall and process-CPU
  seconds of each epoch, test evaluation included). A paused (SIGSTOP) or CPU-shared epoch
  shows as ``cpu / wall`` well below the thread count: the table's s/epoch is the median over
  epochs with ``cpu / wall >= 0.75 * threads`` (marked when there are none);
* at the end (after the fold): the folded ensemble's test accuracy, and its accuracy on
  ``--train-eval`` clean (un-augmented) training images, the measure of underfitting.

``--data``: ``imagefolder`` reads the whole CIFAR-10 JPEG tree
(``/work/shared/data/cifar10-images.tar.gz``, stratified ``--max-train`` / ``--max-test``
subsets, decoded once into ``--cache-dir``); ``cifar10-subset`` reads the 10,000 / 2,000
image python-batch subset of the same JPEG re-encoding (``/work/shared/data/cifar10-subset``,
the data of every earlier ``cpu-cifar10-bn`` result) with the ``cifar10`` loader. A teacher
trained as data set ``cifar10`` (``benchmarks/probe_teacher.py``) is refused for
``imagefolder`` runs by the project's own check (data set name differs), so use
``cifar10-subset`` with it; ``--data auto`` (default) picks ``imagefolder`` when the teacher
was trained on it, else ``cifar10-subset``.

Writes ``benchmarks/results/probe_students/NAME.{md,json,png}`` (``--report-name``, default
``probe_students``) after every variant (``--report-only``: only that, from the folders present).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "probe_students"
#: The base preset of each data source (``--preset`` overrides it): the subset's recipe, or the
#: full-data recipe for the whole image tree (whose data set, ``imagefolder``, the subset's
#: preset refuses).
PRESETS = {"cifar10-subset": "cpu-cifar10-bn", "imagefolder": "cifar10-full"}
DONE_FILE = "probe_done.json"
TIMES_FILE = "epoch_times.jsonl"
METRICS_FILE = "metrics_students.jsonl"

#: Named variants, in the order they run (most informative first): overrides of the base.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "noaug": {"data.augment": False},
    "width1": {"student.width": 1.0},
    "T6": {"student.time_steps": 6},
    "alpha20": {"ensemble.alpha": 20.0},
    "alpha1": {"ensemble.alpha": 1.0},
    "lr1e-2": {"train.lr": 1e-2},
    "bits8": {"student.input_bits": 8},
    "taugrad0.01": {"student.neuron.tau_grad": 0.01},
    "taugrad0.003": {"student.neuron.tau_grad": 0.003},
    "taugrad0.01-scalegrad1": {"student.neuron.tau_grad": 0.01, "student.neuron.scale_grad": 1.0},
    "taugrad0.006": {"student.neuron.tau_grad": 0.006},
    "taugrad0.01-lr1e-3": {"student.neuron.tau_grad": 0.01, "train.lr": 1e-3},
    "taugrad0.01-alpha1": {"student.neuron.tau_grad": 0.01, "ensemble.alpha": 1.0},
    "taugrad0.01-bits8": {"student.neuron.tau_grad": 0.01, "student.input_bits": 8},
    "taugrad0.01-alpha0": {"student.neuron.tau_grad": 0.01, "ensemble.alpha": 0.0},
    "scalegrad1": {"student.neuron.scale_grad": 1.0},
    "alpha0": {"ensemble.alpha": 0.0},
    "width1-T6": {"student.width": 1.0, "student.time_steps": 6},
}

DATA_SOURCES = {
    "imagefolder": {"data.name": "imagefolder", "data.data_dir": "/work/shared/data/cifar10-images.tar.gz"},
    "cifar10-subset": {"data.name": "cifar10", "data.data_dir": "/work/shared/data/cifar10-subset"},
}


def cpu_model() -> str:
    """The CPU's model name as lscpu reports it, with the number of CPUs."""
    from machine import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} CPUs"


def parse_value(text: str) -> tuple[str, Any]:
    from sne_loihi.config import parse_override

    return parse_override(text)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` (``NAME:`` alone: the base)."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--variant expects NAME:KEY=VALUE[,KEY=VALUE], got {text!r}")
    return name, dict(parse_value(item) for item in rest.split(",") if item.strip())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A probe's metrics log, ``[]`` before its first epoch (a partial last line is left out)."""
    from sne_loihi.json_files import read_jsonl_file

    return read_jsonl_file(path, "metrics log") if path.is_file() else []


# --------------------------------------------------------------------------- child process


def teacher_data_name(teacher: Path) -> tuple[str, dict[str, Any]]:
    """The data set name the teacher checkpoint was trained on, and its ``[teacher]`` section."""
    from sne_loihi.io import load_checkpoint

    ckpt = load_checkpoint(teacher)
    cfg = ckpt["config"]
    return cfg["data"]["name"], cfg["teacher"]


def resolve_config(args: argparse.Namespace, data: str, overrides: dict[str, Any], teacher_section: dict[str, Any]):
    """The variant's RunConfig: preset < teacher section < data < probe defaults < overrides."""
    from sne_loihi.config import resolve

    tree: dict[str, Any] = {f"teacher.{k}": v for k, v in teacher_section.items()}
    tree.update(DATA_SOURCES[data])
    tree.update({"data.max_train": args.max_train, "data.max_test": args.max_test,
                 "train.epochs": args.epochs, "train.threads": args.threads, "train.device": "cpu",
                 "train.seed": args.seed})
    if data == "imagefolder":
        tree["data.cache_dir"] = args.cache_dir
    tree.update(dict(parse_value(s) for s in args.set or []))
    tree.update(overrides)
    return resolve(None, None, tree, preset_name=args.preset or PRESETS[data])


def child(args: argparse.Namespace) -> int:
    """Train one variant in ``args.out / args.child`` (the child process)."""
    import torch

    from sne_loihi.run import ENSEMBLE_FILE, TEACHER_FILE, Run
    from sne_loihi.train import students as students_mod
    from sne_loihi.train.stages import students_stage

    name, overrides = args.child, json.loads(args.child_overrides)
    run_dir = args.out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    teacher = run_dir / TEACHER_FILE
    if not teacher.exists():
        shutil.copy2(args.teacher, teacher)  # keeps the mtime: the feature cache's key
    data_name, teacher_section = teacher_data_name(teacher)
    cfg = resolve_config(args, args.data, overrides, teacher_section)
    resume = (run_dir / ENSEMBLE_FILE).exists()
    print(f"[{name}] {'resuming' if resume else 'starting'} in {run_dir}: overrides {overrides or '{}'}; "
          f"data {cfg.data.name} ({cfg.data.data_dir}, max_train {cfg.data.max_train}, max_test {cfg.data.max_test}); "
          f"student {cfg.student.arch} width {cfg.student.width} T {cfg.student.time_steps} bits "
          f"{cfg.student.input_bits} norm {cfg.student.norm.value}; alpha {cfg.ensemble.alpha}; "
          f"{cfg.train.optimizer.value} lr {cfg.train.lr} x {cfg.train.epochs} epochs (cosine), batch "
          f"{cfg.train.batch_size}; teacher {cfg.teacher.arch} (trained on {data_name})", flush=True)

    # Per-epoch wall and process-CPU time (test evaluation included), in a side file.
    times = run_dir / TIMES_FILE
    original = students_mod._DistillLoop.epoch

    def timed_epoch(self, model, ddp, optimizer, number):  # noqa: ANN001
        w0, c0 = time.time(), time.process_time()
        record = original(self, model, ddp, optimizer, number)
        wall, cpu = time.time() - w0, time.process_time() - c0
        with open(times, "a") as fh:
            fh.write(json.dumps({"epoch": number, "wall_s": wall, "cpu_s": cpu, "end": time.time()}) + "\n")
        print(f"\n[{name}] epoch {number}/{cfg.train.epochs}: train {record['train_accuracy']:.4f} test "
              f"{record['test_accuracy']:.4f} ce {record['ce']:.4f} kd {record['kd']:.4f} wall {wall:.0f} s "
              f"(cpu {cpu:.0f} s)", flush=True)
        return record

    students_mod._DistillLoop.epoch = timed_epoch
    w0 = time.time()
    result = students_stage(Run(run_dir, cfg), resume=resume, progress=not args.no_progress)
    stage_s = time.time() - w0

    # The folded ensemble on clean training images: how well does it fit what it trained on?
    from sne_loihi.data import stratified_subset
    from sne_loihi.ensemble.evaluate import evaluate_ensemble

    data = Run(run_dir, cfg).data()
    idx = stratified_subset(data.y_train, args.train_eval, cfg.train.seed)
    model = result.model.eval()
    w1 = time.time()
    with torch.no_grad():
        train_clean = evaluate_ensemble(model, data.x_train_nchw[idx], data.y_train[idx], batch_size=64,
                                        count_ops=False).accuracy
    done = {
        "variant": name, "overrides": overrides, "stage_wall_s": stage_s, "train_clean_samples": len(idx),
        "train_clean_accuracy_folded": float(train_clean), "train_clean_eval_s": time.time() - w1,
        "fold": result.fold, "test_accuracy_final": result.test_accuracy, "data_name": cfg.data.name,
        "teacher_arch": cfg.teacher.arch, "teacher_data": data_name,
        "config": {"width": cfg.student.width, "time_steps": cfg.student.time_steps,
                   "input_bits": cfg.student.input_bits, "alpha": cfg.ensemble.alpha, "lr": cfg.train.lr,
                   "epochs": cfg.train.epochs, "augment": cfg.data.augment, "batch_size": cfg.train.batch_size,
                   "tau_grad": cfg.student.neuron.tau_grad, "scale_grad": cfg.student.neuron.scale_grad,
                   "max_train": cfg.data.max_train, "max_test": cfg.data.max_test},
    }
    (run_dir / DONE_FILE).write_text(json.dumps(done, indent=1))
    print(f"[{name}] done: folded test {result.test_accuracy:.4f}, clean train ({len(idx)} images) "
          f"{train_clean:.4f}, stage {stage_s:.0f} s", flush=True)
    return 0


def ceiling(run_dir: Path, levels: list[int]) -> dict[str, Any]:
    """What the students could reach if they matched the teacher exactly at rate resolution T:
    a linear head (logistic regression, like the ensemble's head) trained on the scaled teacher
    features of the training images rounded to multiples of 1/T, its test accuracy, and the KD
    loss that rounding alone leaves (``sum_i MSE``, the floor of the students' KD at that T).
    Uses the run folder's teacher, data and feature cache; writes ``RESULTS/ceiling.json``."""
    import torch

    from sne_loihi.ensemble import fit_feature_scale, scale_features
    from sne_loihi.partition import Partition
    from sne_loihi.run import Run
    from sne_loihi.train.stages import cached_teacher_features
    from sne_loihi.train.teacher import teacher_features

    torch.manual_seed(0)
    run = Run(run_dir)
    cfg, data = run.config, run.data()
    teacher, tcfg, _ = run.teacher()
    with torch.no_grad():
        f_train = cached_teacher_features(teacher, data, run, run.file("teacher.pt"))
        f_test = teacher_features(teacher, data.x_test_nchw)
        logits = torch.cat([teacher(data.x_test_nchw[i:i + 256]) for i in range(0, len(data.x_test_nchw), 256)])
    teacher_acc = float((logits.argmax(-1) == data.y_test).float().mean())
    scale = fit_feature_scale(f_train, cfg.ensemble.feature_scaling, cfg.ensemble.feature_percentile)
    a_train, a_test = scale_features(f_train, scale), scale_features(f_test, scale)
    groups = Partition.load(run.file("partition.json")).groups

    def probe(x_tr: torch.Tensor, x_te: torch.Tensor) -> float:
        head = torch.nn.Linear(x_tr.shape[1], data.num_classes)
        opt = torch.optim.Adam(head.parameters(), lr=0.01)
        for _ in range(500):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(x_tr), data.y_train)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float((head(x_te).argmax(-1) == data.y_test).float().mean())

    rows = []
    for t in levels:
        q_tr = a_train if t == 0 else torch.round(a_train * t) / t
        q_te = a_test if t == 0 else torch.round(a_test * t) / t
        floor = sum(float(((q_tr[:, g] - a_train[:, g]) ** 2).mean()) for g in groups)
        rows.append({"T": t or "exact", "linear_probe_test_accuracy": probe(q_tr, q_te), "kd_floor": floor})
        print(f"T {t or 'exact'}: linear head on rounded teacher features {100 * rows[-1]['linear_probe_test_accuracy']:.2f}%,"
              f" KD floor {floor:.4f}", flush=True)
    out = {"run_dir": str(run_dir), "teacher_test_accuracy_no_tta": teacher_acc,
           "feature_dim": int(f_train.shape[1]), "fraction_targets_clipped": float((f_train / scale >= 1).float().mean()),
           "mean_target": float(a_train.mean()), "fraction_targets_zero": float((a_train == 0).float().mean()),
           "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ceiling.json").write_text(json.dumps(out, indent=1))
    print(f"teacher (no TTA) on this test set: {100 * teacher_acc:.2f}%; -> {RESULTS / 'ceiling.json'}")
    return out


# --------------------------------------------------------------------------- report


def variant_summary(run_dir: Path, threads: int) -> dict[str, Any] | None:
    metrics = read_jsonl(run_dir / METRICS_FILE)
    if not metrics:
        return None
    times: dict[int, dict[str, Any]] = {}
    for t in read_jsonl(run_dir / TIMES_FILE):
        times[int(t["epoch"])] = t  # the latest (a resumed epoch's rerun)
    epochs = []
    for m in metrics:
        if m.get("phase") == "folded":
            continue
        t = times.get(int(m["epoch"]), {})
        epochs.append({k: m.get(k) for k in ("epoch", "train_accuracy", "test_accuracy", "ce", "kd", "loss", "lr")}
                      | {"wall_s": t.get("wall_s"), "cpu_s": t.get("cpu_s")})
    clean = [e["wall_s"] for e in epochs
             if e["wall_s"] and e["cpu_s"] is not None and e["cpu_s"] >= 0.75 * threads * e["wall_s"]]
    walls = [e["wall_s"] for e in epochs if e["wall_s"]]
    done_path = run_dir / DONE_FILE
    done = json.loads(done_path.read_text()) if done_path.is_file() else None
    cfg_epochs = None
    try:
        import tomli

        with open(run_dir / "config.toml", "rb") as fh:
            cfg_epochs = tomli.load(fh)["train"]["epochs"]
    except (OSError, KeyError, ValueError):
        pass
    return {
        "name": run_dir.name, "finished": done is not None, "planned_epochs": cfg_epochs, "epochs": epochs,
        "s_per_epoch": statistics.median(clean) if clean else (statistics.median(walls) if walls else None),
        "s_per_epoch_clean": bool(clean), "clean_epochs": len(clean), "done": done,
        "cpu_s_per_epoch": statistics.median(cpus) if (cpus := [e["cpu_s"] for e in epochs if e["cpu_s"]]) else None,
    }


def write_report(out: Path, names: list[str], threads: int, cpu: str, teacher: Path, data: str,
                 report_name: str = "probe_students", preset: str = PRESETS["cifar10-subset"]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [s for s in (variant_summary(out / n, threads) for n in names) if s is not None]
    teacher_info: dict[str, Any] = {"path": str(teacher)}
    try:
        from sne_loihi.io import load_checkpoint

        ckpt = load_checkpoint(teacher)
        last = (ckpt.get("history") or [{}])[-1]
        teacher_info.update({"arch": ckpt["config"]["teacher"]["arch"], "data": ckpt["config"]["data"]["name"],
                             "epochs": ckpt.get("epoch"), "test_accuracy": last.get("test_accuracy")})
    except Exception as exc:  # the report is still written without it
        teacher_info["error"] = f"{type(exc).__name__}: {exc}"
    payload = {"cpu": cpu, "threads": threads, "preset": preset, "data": data, "teacher": teacher_info,
               "variants": {n: VARIANTS.get(n) for n in names}, "results": rows,
               "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    (RESULTS / f"{report_name}.json").write_text(json.dumps(payload, indent=1))

    def pct(v: Any) -> str:
        return f"{100 * v:.2f}" if isinstance(v, (int, float)) else "-"

    lines = [
        "# Student probes: why the CIFAR-10 students plateau",
        "",
        f"`benchmarks/probe_students.py`, CPU: {cpu}, {threads} threads. Base: preset `{preset}` "
        f"(4 x vgg5mini, width 0.5, T = 3, 4-bit input, batch norm folded at the end, alpha 5, Adam "
        f"3e-3 cosine to 0 over the run's epochs, batch 64; train.translate {_translate(preset)}), data `{data}`, teacher "
        f"{teacher_info.get('arch')} `{teacher_info.get('path')}` (trained on {teacher_info.get('data')}; test {pct(teacher_info.get('test_accuracy'))}% after "
        f"{teacher_info.get('epochs')} epochs). Train accuracy: the epoch's augmented batches, batch "
        "norm in training mode; test: batch norm before the fold; folded: the stored Loihi-exact "
        "ensemble; clean train: the folded ensemble on un-augmented training images.",
        "",
        "| variant | overrides | epochs | train (last epoch) | test BN (last) | test folded | clean train folded "
        "| CE | KD | s/epoch (wall) | CPU s/epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        last = r["epochs"][-1]
        done = r["done"] or {}
        fold = done.get("fold") or {}
        over = ", ".join(f"{k}={v}" for k, v in (done.get("overrides") or VARIANTS.get(r["name"]) or {}).items())
        spe = r["s_per_epoch"]
        spe_s = "-" if spe is None else f"{spe:.0f}" + ("" if r["s_per_epoch_clean"] else " (paused/shared)")
        lines.append(
            f"| {r['name']} | {over or '(base)'} | {len(r['epochs'])}/{r['planned_epochs']} | "
            f"{pct(last['train_accuracy'])} | {pct(last['test_accuracy'])} | {pct(fold.get('test_accuracy_folded'))} | "
            f"{pct(done.get('train_clean_accuracy_folded'))} | {last['ce']:.3f} | {last['kd']:.4f} | {spe_s} | "
            f"{'-' if r['cpu_s_per_epoch'] is None else format(r['cpu_s_per_epoch'], '.0f')} |")
    lines += ["", "Per epoch (train / test %, CE, KD, wall s, cpu s):", ""]
    for r in rows:
        cells = [f"{e['epoch']}: {pct(e['train_accuracy'])}/{pct(e['test_accuracy'])} ce {e['ce']:.3f} kd "
                 f"{e['kd']:.4f} {e['wall_s'] or 0:.0f}s/{e['cpu_s'] or 0:.0f}c" for e in r["epochs"]]
        lines.append(f"- **{r['name']}**: " + "; ".join(cells))
    ceil_path = RESULTS / "ceiling.json"
    c = json.loads(ceil_path.read_text()) if ceil_path.is_file() else None
    if c is not None and Path(c["run_dir"]).resolve().parent == out.resolve():  # measured on one of these runs
        lines += ["", f"Rate-resolution ceiling (`--ceiling {c['run_dir']}`): the teacher (no TTA) scores "
                  f"{pct(c['teacher_test_accuracy_no_tta'])}% on this test set; a linear head on its scaled features "
                  "rounded to multiples of 1/T, and the KD loss that rounding alone leaves:", "",
                  "| T | linear head test % | KD floor |", "| --- | --- | --- |"]
        lines += [f"| {r['T']} | {pct(r['linear_probe_test_accuracy'])} | {r['kd_floor']:.4f} |" for r in c["rows"]]
    (RESULTS / f"{report_name}.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / f"{report_name}.png")


def _translate(preset: str) -> int:
    """The base preset's training shift in pixels (``train.translate``)."""
    from sne_loihi.config import resolve

    return resolve(None, None, {}, preset_name=preset).train.translate


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [("test_accuracy", "test accuracy (BN, before fold)"), ("train_accuracy", "train accuracy (augmented)"),
              ("ce", "CE loss"), ("kd", "KD loss (sum of per-student MSE)")]
    for i, r in enumerate(rows):
        colour = f"C{i % 10}"
        xs = [e["epoch"] for e in r["epochs"]]
        for ax, (key, _) in zip(axes.flat, panels):
            ax.plot(xs, [e[key] for e in r["epochs"]], "o-", color=colour, label=r["name"], ms=3)
        fold = (r["done"] or {}).get("fold") or {}
        if "test_accuracy_folded" in fold:
            axes[0, 0].plot([xs[-1]], [fold["test_accuracy_folded"]], "*", color=colour, ms=10)
    for ax, (_, title) in zip(axes.flat, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if rows:
        axes[0, 0].legend(fontsize=8, title="star: folded", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- driver


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/work/probe/students/runs"))
    p.add_argument("--teacher", type=Path, default=Path("/work/probe/teacher_run/teacher.pt"))
    p.add_argument("--data", choices=("auto", *DATA_SOURCES), default="auto")
    p.add_argument("--cache-dir", default="/work/probe/cache")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--max-train", type=int, default=10000)
    p.add_argument("--max-test", type=int, default=2000)
    p.add_argument("--train-eval", type=int, default=2000, help="clean training images evaluated at the end")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="base,noaug,width1,T6,alpha20,alpha1,lr1e-2",
                   help="comma-separated names, in order (known: " + ", ".join(VARIANTS) + ")")
    p.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,... (a new variant, runs last)")
    p.add_argument("--set", action="append", help="KEY=VALUE for every variant")
    p.add_argument("--allow-unfinished-teacher", action="store_true", help="smoke tests only")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--preset", help="base preset (default: cpu-cifar10-bn for the subset, cifar10-full for imagefolder)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--report-name", default="probe_students", help="the report's file name in RESULTS (no suffix)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--ceiling", type=Path, help="RUN_DIR of a variant: the rate-resolution ceiling (see ceiling())")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-overrides", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args()

    for text in args.variant:
        name, over = parse_variant(text)
        VARIANTS[name] = over
    names = [n.strip() for n in args.variants.split(",") if n.strip()] + [parse_variant(t)[0] for t in args.variant]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if args.ceiling:
        ceiling(args.ceiling, [1, 2, 3, 4, 6, 8, 0])
        return 0
    if args.list:
        for n in names:
            print(f"{n}: {VARIANTS[n]}")
        return 0

    if args.data == "auto":
        trained_on, _ = teacher_data_name(args.teacher)
        args.data = "imagefolder" if trained_on == "imagefolder" else "cifar10-subset"
    if args.child:
        return child(args)

    cpu = cpu_model()
    if args.report_only:
        write_report(args.out, names, args.threads, cpu, args.teacher, args.data, args.report_name,
                     args.preset or PRESETS[args.data])
        return 0
    if not args.allow_unfinished_teacher:
        from sne_loihi.io import load_checkpoint

        ckpt = load_checkpoint(args.teacher)
        done_epochs, want = ckpt.get("epoch"), ckpt["config"]["teacher"]["epochs"]
        if done_epochs != want:
            raise SystemExit(f"{args.teacher} holds epoch {done_epochs} of {want}: wait for the teacher to finish")
    print(f"probe_students: {len(names)} variants {names}, {args.epochs} epochs each, data {args.data}, "
          f"teacher {args.teacher}, CPU {cpu}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names, 1):
        run_dir = args.out / name
        if (run_dir / DONE_FILE).is_file():
            print(f"[{i}/{len(names)}] {name}: finished, skipped", flush=True)
            continue
        print(f"[{i}/{len(names)}] {name}: {VARIANTS[name] or '(base)'} "
              f"({time.strftime('%H:%M:%S')})", flush=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--child-overrides", json.dumps(VARIANTS[name]), "--out", str(args.out), "--teacher", str(args.teacher),
               "--data", args.data, "--cache-dir", args.cache_dir, "--epochs", str(args.epochs),
               "--max-train", str(args.max_train), "--max-test", str(args.max_test),
               "--train-eval", str(args.train_eval), "--threads", str(args.threads), "--seed", str(args.seed)]
        if args.preset:
            cmd += ["--preset", args.preset]
        for s in args.set or []:
            cmd += ["--set", s]
        if args.no_progress:
            cmd.append("--no-progress")
        rc = subprocess.call(cmd, cwd=REPO)
        if rc != 0:
            print(f"[{i}/{len(names)}] {name}: failed (exit {rc}); going on", flush=True)
        write_report(args.out, names, args.threads, cpu, args.teacher, args.data, args.report_name,
                     args.preset or PRESETS[args.data])
    write_report(args.out, names, args.threads, cpu, args.teacher, args.data, args.report_name,
                     args.preset or PRESETS[args.data])
    print(f"report: {RESULTS / (args.report_name + '.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
