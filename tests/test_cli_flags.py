"""The command line's one flag table: every flag that sets a config key defaults to None (an
unset flag never overrides the config), names a real key, and the other defaults are the
config's."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

from sne_loihi.analysis.options import ReportOptions
from sne_loihi.cli import app
from sne_loihi.cli import flags as cli_flags
from sne_loihi.cli.flags import ConfigFlag, config_flags
from sne_loihi.config import DEFAULT_ENERGY_PROFILE, LavaConfig, ReportConfig, RunConfig, field_types

from cli_commands import cli_commands

TABLE = [f for name in dir(cli_flags) if name.endswith("_FLAGS") for f in getattr(cli_flags, name)]


#: The commands that resolve a run config (export and simulate read an export, not a config).
CONFIG_COMMANDS = ("teacher", "teacher finetune", "partition", "train", "pipeline", "evaluate")


def _option(command: str, flag: str) -> TyperOption:
    return next(p for p in cli_commands()[command].params if isinstance(p, TyperOption) and flag in p.opts)


def _field_type(dotted: str) -> Any:
    cls: Any = RunConfig
    for part in dotted.split("."):
        hints = field_types(cls)
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
    for name, cmd in cli_commands().items():
        if name not in CONFIG_COMMANDS:
            continue
        for p in cmd.params:
            if isinstance(p, TyperOption) and p.opts[0] in spellings:
                assert p.default is None, f"sne {name} {p.opts[0]} defaults to {p.default!r}, not None"
                seen += 1
    assert seen >= 50  # teacher, finetune, partition, train, pipeline (with the report), evaluate


@pytest.mark.parametrize(("command", "flag", "expected"), [
    ("export", "--capacity", LavaConfig().capacity),
    ("simulate", "--capacity", LavaConfig().capacity),
    ("export", "--check-samples", LavaConfig().samples),
    ("simulate", "--lava-samples", LavaConfig().samples),
    ("simulate", "--energy", DEFAULT_ENERGY_PROFILE),
    ("simulate", "--backend", LavaConfig().backend),
])
def test_other_defaults_are_the_config_defaults(command: str, flag: str, expected: Any) -> None:
    assert _option(command, flag).default == expected
    assert ReportOptions().energy_profile == ReportConfig().energy_profile == DEFAULT_ENERGY_PROFILE


@pytest.mark.parametrize("command", ["pipeline", "evaluate"])
def test_the_report_flags_are_config_flags_of_pipeline_and_evaluate(command: str) -> None:
    """The report options are the config's ``report`` section: the same table entries, None defaults."""
    for flag in cli_flags.REPORT_FLAGS:
        option = _option(command, flag.flag.split("/")[0])
        assert option.default is None and flag.key.startswith("report.")
    assert _option("pipeline", "--dropout-k").default is None


def _report_toml(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[report]\nrepeats = 3\nnoise = [0.05]\ndraw_batch = 8\n[pipeline]\ndropout_k = [1]\n")
    return path


def test_pipeline_takes_report_and_dropout_settings_from_the_config(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Config-only report and pipeline settings are honoured; a given flag overrides one key."""
    import sne_loihi.pipeline as pipeline_mod

    seen: list[RunConfig] = []
    monkeypatch.setattr(pipeline_mod, "run_pipeline", lambda cfg, run_dir, **kw: seen.append(cfg) or {})
    config = _report_toml(tmp_path)
    for extra, repeats in (([], 3), (["--repeats", "5"], 5)):
        result = CliRunner().invoke(app, ["pipeline", "--config", str(config), "--run-dir", str(tmp_path / "r"),
                                          *extra])
        assert result.exit_code == 0, result.output
        assert seen[-1].report == ReportConfig(repeats=repeats, noise=[0.05], draw_batch=8)
        assert seen[-1].pipeline.dropout_k == [1]


def test_evaluate_takes_report_settings_from_the_run_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sne_loihi.pipeline as pipeline_mod

    seen: list[ReportOptions] = []
    monkeypatch.setattr(pipeline_mod, "report_run", lambda run, title, options, *a: seen.append(options) or {"rows": []})
    _report_toml(tmp_path)
    for extra, noise in (([], [0.05]), (["--noise", "0.1,0.2", "--neurobench-samples", "4"], [0.1, 0.2])):
        result = CliRunner().invoke(app, ["evaluate", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
        assert (seen[-1].noise, seen[-1].repeats, seen[-1].draw_batch) == (noise, 3, 8)
    assert seen[-1].neurobench_samples == 4
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--repeats", "0"])
    assert result.exit_code == 1 and "report.repeats must be >= 1, got 0" in result.output


def test_train_and_pipeline_share_the_student_flags() -> None:
    names = {f.flag for f in cli_flags.STUDENT_FLAGS}
    for command in ("train", "pipeline"):
        have = {o for p in cli_commands()[command].params if isinstance(p, TyperOption) for o in p.opts}
        assert names <= have, f"sne {command} lacks {sorted(names - have)}"


def test_config_flags_hand_over_only_what_was_given() -> None:
    """An unset flag arrives as None (resolve ignores it); a given one under its config key,
    converted (a comma list to numbers)."""
    got: dict[str, Any] = {}
    demo = typer.Typer()
    table = cli_flags.FlagGroup("Demo", (ConfigFlag("epochs", "--epochs", "train.epochs", int, "Epochs."), ConfigFlag(
        "cascade", "--cascade", "lava.cascade", str, "Thresholds.",
        to_config=lambda t: cli_flags.float_list(t, "--cascade"))))

    @demo.command()
    @config_flags(table)
    def run(name: str = "x", overrides: Any = None) -> None:
        got.update(overrides, name=name)

    result = CliRunner().invoke(demo, ["--cascade", "0.5,0.9"])
    assert result.exit_code == 0, result.output
    assert got == {"train.epochs": None, "lava.cascade": [0.5, 0.9], "name": "x"}
