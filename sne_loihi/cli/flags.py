"""The one table of command-line flags that set config keys.

Every flag that sets a :class:`~sne_loihi.config.RunConfig` key is declared here once, with
the key it sets, and reaches a command only through :func:`config_flags`: the flag's default
is ``None``, so an unset flag never overrides the config (dataset preset < named preset <
``--config`` file or the run folder's ``config.toml`` < flags, see
:func:`sne_loihi.config.resolve`). Commands that share options (``sne train`` and
``sne pipeline``) share the group that declares them.
"""

from __future__ import annotations

import functools
import inspect
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sne_loihi.config import (
    Backend, FirstLayer, PartitionStrategy, RunConfig, StudentEngine, comma_items, parse_override,
)
from sne_loihi.errors import SneError

#: Strategies are plain strings on the command line, so an unknown one is a one-line
#: ConfigError from config resolution (exit 1), not a multi-line usage error.
STRATEGY_NAMES = ", ".join(s.value for s in PartitionStrategy)


def float_list(text: str, flag: str) -> list[float]:
    """``"0.6,0.9"`` -> ``[0.6, 0.9]``; ``"none"`` or an empty value -> ``[]``.

    Raises:
        SneError: Not comma-separated numbers, or an empty item (``"0.6,,0.9"``).
    """
    if not text.strip() or text.strip().lower() == "none":
        return []
    items = comma_items(text, flag)
    try:
        return [float(t) for t in items]
    except ValueError:
        raise SneError(f"{flag} expects comma-separated numbers, got {text!r}") from None


def energy_profile_value(text: str) -> str:
    """``--energy``: a registered profile name as it is; a profile file as an absolute path, so
    the run's config.toml names it from any working folder (a later ``sne evaluate`` elsewhere)."""
    from sne_loihi.cost.energy import is_profile_file

    return str(Path(text).expanduser().resolve()) if is_profile_file(text) else text


