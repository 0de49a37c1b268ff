"""Reproduce the paper's CIFAR-10 experiments over several seeds and write one report.

Usage::

    python benchmarks/reproduce.py --dataset cifar10 --data-dir ../shared/data/cifar10-subset \\
        --config PRESET.toml --seeds 0,1,2 --out runs/reproduce-cifar10

Per seed ``S`` (``OUT/seedS``, an ordinary pipeline run folder, ``sne_loihi.pipeline.run_pipeline``):
teacher -> partition -> ensemble -> dropout-trained variants (``--dropout-k``, default 1..N-1)
-> [export + Lava, as the config says] -> the run's report with random K (both heads),
per-sample activation (both heads), dropout-K at its K and Gaussian noise (``--noise``,
``--noise-repeats`` draws). Then the partition comparison (every strategy x the same number of
seeds, ``benchmarks/bench_partition.py`` in ``OUT/partition``, at its own budget given by the
``--partition-*`` options; it reuses seed 0's teacher when the split allows). Finally
``OUT/reproduce.{md,json,png}``: our numbers next to the paper's for Tables III, IV, V, VI and
the ops ratio, mean +/- SEM over seeds, paired differences with 95% t intervals and a verdict
per relative claim (``sne_loihi.analysis.reproduction``).

Resumable: a seed whose ``report.json`` is complete for these settings is reused as it is;
an unfinished one continues with ``--resume`` semantics (finished training stages are not
redone); finished partition runs are kept. An ``OUT`` run with another config or partition
budget is refused before anything runs. Every invocation that runs work records its start,
each part it begins and finishes, a heartbeat and its end in ``OUT/invocations.jsonl``; the
report sums them (``benchmarks/ledger.py``), an interrupted invocation up to its last record.
``--report-only`` rewrites the report from what exists and names what is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPORT_STEM = "reproduce"
PARTITION_DIR = "partition"
BASE_CONFIG = "base_config.toml"


def _sibling(name: str) -> Any:
    """``benchmarks/NAME.py`` as a module (the benchmarks are scripts, not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass(frozen=True)
class Options:
    """What the harness runs besides the run config."""

    seeds: tuple[int, ...] = (0, 1, 2)
    dropout_k: tuple[int, ...] | None = None  # None: 1..N-1
    noise: tuple[float, ...] = (0.01, 0.03, 0.05, 0.07)
    noise_repeats: int = 10
    draw_batch: int = 32
    energy: str = "cmos45nm"
    partition_strategies: tuple[str, ...] = ()
    partition_epochs: int | None = None
    partition_train: int | None = None
    partition_test: int | None = None
    partition_width: float | None = None
    partition_finetune_epochs: int | None = None
    partition_finetune_train: int | None = None
    partition_ops_samples: int = 256


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None, help="data set (default: the config file's, else digits)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--preset", default=None, help="a named preset (sne_loihi/presets/NAME.toml), e.g. cpu-cifar10")
    p.add_argument("--config", type=Path, default=None, help="TOML run config (over the preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=2 (TOML value; repeatable)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dropout-k", default=None, help="K of the dropout-trained variants (default 1..N-1; 'none')")
    p.add_argument("--noise", default="0.01,0.03,0.05,0.07", help="Gaussian noise sigmas ('none': skip)")
    p.add_argument("--noise-repeats", type=int, default=10)
    p.add_argument("--draw-batch", type=int, default=32, help="random K: a new draw every N test samples")
    p.add_argument("--energy", default="cmos45nm", help="energy profile name or TOML file")
    p.add_argument("--partition-strategies", default=",".join(_sibling("bench_partition").STRATEGIES),
                   help="strategies of the partition comparison ('none': skip it)")
    p.add_argument("--partition-epochs", type=int, default=None, help="(default: the config's train.epochs)")
    p.add_argument("--partition-train", type=int, default=None, help="training images (default: data.max_train)")
    p.add_argument("--partition-test", type=int, default=None, help="test images (default: data.max_test)")
    p.add_argument("--partition-width", type=float, default=None, help="(default: student.width)")
    p.add_argument("--partition-finetune-epochs", type=int, default=None, help="(default: finetune.epochs)")
    p.add_argument("--partition-finetune-train", type=int, default=None, help="(default: data.max_train)")
    p.add_argument("--partition-ops-samples", type=int, default=256)
    p.add_argument("--report-only", action="store_true", help="rewrite the report from what OUT holds; run nothing")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    from sne_loihi.config import comma_items
    from sne_loihi.errors import ConfigError

    items = comma_items(text, flag)  # "0,,2" is a typo: a one-line error, not a skipped item
    try:
        return tuple(int(t) for t in items)
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated integers, got {text!r}") from None


