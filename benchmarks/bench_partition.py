"""Partition strategies on CIFAR-10 (paper Table III): the same ensemble, each strategy, several seeds.

Usage::

    python benchmarks/bench_partition.py --data-dir ../shared/data/cifar10-subset \\
        --out /tmp/bench_partition [--seeds 3] [--max-runs 1]

One teacher is trained once (``OUT/teacher``) and reused by every run; the ``finetune``
strategy uses a copy of it fine-tuned once with ``CE + beta * L_sim`` (``OUT/teacher-finetuned``,
``sne_loihi.train.finetune_stage.finetune_stage``). Partitions are computed from the teacher's features
over its training set. Every (strategy, seed) run trains the same student ensemble on a
stratified subset of the training images and is evaluated on the whole test set; ops are
counted on the first ``--ops-samples`` test images. Results go to ``OUT/bench_partition.json``,
``.md`` and ``.png`` after every run, and a rerun with the same settings skips what is done
(``--max-runs 1`` does a single run, e.g. to size the budget).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sne_loihi.analysis.paper import PAPER_TABLE3  # 4 x VGG5mini on CIFAR-10 (%); None: not tried there
from sne_loihi.errors import ConfigError

STRATEGIES = tuple(PAPER_TABLE3)
RESULT_STEM = "bench_partition"


@dataclass(frozen=True)
class Settings:
    """Everything that determines the numbers (a rerun must use the same to resume)."""

    data_dir: str
    dataset: str = "cifar10"
    config_file: str = ""
    seeds: int = 3
    strategies: tuple[str, ...] = STRATEGIES
    teacher_arch: str = "vgg11"
    teacher_epochs: int = 4
    teacher_train: int = 0
    finetune_beta: float = -1.0
    finetune_epochs: int = 1
    finetune_lr: float = 5e-4
    finetune_train: int = 4000
    students: int = 4
    student_arch: str = "vgg5mini"
    width: float = 0.25
    time_steps: int = 2
    epochs: int = 2
    train: int = 2000
    test: int = 1000
    lr: float = 3e-3
    batch_size: int = 64
    alpha: float = 5.0
    ops_samples: int = 256
    threads: int = 1


def parse_args() -> tuple[Settings, Path, int, bool, bool]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Settings(data_dir="")
    p.add_argument("--data-dir", required=True, type=Path, help="CIFAR-10 python batches")
    p.add_argument("--dataset", default=d.dataset, help="data set (its preset is the base config)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML run config as the base of every run (e.g. a preset file); the flags below override it")
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_partition"))
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--max-runs", type=int, default=0, help="stop after this many new runs (0 = all)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--report-only", action="store_true", help="rewrite md/png from OUT's JSON, run nothing")
    for f in ("seeds", "teacher_arch", "teacher_epochs", "teacher_train", "finetune_beta", "finetune_epochs",
              "finetune_lr", "finetune_train", "students", "student_arch", "width", "time_steps", "epochs", "train", "test", "lr",
              "batch_size", "alpha", "ops_samples", "threads"):
        default = getattr(d, f)
        p.add_argument("--" + f.replace("_", "-"), type=type(default), default=default)
    a = p.parse_args()
    from sne_loihi.config import comma_items

    try:
        strategies = tuple(comma_items(a.strategies, "--strategies"))
    except ConfigError as exc:
        p.error(str(exc))
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")
    kw = {f: getattr(a, f) for f in Settings.__dataclass_fields__ if f not in ("data_dir", "strategies", "config_file")}
    settings = Settings(str(a.data_dir.resolve()), strategies=strategies,
                        config_file=str(a.config.resolve()) if a.config else "", **kw)
    return settings, a.out, a.max_runs, not a.no_progress, a.report_only


def base_config(s: Settings):  # -> RunConfig
    """The data set's preset, overridden by ``--config`` when given."""
    from sne_loihi.config import resolve

    return resolve(s.dataset, Path(s.config_file) if s.config_file else None)


def _data(s: Settings, base: Any, max_train: int, max_test: int) -> Any:
    return replace(base.data, name=s.dataset, data_dir=s.data_dir or base.data.data_dir, augment=False,
                   max_train=max_train, max_test=max_test)


