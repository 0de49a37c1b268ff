"""The ``sne`` command line: teacher, partition, train, evaluate, export, simulate, pipeline.

Every command resolves a :class:`~sne_loihi.config.RunConfig` (dataset preset < TOML file
or the run folder's ``config.toml`` < flags), works in a run folder, and turns
:class:`~sne_loihi.errors.SneError` into a one-line ``error:`` message with exit code 1.
Heavy imports (torch models, SLAYER, Lava) happen inside the commands.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sne_loihi.cli_errors import OneLineErrorGroup
from sne_loihi.config import Backend, PartitionStrategy, RunConfig, StudentBackend, StudentEngine, resolve
from sne_loihi.errors import ConfigError, SneError

app = typer.Typer(
    name="sne",
    help="Distil an ANN teacher into spiking students, export them to netx and run them in Lava.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineErrorGroup,
)
teacher_app = typer.Typer(
    help="Train a teacher (no sub-command) or fine-tune it ('finetune').",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
)
app.add_typer(teacher_app, name="teacher")


def friendly(fn: Callable) -> Callable:
    """Turn SneError into ``error: ...`` + exit 1, and Ctrl-C into a resume hint.

    A command with a run folder (``run_dir`` / ``run``) holds its lock while it runs
    (:func:`sne_loihi.io.run_lock`: a second writer gets a one-line error). Under torchrun
    only rank 0 takes the lock and prints to stdout; a config error is printed by rank 0 only. A command's
    ``--factory`` value and ``--trust-factory`` flag (where it has them) are the only ways an
    external teacher's code may be imported while it runs
    (:func:`sne_loihi.teachers.external.trusted_factories`).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sne_loihi.distributed import env_rank

        rank = env_rank()  # under torchrun: rank 0 alone holds the lock and prints results
        try:
            with contextlib.ExitStack() as stack:
                if rank:
                    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
                run_folder = kwargs.get("run_dir", kwargs.get("run"))
                if isinstance(run_folder, Path) and not rank:  # one writer per run folder
                    from sne_loihi.io import run_lock

                    stack.enter_context(run_lock(run_folder))
                if "trust_factory" in kwargs or "factory" in kwargs:
                    from sne_loihi.teachers.external import trusted_factories

                    stack.enter_context(trusted_factories([kwargs.get("factory")],
                                                          trust_all=bool(kwargs.get("trust_factory"))))
                return fn(*args, **kwargs)
        except SneError as exc:
            if not rank or not isinstance(exc, ConfigError):  # a config error is the same on every rank
                typer.echo(f"error: {exc}" if not rank else f"error (rank {rank}): {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; the last epoch checkpoint is kept: rerun with --resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


# ---- shared options -------------------------------------------------------------------
DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="digits (embedded) or cifar10.")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder of CIFAR-10 python batches.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML config (flags override it).")]
PresetOpt = Annotated[Optional[str], typer.Option(
    "--preset", help="Named preset shipped with sne-loihi: cpu-cifar10, paper-cifar10 (--config and flags override it).")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder (default: runs/<dataset>-<time>).")]
RunArg = Annotated[Path, typer.Argument(help="Run folder written by 'sne train' or 'sne pipeline'.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --run-dir.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (CUDA if present), cpu, cuda[:i].")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")]
MaxTrainOpt = Annotated[Optional[int], typer.Option("--max-train", help="Use at most N training samples (0 = all).")]
MaxTestOpt = Annotated[Optional[int], typer.Option("--max-test", help="Use at most N test samples (0 = all).")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (0 = default).")]
TrustFactoryOpt = Annotated[bool, typer.Option(
    "--trust-factory", help="Let the external teacher factory named by the run's config or checkpoint be "
    "imported (it runs that module's code).")]


def _run_config(
    dataset: str | None,
    config_file: Path | None,
    run_dir: Path | None,
    overrides: dict[str, Any],
    preset_name: str | None = None,
) -> RunConfig:
    """Resolve the config; a run folder's own config.toml is the base when no --config."""
    from sne_loihi.pipeline import CONFIG_FILE

    if config_file is None and run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        config_file = run_dir / CONFIG_FILE
    if overrides.get("data.data_dir") is not None:
        overrides["data.data_dir"] = str(overrides["data.data_dir"])
    cfg = resolve(dataset, config_file, overrides, preset_name)
    from sne_loihi.train.checks import check_config

    check_config(cfg)  # before any run folder is made or any training starts
    from sne_loihi.teachers import EXTERNAL
    from sne_loihi.teachers.external import require_trusted_factory

    if cfg.teacher.arch == EXTERNAL:  # a stored config.toml or --config file alone never runs code
        require_trusted_factory(cfg.teacher.factory, config_file or "the config")
    return cfg


def _echo_preset(cfg: RunConfig) -> None:
    """Print the resolved config of a preset run, so the run says what it trains."""
    if cfg.preset:
        import tomli_w

        typer.echo(f"preset {cfg.preset}; resolved config:\n{tomli_w.dumps(cfg.to_dict()).rstrip()}")


def _default_run_dir(run_dir: Path | None, cfg: RunConfig) -> Path:
    return run_dir or Path("runs") / f"{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


# ---- teacher ----------------------------------------------------------------------------
@teacher_app.callback()
@friendly
def teacher(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    run_dir: RunDirOpt = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Teacher: digits_cnn, vgg11, vgg19, resnet18, external.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Teacher epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    factory: Annotated[Optional[str], typer.Option("--factory", help="external: 'pkg.module:function' building your model.")] = None,
    feature_layer: Annotated[Optional[str], typer.Option("--feature-layer", help="external: module whose output is f_T.")] = None,
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help="external: your state_dict file.")] = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    max_train: MaxTrainOpt = None,
    max_test: MaxTestOpt = None,
    resume: ResumeOpt = False,
    progress: ProgressOpt = True,
    trust_factory: TrustFactoryOpt = False,
) -> None:
    """Train an ANN teacher with cross-entropy and store it in the run folder."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"dataset": dataset, "config": config, "run_dir": run_dir, "device": device, "progress": progress,
                   "factory": factory, "trust_factory": trust_factory}
        return
    from sne_loihi.pipeline import check_teacher_buildable, load_data, prepare_run_dir
    from sne_loihi.train.teacher import train_teacher

    cfg = _run_config(dataset, config, run_dir, {
        "data.data_dir": data_dir, "teacher.arch": arch, "teacher.epochs": epochs, "teacher.lr": lr,
        "teacher.batch_size": batch_size, "teacher.factory": factory, "teacher.feature_layer": feature_layer,
        "teacher.checkpoint": checkpoint, "train.seed": seed, "train.device": device,
        "data.max_train": max_train, "data.max_test": max_test,
    }, preset)
    _echo_preset(cfg)
    run_dir = _default_run_dir(run_dir, cfg)
    data = load_data(cfg)
    check_teacher_buildable(cfg, data)  # a bad external checkpoint fails before the run folder exists
    prepare_run_dir(run_dir, cfg, resume=resume, checkpoints=("teacher.pt",))
    result = train_teacher(cfg, data, run_dir, resume=resume, progress=progress)
    typer.echo(f"teacher {cfg.teacher.arch}: test accuracy {100 * result.test_accuracy:.2f}% -> {result.path}")


@teacher_app.command("finetune")
@friendly
def teacher_finetune(
    ctx: typer.Context,
    students: Annotated[int, typer.Option("--students", help="N: number of contiguous chunks/students.")] = 4,
    beta: Annotated[float, typer.Option("--beta", help="Weight of L_sim (must be < 0).")] = -0.5,
    epochs: Annotated[int, typer.Option("--epochs")] = 10,
    lr: Annotated[float, typer.Option("--lr")] = 1e-4,
) -> None:
    """Disentangle the teacher: fine-tune with CE + beta * L_sim (method.md section 4)."""
    from sne_loihi.distributed import is_main_process
    from sne_loihi.io import run_lock
    from sne_loihi.pipeline import finetune_stage
    from sne_loihi.teachers.external import trusted_factories

    opts = ctx.obj or {}
    if opts.get("run_dir") is None:
        raise SneError("teacher finetune needs --run-dir (before 'finetune') holding teacher.pt")
    lock = run_lock(Path(opts["run_dir"])) if is_main_process() else contextlib.nullcontext()  # torchrun: rank 0
    with lock, \
            trusted_factories([opts.get("factory")], trust_all=bool(opts.get("trust_factory"))):
        summary = finetune_stage(
            Path(opts["run_dir"]), students=students, beta=beta, epochs=epochs, lr=lr,
            device=opts.get("device"), progress=opts.get("progress", True),
        )
    b, a = summary["before"], summary["after"]
    typer.echo(f"teacher test accuracy {100 * b['test_accuracy']:.2f}% -> {100 * a['test_accuracy']:.2f}%, "
               f"L_sim {b['l_sim']:.4f} -> {a['l_sim']:.4f} ({Path(opts['run_dir']) / 'finetune.json'})")


# ---- partition --------------------------------------------------------------------------
#: Strategies are plain strings on the command line, so an unknown one is a one-line
#: ConfigError from config resolution (exit 1), not a multi-line usage error.
STRATEGY_NAMES = ", ".join(s.value for s in PartitionStrategy)

@app.command()
@friendly
def partition(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run folder holding teacher.pt.")],
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", help=f"Partition strategy: {STRATEGY_NAMES} (default: the run's config, else fixed).")] = None,
    students: Annotated[Optional[int], typer.Option("--students", help="N groups.")] = None,
    seed: SeedOpt = None,
    trust_factory: TrustFactoryOpt = False,
) -> None:
    """Split the teacher's feature dimensions into N groups and store partition.json."""
    from sne_loihi.pipeline import partition_stage

    cfg = _run_config(None, None, run_dir, {
        "ensemble.partition": strategy, "ensemble.num_students": students, "train.seed": seed,
    })
    part = partition_stage(cfg, run_dir)
    typer.echo(f"{part.strategy.value} partition of {part.feature_dim} features, group sizes {list(part.sizes)}")


# ---- students ---------------------------------------------------------------------------
StudentsOpt = Annotated[Optional[int], typer.Option("--students", help="N students.")]
StudentArchOpt = Annotated[Optional[str], typer.Option("--student-arch", help="Student architecture.")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Student epochs.")]
AlphaOpt = Annotated[Optional[float], typer.Option("--alpha", help="KD weight (0 = no distillation).")]
TimeStepsOpt = Annotated[Optional[int], typer.Option("--time-steps", help="T.")]
PartitionOpt = Annotated[Optional[str], typer.Option("--partition", help=f"Partition strategy: {STRATEGY_NAMES}.")]
TrainActiveOpt = Annotated[Optional[int], typer.Option("--train-active", help="Dropout training: K random active students per batch.")]
StudentEngineOpt = Annotated[Optional[StudentEngine], typer.Option(
    "--student-engine", help="How SLAYER students run: fast (default; same spikes, several times faster) or slayer.")]


def _echo_engine(cfg: Any) -> None:
    """Say at the start of training which engine runs the students."""
    if cfg.student.backend is not StudentBackend.SLAYER:
        return
    if cfg.student.engine is StudentEngine.FAST:
        from sne_loihi.students.fast_cuba import forward_path
        from sne_loihi.train.common import resolve_device

        typer.echo(f"student engine: fast (CUBA forward: {forward_path(resolve_device(cfg.train.device))})")
    else:
        typer.echo("student engine: slayer (lava-dl SLAYER blocks)")


def _student_overrides(**kw: Any) -> dict[str, Any]:
    keys = {
        "students": "ensemble.num_students", "student_arch": "student.arch", "epochs": "train.epochs",
        "alpha": "ensemble.alpha", "time_steps": "student.time_steps", "partition": "ensemble.partition",
        "train_active": "ensemble.train_active", "lr": "train.lr", "batch_size": "train.batch_size",
        "seed": "train.seed", "device": "train.device", "data_dir": "data.data_dir",
        "max_train": "data.max_train", "max_test": "data.max_test", "teacher_epochs": "teacher.epochs",
        "teacher_arch": "teacher.arch", "threads": "train.threads", "student_engine": "student.engine",
    }
    return {keys[k]: v for k, v in kw.items()}


@app.command()
@friendly
def train(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run folder holding teacher.pt (from 'sne teacher').")],
    config: ConfigOpt = None,
    students: StudentsOpt = None,
    student_arch: StudentArchOpt = None,
    epochs: EpochsOpt = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    alpha: AlphaOpt = None,
    time_steps: TimeStepsOpt = None,
    partition: PartitionOpt = None,
    train_active: TrainActiveOpt = None,
    student_engine: StudentEngineOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = False,
    progress: ProgressOpt = True,
    trust_factory: TrustFactoryOpt = False,
) -> None:
    """Distil the run's teacher into an ensemble of SLAYER students."""
    from sne_loihi.pipeline import students_stage

    cfg = _run_config(None, config, run_dir, _student_overrides(
        students=students, student_arch=student_arch, epochs=epochs, lr=lr, batch_size=batch_size,
        alpha=alpha, time_steps=time_steps, partition=partition, train_active=train_active,
        seed=seed, device=device, threads=threads, student_engine=student_engine,
    ))
    _echo_engine(cfg)
    result = students_stage(cfg, run_dir, resume=resume, progress=progress)
    last = result.history[-1] if result.history else {}
    typer.echo(f"ensemble: test accuracy {100 * last.get('test_accuracy', float('nan')):.2f}% -> {result.path}"
               f" (run 'sne evaluate {run_dir}' for the full report)")


NoiseOpt = Annotated[Optional[str], typer.Option("--noise", help="Gaussian noise sigmas, e.g. 0.01,0.03,0.05,0.07.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", help="Noise draws per level.")]
EnergyOpt = Annotated[str, typer.Option("--energy", help="Energy profile: cmos45nm, loihi, or a TOML file.")]
ActivationOpt = Annotated[bool, typer.Option("--activation/--no-activation", help="Random-K, subset and per-sample analysis.")]
DrawBatchOpt = Annotated[int, typer.Option("--draw-batch", help="Random K: a new draw of K students every N test samples.")]


def _report_options(energy: str, activation: bool, noise: str | None, repeats: int, draw_batch: int = 32):
    from sne_loihi.analysis.noise import parse_levels
    from sne_loihi.analysis.runreport import ReportOptions, resolve_profile

    resolve_profile(energy)  # an unknown name or a bad file fails now, not after hours of training
    if draw_batch < 1:
        raise SneError(f"--draw-batch must be >= 1, got {draw_batch}")
    if repeats < 1:
        raise SneError(f"--repeats must be >= 1, got {repeats}")
    return ReportOptions(energy_profile=energy, activation=activation,
                         noise=parse_levels(noise) if noise else [], repeats=repeats, draw_batch=draw_batch)


@app.command()
@friendly
def evaluate(
    run: RunArg,
    energy: EnergyOpt = "cmos45nm",
    activation: ActivationOpt = True,
    noise: NoiseOpt = None,
    repeats: RepeatsOpt = 10,
    draw_batch: DrawBatchOpt = 32,
    trust_factory: TrustFactoryOpt = False,
    neurobench: Annotated[bool, typer.Option(
        "--neurobench/--no-neurobench", help="Also count synaptic ops, activation sparsity and footprint with "
        "NeuroBench and put them next to ours in the report (needs the 'interop' extra).")] = False,
    neurobench_samples: Annotated[int, typer.Option(
        "--neurobench-samples", help="Test samples for --neurobench (0 = all).")] = 0,
) -> None:
    """Accuracy and per-sample cost of teacher, students and ensemble; activation policies,
    noise robustness; rewrites the run's report.md/report.json and plots."""
    from sne_loihi.analysis.runreport import build_report
    from sne_loihi.report import print_table

    if neurobench_samples < 0:
        raise SneError(f"--neurobench-samples must be >= 0, got {neurobench_samples}")
    if neurobench:
        from sne_loihi.cost.neurobench_check import import_neurobench

        import_neurobench()  # missing neurobench fails before the evaluation
    options = _report_options(energy, activation, noise, repeats, draw_batch)
    options.neurobench, options.neurobench_samples = neurobench, neurobench_samples
    out = build_report(run, f"sne-loihi evaluation: {run}", options)
    print_table(out["rows"], f"{run} (energy profile {energy})")
    for r in out.get("neurobench", []):
        typer.echo(f"NeuroBench vs ours, {r['model']}: MACs {r['nb_macs']:,.2f} vs {r['our_macs']:,.2f} "
                   f"(diff {r['diff_macs']:+g}), ACs {r['nb_acs']:,.2f} vs {r['our_acs']:,.2f} (diff {r['diff_acs']:+g})")
    typer.echo(f"report: {run / 'report.md'}")


# ---- export and simulate ------------------------------------------------------------------
SamplesOpt = Annotated[int, typer.Option("--samples", help="The first N test samples (parity check / simulation).")]
CapacityOpt = Annotated[int, typer.Option("--capacity", help="Samples per Lava run of the one compiled graph.")]
BackendOpt = Annotated[Backend, typer.Option("--backend", help="auto (Loihi 2 if lava-loihi is installed, else CPU), cpu, loihi2.")]


class ExportFormat(str, Enum):
    """What ``sne export`` writes: netx HDF5 for Lava / Loihi 2 (default) or NIR graphs."""

    NETX = "netx"
    NIR = "nir"


@app.command()
@friendly
def export(
    run: RunArg,
    out: Annotated[Optional[Path], typer.Option("--out", help="Export folder (default: RUN/export, RUN/nir for NIR).")] = None,
    samples: Annotated[int, typer.Option("--verify-samples", help="Test samples of the Lava parity check, or of the "
                                         "snnTorch re-import check for NIR (0 skips it).")] = 100,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing export.")] = False,
    capacity: CapacityOpt = 25,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="netx (Lava / Loihi 2) or nir (one NIR graph per "
                                              "student + the head, re-imported in snnTorch).")] = ExportFormat.NETX,
) -> None:
    """Write one netx HDF5 file per student and manifest.json, verified in Lava (fixed_pt)
    against torch spike for spike on the first test samples; or, with --format nir, one NIR
    graph per student plus the head, re-imported in snnTorch and compared spike for spike."""
    from sne_loihi.lava_stage import export_run

    if samples < 0:
        raise SneError(f"--verify-samples must be >= 0, got {samples}")
    if fmt is ExportFormat.NIR:
        _export_nir(run, out, samples, overwrite)
        return
    typer.echo(f"exporting {run} and checking Lava against torch on {samples} test samples ...")
    manifest = export_run(run, out, samples=samples, overwrite=overwrite, capacity=capacity)
    check = (f"parity: {manifest.parity.samples} samples, {manifest.parity.mismatches} mismatches"
             if manifest.parity else "parity check skipped (--verify-samples 0)")
    typer.echo(f"{len(manifest.students)} students -> {manifest.directory} ({check})")
    if manifest.loihi2:
        from sne_loihi.export.manifest import LOIHI2_REPORT

        counts = manifest.loihi2["counts"]
        typer.echo(f"Loihi 2 readiness: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail "
                   f"-> {manifest.directory / LOIHI2_REPORT}")
    typer.echo("cascade head: included (sne simulate --cascade)" if manifest.cascade else
               f"cascade head: none current for this ensemble (run 'sne evaluate {run}' to train one)")