def _override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as TOML (a bare word stays a string)."""
    from sne_loihi.config import parse_override

    return parse_override(text)


def resolve_inputs(a: argparse.Namespace):  # -> tuple[RunConfig, Options]
    """The run config (preset < --config < --set/--data-dir) and the harness options.

    Raises:
        ConfigError: Bad values, checked before anything runs.
    """
    from sne_loihi.analysis.noise import parse_levels
    from sne_loihi.cost.energy import resolve_profile
    from sne_loihi.config import resolve
    from sne_loihi.errors import ConfigError
    from sne_loihi.checks import check_config

    overrides = dict(_override(s) for s in a.set)
    if a.data_dir is not None:
        overrides["data.data_dir"] = str(a.data_dir.resolve())
    cfg = resolve(a.dataset, a.config, overrides, a.preset)
    check_config(cfg)
    resolve_profile(a.energy)
    n = cfg.ensemble.num_students
    seeds = _ints(a.seeds, "--seeds")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds needs distinct seeds >= 0, got {a.seeds!r}")
    ks = () if a.dropout_k == "none" else (_ints(a.dropout_k, "--dropout-k") if a.dropout_k else tuple(range(1, n)))
    if any(not 0 < k < n for k in ks):
        raise ConfigError(f"--dropout-k values must be in 1..{n - 1}, got {list(ks)}")
    if a.noise_repeats < 1 or a.draw_batch < 1:
        raise ConfigError("--noise-repeats and --draw-batch must be >= 1")
    strategies = () if a.partition_strategies == "none" else tuple(s.strip() for s in a.partition_strategies.split(",") if s.strip())
    unknown = sorted(set(strategies) - set(_sibling("bench_partition").STRATEGIES))
    if unknown:
        raise ConfigError(f"unknown partition strategies {unknown}; known: {', '.join(_sibling('bench_partition').STRATEGIES)}")
    opts = Options(
        seeds=seeds, dropout_k=ks, noise=tuple(parse_levels(a.noise)) if a.noise != "none" else (),
        noise_repeats=a.noise_repeats, draw_batch=a.draw_batch, energy=a.energy, partition_strategies=strategies,
        partition_epochs=a.partition_epochs, partition_train=a.partition_train, partition_test=a.partition_test,
        partition_width=a.partition_width, partition_finetune_epochs=a.partition_finetune_epochs,
        partition_finetune_train=a.partition_finetune_train, partition_ops_samples=a.partition_ops_samples,
    )
    return cfg, opts


def seed_config(cfg: Any, seed: int) -> Any:
    return replace(cfg, train=replace(cfg.train, seed=seed))


def report_options(opts: Options):  # -> ReportOptions
    from sne_loihi.analysis.runreport import ReportOptions

    return ReportOptions(energy_profile=opts.energy, activation=True, noise=list(opts.noise),
                         repeats=opts.noise_repeats, draw_batch=opts.draw_batch)


def seed_report(run_dir: Path, cfg: Any, opts: Options) -> dict[str, Any] | None:
    """The seed's ``report.json`` if it is complete for ``cfg`` and ``opts``, else ``None``:
    same config, both heads for both policies, every dropout K, every noise level with the
    asked number of draws, the asked energy profile."""
    from sne_loihi.cost.energy import resolve_profile

    path = Path(run_dir) / "report.json"
    if not path.is_file() or not (Path(run_dir) / "ensemble.pt").is_file():
        return None
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    noise = {(float(r["sigma"]), int(r["repeats"])) for r in rep.get("noise", []) if r["model"] == "teacher"}
    complete = (
        same_run_config(rep.get("config", {}), cfg.to_dict())
        and "equal_cost" in rep.get("activation", {})
        and set(rep.get("dropout", {})) == {str(k) for k in opts.dropout_k}
        and noise == {(float(s), opts.noise_repeats) for s in opts.noise}
        and rep.get("energy_profile", {}).get("name") == resolve_profile(opts.energy).name
    )
    return rep if complete else None


#: Keys that may differ between a seed's report and the harness config: where and how the
#: run executed (a resumed run keeps its checkpoint's values), never what it trained; and the
#: report/pipeline sections, which the pipeline records from the harness's options and
#: :func:`seed_report` checks one by one (dropout K, noise, energy profile); and the class names
#: a run records from its data (the data loader checks them).
EXECUTION_KEYS = ("train.device", "train.threads", "student.engine", "lava.", "report.", "pipeline.", "data.class_names")


def same_run_config(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a report's config is the harness's for this seed, up to :data:`EXECUTION_KEYS`."""
    return not config_differences(stored, wanted)


