"""Options several commands share that set no config key, and the config front door
(:func:`run_config`) every command resolves its :class:`~sne_loihi.config.RunConfig` through."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sne_loihi.cli.flags import option_group
from sne_loihi.config import Backend, NeuronLibrary, RunConfig, StudentEngine, preset_names, resolve
from sne_loihi.errors import ConfigError, SneError

#: Help panels of the options that set no config key.
RUN_PANEL = "Run folder and config"
JOB_PANEL = "Job"
LAVA_PANEL = "Lava"

DatasetOpt = Annotated[Optional[str], typer.Option("--dataset", rich_help_panel=RUN_PANEL, help="digits (embedded), cifar10 (python batches), imagefolder (class folders or an archive of them) or npz.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", rich_help_panel=RUN_PANEL,
                                                  help="TOML config (flags override it).")]
PresetOpt = Annotated[Optional[str], typer.Option(
    "--preset", rich_help_panel=RUN_PANEL, help=f"Named preset shipped with sne-loihi: {', '.join(preset_names())} (--config and flags "
    "override it).")]
RunDirOpt = Annotated[Optional[Path], typer.Option("--run-dir", rich_help_panel=RUN_PANEL,
                                                   help="Run folder (default: runs/DATASET-DATE-TIME).")]
#: A command on an existing run folder takes it as its argument or as ``--run-dir`` (the same
#: name every command uses); :func:`one_run_folder` picks the one given.
RunArg = Annotated[Optional[Path], typer.Argument(
    metavar="RUN", help="Run folder written by 'sne teacher', 'sne train' or 'sne pipeline' (or give it as --run-dir).",
    show_default=False)]
ExistingRunDirOpt = Annotated[Optional[Path], typer.Option(
    "--run-dir", rich_help_panel=RUN_PANEL, help="Run folder (the same as the RUN argument).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", rich_help_panel=JOB_PANEL, metavar="",
                                         help="Continue an interrupted run in --run-dir.")]
#: Every command takes it (each may at least decode an image folder, which shows a bar on a
#: terminal); :func:`sne_loihi.cli.app.friendly` switches off every bar with ``--no-progress``.
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", rich_help_panel=JOB_PANEL, metavar="",
                                           help="Progress bars (training, Lava runs, image decoding).")]
TrustFactoryOpt = Annotated[bool, typer.Option(
    "--trust-factory", rich_help_panel=JOB_PANEL, metavar="",
    help="Let the external teacher factory named by the run's config or checkpoint be imported (it runs that "
    "module's code).")]
DataDirOpt = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="Where the export's data set is, to take its test samples from (default: the run's "
    "data.data_dir).")]

# export and simulate (the Lava section's defaults are the defaults)
LavaSamplesOpt = Annotated[int, typer.Option("--lava-samples", rich_help_panel=LAVA_PANEL,
                                             help="The first N test samples to simulate in Lava.")]
CheckSamplesOpt = Annotated[int, typer.Option(
    "--check-samples", help="Test samples of the export's check: Lava against torch for netx, snnTorch against "
    "torch for NIR (0 skips it).")]
CapacityOpt = Annotated[int, typer.Option("--capacity", rich_help_panel=LAVA_PANEL,
                                          help="Samples per Lava run of the one compiled graph.")]
EnergyOpt = Annotated[str, typer.Option("--energy", help="Energy profile: cmos45nm, loihi, or a TOML file.")]
BackendOpt = Annotated[Backend, typer.Option("--backend", rich_help_panel=LAVA_PANEL,
                                             help="auto (Loihi 2 if lava-loihi is installed, else CPU), cpu, loihi2.")]


def one_run_folder(run: Path | None, run_dir: Path | None) -> Path:
    """The run folder given as the argument or as ``--run-dir``.

    Raises:
        SneError: Neither, or two different folders.
    """
    if run is None and run_dir is None:
        raise SneError("give the run folder: RUN or --run-dir RUN")
    if run is not None and run_dir is not None and Path(run).resolve() != Path(run_dir).resolve():
        raise SneError(f"two run folders given ({run} and --run-dir {run_dir}); give one")
    return Path(run if run is not None else run_dir)


def _keyword_params(*items: tuple[str, Any, Any]) -> tuple[inspect.Parameter, ...]:
    return tuple(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
                 for name, kind, default in items)


@dataclass(frozen=True)
class NewRun:
    """Where a command that starts a run (``sne teacher``, ``sne pipeline``) takes its config
    from (``--dataset``, ``--config``, ``--preset``) and where the run goes (``--run-dir``)."""

    dataset: str | None = None
    config: Path | None = None
    preset: str | None = None
    run_dir: Path | None = None


@dataclass(frozen=True)
class Job:
    """How a training command runs: ``--resume``, ``--progress``, ``--trust-factory``."""

    resume: bool = False
    progress: bool = True
    trust_factory: bool = False


#: Give a command ``new_run``, a :class:`NewRun` from its four options.
new_run_options = option_group("new_run", _keyword_params(
    ("dataset", DatasetOpt, None), ("config", ConfigOpt, None), ("preset", PresetOpt, None), ("run_dir", RunDirOpt, None),
), lambda given: NewRun(**given))
#: Give a command ``job``, a :class:`Job` from its three options.
job_options = option_group("job", _keyword_params(
    ("resume", ResumeOpt, False), ("progress", ProgressOpt, True), ("trust_factory", TrustFactoryOpt, False),
), lambda given: Job(**given))


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

    stored = run_dir / CONFIG_FILE if run_dir is not None and (run_dir / CONFIG_FILE).is_file() else None
    if config_file is not None and preset_name is None:  # a user's file naming a preset: applied beneath it
        preset_name = _file_preset(config_file)
    # a user's file is layered over the run's stored config (it replaced it, resetting the rest)
    files = [f for f in (stored, config_file) if f is not None]
    cfg = resolve(dataset, files or None, overrides, preset_name)
    check_config(cfg)  # before any run folder is made or any training starts
    if cfg.teacher.arch == EXTERNAL:  # a stored config.toml or --config file alone never runs code
        require_trusted_factory(cfg.teacher.factory, config_file or "the config")
    return cfg


def _file_preset(config_file: Path) -> str | None:
    """The ``preset`` a user's config file names (``None``: none)."""
    from sne_loihi.config import load_toml

    name = load_toml(config_file).get("preset")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"preset in {config_file}: expected a preset name, got {name!r}")
    return name


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


