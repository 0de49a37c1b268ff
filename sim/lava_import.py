"""Lava's runtime import, made safe in a process that already used multiprocessing.

Its own module (no other import from this package), so the process-model modules can call it
before their Lava imports without importing :mod:`.backend`, which imports them.
"""

from __future__ import annotations

from sne_loihi.errors import SimulationError


def prepare_lava_import() -> None:
    """Make Lava's runtime importable in a process that already used multiprocessing.

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
    import sys

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
