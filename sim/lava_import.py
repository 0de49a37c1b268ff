"""Lava's runtime import, made safe in a process that already used multiprocessing, and
Lava's worker processes made to exit with the process that started them.

Its own module (no other import from this package), so the process-model modules can call it
before their Lava imports without importing :mod:`.backend`, which imports them.
"""

from __future__ import annotations

import os
import sys
import threading

from sne_loihi.errors import SimulationError

#: ``prctl`` option: the signal a process gets when the thread that forked it exits.
_PR_SET_PDEATHSIG = 1
#: Whether :func:`exit_with_parent` registered its fork hooks in this process.
_GUARDED = False
#: Set in the parent just before a fork (the child inherits it): did the main thread fork?
_FORKED_BY_MAIN_THREAD = True


def exit_with_parent() -> None:
    """Make every process this one forks from now on exit when this one dies (Linux).

    Lava runs each process model and its runtime service in a forked worker
    (``multiprocessing`` with ``fork``) that nothing stops when the parent is killed
    (``SIGKILL``, an out-of-memory kill, a session that ends): each orphan keeps its few
    hundred MB and its CPU. After this call a child forked by the main thread gets
    ``SIGKILL`` from the kernel when its parent exits (``prctl(PR_SET_PDEATHSIG)``); one
    forked by another thread (whose exit would fire that signal early) watches its parent
    from a daemon thread instead. Idempotent; nothing happens on other systems.
    """
    global _GUARDED
    if _GUARDED or not sys.platform.startswith("linux"):
        return
    os.register_at_fork(before=_note_forking_thread, after_in_child=_die_with_parent)
    _GUARDED = True


def _note_forking_thread() -> None:
    global _FORKED_BY_MAIN_THREAD
    _FORKED_BY_MAIN_THREAD = threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    parent = os.getppid()
    if _FORKED_BY_MAIN_THREAD:
        try:
            import ctypes
            import signal

            if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the signal was armed
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def prepare_lava_import() -> None:
    """Make Lava's runtime importable in a process that already used multiprocessing (and
    its workers exit with this process: :func:`exit_with_parent`).

    Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')`` (without
    ``force``) when it is imported. If anything created a multiprocessing object first (tqdm's
    progress bars make an ``mp.RLock``), the start method is already fixed and that call raises
    ``RuntimeError: context has already been set``, although it would change nothing on Linux,
    where the default is ``fork``. This imports that module once with the call tolerated when
    it asks for the start method already in force.

    Raises:
        SimulationError: The process already uses another start method (spawn/forkserver),
            which Lava cannot run with.
    """
    import multiprocessing as mp

    exit_with_parent()
    module = "lava.magma.runtime.message_infrastructure.multiprocessing"
    if module in sys.modules:
        return
    current = mp.get_start_method(allow_none=True)
    if current is None:
        return
    if current != "fork":
        raise SimulationError(f"Lava needs the 'fork' start method, but this process already uses {current!r}")
    original = mp.set_start_method

    def tolerant(method: str, force: bool = False) -> None:
        original(method, force=force or method == mp.get_start_method(allow_none=True))

    mp.set_start_method = tolerant
    try:
        __import__(module)
    finally:
        mp.set_start_method = original