def check_resume_target(run_dir: Path | None, resume: bool) -> None:
    """``--resume`` needs the folder it continues (without ``--run-dir`` it started a new one).

    Raises:
        SneError: ``--resume`` without ``--run-dir``.
    """
    if resume and run_dir is None:
        raise SneError("--resume continues a run folder: name it with --run-dir")


@contextlib.contextmanager
def run_folder(run_dir: Path | None, cfg: RunConfig) -> Iterator[Path]:
    """``--run-dir`` as given (the command's :func:`~sne_loihi.cli.app.friendly` wrapper holds
    its lock), else a new ``runs/<dataset>-<time>`` folder claimed for this command: created
    exclusively (``-2``, ``-3``, ... where another command took the name in the same second,
    e.g. seeds launched together) and locked while the command runs; removed again if the
    command wrote nothing to it.

    Raises:
        SneError: No ``--run-dir`` under torchrun (every rank must name the same folder).
    """
    if run_dir is not None:
        yield run_dir
        return
    from sne_loihi.distributed import env_world_size
    from sne_loihi.io import run_lock

    if env_world_size() > 1:
        raise SneError("under torchrun name the run folder with --run-dir (every rank must use the same one)")
    base = Path("runs") / f"{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        claimed = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            claimed.mkdir()
            break
        except FileExistsError:
            continue
    try:
        with run_lock(claimed):
            yield claimed
    finally:
        try:
            claimed.rmdir()  # only if nothing was written
        except OSError:
            pass


def echo_engine(cfg: RunConfig) -> None:
    """Say at the start of training which engine runs the students."""
    if cfg.student.neuron_library is not NeuronLibrary.SLAYER:
        return
    if cfg.student.engine is StudentEngine.FAST:
        from sne_loihi.device import resolve_device
        from sne_loihi.students.fast_cuba import engine_paths

        typer.echo(f"student engine: fast ({engine_paths(resolve_device(cfg.train.device))})")
    else:
        typer.echo("student engine: slayer (lava-dl SLAYER blocks)")


def option_given(ctx: typer.Context, param: str) -> bool:
    """Whether the user gave the option of this command parameter (not its default)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
