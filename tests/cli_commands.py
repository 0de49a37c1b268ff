"""The CLI's command tree for the tests: ``"teacher finetune"`` etc. -> the click command."""

from __future__ import annotations

from typing import Any

import typer

from sne_loihi.cli import app


def cli_commands() -> dict[str, Any]:
    """Every command and sub-command of ``sne`` by its path (``"simulate"``, ``"teacher finetune"``)."""
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: str) -> None:
        if path:
            out[path] = cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out