def run_config(s: Settings, strategy: str, seed: int):  # -> RunConfig
    """The student run's config (the teacher part is what the shared teacher was trained with)."""
    from sne_loihi.config import PartitionStrategy

    base = base_config(s)
    return replace(
        base,
        data=_data(s, base, s.train, s.test),
        teacher=replace(base.teacher, arch=s.teacher_arch, epochs=s.teacher_epochs),
        student=replace(base.student, arch=s.student_arch, width=s.width, time_steps=s.time_steps),
        ensemble=replace(base.ensemble, num_students=s.students, partition=PartitionStrategy(strategy), alpha=s.alpha,
                         train_active=0),
        train=replace(base.train, epochs=s.epochs, lr=s.lr, batch_size=s.batch_size, seed=seed,
                      device="cpu", threads=s.threads),
    )


def teacher_config(s: Settings):  # -> RunConfig
    """The shared teacher's config: only teacher settings (students may change without retraining it)."""
    base = base_config(s)
    return replace(
        base,
        data=_data(s, base, s.teacher_train, 0),
        teacher=replace(base.teacher, arch=s.teacher_arch, epochs=s.teacher_epochs),
        train=replace(base.train, seed=0, device="cpu", threads=s.threads),
    )


def finetune_copy(s: Settings, teacher: Any, data: Any, path: Path, progress: bool) -> tuple[Any, dict[str, Any]]:
    """A copy of ``teacher`` fine-tuned with CE + beta L_sim on the first ``--finetune-train``
    images of a stratified subset (cached in ``path`` for reruns with the same settings)."""
    import copy

    import torch

    from sne_loihi.data.dataset import stratified_subset
    from sne_loihi.io import load_checkpoint, save_checkpoint
    from sne_loihi.partition import finetune_teacher, similarity_loss
    from sne_loihi.metrics import accuracy, predict_logits
    from sne_loihi.train.teacher import teacher_features

    wanted = {"students": s.students, "beta": s.finetune_beta, "epochs": s.finetune_epochs, "lr": s.finetune_lr,
              "train_images": s.finetune_train}
    tuned = copy.deepcopy(teacher)
    if path.is_file():
        cached = load_checkpoint(path)
        if cached["summary"]["settings"] == wanted:
            tuned.load_state_dict(cached["model"])
            return tuned.eval(), cached["summary"]

    def measure(model: Any) -> dict[str, float]:
        acc = accuracy(predict_logits(model, data.x_test_nchw, 256, torch.device("cpu")), data.y_test)
        return {"test_accuracy": acc, "l_sim": float(similarity_loss(teacher_features(model, data.x_test_nchw), s.students))}

    idx = stratified_subset(data.y_train, s.finetune_train, 0)
    t0 = time.time()
    before = measure(tuned)
    history = finetune_teacher(tuned, data.x_train_nchw[idx], data.y_train[idx], num_chunks=s.students,
                               beta=s.finetune_beta, epochs=s.finetune_epochs, lr=s.finetune_lr,
                               batch_size=128, device="cpu", progress=progress)
    summary = {"settings": wanted, "before": before, "after": measure(tuned), "history": history,
               "seconds": time.time() - t0}
    save_checkpoint(path, {"model": tuned.state_dict(), "summary": summary})
    return tuned.eval(), summary


def prepare_teachers(s: Settings, out: Path, progress: bool, teacher_path: Path | None = None) -> dict[str, Any]:
    """Train the shared teacher (resumable) and fine-tune a copy once; features of both.

    Args:
        teacher_path: Use this finished teacher checkpoint (e.g. a pipeline run's) instead of
            training one in ``OUT/teacher``; it must have ``--teacher-epochs`` epochs and the
            split the students are evaluated on.

    Raises:
        ConfigError: The teacher found has another number of epochs or another split.
    """
    import torch

    from sne_loihi.config import dump_toml
    from sne_loihi.data import load_dataset
    from sne_loihi.metrics import accuracy, predict_logits
    from sne_loihi.teachers.checkpoint import TEACHER_FILE, load_teacher
    from sne_loihi.train.teacher import teacher_features, train_teacher
    from sne_loihi.run import Run

    cfg = teacher_config(s)
    data = load_dataset(cfg.data, seed=0)
    tdir = out / "teacher"
    tdir.mkdir(parents=True, exist_ok=True)
    dump_toml(cfg, tdir / "config.toml")
    t0 = time.time()
    found = teacher_path if teacher_path is not None else tdir / TEACHER_FILE
    if found.is_file():  # trained by an earlier invocation (or given): load it as it is
        from sne_loihi.data.dataset import split_mismatch

        model, tcfg, meta = load_teacher(found)
        if meta.get("epoch") != s.teacher_epochs:
            raise ConfigError(f"{found} holds {meta.get('epoch')} epochs, not {s.teacher_epochs}: use another --out")
        why = split_mismatch(tcfg.data, tcfg.train.seed, cfg.data, cfg.train.seed)
        if why:
            raise ConfigError(f"{found} does not fit the partition benchmark's data: {why}")
        teacher_s, acc = None, accuracy(predict_logits(model, data.x_test_nchw, 256, torch.device("cpu")), data.y_test)
    else:
        result = train_teacher(Run(tdir, cfg), progress=progress, data=data)
        model, acc, teacher_s = result.model, result.test_accuracy, time.time() - t0
    tuned, ft = finetune_copy(s, model, data, out / "teacher_finetuned.pt", progress)
    return {
        "models": {"base": model, "finetuned": tuned},
        "features": {"base": teacher_features(model, data.x_train_nchw),
                     "finetuned": teacher_features(tuned, data.x_train_nchw)},
        "info": {"arch": s.teacher_arch, "source": str(found), "train_images": len(data.y_train), "test_images": len(data.y_test),
                 "test_accuracy": acc, "train_s": teacher_s, "finetune": ft,
                 "finetune_s": ft["seconds"]},
    }