def int_list(text: str, flag: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``; an empty value -> ``[]``.

    Raises:
        SneError: Not comma-separated integers, or an empty item (``"1,,3"``).
    """
    if not text.strip():
        return []
    items = comma_items(text, flag)
    try:
        return [int(t) for t in items]
    except ValueError:
        raise SneError(f"{flag} expects comma-separated integers, got {text!r}") from None


@dataclass(frozen=True)
class ConfigFlag:
    """A command-line option that sets one config key.

    Attributes:
        param: The command function's parameter name.
        flag: The option as typed (``--teacher-epochs``; ``--lava/--no-lava`` for a switch).
        key: The dotted config key it sets.
        type: The option's value type (the parameter is ``Optional[type]``, default ``None``).
        help: Help text.
        to_config: Turns the typed value into the config value (e.g. a list parsed from text).
    """

    param: str
    flag: str
    key: str
    type: Any
    help: str
    to_config: Callable[[Any], Any] | None = None

    def annotation(self, panel: str | None = None) -> Any:
        """The Typer annotation of the parameter, shown in the help panel ``panel``."""
        switch = self.type is bool
        return Annotated[Optional[self.type], typer.Option(
            *self.flag.split(" "), help=self.help, rich_help_panel=panel, show_default=builtin_default(self.key),
            metavar="" if switch else None)]

    def value(self, given: Any) -> Any:
        """The config value for what the user typed (``None`` stays ``None``)."""
        if given is None or self.to_config is None:
            return given
        return self.to_config(given)


@dataclass(frozen=True)
class FlagGroup:
    """Config flags shown together under one heading of a command's ``--help``.

    Attributes:
        panel: The heading.
        flags: The flags, in the order shown.
    """

    panel: str
    flags: tuple[ConfigFlag, ...]

    def __iter__(self) -> Iterator[ConfigFlag]:
        return iter(self.flags)


def builtin_default(key: str) -> str | bool:
    """What ``--help`` shows as a config flag's default: the config's value wins, the built-in
    (digits) value is shown for orientation; ``False`` (nothing shown) where there is none."""
    value: Any = RunConfig()
    for part in key.split("."):
        value = getattr(value, part, None)
    if value is None or value == "" or value == []:
        return False
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return f"config; digits: {value}"


F = ConfigFlag
#: ``sne teacher`` (and the teacher of ``sne pipeline``).
TEACHER_FLAGS = FlagGroup("Teacher", (
    F("teacher_arch", "--teacher-arch", "teacher.arch", str,
      "Teacher: airbench, airbench95, digits_cnn, vgg11, vgg19, resnet18, auto (from the image size), external."),
    F("teacher_epochs", "--teacher-epochs", "teacher.epochs", int, "Teacher training epochs."),
    F("teacher_lr", "--teacher-lr", "teacher.lr", float, "Teacher learning rate."),
    F("teacher_batch_size", "--teacher-batch-size", "teacher.batch_size", int, "Teacher batch size."),
    F("factory", "--factory", "teacher.factory", str, "external: 'pkg.module:function' building your model."),
    F("feature_layer", "--feature-layer", "teacher.feature_layer", str, "external: module whose output is f_T."),
    F("checkpoint", "--checkpoint", "teacher.checkpoint", str,
      "external: your state_dict file (its weights start the teacher's training; --teacher-epochs 0 keeps them).",
      lambda text: str(Path(text).expanduser().resolve())),
))
#: Data-set size and location (``sne teacher``, ``sne pipeline``).
DATA_FLAGS = FlagGroup("Data", (
    F("data_dir", "--data-dir", "data.data_dir", Path, "Where the data is: CIFAR-10 python batches, an image tree (folder, .tar, .tar.gz, .zip) or an .npz.", str),
    F("max_train", "--max-train", "data.max_train", int, "Use at most N training samples (0 = all)."),
    F("max_test", "--max-test", "data.max_test", int, "Use at most N test samples (0 = all)."),
))
SEED = F("seed", "--seed", "train.seed", int, "Random seed.")
DEVICE = F("device", "--device", "train.device", str, "auto (CUDA if present), cpu, cuda[:i].")
THREADS = F("threads", "--threads", "train.threads", int, "torch CPU threads (0 = torch's default).")
#: Where and how reproducibly training runs.
EXECUTION_FLAGS = FlagGroup("Execution", (SEED, DEVICE, THREADS))
#: The students and their distillation: ``sne train`` and ``sne pipeline`` share these.
STUDENT_FLAGS = FlagGroup("Students", (
    F("students", "--students", "ensemble.num_students", int, "N: number of students."),
    F("student_arch", "--student-arch", "student.arch", str, "Student architecture: digits_tiny, digits_small, vgg5mini, vgg5, vgg11, auto (from the image size)."),
    F("student_epochs", "--student-epochs", "train.epochs", int, "Student training epochs."),
    F("alpha", "--alpha", "ensemble.alpha", float, "KD weight (0 = no distillation)."),
    F("time_steps", "--time-steps", "student.time_steps", int, "T: time steps per sample."),
    F("partition", "--partition", "ensemble.partition", str, f"Partition strategy: {STRATEGY_NAMES}."),
    F("train_active", "--train-active", "ensemble.train_active", int,
      "Dropout training: K random active students per batch."),
    F("student_engine", "--student-engine", "student.engine", StudentEngine,
      "How SLAYER students run: fast (same spikes, several times faster) or slayer."),
))
#: ``sne train`` only (the pipeline's students keep the config's).
TRAIN_FLAGS = FlagGroup("Students", (
    F("student_lr", "--student-lr", "train.lr", float, "Student learning rate."),
    F("student_batch_size", "--student-batch-size", "train.batch_size", int, "Student batch size."),
))
FIRST_LAYER = F("first_layer", "--first-layer", "lava.first_layer", FirstLayer,
                "How the export drives each student's first layer: synaptic (the image every step), bias (a "
                "per-sample neuron bias the host computes once; needs current_decay 1), auto (bias where allowed).")
#: ``sne export`` (netx).
EXPORT_FLAGS = FlagGroup("Export", (FIRST_LAYER,))
#: ``sne pipeline``: the export and Lava stage, dropout variants.
PIPELINE_FLAGS = FlagGroup("Export and Lava", (
    F("lava", "--lava/--no-lava", "lava.enabled", bool, "End with netx export and a Lava simulation."),
    F("lava_samples", "--lava-samples", "lava.samples", int, "Test samples for the parity check and the Lava run."),
    F("backend", "--backend", "lava.backend", Backend, "Lava backend: auto, cpu, loihi2."),
    F("lava_cascade", "--lava-cascade", "lava.cascade", str,
      "Per-sample activation thresholds to simulate in Lava, e.g. 0.6,0.9 ('none': skip).",
      lambda text: float_list(text, "--lava-cascade") if text else None),
    FIRST_LAYER,
    F("dropout_k", "--dropout-k", "pipeline.dropout_k", str, "Also train dropout variants with these K, e.g. 1,2,3.",
      lambda text: int_list(text, "--dropout-k")),
))
#: The report: ``sne evaluate`` and ``sne pipeline`` share these.
REPORT_FLAGS = FlagGroup("Report", (
    F("energy", "--energy", "report.energy_profile", str, "Energy profile: cmos45nm, loihi, or a TOML file.",
      energy_profile_value),
    F("activation", "--activation/--no-activation", "report.activation", bool,
      "Random-K, subset and per-sample analysis."),
    F("noise", "--noise", "report.noise", str, "Gaussian noise sigmas, e.g. 0.01,0.03,0.05,0.07 ('none': skip).",
      lambda text: float_list(text, "--noise")),
    F("repeats", "--repeats", "report.repeats", int, "Noise draws per level."),
    F("draw_batch", "--draw-batch", "report.draw_batch", int, "Random K: a new draw of K students every N test samples."),
))
#: ``sne evaluate`` beyond the report flags.
EVALUATE_FLAGS = FlagGroup("NeuroBench", (
    F("neurobench", "--neurobench/--no-neurobench", "report.neurobench", bool,
      "Also count synaptic ops, activation sparsity and footprint with NeuroBench and put them next to ours in the "
      "report (needs the 'interop' extra)."),
    F("neurobench_samples", "--neurobench-samples", "report.neurobench_samples", int,
      "Test samples for --neurobench (0 = all)."),
))
#: ``sne partition``.
PARTITION_FLAGS = FlagGroup("Partition", (
    F("partition", "--partition", "ensemble.partition", str,
      f"Partition strategy: {STRATEGY_NAMES} (default: the run's config, else fixed)."),
    F("students", "--students", "ensemble.num_students", int, "N groups."),
    SEED,
))
#: ``sne teacher finetune`` (the run's config.toml, else the config defaults, below the flags).
FINETUNE_FLAGS = FlagGroup("Fine-tuning", (
    F("students", "--students", "ensemble.num_students", int, "N: number of contiguous chunks/students."),
    F("beta", "--beta", "finetune.beta", float, "Weight of L_sim (must be < 0)."),
    F("finetune_epochs", "--finetune-epochs", "finetune.epochs", int, "Fine-tuning epochs."),
    F("finetune_lr", "--finetune-lr", "finetune.lr", float, "Fine-tuning learning rate (Adam)."),
))
del F


def option_group(name: str, params: Sequence[inspect.Parameter],
                 build: Callable[[dict[str, Any]], Any]) -> Callable[[Callable], Callable]:
    """Replace a command's parameter ``name`` by the options ``params`` (in its place, so also
    in its ``--help``); the command is called with ``name=build({param: value})``.

    How options several commands share are declared once (:func:`config_flags`, the report
    options of :mod:`sne_loihi.cli.options`).
    """
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"a command cannot take the same option twice: {names}")

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn, eval_str=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
        at = [p.name for p in own].index(name)
        new_params = own[:at] + list(params) + own[at + 1:]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {n: kwargs.pop(n) for n in names if n in kwargs}
            return fn(*args, **{name: build(given)}, **kwargs)

        command.__signature__ = signature.replace(parameters=new_params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in new_params}
        return command

    return decorate


#: ``--set section.key=value`` (repeatable) on every command that takes config flags.
SET_PARAM = "set_values"
SET_OPTION = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", rich_help_panel="Config",
    help="Set any config key, e.g. --set data.image_size=32 (TOML value; repeatable; named flags win).")]


def config_flags(*groups: FlagGroup) -> Callable[[Callable], Callable]:
    """Give a command the flags of ``groups`` (each under its help panel); it receives them as
    ``overrides``.

    The decorated function declares a parameter ``overrides`` where the flags go in its
    signature (and its ``--help``); the command Typer sees has one optional parameter per flag
    instead, and the function is called with ``overrides={config key: value}`` (unset flags:
    ``None``, which :func:`sne_loihi.config.resolve` ignores).
    """
    flags = [f for group in groups for f in group]
    params = [inspect.Parameter(f.param, inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation=f.annotation(group.panel))
              for group in groups for f in group]
    params.append(inspect.Parameter(SET_PARAM, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SET_OPTION))

    def build(given: dict[str, Any]) -> dict[str, Any]:
        overrides = dict(parse_override(text) for text in given.get(SET_PARAM) or [])
        for f in flags:  # a named flag wins over --set of the same key
            value = f.value(given.get(f.param))
            if value is not None or f.key not in overrides:
                overrides[f.key] = value
        return overrides

    return option_group("overrides", params, build)
