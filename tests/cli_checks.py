"""Checks shared by the tests that drive ``sne`` commands with bad input: one error line,
and nothing on disk changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(result: Any, needle: str) -> None:
    """Exit code 1, no traceback, stderr exactly one ``error:`` line containing ``needle``."""
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr, result.stderr
