"""The command line's one flag table: every flag that sets a config key defaults to None (an
unset flag never overrides the config), names a real key, and the other defaults are the
config's."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

from sne_loihi.analysis.options import ReportOptions
from sne_loihi.cli import app
from sne_loihi.cli import flags as cli_flags
from sne_loihi.cli.flags import ConfigFlag, config_flags
from sne_loihi.config import DEFAULT_ENERGY_PROFILE, LavaConfig, RunConfig

TABLE = [f for name in dir(cli_flags) if name.endswith("_FLAGS") for f in getattr(cli_flags, name)]


#: The commands that resolve a run config (export and simulate read an export, not a config).
CONFIG_COMMANDS = ("teacher", "teacher finetune", "partition", "train", "pipeline")


def _commands() -> dict[str, Any]:
    """``"simulate"``, ``"teacher"``, ``"teacher finetune"``, ... -> the click command."""
    root = typer.main.get_command(app)
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: str) -> None:
        if path:
            out[path] = cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return out


def _option(command: str, flag: str) -> TyperOption:
    return next(p for p in _commands()[command].params if isinstance(p, TyperOption) and flag in p.opts)


def _field_type(dotted: str) -> Any:
    cls: Any = RunConfig
    for part in dotted.split("."):
        hints = typing.get_type_hints(cls)
        assert part in {f.name for f in dataclasses.fields(cls)}, f"{dotted}: no config key {part!r}"
        cls = hints[part]
    return cls


def test_every_table_flag_names_a_config_key() -> None:
    assert len(TABLE) > 20
    for flag in TABLE:
        _field_type(flag.key)


def test_every_config_flag_defaults_to_none_in_every_command() -> None:
    spellings = {f.flag.split("/")[0] for f in TABLE}
    seen = 0
    for name, cmd in _commands().items():
        if name not in CONFIG_COMMANDS:
            continue
        for p in cmd.params:
            if isinstance(p, TyperOption) and p.opts[0] in spellings:
                assert p.default is None, f"sne {name} {p.opts[0]} defaults to {p.default!r}, not None"
                seen += 1
    assert seen >= 40  # teacher, finetune, partition, train, pipeline


@pytest.mark.parametrize(("command", "flag", "expected"), [
    ("export", "--capacity", LavaConfig().capacity),
    ("simulate", "--capacity", LavaConfig().capacity),
    ("export", "--verify-samples", LavaConfig().samples),
    ("simulate", "--samples", LavaConfig().samples),
    ("simulate", "--energy", DEFAULT_ENERGY_PROFILE),
    ("simulate", "--backend", LavaConfig().backend),
    ("evaluate", "--energy", ReportOptions().energy_profile),
    ("pipeline", "--energy", ReportOptions().energy_profile),
    ("evaluate", "--repeats", ReportOptions().repeats),
    ("pipeline", "--repeats", ReportOptions().repeats),
    ("evaluate", "--draw-batch", ReportOptions().draw_batch),
    ("pipeline", "--draw-batch", ReportOptions().draw_batch),
    ("evaluate", "--neurobench-samples", ReportOptions().neurobench_samples),
])
def test_other_defaults_are_the_config_defaults(command: str, flag: str, expected: Any) -> None:
    assert _option(command, flag).default == expected
    assert ReportOptions().energy_profile == DEFAULT_ENERGY_PROFILE


def test_train_and_pipeline_share_the_student_flags() -> None:
    names = {f.flag for f in cli_flags.STUDENT_FLAGS}
    for command in ("train", "pipeline"):
        have = {o for p in _commands()[command].params if isinstance(p, TyperOption) for o in p.opts}
        assert names <= have, f"sne {command} lacks {sorted(names - have)}"


def test_config_flags_hand_over_only_what_was_given() -> None:
    """An unset flag arrives as None (resolve ignores it); a given one under its config key,
    converted (a comma list to numbers)."""
    got: dict[str, Any] = {}
    demo = typer.Typer()
    table = (ConfigFlag("epochs", "--epochs", "train.epochs", int), ConfigFlag(
        "cascade", "--cascade", "lava.cascade", str, to_config=lambda t: cli_flags.float_list(t, "--cascade")))

    @demo.command()
    @config_flags(table)
    def run(name: str = "x", overrides: Any = None) -> None:
        got.update(overrides, name=name)

    result = CliRunner().invoke(demo, ["--cascade", "0.5,0.9"])
    assert result.exit_code == 0, result.output
    assert got == {"train.epochs": None, "lava.cascade": [0.5, 0.9], "name": "x"}
