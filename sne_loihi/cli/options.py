"""Options several commands share that set no config key, and the config front door
(:func:`run_config`) every command resolves its :class:`~sne_loihi.config.RunConfig` through."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

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

# export and simulate (the Lava section's defaults are the defaults)
SamplesOpt = Annotated[int, typer.Option("--samples", help="The first N test samples (parity check / simulation).")]
CapacityOpt = Annotated[int, typer.Option("--capacity", help="Samples per Lava run of the one compiled graph.")]
EnergyOpt = Annotated[str, typer.Option("--energy", help="Energy profile: cmos45nm, loihi, or a TOML file.")]
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


def stored_config(run_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """A command on an existing run folder: its ``config.toml`` (the config defaults if it has
    none) below ``overrides``. Reads no code and checks no device or architecture (the
    commands check the sections they use).

    Raises:
        ConfigError: An unreadable ``config.toml`` or a bad value type.
    """
    from sne_loihi.run import CONFIG_FILE

    stored = Path(run_dir) / CONFIG_FILE
    return resolve(None, stored if stored.is_file() else None, overrides)


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
        from sne_loihi.students.fast_cuba import forward_path

        typer.echo(f"student engine: fast (CUBA forward: {forward_path(resolve_device(cfg.train.device))})")
    else:
        typer.echo("student engine: slayer (lava-dl SLAYER blocks)")