def _export_nir(run: Path, out: Path | None, samples: int, overwrite: bool) -> None:
    from sne_loihi.lava_stage import export_nir_run

    typer.echo(f"exporting {run} to NIR and re-importing it in snnTorch on {samples} test samples ...")
    exported = export_nir_run(run, out, samples=samples, overwrite=overwrite)
    typer.echo(f"{len(exported.students)} students + head -> {exported.directory}")
    _echo_nir_check(exported.manifest.get("check"))


def _echo_nir_check(check: dict[str, Any] | None) -> None:
    """The re-import check's totals, as the export and ``sne nir`` print them."""
    if check is None:
        typer.echo("re-import check skipped (--verify-samples 0)")
        return
    n = check["neuron_steps"]
    typer.echo(f"{check['importer']}: {check['samples']} samples, {n:,} neuron-steps; spikes differing from the "
               f"CubaLIF dynamics: {check['mismatches_vs_float']}; from SLAYER's fixed point (NIR has no "
               f"truncation): {check['mismatches_vs_slayer']} ({check['mismatches_vs_slayer'] / max(n, 1):.2g})")
    if check.get("prediction_mismatches") is not None:
        acc = f", snnTorch accuracy {100 * check['accuracy']:.2f}%" if check.get("accuracy") is not None else ""
        typer.echo(f"ensemble predictions differing from torch: {check['prediction_mismatches']} of "
                   f"{check['samples']}{acc}")