def config_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The keys (outside :data:`EXECUTION_KEYS`) where ``stored`` differs from ``wanted``, each
    as ``"key: stored -> wanted"``; empty when it is the same run config."""
    from sne_loihi.train.common import with_defaults

    def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    a, b = (flat(json.loads(json.dumps(with_defaults(t)))) for t in (stored, wanted))
    keep = lambda k: not any(k == e or (e.endswith(".") and k.startswith(e)) for e in EXECUTION_KEYS)  # noqa: E731
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if keep(k) and a.get(k) != b.get(k)]


def check_out_folder(out: Path, cfg: Any, opts: Options) -> None:
    """Refuse, before anything runs, an ``OUT`` that holds work of another config: a seed
    folder whose ``config.toml`` is not this seed's run config (up to :data:`EXECUTION_KEYS`),
    a partition comparison with another base config or other benchmark settings (its budget,
    strategies, number of seeds). Report options (noise, dropout K, energy profile) may
    change: the seeds' reports are then recomputed from their finished training.

    Raises:
        ConfigError: One line naming the folder and the differing keys.
    """
    from sne_loihi.config import load_toml
    from sne_loihi.errors import ConfigError

    for seed in opts.seeds:
        stored = out / f"seed{seed}" / "config.toml"
        if stored.is_file():
            changed = config_differences(load_toml(stored), seed_config(cfg, seed).to_dict())
            if changed:
                raise ConfigError(f"{stored.parent} was run with another config ({'; '.join(changed)}); use another --out")
    pdir = out / PARTITION_DIR
    if opts.partition_strategies and (pdir / BASE_CONFIG).is_file():
        check_partition_base(pdir / BASE_CONFIG, seed_config(cfg, 0))
        _sibling("bench_partition").stored_results(partition_settings(cfg, opts, pdir / BASE_CONFIG), pdir)


def check_partition_base(base: Path, base_cfg: Any) -> None:
    """Write the partition comparison's base config, or check that an existing one is this
    run's (:func:`same_run_config`: a file in an older format still matches).

    Raises:
        ConfigError: The folder was run with another config.
    """
    from sne_loihi.config import dump_toml, load_toml
    from sne_loihi.errors import ConfigError

    if not base.is_file():
        dump_toml(base_cfg, base)
        return
    changed = config_differences(load_toml(base), base_cfg.to_dict())
    if changed:
        raise ConfigError(f"{base.parent} was run with another config ({'; '.join(changed)}); use another --out")


def run_seed(cfg: Any, opts: Options, out: Path, seed: int, progress: bool) -> tuple[dict[str, Any], str]:
    """Run (or reuse, or resume) one seed's pipeline; returns its report and what was done."""
    from sne_loihi.pipeline import run_pipeline

    scfg = seed_config(cfg, seed)
    run_dir = out / f"seed{seed}"
    rep = seed_report(run_dir, scfg, opts)
    if rep is not None:
        return rep, "reused"
    started = run_dir.is_dir() and any(run_dir.iterdir())
    run_pipeline(scfg, run_dir, resume=started, progress=progress, report=report_options(opts), dropout_ks=list(opts.dropout_k))
    rep = seed_report(run_dir, scfg, opts)
    if rep is None:
        from sne_loihi.errors import CheckpointError

        raise CheckpointError(f"{run_dir}/report.json is incomplete after the pipeline ran")
    return rep, "resumed" if started else "ran"