def one_run(s: Settings, strategy: str, seed: int, teachers: dict[str, Any], student_data: Any,
            out: Path, progress: bool) -> dict[str, Any]:
    """Partition + distillation + evaluation of one (strategy, seed)."""
    from sne_loihi.ensemble import fit_feature_scale
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.partition import group_widths, compute_partition
    from sne_loihi.train.students import train_students

    cfg = run_config(s, strategy, seed)
    which = "finetuned" if strategy == "finetune" else "base"
    feats = teachers["features"][which]
    t0 = time.time()
    part = compute_partition(strategy, feats.numpy(), s.students, seed)
    partition_s = time.time() - t0
    scale = fit_feature_scale(feats, cfg.ensemble.feature_scaling, cfg.ensemble.feature_percentile)
    run_dir = out / "runs" / f"{strategy}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run (finished ones are in the JSON): redo it
    t0 = time.time()
    res = train_students(cfg, student_data, teachers["models"][which], part, scale, run_dir, progress=progress)
    train_s = time.time() - t0
    n = min(s.ops_samples, len(student_data.y_test))
    ops = evaluate_ensemble(res.model, student_data.x_test_nchw[:n], student_data.y_test[:n], batch_size=128)
    return {
        "strategy": strategy, "seed": seed, "test_accuracy": res.test_accuracy,
        "test_accuracy_last_epoch": res.history[-1]["test_accuracy"], "fold": res.fold,
        "history": res.history, "group_sizes": list(part.sizes),
        "widths": group_widths(part.sizes, s.width),
        "params": sum(p.numel() for p in res.model.parameters()),
        "acs_per_sample": ops.acs_per_sample, "macs_per_sample": ops.macs_per_sample,
        "partition_s": partition_s, "train_s": train_s, "total_s": partition_s + train_s,
        "train_cpu_s": sum(h.get("cpu_seconds", 0.0) for h in res.history),
    }


def stored_ensemble_accuracy(run: dict[str, Any], out: Path) -> dict[str, Any]:
    """``run`` with ``test_accuracy`` the stored ensemble's (the one whose ops are counted).

    Records written before ``test_accuracy_last_epoch`` existed hold the last epoch's accuracy
    (batch norm before the fold); their run folder's ``ensemble.pt`` holds the fold's record,
    which this reads (the record is returned unchanged when it is current).

    Raises:
        ConfigError: An old record whose run folder has no readable ``ensemble.pt``.
    """
    from sne_loihi.io import load_checkpoint
    from sne_loihi.train.students import stored_accuracy

    if "test_accuracy_last_epoch" in run:
        return run
    path = out / "runs" / f"{run['strategy']}-seed{run['seed']}" / "ensemble.pt"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the run record predates the stored ensemble's accuracy; "
                          "rerun this strategy in a new --out")
    fold = load_checkpoint(path, what="ensemble checkpoint").get("fold")
    accuracy = stored_accuracy(fold, [{"test_accuracy": run["test_accuracy"]}])
    return {**run, "test_accuracy": accuracy, "test_accuracy_last_epoch": run["test_accuracy"], "fold": fold}


