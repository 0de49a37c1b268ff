"""Options several commands share that set no config key, and the config front door
(:func:`run_config`) every command resolves its :class:`~sne_loihi.config.RunConfig` through."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sne_loihi.analysis.options import ReportOptions
from sne_loihi.cli.flags import option_group
from sne_loihi.config import Backend, RunConfig, StudentBackend, StudentEngine, resolve

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", help="digits (embedded) or cifar10.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML config (flags override it).")]
PresetOpt = Annotated[Optional[str], typer.Option(
    "--preset", help="Named preset shipped with sne-loihi: cpu-cifar10, paper-cifar10 (--config and flags override it).")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", help="Run folder (default: runs/<dataset>-<time>).")]
RunArg = Annotated[Path, typer.Argument(help="Run folder written by 'sne train' or 'sne pipeline'.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --run-dir.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")]
TrustFactoryOpt = Annotated[bool, typer.Option(
    "--trust-factory", help="Let the external teacher factory named by the run's config or checkpoint be "
    "imported (it runs that module's code).")]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Folder of CIFAR-10 python batches.")]

# report options (ReportOptions' defaults are the defaults)
NoiseOpt = Annotated[Optional[str], typer.Option("--noise", help="Gaussian noise sigmas, e.g. 0.01,0.03,0.05,0.07.")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", help="Noise draws per level.")]
EnergyOpt = Annotated[str, typer.Option("--energy", help="Energy profile: cmos45nm, loihi, or a TOML file.")]
ActivationOpt = Annotated[bool, typer.Option("--activation/--no-activation", help="Random-K, subset and per-sample analysis.")]
DrawBatchOpt = Annotated[int, typer.Option("--draw-batch", help="Random K: a new draw of K students every N test samples.")]
REPORT_DEFAULTS = ReportOptions()
#: The report options ``sne evaluate`` and ``sne pipeline`` share (:func:`report_flags`).
REPORT_PARAMS = tuple(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
                      for name, kind, default in (
    ("energy", EnergyOpt, REPORT_DEFAULTS.energy_profile),
    ("activation", ActivationOpt, REPORT_DEFAULTS.activation),
    ("noise", NoiseOpt, None),
    ("repeats", RepeatsOpt, REPORT_DEFAULTS.repeats),
    ("draw_batch", DrawBatchOpt, REPORT_DEFAULTS.draw_batch),
))

# export and simulate (the Lava section's defaults are the defaults)
SamplesOpt = Annotated[int, typer.Option("--samples", help="The first N test samples (parity check / simulation).")]
CapacityOpt = Annotated[int, typer.Option("--capacity", help="Samples per Lava run of the one compiled graph.")]
BackendOpt = Annotated[Backend, typer.Option("--backend", help="auto (Loihi 2 if lava-loihi is installed, else CPU), cpu, loihi2.")]


def run_config(
    dataset: str | None,
    config_file: Path | None,
    run_dir: Path | None,
    overrides: dict[str, Any],
    preset_name: str | None = None,
) -> RunConfig:
    """Resolve and check the config: dataset preset < named preset < ``config_file`` (else the
    run folder's ``config.toml``) < ``overrides`` (``None`` values ignored).

    Raises:
        ConfigError: The first impossible setting (:func:`sne_loihi.checks.check_config`), or
            an external teacher whose factory the user did not trust.
    """
    from sne_loihi.checks import check_config
    from sne_loihi.run import CONFIG_FILE
    from sne_loihi.teachers import EXTERNAL
    from sne_loihi.teachers.external import require_trusted_factory

    if config_file is None and run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        config_file = run_dir / CONFIG_FILE
    cfg = resolve(dataset, config_file, overrides, preset_name)
    check_config(cfg)  # before any run folder is made or any training starts
    if cfg.teacher.arch == EXTERNAL:  # a stored config.toml or --config file alone never runs code
        require_trusted_factory(cfg.teacher.factory, config_file or "the config")
    return cfg


def echo_preset(cfg: RunConfig) -> None:
    """Print the resolved config of a preset run, so the run says what it trains."""
    if cfg.preset:
        import tomli_w

        typer.echo(f"preset {cfg.preset}; resolved config:\n{tomli_w.dumps(cfg.to_dict()).rstrip()}")


def default_run_dir(run_dir: Path | None, cfg: RunConfig) -> Path:
    """``--run-dir``, else ``runs/<dataset>-<time>``."""
    return run_dir or Path("runs") / f"{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def echo_engine(cfg: RunConfig) -> None:
    """Say at the start of training which engine runs the students."""
    if cfg.student.backend is not StudentBackend.SLAYER:
        return
    if cfg.student.engine is StudentEngine.FAST:
        from sne_loihi.device import resolve_device
        from sne_loihi.students.fast_cuba import engine_paths

        typer.echo(f"student engine: fast ({engine_paths(resolve_device(cfg.train.device))})")
    else:
        typer.echo("student engine: slayer (lava-dl SLAYER blocks)")


def report_options(given: dict[str, Any]) -> ReportOptions:
    """:class:`ReportOptions` from the report flags (unset ones: the defaults), checked before
    any work (an unknown energy profile fails now, not after hours of training).

    Raises:
        ConfigError: A bad value or energy profile.
    """
    from sne_loihi.analysis.noise import parse_levels
    from sne_loihi.cost.energy import resolve_profile

    values = {p.name: given.get(p.name, p.default) for p in REPORT_PARAMS}
    resolve_profile(values["energy"])
    return ReportOptions(energy_profile=values["energy"], activation=values["activation"],
                         noise=parse_levels(values["noise"]) if values["noise"] else [], repeats=values["repeats"],
                         draw_batch=values["draw_batch"])


#: Give a command the report options; it receives ``report``, a checked :class:`ReportOptions`.
report_flags = option_group("report", REPORT_PARAMS, report_options)