def partition_settings(cfg: Any, opts: Options, base_config: Path) -> Any:
    """The partition benchmark's settings: the run config's models and optimiser, its own budget."""
    bp = _sibling("bench_partition")

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return bp.Settings(
        data_dir=cfg.data.data_dir or "", dataset=cfg.data.name, config_file=str(base_config.resolve()),
        seeds=len(opts.seeds), strategies=opts.partition_strategies, teacher_arch=cfg.teacher.arch,
        teacher_epochs=cfg.teacher.epochs, teacher_train=cfg.data.max_train, finetune_beta=cfg.finetune.beta,
        finetune_epochs=pick(opts.partition_finetune_epochs, cfg.finetune.epochs), finetune_lr=cfg.finetune.lr,
        finetune_train=pick(opts.partition_finetune_train, cfg.data.max_train), students=cfg.ensemble.num_students,
        student_arch=cfg.student.arch, width=pick(opts.partition_width, cfg.student.width),
        time_steps=cfg.student.time_steps, epochs=pick(opts.partition_epochs, cfg.train.epochs),
        train=pick(opts.partition_train, cfg.data.max_train), test=pick(opts.partition_test, cfg.data.max_test),
        lr=cfg.train.lr, batch_size=cfg.train.batch_size, alpha=cfg.ensemble.alpha,
        ops_samples=opts.partition_ops_samples, threads=cfg.train.threads or 1,
    )


def run_partition(cfg: Any, opts: Options, out: Path, progress: bool, report_only: bool) -> dict[str, Any] | None:
    """The partition comparison in ``OUT/partition`` (resumable; reuses the first seed's
    teacher when its split is the benchmark's)."""
    from sne_loihi.data.dataset import split_mismatch

    if not opts.partition_strategies:
        return None
    pdir = out / PARTITION_DIR
    base = pdir / BASE_CONFIG
    if report_only:  # the benchmark rewrites its own report from its JSON, running nothing
        if not (pdir / "bench_partition.json").is_file():
            return None
        return _sibling("bench_partition").run_bench(partition_settings(cfg, opts, base), pdir, progress=progress,
                                            report_only=True)
    pdir.mkdir(parents=True, exist_ok=True)
    check_partition_base(base, seed_config(cfg, 0))
    teacher = out / f"seed{opts.seeds[0]}" / "teacher.pt"
    reuse = teacher.is_file() and split_mismatch(cfg.data, opts.seeds[0], cfg.data, 0) is None
    return _sibling("bench_partition").run_bench(partition_settings(cfg, opts, base), pdir, progress=progress,
                                        teacher_path=teacher if reuse else None)