@app.command("nir")
@friendly
def nir_read(
    target: Annotated[Path, typer.Argument(help="NIR export folder (from 'sne export --format nir') or one .nir file.")],
    samples: Annotated[int, typer.Option("--samples", help="Export folder: re-import it in snnTorch and compare on the "
                                         "first N test samples with the run's ensemble (0: only read it).")] = 0,
    compare: Annotated[Optional[Path], typer.Option(
        "--compare", help="Ensemble checkpoint to compare with (default: ensemble.pt beside the export).")] = None,
) -> None:
    """Read a NIR export or graph back (nir.read): nodes, shapes, neuron parameters, dt; with
    --samples, run it in snnTorch and compare every layer's spikes with the torch students."""
    from sne_loihi.export.nir_export import describe_graph, read_nir_export, read_nir_graph
    from sne_loihi.report import print_table

    if samples < 0:
        raise SneError(f"--samples must be >= 0, got {samples}")
    columns = (("node", "node", str), ("type", "type", str), ("shape", "output shape", str),
               ("parameters", "parameters", str))
    if target.is_file():
        if samples:
            raise SneError("--samples applies to an export folder (it needs the head and the input encoding)")
        graph = read_nir_graph(target)
        print_table(describe_graph(graph), f"{target} (dt {graph.metadata.get('dt', 'not recorded')})", columns)
        return
    if not target.is_dir():
        raise SneError(f"{target} not found (expected a NIR export folder or a .nir file)")
    exported = read_nir_export(target)
    for i, graph in enumerate(exported.students):
        print_table(describe_graph(graph), f"student {i} (dt {graph.metadata.get('dt')})", columns)
    print_table(describe_graph(exported.head), "head (applied to the concatenated rates)", columns)
    if samples:
        from sne_loihi.lava_stage import check_nir_export

        from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE

        compare = compare or target.parent / ENSEMBLE_FILE
        _echo_nir_check(check_nir_export(exported, compare, samples).to_dict())


