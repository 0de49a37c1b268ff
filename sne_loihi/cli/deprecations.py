"""Old option names that keep working for a while, with a one-line notice.

The command line once used one name for different things (``--epochs`` was the teacher's in
``sne teacher`` and the students' in ``sne train``) and different names for one thing
(``--strategy`` / ``--partition``). :data:`DEPRECATED_OPTIONS` maps each old name, per
command, to today's; :func:`upgrade_args` rewrites a command line before it is parsed and
says what it changed, so scripts written for the old names run unchanged and are told how to
update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Renamed:
    """An option renamed in one command.

    Attributes:
        command: The command path after ``sne`` (``"teacher finetune"``).
        old: The old option name.
        new: Today's name.
    """

    command: str
    old: str
    new: str


#: Every renamed option (the guide's table of old and new names is generated from it).
DEPRECATED_OPTIONS: tuple[Renamed, ...] = (
    Renamed("teacher", "--arch", "--teacher-arch"),
    Renamed("teacher", "--epochs", "--teacher-epochs"),
    Renamed("teacher", "--lr", "--teacher-lr"),
    Renamed("teacher", "--batch-size", "--teacher-batch-size"),
    Renamed("teacher finetune", "--epochs", "--finetune-epochs"),
    Renamed("teacher finetune", "--lr", "--finetune-lr"),
    Renamed("train", "--epochs", "--student-epochs"),
    Renamed("train", "--lr", "--student-lr"),
    Renamed("train", "--batch-size", "--student-batch-size"),
    Renamed("pipeline", "--epochs", "--student-epochs"),
    Renamed("partition", "--strategy", "--partition"),
    Renamed("export", "--verify-samples", "--check-samples"),
    Renamed("nir", "--samples", "--check-samples"),
    Renamed("simulate", "--samples", "--lava-samples"),
    Renamed("simulate", "--engine", "--lava-engine"),
)

#: Commands that have sub-commands (the path grows by the sub-command's name).
_SUBCOMMANDS = {"teacher": ("finetune",)}


def _command_paths(args: Sequence[str]) -> list[str]:
    """The command path each argument belongs to (``""`` before the command's name)."""
    paths, path = [], ""
    for token in args:
        if not path and not token.startswith("-"):
            path = token
        elif path in _SUBCOMMANDS and token in _SUBCOMMANDS[path]:
            path = f"{path} {token}"
        paths.append(path)
    return paths


def upgrade_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``args`` with deprecated option names replaced by today's, and one notice per change.

    Only option names are rewritten (``--epochs`` and ``--epochs=3``), never values, and
    nothing after a ``--`` separator.
    """
    table = {(r.command, r.old): r.new for r in DEPRECATED_OPTIONS}
    out, notices = [], []
    paths = _command_paths(args)
    rest = False
    for token, path in zip(args, paths):
        rest = rest or token == "--"
        name, eq, value = token.partition("=")
        new = None if rest or not token.startswith("--") else table.get((path, name))
        if new is None:
            out.append(token)
            continue
        out.append(f"{new}{eq}{value}")
        notices.append(f"warning: 'sne {path} {name}' is deprecated and will be removed; use {new}")
    return out, notices