def training_time(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per training stage of a run folder (teacher, students, each dropout variant): its
    epochs, how many carry a ``seconds`` record, their sum and the sum of their
    ``cpu_seconds`` (which pauses do not inflate). The metrics files are
    rewritten from the checkpoint's history on every resume, so the sum covers every attempt
    once (an epoch cut short by an interruption is not in it); runs trained before the epoch
    timer existed have no records."""
    from sne_loihi.analysis.runreport import epoch_time_totals
    from sne_loihi.json_files import read_jsonl_file
    from sne_loihi.run_files import DROPOUT_GLOB, STUDENT_METRICS, TEACHER_METRICS

    files = {"teacher": run_dir / TEACHER_METRICS, "students": run_dir / STUDENT_METRICS}
    files.update({d.name: d / STUDENT_METRICS for d in sorted(run_dir.glob(DROPOUT_GLOB)) if d.is_dir()})
    out: dict[str, dict[str, float]] = {}
    for stage, path in files.items():
        if not path.is_file():
            continue
        out[stage] = epoch_time_totals(read_jsonl_file(path, "metrics log"))
    return out


def write_report(out: Path, cfg: Any, opts: Options, reports: dict[int, dict[str, Any]], bench: dict[str, Any] | None,
                 meta: dict[str, Any]) -> dict[str, Any]:
    """``OUT/reproduce.{md,json,png}`` from the seeds' reports and the partition benchmark."""
    from sne_loihi.analysis import reproduction_report as rr
    from sne_loihi.analysis.reproduction import build_sections
    from sne_loihi.io import atomic_write_bytes, atomic_write_json

    sections = build_sections(reports, bench)
    png = f"{REPORT_STEM}.png"
    rr.plot(sections, out / png)
    meta = {**meta, "seeds": sorted(reports), "seed_timings": {s: r.get("timings", {}) for s, r in sorted(reports.items())},
            "seed_training": {s: training_time(out / f"seed{s}") for s in sorted(reports)},
            "partition_wall_s": bench.get("wall_s") if bench else None}
    config = cfg.to_dict()
    if not config["data"].get("class_names"):  # filled by a seed that ran here; else the seeds' reports name them
        named = [r["config"]["data"]["class_names"] for r in reports.values()
                 if r.get("config", {}).get("data", {}).get("class_names")]
        config["data"]["class_names"] = named[0] if named else config["data"].get("class_names")
    payload = {"config": config, "options": asdict(opts), "meta": meta,
               "sections": [s.to_dict() for s in sections],
               "claims": [c.to_dict() for s in sections for c in s.claims],
               "runs": {str(s): str(out / f"seed{s}") for s in sorted(reports)},
               "partition": {"dir": str(out / PARTITION_DIR), "summary": bench["summary"]} if bench else None}
    atomic_write_json(out / f"{REPORT_STEM}.json", payload)
    atomic_write_bytes(out / f"{REPORT_STEM}.md", rr.markdown(sections, meta, png).encode())
    return json.loads((out / f"{REPORT_STEM}.json").read_text())  # what the file holds (str keys, lists)


def describe(cfg: Any, opts: Options) -> str:
    """One paragraph of the setup that produced the numbers."""
    from sne_loihi.config import StudentNorm

    s, e, t = cfg.student, cfg.ensemble, cfg.train
    return (f"teacher {cfg.teacher.arch} ({cfg.teacher.epochs} epochs); ensemble {e.num_students} x {s.arch} "
            f"(width {s.width}, T = {s.time_steps}, {s.input_bits}-bit input, norm {StudentNorm(s.norm).value}, current "
            f"decay {s.neuron.current_decay}, engine {s.engine.value}), partition "
            f"{e.partition.value}, alpha {e.alpha}, {t.epochs} epochs, batch {t.batch_size}, lr {t.lr}; data "
            f"{cfg.data.name} (max_train {cfg.data.max_train or 'all'}, max_test {cfg.data.max_test or 'all'}, "
            f"augment {cfg.data.augment}); dropout-trained K {list(opts.dropout_k)}; noise sigmas {list(opts.noise)} "
            f"x {opts.noise_repeats} draws; random K redrawn every {opts.draw_batch} test samples; energy profile "
            f"{opts.energy}.")


def reproduce(argv: list[str]) -> dict[str, Any]:
    """Run the harness with command-line ``argv``; returns the JSON payload written."""
    import torch

    a = parse_args(argv)
    cfg, opts = resolve_inputs(a)
    progress = not a.no_progress
    out: Path = a.out
    t0 = time.time()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    command = " ".join(shlex.quote(x) for x in [sys.executable, "benchmarks/reproduce.py", *argv])
    from sne_loihi.io import run_lock

    if a.report_only:
        if not out.is_dir():
            from sne_loihi.errors import ConfigError

            raise ConfigError(f"--report-only: {out} does not exist")
        with run_lock(out):  # one writer of OUT at a time
            return _report_only(cfg, opts, out, progress, command, t0)
    check_out_folder(out, cfg, opts)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):  # a second harness on the same OUT is refused in one line
        return _run(cfg, opts, out, progress, command, t0)