@app.command()
@friendly
def simulate(
    target: Annotated[Path, typer.Argument(help="Export folder (from 'sne export'), or a single netx .net/.h5 file.")],
    active: Annotated[Optional[list[str]], typer.Option(
        "--active", help="Students to switch on: all, indices like 0,2, or k=K (K drawn at random). "
        "Repeat the option to run several sets on the same compiled graph.")] = None,
    samples: SamplesOpt = 100,
    backend: BackendOpt = Backend.AUTO,
    energy: EnergyOpt = "cmos45nm",
    capacity: CapacityOpt = 25,
    seed: Annotated[int, typer.Option("--seed", help="Seed of k=K draws.")] = 0,
    data_dir: DataDirOpt = None,
    compare: Annotated[Optional[Path], typer.Option(
        "--compare", help="Ensemble checkpoint to compare spikes and ops with (default: ensemble.pt beside the export, if any).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input", help="Single network: input .npy, integers [N, ..., T] "
        "(real values for an input layer driven by its bias).")] = None,
    input_bits: Annotated[int, typer.Option("--input-bits", help="Single network: graded input bits (0 = binary spikes).")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON (a new file).")] = None,
    cascade: Annotated[Optional[str], typer.Option(
        "--cascade", help="Per-sample activation thresholds, e.g. 0,0.9,1.01: the export's cascade head decides "
        "in the Lava graph after each student whether a sample goes on.")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", help="CPU process models: fast (vectorised, same spikes) or reference (Lava's own).")] = "fast",
    layers: Annotated[Optional[int], typer.Option(
        "--layers", help="Single network: run only its first K layer groups (as netx's num_layers), e.g. to "
        "leave out a readout layer netx cannot build.")] = None,
    reset_interval: Annotated[str, typer.Option(
        "--reset-interval", help="Single network: reset every neuron every T steps ('T', default: each sample "
        "starts from rest), every N steps (an integer), or never ('none': one plain netx run of the whole input).")] = "T",
    retime: Annotated[bool, typer.Option(
        "--retime/--no-retime", help="Single network: attribute output spikes and ops to samples by the number of "
        "synapses on the way (default), or keep Lava's raw steps (sample n's step t = Lava step n*T+t+1).")] = True,
    output: Annotated[Optional[Path], typer.Option(
        "--output", help="Single network: write the last layer's spikes [N, F, T], counts [N, F] and ops [N, L] "
        "to this .npz (a new file).")] = None,
) -> None:
    """Run an exported ensemble (or any netx network) as Lava processes: per-student input,
    students (spike counts in the neurons), readouts. Prints accuracy, ops per student and layer, energy, speed;
    for a single network also its output spike counts."""
    from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE
    from sne_loihi.io import atomic_write_json
    from sne_loihi.lava_stage import LAVA_COLUMNS, simulate_export, simulate_netx_file
    from sne_loihi.report import print_table

    from sne_loihi.students.spec import MAX_INPUT_BITS

    if not 0 <= input_bits <= MAX_INPUT_BITS:
        raise SneError(f"--input-bits must be in 0..{MAX_INPUT_BITS} (0 = binary spikes), got {input_bits}")
    if active is not None and any(not a.strip() for a in active):
        raise SneError("--active must not be empty: give all, indices like 0,2, or k=K")
    thresholds = _float_list(cascade, "--cascade") if cascade else None
    bad = [t for t in thresholds or [] if not (math.isfinite(t) and t >= 0)]
    if bad:
        raise SneError(f"--cascade thresholds must be finite numbers >= 0, got {bad[0]}")
    if json_out is not None and json_out.exists():
        raise SneError(f"{json_out} exists; choose a new --json file")
    reset = _reset_interval(reset_interval)
    if output is not None and output.exists():
        raise SneError(f"{output} exists; choose a new --output file")
    if layers is not None and layers < 1:
        raise SneError(f"--layers must be >= 1, got {layers}")
    if target.is_file():
        if input_file is None:
            raise SneError(f"{target} is a single network: give its input with --input FILE.npy")
        rep = simulate_netx_file(target, input_file, input_bits=input_bits, backend=backend, energy=energy,
                                 capacity=capacity, engine=engine, num_layers=layers, reset_interval=reset,
                                 retime=retime, output=output)
    elif target.is_dir():
        single = [name for name, used in (("--layers", layers is not None), ("--output", output is not None),
                                          ("--reset-interval", reset != "T"), ("--no-retime", not retime)) if used]
        if single:
            raise SneError(f"{single[0]} applies to a single netx network, not to an export folder")
        if compare is None and (target.parent / ENSEMBLE_FILE).is_file():
            compare = target.parent / ENSEMBLE_FILE
        rep = simulate_export(target, samples=samples, active=active, backend=backend, energy=energy,
                              capacity=capacity, seed=seed, data_dir=str(data_dir) if data_dir else None,
                              torch_checkpoint=compare, cascade=thresholds,
                              engine=engine)
    else:
        raise SneError(f"{target} not found (expected an export folder or a netx file)")
    print_table(rep.rows(), f"Lava, backend {rep.backend}: {rep.samples} samples, energy profile {energy}", LAVA_COLUMNS)
    for r in rep.layer_rows():
        typer.echo(f"  [{r['active']}] student {r['student']}: ops/sample per layer {r['ops_per_layer']}")
    if backend is Backend.AUTO:
        typer.echo(f"--backend auto chose {rep.backend}" + (" (Intel's lava-loihi extension is not installed)"
                                                           if rep.backend == Backend.CPU.value else ""))
    typer.echo(f"backend used: {rep.backend}; engine: {rep.engine}; compilations: {rep.compilations} "
               f"({rep.compile_seconds:.1f} s, not in samples/s)"
               + ("" if compare or target.is_file() else "; no torch checkpoint to compare with (--compare)"))
    if rep.output is not None:
        out = rep.output
        for note in out.get("notes", []):
            typer.echo(f"warning: {note}", err=True)
        typer.echo(f"output layer {out['shape_xyz']} (Lava order), spike counts per neuron over all samples: "
                   f"{out['counts_per_neuron']}")
        for n, counts in enumerate(out["counts"][:10]):
            typer.echo(f"  sample {n}: {counts}")
        if len(out["counts"]) > 10:
            typer.echo(f"  ... {len(out['counts']) - 10} more samples (all in --output / --json)")
        if out["file"]:
            typer.echo(f"output spikes: {out['file']}")
    if json_out is not None:
        atomic_write_json(json_out, rep.to_dict())
        typer.echo(f"results: {json_out}")
    disagreements = rep.disagreements()
    if disagreements:  # the contract is 0 and 0: a difference is a failure, not a table entry
        raise SneError(f"Lava and torch disagree ({'; '.join(disagreements)}); the results above are not exact")


def _reset_interval(text: str) -> int | str | None:
    """``--reset-interval``: ``T`` -> ``"T"``, ``none`` -> ``None``, an integer >= 1 -> itself."""
    value = text.strip()
    if value.upper() == "T":
        return "T"
    if value.lower() == "none":
        return None
    try:
        steps = int(value)
    except ValueError:
        raise SneError(f"--reset-interval must be T, none or an integer >= 1, got {text!r}") from None
    if steps < 1:
        raise SneError(f"--reset-interval must be T, none or an integer >= 1, got {text!r}")
    return steps


# ---- pipeline ---------------------------------------------------------------------------
@app.command()
@friendly
def pipeline(
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    run_dir: RunDirOpt = None,
    teacher_arch: Annotated[Optional[str], typer.Option("--teacher-arch")] = None,
    teacher_epochs: Annotated[Optional[int], typer.Option("--teacher-epochs")] = None,
    students: StudentsOpt = None,
    student_arch: StudentArchOpt = None,
    epochs: EpochsOpt = None,
    alpha: AlphaOpt = None,
    time_steps: TimeStepsOpt = None,
    partition: PartitionOpt = None,
    train_active: TrainActiveOpt = None,
    student_engine: StudentEngineOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    max_train: MaxTrainOpt = None,
    max_test: MaxTestOpt = None,
    lava: Annotated[Optional[bool], typer.Option("--lava/--no-lava", help="End with netx export and a Lava simulation.")] = None,
    lava_samples: Annotated[Optional[int], typer.Option("--lava-samples", help="Test samples for the parity check and the Lava run.")] = None,
    backend: Annotated[Optional[Backend], typer.Option("--backend", help="Lava backend: auto, cpu, loihi2.")] = None,
    lava_cascade: Annotated[Optional[str], typer.Option(
        "--lava-cascade", help="Per-sample activation thresholds to simulate in Lava, e.g. 0.6,0.9 ('none': skip).")] = None,
    dropout_k: Annotated[Optional[str], typer.Option("--dropout-k", help="Also train dropout variants with these K, e.g. 1,2,3.")] = None,
    energy: EnergyOpt = "cmos45nm",
    activation: ActivationOpt = True,
    noise: NoiseOpt = None,
    repeats: RepeatsOpt = 10,
    draw_batch: DrawBatchOpt = 32,
    resume: ResumeOpt = False,
    progress: ProgressOpt = True,
    trust_factory: TrustFactoryOpt = False,
) -> None:
    """Teacher -> partition -> students -> export + Lava simulation -> evaluation -> report, in one run folder."""
    from sne_loihi.pipeline import run_pipeline

    overrides = _student_overrides(
        teacher_arch=teacher_arch, teacher_epochs=teacher_epochs, students=students,
        student_arch=student_arch, epochs=epochs, alpha=alpha, time_steps=time_steps,
        partition=partition, train_active=train_active, seed=seed, device=device, threads=threads,
        data_dir=data_dir, max_train=max_train, max_test=max_test, student_engine=student_engine,
    )
    overrides.update({"lava.enabled": lava, "lava.samples": lava_samples, "lava.backend": backend,
                      "lava.cascade": _float_list(lava_cascade, "--lava-cascade") if lava_cascade else None})
    cfg = _run_config(dataset, config, run_dir if resume else None, overrides, preset)
    _echo_preset(cfg)
    run_dir = _default_run_dir(run_dir, cfg)
    ks = _int_list(dropout_k, "--dropout-k") if dropout_k else []
    _echo_engine(cfg)
    run_pipeline(cfg, run_dir, resume=resume, progress=progress,
                 report=_report_options(energy, activation, noise, repeats, draw_batch), dropout_ks=ks)
    typer.echo(f"report: {run_dir / 'report.md'}")


def _float_list(text: str, flag: str) -> list[float]:
    if text.strip().lower() == "none":
        return []
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise SneError(f"{flag} expects comma-separated numbers, got {text!r}") from None


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise SneError(f"{flag} expects comma-separated integers, got {text!r}") from None


def main() -> None:
    """Console entry point (``sne``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
