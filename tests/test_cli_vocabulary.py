"""One command-line vocabulary: renamed options keep working with a one-line notice, every
option has help text, and a run folder is given the same way to every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
from typer.core import TyperArgument, TyperOption
from typer.testing import CliRunner

from sne_loihi.cli import app
from sne_loihi.cli.deprecations import DEPRECATED_OPTIONS, upgrade_args
from sne_loihi.cli.options import ProgressOpt

from cli_commands import cli_commands

runner = CliRunner()


def _options(command: str) -> set[str]:
    return {o for p in cli_commands()[command].params if isinstance(p, TyperOption) for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("renamed", DEPRECATED_OPTIONS, ids=lambda r: f"{r.command}:{r.old}")
def test_a_renamed_option_maps_to_one_the_command_has(renamed: Any) -> None:
    options = _options(renamed.command)
    assert renamed.new in options, f"sne {renamed.command} has no {renamed.new}"
    assert renamed.old not in options, f"sne {renamed.command} still declares {renamed.old} itself"


def test_upgrade_rewrites_names_not_values_and_says_so() -> None:
    args, notices = upgrade_args(["teacher", "--epochs", "3", "--run-dir", "--epochs", "finetune", "--lr=0.1",
                                  "--", "--epochs"])
    # a value that looks like an option is still rewritten only where it stands as an option name:
    assert args == ["teacher", "--teacher-epochs", "3", "--run-dir", "--teacher-epochs", "finetune",
                    "--finetune-lr=0.1", "--", "--epochs"]
    assert notices == [
        "warning: 'sne teacher --epochs' is deprecated and will be removed; use --teacher-epochs",
        "warning: 'sne teacher --epochs' is deprecated and will be removed; use --teacher-epochs",
        "warning: 'sne teacher finetune --lr' is deprecated and will be removed; use --finetune-lr",
    ]
    same, none = upgrade_args(["train", "--student-epochs", "2", "--threads", "1"])
    assert same == ["train", "--student-epochs", "2", "--threads", "1"] and none == []


def test_an_old_name_still_runs_with_one_notice(tmp_path: Path) -> None:
    """``sne train --epochs`` (the students' epochs) still reaches train.epochs: the config check
    refuses 0 under its key, after one deprecation line."""
    result = runner.invoke(app, ["train", "--run-dir", str(tmp_path), "--epochs", "0"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "warning: 'sne train --epochs' is deprecated and will be removed; use --student-epochs"
    assert len(lines) == 2 and lines[1].startswith("error: ") and "train.epochs must be >= 1, got 0" in lines[1]


@pytest.mark.parametrize("command", sorted(cli_commands()))
def test_every_option_and_argument_has_help_text(command: str) -> None:
    cmd = cli_commands()[command]
    if not hasattr(cmd, "params"):
        return
    missing = [p.name for p in cmd.params if isinstance(p, (TyperOption, TyperArgument)) and not (p.help or "").strip()]
    assert not missing, f"sne {command}: no help text for {missing}"
    assert (cmd.help or "").strip(), f"sne {command} has no help text"


@pytest.mark.parametrize("command", ["train", "partition", "evaluate", "export", "teacher finetune"])
def test_every_command_on_a_run_takes_run_dir(command: str) -> None:
    assert "--run-dir" in _options(command)


@pytest.mark.parametrize("command", ["train", "partition", "evaluate", "export"])
def test_two_different_run_folders_are_refused(tmp_path: Path, command: str) -> None:
    result = runner.invoke(app, [command, str(tmp_path / "a"), "--run-dir", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: two run folders given ({tmp_path / 'a'} and --run-dir {tmp_path / 'b'}); give one"


@pytest.mark.parametrize("command", ["train", "partition", "evaluate", "export"])
def test_no_run_folder_is_a_one_line_error(command: str) -> None:
    result = runner.invoke(app, [command])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: give the run folder: RUN or --run-dir RUN"


def test_help_shows_no_literal_backquotes_and_no_bool_metavars() -> None:
    for command in ("pipeline", "train", "evaluate", "export", "simulate", "teacher"):
        text = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"}).stdout
        assert "``" not in text, command
        for line in text.splitlines():
            if "--resume" in line or "--progress" in line or "--overwrite" in line:
                assert "<bool>" not in line, line
        assert max(len(line) for line in text.splitlines()) <= 80, command


@pytest.mark.parametrize("command", sorted(cli_commands()))
def test_every_command_takes_the_one_no_progress(command: str) -> None:
    """Every command can show a progress bar: each can read a data set, and decoding an image
    folder shows one on a terminal (besides the training and Lava bars of some). So each takes
    --progress/--no-progress as declared once (options.ProgressOpt), under the parameter name
    by which the command wrapper switches every bar off (tests/test_own_data.py checks it does)."""
    shared = get_args(ProgressOpt)[1]
    found = [p for p in cli_commands()[command].params if isinstance(p, TyperOption) and "--no-progress" in p.secondary_opts]
    assert found, f"sne {command} can show a progress bar but has no --no-progress"
    (option,) = found
    assert (option.name, option.opts, option.help, option.default) == ("progress", ["--progress"], shared.help, True)


@pytest.mark.parametrize(("args", "says"), [
    (["simulate", "{tmp}", "--cascade", "0.5,,0.9"], "--cascade '0.5,,0.9'"),
    (["simulate", "{tmp}", "--cascade", "0.5,"], "--cascade '0.5,'"),
    (["evaluate", "{tmp}", "--noise", ",0.03"], "--noise ',0.03'"),
    (["pipeline", "--lava-cascade", "0.6,,0.9", "--run-dir", "{tmp}/new"], "--lava-cascade '0.6,,0.9'"),
    (["pipeline", "--dropout-k", "1,,2", "--run-dir", "{tmp}/new"], "--dropout-k '1,,2'"),
])
def test_an_empty_item_in_a_list_option_is_a_one_line_error(tmp_path: Path, args: list[str], says: str) -> None:
    """``0.5,,0.9`` is a typo, not the list 0.5,0.9: refused before any work, in one line."""
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {says}: empty item in the comma-separated list (two commas in a row, "
                                     "or one at an end)"), result.stderr
    assert not (tmp_path / "new").exists()


def test_list_options_parse_items_and_keep_none_for_no_list() -> None:
    """The shared parsers: items with spaces are fine, an empty item is refused (also in an
    --active set), and 'none' or an empty value still means no list (documented for --noise
    and --lava-cascade)."""
    from sne_loihi.analysis.noise import parse_levels
    from sne_loihi.cli.flags import float_list, int_list
    from sne_loihi.errors import ConfigError, SimulationError, SneError
    from sne_loihi.indices import parse_active

    assert float_list("0.6, 0.9", "--noise") == [0.6, 0.9] and int_list(" 1,2 ", "--dropout-k") == [1, 2]
    assert float_list("none", "--noise") == float_list("", "--noise") == float_list("NONE ", "--noise") == []
    assert int_list("", "--dropout-k") == []
    assert parse_levels("0.01, 0.03") == [0.01, 0.03] and parse_active("0, 2", 3).indices == (0, 2)
    for parse, text, error in ((lambda t: float_list(t, "--noise"), "0.1,,0.2", SneError),
                               (lambda t: int_list(t, "--dropout-k"), ",1", SneError),
                               (parse_levels, "0.1, ,0.2", ConfigError),
                               (lambda t: parse_active(t, 3), "0,,2", SimulationError),
                               (lambda t: parse_active(t, 3), ",", SimulationError)):
        with pytest.raises(error, match="empty item in the comma-separated list"):
            parse(text)


@pytest.mark.parametrize(("option", "registry"), [("--student-arch", "students"), ("--teacher-arch", "teachers")])
def test_architecture_help_names_every_registered_architecture(option: str, registry: str) -> None:
    """The help text is written out (importing the registries costs torch at every ``--help``);
    this keeps it from falling behind them."""
    from sne_loihi.students.archs import STUDENT_ARCHS
    from sne_loihi.teachers.registry import TEACHERS

    names = (STUDENT_ARCHS if registry == "students" else TEACHERS).names()
    param = next(p for p in cli_commands()["pipeline"].params if isinstance(p, TyperOption) and option in p.opts)
    assert [n for n in names if n not in param.help] == []


def test_help_shows_placeholders_the_markup_keeps() -> None:
    text = runner.invoke(app, ["pipeline", "--help"], env={"COLUMNS": "200"}).stdout
    assert "runs/DATASET-DATE-TIME" in text and "runs/-" not in text