def _run(cfg: Any, opts: Options, out: Path, progress: bool, command: str, t0: float) -> dict[str, Any]:
    """The seeds, the partition comparison and the report, holding ``OUT``'s lock."""
    from tqdm.auto import tqdm

    reports: dict[int, dict[str, Any]] = {}
    status: dict[str, str] = {}
    with _sibling("ledger").Ledger(out) as ledger:
        for seed in tqdm(opts.seeds, desc="reproduce seeds", unit="seed", disable=not progress):
            ledger.record("begin", part=f"seed{seed}")
            reports[seed], status[str(seed)] = run_seed(cfg, opts, out, seed, progress)
            ledger.record("done", part=f"seed{seed}", how=status[str(seed)])
        if opts.partition_strategies:
            ledger.record("begin", part=PARTITION_DIR)
        bench = run_partition(cfg, opts, out, progress, False)
        if opts.partition_strategies:
            ledger.record("done", part=PARTITION_DIR, how="ran")
        ledger.record("end")
    meta = {"dataset": cfg.data.name, "description": describe(cfg, opts), "status": status,
            "machine": _sibling("machine").machine_info(cfg.train.device, cfg.train.threads), "wall_s": time.time() - t0,
            "command": command, "wall_time": _sibling("ledger").read_wall_time(out)}
    return write_report(out, cfg, opts, reports, bench, meta)


def _report_only(cfg: Any, opts: Options, out: Path, progress: bool, command: str, t0: float) -> dict[str, Any]:
    """``--report-only``: the report from what ``OUT`` holds, running nothing; what is missing
    for these settings (a seed without a complete report, an unfinished partition comparison)
    is listed in ``meta["missing"]`` and at the top of the report.

    Raises:
        ConfigError: ``OUT`` does not exist or holds no finished seed (one line).
    """
    from sne_loihi.errors import ConfigError

    if not out.is_dir():
        raise ConfigError(f"--report-only: {out} does not exist")
    reports: dict[int, dict[str, Any]] = {}
    missing: list[str] = []
    for seed in opts.seeds:
        rep = seed_report(out / f"seed{seed}", seed_config(cfg, seed), opts)
        if rep is None:
            missing.append(f"seed {seed} (no report.json complete for these settings)")
        else:
            reports[seed] = rep
    bench = run_partition(cfg, opts, out, progress, True)
    if opts.partition_strategies:
        wanted = len(opts.seeds) * len(opts.partition_strategies)
        done = len(bench["runs"]) if bench else 0
        if done < wanted:
            missing.append(f"partition comparison ({done} of {wanted} runs finished)")
    meta = {"dataset": cfg.data.name, "description": describe(cfg, opts), "status": {str(s): "reused" for s in reports},
            "machine": _sibling("machine").machine_info(cfg.train.device, cfg.train.threads), "wall_s": time.time() - t0,
            "command": command, "wall_time": _sibling("ledger").read_wall_time(out), "missing": missing}
    # keep the wall time and command of the invocation that ran the work
    meta.update({k: v for k, v in _previous_meta(out).items() if k in ("wall_s", "command")}, report_only_command=command)
    if not reports:
        raise ConfigError(f"--report-only: no finished seed to report in {out}; missing: {', '.join(missing)}")
    return write_report(out, cfg, opts, reports, bench, meta)


def _previous_meta(out: Path) -> dict[str, Any]:
    """The ``meta`` of ``OUT/reproduce.json`` as an earlier invocation wrote it (empty when
    there is none).

    Raises:
        SneError: The file exists but is not a report (one line).
    """
    from sne_loihi.json_files import read_json_file

    path = out / f"{REPORT_STEM}.json"
    if not path.is_file():
        return {}
    data = read_json_file(path, "reproduction report")
    meta = data.get("meta") if isinstance(data, dict) else None
    return meta if isinstance(meta, dict) else {}


def main() -> None:
    from sne_loihi.errors import SneError

    try:
        payload = reproduce(sys.argv[1:])
    except SneError as exc:
        raise SystemExit(f"error: {exc}") from None
    out = parse_args(sys.argv[1:]).out
    print(f"report: {out / (REPORT_STEM + '.md')}")
    if payload["meta"].get("missing"):
        print(f"warning: the report is incomplete; missing: {', '.join(payload['meta']['missing'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