# ---- summary --------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]], strategies: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per strategy: accuracy mean +/- SEM, cost, time, and the difference from
    ``fixed`` paired by seed (same seed = same batch order) with its SEM and 95% confidence
    half-width."""
    from sne_loihi.analysis.stats import mean_sem, paired_difference

    rows = []
    for st in strategies:
        rs = [r for r in runs if r["strategy"] == st]
        if not rs:
            continue
        acc, sem = mean_sem([100 * r["test_accuracy"] for r in rs])
        rows.append({"strategy": st, "n": len(rs), "mean": acc, "sem": sem, "paper": PAPER_TABLE3[st],
                     "per_seed": [round(100 * r["test_accuracy"], 2) for r in sorted(rs, key=lambda r: r["seed"])],
                     "group_sizes": rs[0]["group_sizes"], "params": rs[0]["params"],
                     "acs": sum(r["acs_per_sample"] for r in rs) / len(rs),
                     "macs": sum(r["macs_per_sample"] for r in rs) / len(rs),
                     "time_s": sum(r["total_s"] for r in rs) / len(rs),
                     "cpu_s": (sum(r["train_cpu_s"] for r in rs) / len(rs)
                               if all("train_cpu_s" in r for r in rs) else None)})
    fixed = {r["seed"]: 100 * r["test_accuracy"] for r in runs if r["strategy"] == "fixed"}
    for r in rows:
        mine = {x["seed"]: 100 * x["test_accuracy"] for x in runs if x["strategy"] == r["strategy"]}
        r["diff"] = r["diff_sem"] = r["diff_ci95"] = None
        if r["strategy"] != "fixed" and len(set(mine) & set(fixed)) >= 2:
            d = paired_difference(mine, fixed)
            r["diff"], r["diff_sem"], r["diff_ci95"] = d.mean, d.sem, d.ci_high - d.mean
            r["diff_seeds"] = d.n
    return rows


def markdown(s: Settings, info: dict[str, Any], rows: list[dict[str, Any]], runs: list[dict[str, Any]],
             wall_s: float) -> str:
    ft = info["finetune"]
    lines = [
        f"# Partition strategies on {s.dataset} (paper Table III)", "",
        f"Ensemble {s.students} x {s.student_arch} (width {s.width}, T = {s.time_steps}, SLAYER CUBA-LIF), "
        f"alpha = {s.alpha}, {s.epochs} epochs on "
        + (f"{s.train} training images (stratified subset of " if s.train else "all training images (of ")
        + f"`{Path(s.data_dir).name if s.data_dir else s.dataset}`), batch {s.batch_size}, Adam lr {s.lr}, no augmentation, "
        f"{s.threads} CPU thread(s); test accuracy of the stored ensemble (for batch-norm students: after the fold "
        f"into Loihi-exact weights and biases, the model whose ops are counted) on {s.test or 'all'} test images "
        f"(stratified); "
        f"seeds 0..{s.seeds - 1} (seed = student init, batch order, and the partition's own randomness). "
        f"Teacher {info['arch']} trained once ({s.teacher_epochs} epochs on {info['train_images']} images, "
        f"test accuracy {100 * info['test_accuracy']:.2f}% on {info['test_images']} images, "
        + (f"{info['train_s']:.0f} s" if info["train_s"] is not None else "trained by an earlier invocation")
        + f") and reused; partitions come from its features over those "
        f"{info['train_images']} images. The `finetune` row distils from a copy fine-tuned once with "
        f"CE + beta L_sim (beta = {s.finetune_beta}, {s.finetune_epochs} epoch(s) on {s.finetune_train or 'all'} images, "
        f"Adam lr {s.finetune_lr}, {info['finetune_s']:.0f} s): teacher accuracy "
        f"{100 * ft['before']['test_accuracy']:.2f}% -> {100 * ft['after']['test_accuracy']:.2f}%, "
        f"test L_sim {ft['before']['l_sim']:.3f} -> {ft['after']['l_sim']:.3f} (at most sqrt(2) = 1.414 for "
        f"post-ReLU features), then the contiguous split. Ops counted on the first {s.ops_samples} test images.", "",
        "| strategy | paper 4xVGG5mini (%) | test acc. mean +/- SEM (%) | n | per seed (%) | vs fixed, paired: mean +/- SEM [95% CI] | "
        "group sizes (seed 0) | params | ACs/sample | MACs/sample | time per run (s) | training CPU per run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = f"{r['paper']:.2f}" if r["paper"] is not None else "-"
        diff = (f"{r['diff']:+.2f} +/- {r['diff_sem']:.2f} [{r['diff'] - r['diff_ci95']:+.2f}, "
                f"{r['diff'] + r['diff_ci95']:+.2f}]" if r["diff"] is not None else "-")
        lines.append(
            f"| {r['strategy']} | {paper} | {r['mean']:.2f} +/- {r['sem']:.2f} | {r['n']} | "
            f"{', '.join(f'{v:.2f}' for v in r['per_seed'])} | {diff} | {r['group_sizes']} | {r['params']:,} | "
            f"{r['acs']:,.0f} | {r['macs']:,.0f} | {r['time_s']:.0f} | "
            + (f"{r['cpu_s']:.0f} |" if r.get("cpu_s") is not None else "- |"))
    done = len(runs)
    total = s.seeds * len(s.strategies)
    shown = [f"{r['strategy']} ({r['diff']:+.2f})" for r in rows
             if r["diff"] is not None and abs(r["diff"]) > r["diff_ci95"]]
    lines += ["", "Paired intervals that exclude 0: " + (", ".join(shown) if shown else "none") + "."]
    teacher_note = ("teacher training included" if info["train_s"] is not None
                    else "teacher fine-tuning included, not the teacher's training in an earlier invocation")
    lines += ["", f"{done} of {total} runs finished; benchmark wall time {wall_s / 60:.1f} min "
              f"({teacher_note}; wall clock, so it includes any time the run was paused or shared the CPU).",
              "", "'vs fixed, paired': per seed, this strategy's accuracy minus fixed's (same seed = same "
              "batch order, and for equal groups the same student initialisation), mean +/- SEM over seeds and the 95% Student-t "
              "interval (n - 1 degrees of freedom); an interval containing 0 means no difference is shown "
              "at this budget. The fine-tuned teacher is one fine-tuning run, so its own variability is not "
              "in the interval.",
              "", f"![accuracy per strategy]({RESULT_STEM}.png)"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], runs: list[dict[str, Any]], path: Path) -> None:
    """Left: accuracy per strategy (mean +/- SEM, seeds as dots). Right: the paired difference
    from ``fixed`` with its 95% interval, next to the paper's difference (Table III)."""
    from sne_loihi.analysis.plots import _pyplot

    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [r["strategy"] for r in rows]
    xs = list(range(len(rows)))
    ax.bar(xs, [r["mean"] for r in rows], 0.6, yerr=[r["sem"] for r in rows], capsize=3, color="tab:blue")
    for x, r in zip(xs, rows):
        seeds = [100 * q["test_accuracy"] for q in runs if q["strategy"] == r["strategy"]]
        ax.plot([x] * len(seeds), seeds, "k.", ms=4)
    ax.axhline(10.0, color="grey", ls=":", lw=1, label="chance (10 classes)")
    ax.set_xticks(xs, names, rotation=25, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("this benchmark: mean +/- SEM, dots = seeds", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fixed_paper = PAPER_TABLE3["fixed"]
    for x, r in zip(xs, rows):
        if r["diff"] is not None:
            bx.errorbar([x - 0.1], [r["diff"]], yerr=[r["diff_ci95"]], fmt="o", color="tab:blue", capsize=3,
                        label="this benchmark (paired, 95% CI)" if x == xs[1] else None)
        if r["paper"] is not None and r["strategy"] != "fixed":
            bx.plot([x + 0.1], [r["paper"] - fixed_paper], "s", color="tab:orange",
                    label="paper Table III" if r["strategy"] == "agglomerative" else None)
    bx.axhline(0.0, color="grey", lw=1)
    bx.set_xticks(xs, names, rotation=25, ha="right")
    bx.set_ylabel("accuracy - fixed (points)")
    bx.set_title("difference from the fixed partition", fontsize=9)
    if bx.get_legend_handles_labels()[0]:  # nothing to compare when only one strategy ran
        bx.legend(fontsize=8)
    bx.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(s: Settings, out: Path, info: dict[str, Any], runs: list[dict[str, Any]], wall_s: float) -> None:
    from sne_loihi.io import atomic_write_bytes, atomic_write_json

    rows = summarise(runs, s.strategies)
    payload = {"settings": asdict(s), "config_sha256": _config_sha256(s.config_file), "teacher": info, "runs": runs,
               "summary": rows, "paper_table3": PAPER_TABLE3, "wall_s": wall_s}
    atomic_write_json(out / f"{RESULT_STEM}.json", payload)
    atomic_write_bytes(out / f"{RESULT_STEM}.md", markdown(s, info, rows, runs, wall_s).encode())
    if rows:
        plot(rows, runs, out / f"{RESULT_STEM}.png")


def _config_sha256(config_file: str) -> str | None:
    """SHA-256 of the base config file (``None`` without one): results recognise their config
    by content when the folder holding both has moved."""
    from sne_loihi.io import sha256_file

    return sha256_file(Path(config_file)) if config_file and Path(config_file).is_file() else None


def stored_results(s: Settings, out: Path) -> dict[str, Any] | None:
    """``OUT/bench_partition.json`` as an earlier invocation wrote it (``None`` when there is
    none), checked to hold results for ``s``.

    Raises:
        ConfigError: It holds results for other settings (named with their two values), or
            it cannot be read.
    """
    from sne_loihi.json_files import read_json_file

    result_path = out / f"{RESULT_STEM}.json"
    if not result_path.is_file():
        return None
    old = read_json_file(result_path, "partition benchmark results", ConfigError)
    if not isinstance(old, dict) or not isinstance(old.get("settings"), dict) or not isinstance(old.get("runs"), list):
        raise ConfigError(f"{result_path} is not this benchmark's results (no settings and runs)")
    defaults = json.loads(json.dumps(asdict(Settings(data_dir=""))))  # keys added since it was written
    stored, wanted = {**defaults, **old["settings"]}, json.loads(json.dumps(asdict(s)))
    if old.get("config_sha256") and old["config_sha256"] == _config_sha256(s.config_file):
        stored["config_file"] = wanted["config_file"]  # the same file, moved (with the results' folder)
    changed = [f"{k} {stored.get(k)!r} -> {wanted.get(k)!r}" for k in sorted(set(stored) | set(wanted))
               if stored.get(k) != wanted.get(k)]
    if changed:
        raise ConfigError(f"{result_path} holds results for other settings ({'; '.join(changed)}); use another --out")
    return old


def run_bench(s: Settings, out: Path, *, max_runs: int = 0, progress: bool = True, report_only: bool = False,
              teacher_path: Path | None = None) -> dict[str, Any]:
    """Run (or resume) every (strategy, seed) and write ``OUT/bench_partition.{json,md,png}``.

    Returns:
        The JSON payload (settings, teacher, runs, summary rows, paper numbers, wall time).

    Raises:
        ConfigError: ``OUT`` holds results for other settings, or nothing to report.
    """
    import torch
    from tqdm.auto import tqdm

    from sne_loihi.data import load_dataset

    torch.set_num_threads(s.threads)
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / f"{RESULT_STEM}.json"
    runs: list[dict[str, Any]] = []
    wall_before = 0.0
    old = stored_results(s, out)
    if old is not None:
        runs, wall_before = [stored_ensemble_accuracy(r, out) for r in old["runs"]], old.get("wall_s", 0.0)
        if report_only:
            write_results(s, out, old["teacher"], runs, wall_before)
            return json.loads(result_path.read_text())
    elif report_only:
        raise ConfigError(f"--report-only: no {result_path} to report")
    t_start = time.time()
    teachers = prepare_teachers(s, out, progress, teacher_path)
    student_data = load_dataset(run_config(s, "fixed", 0).data, seed=0)
    todo = [(st, seed) for seed in range(s.seeds) for st in s.strategies
            if not any(r["strategy"] == st and r["seed"] == seed for r in runs)]
    if max_runs:
        todo = todo[:max_runs]
    bar = tqdm(todo, desc="bench_partition runs", unit="run", disable=not progress, position=0)
    for st, seed in bar:
        bar.set_postfix(strategy=st, seed=seed)
        r = one_run(s, st, seed, teachers, student_data, out, progress)
        runs.append(r)
        wall = wall_before + time.time() - t_start
        write_results(s, out, teachers["info"], runs, wall)
        if progress:
            tqdm.write(f"{st:17s} seed {seed}: test acc {100 * r['test_accuracy']:.2f}%  groups {r['group_sizes']}  "
                       f"{r['total_s']:.0f} s  (wall {wall / 60:.1f} min)")
    write_results(s, out, teachers["info"], runs, wall_before + time.time() - t_start)
    return json.loads(result_path.read_text())


def main() -> None:
    s, out, max_runs, progress, report_only = parse_args()
    try:
        run_bench(s, out, max_runs=max_runs, progress=progress, report_only=report_only)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    print((out / f"{RESULT_STEM}.md").read_text())


if __name__ == "__main__":
    main()
