"""One-line command-line usage errors.

Typer prints a usage error (unknown option, a value that does not parse, a missing argument)
as a framed multi-line box. :class:`OneLineErrorGroup` prints it like every other bad input:
``error: <message> (see 'sne <command> --help')`` on one stderr line, exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer depends on click
    from click.exceptions import ClickException, NoArgsIsHelpError


def usage_error_line(exc: ClickException) -> str:
    """``error: ...`` for a click/typer exception, with the command's help hint."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {message}{hint}"


class OneLineErrorGroup(TyperGroup):
    """The ``sne`` group: runs like Typer's, but usage errors are one ``error:`` line.

    Attributes:
        upgrade_args: Rewrites a command line before it is parsed (old option names to new
            ones) and returns the notices to print on stderr; set by the application.
    """

    upgrade_args: Callable[[Sequence[str]], tuple[list[str], list[str]]] | None = None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if type(self).upgrade_args is not None:
            args, notices = type(self).upgrade_args(sys.argv[1:] if args is None else list(args))
            for notice in notices:
                typer.echo(notice, err=True)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as exc:  # bare 'sne': the help text, as before
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            typer.echo(usage_error_line(exc), err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
