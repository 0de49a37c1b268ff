"""The ``sne`` application objects and the wrapper every command runs in (one-line errors,
the run folder's lock, trusted teacher factories)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from sne_loihi.cli.deprecations import upgrade_args
from sne_loihi.cli_errors import OneLineErrorGroup
from sne_loihi.errors import ConfigError, SneError


class SneGroup(OneLineErrorGroup):
    """The ``sne`` group: one-line usage errors, old option names upgraded with a notice
    (:mod:`sne_loihi.cli.deprecations`)."""

    upgrade_args = staticmethod(upgrade_args)


#: Help text is Markdown (``code`` in docstrings shows as code, not as literal backquotes).
MARKUP = "markdown"
app = typer.Typer(
    name="sne",
    help="Distil an ANN teacher into spiking students, export them to netx and run them in Lava.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SneGroup,
    rich_markup_mode=MARKUP,
)
teacher_app = typer.Typer(
    help="Train a teacher (no sub-command) or fine-tune it ('finetune').",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP,
)
app.add_typer(teacher_app, name="teacher")


def _print_version(value: bool) -> None:
    if value:
        from sne_loihi import __version__

        typer.echo(f"sne-loihi {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, metavar="",
                                 help="Print the version and exit."),
) -> None:
    """Distil an ANN teacher into spiking students, export them to netx and run them in Lava."""


def friendly(fn: Callable) -> Callable:
    """Turn SneError into ``error: ...`` + exit 1, and Ctrl-C into a resume hint.

    A command's ``--no-progress`` (its ``progress`` parameter, :data:`~sne_loihi.cli.options.ProgressOpt`)
    switches off every progress bar while it runs (:func:`sne_loihi.progress.progress_bars`),
    also those of steps that take no ``progress`` argument (decoding an image folder). A
    command with a run folder (``run_dir`` / ``run``) holds its lock while it runs
    (:func:`sne_loihi.io.run_lock`: a second writer gets a one-line error). Under torchrun
    only rank 0 takes the lock and prints to stdout; a config error is printed by rank 0 only. A command's
    ``--factory`` value and ``--trust-factory`` flag (where it has them) are the only ways an
    external teacher's code may be imported while it runs
    (:func:`sne_loihi.teachers.external.trusted_factories`).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sne_loihi.distributed import env_rank

        rank = env_rank()  # under torchrun: rank 0 alone holds the lock and prints results
        try:
            with contextlib.ExitStack() as stack:
                if rank:
                    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
                if kwargs.get("progress") is False:  # --no-progress: no bar anywhere in the command
                    from sne_loihi.progress import progress_bars

                    stack.enter_context(progress_bars(False))
                run_folder = kwargs.get("run_dir") or kwargs.get("run")
                if isinstance(run_folder, Path) and not rank:  # one writer per run folder
                    from sne_loihi.io import run_lock

                    stack.enter_context(run_lock(run_folder))
                if "trust_factory" in kwargs or "factory" in kwargs:
                    from sne_loihi.teachers.external import trusted_factories

                    stack.enter_context(trusted_factories([kwargs.get("factory")],
                                                          trust_all=bool(kwargs.get("trust_factory"))))
                return fn(*args, **kwargs)
        except SneError as exc:
            if not rank or not isinstance(exc, ConfigError):  # a config error is the same on every rank
                typer.echo(f"error: {exc}" if not rank else f"error (rank {rank}): {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; the last epoch checkpoint is kept: rerun with --resume", err=True)
            raise typer.Exit(130) from None

    return wrapper



def main() -> None:
    """Console entry point (``sne``)."""
    app()
