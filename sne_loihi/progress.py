"""Whether progress bars are shown: a command's ``--no-progress`` switches off every bar it
would show, also those of steps that take no ``progress`` argument (decoding an image folder
while a data set loads, which any command reading test images may do).

The CLI's command wrapper (:func:`sne_loihi.cli.app.friendly`) enters
:func:`progress_bars` with the command's ``--progress/--no-progress`` value; a stage that
draws a bar asks :func:`progress_bars_shown` (or :func:`terminal_bar_shown`). Stages that take
an explicit ``progress`` argument (the training loops, the Lava loops) get it from the
command as before.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextvars import ContextVar

#: Whether bars are shown in the current context (``True`` outside any :func:`progress_bars`).
_SHOWN: ContextVar[bool] = ContextVar("sne_loihi_progress_bars", default=True)


def progress_bars_shown() -> bool:
    """``False`` inside ``progress_bars(False)`` (a command run with ``--no-progress``)."""
    return _SHOWN.get()


@contextlib.contextmanager
def progress_bars(shown: bool) -> Iterator[None]:
    """Show (``True``) or hide (``False``) progress bars while the block runs.

    Args:
        shown: Whether bars are drawn inside the block.
    """
    token = _SHOWN.set(bool(shown))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def stderr_is_terminal() -> bool:
    """Whether standard error is a terminal (where bars are drawn)."""
    return sys.stderr.isatty()


def terminal_bar_shown() -> bool:
    """A bar drawn only on a terminal (a log file would get one line per update): shown unless
    switched off (:func:`progress_bars`) and standard error is a terminal."""
    return progress_bars_shown() and stderr_is_terminal()
