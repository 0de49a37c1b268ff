"""Where the Lava graph runs: the CPU fixed-point simulation or Loihi 2 hardware.

The hardware path is deliberately thin: it needs Intel's non-public lava-loihi extension,
which is not installed here, so only the detection and the refusal are tested. With the
extension the netx blocks get Loihi 2 (Nc) models and the custom gate / counter / readout
processes, which only have Python models, run on the host CPU.
"""

from __future__ import annotations

from enum import Enum

from sne_loihi.config import Backend
from sne_loihi.errors import SimulationError
from sne_loihi.sim.lava_import import prepare_lava_import

__all__ = ["Backend", "Engine", "loihi2_model_map", "loihi_available", "prepare_lava_import", "resolve_backend", "resolve_engine",
           "run_config"]


class Engine(str, Enum):
    """Which process models simulate Lava's own processes on the CPU (same spikes either way).

    FAST: the vectorised ``Conv`` model of :mod:`sne_loihi.sim.fast_models`, registered
    through the run configuration's ``exception_proc_model_map``. REFERENCE: Lava's own
    ``PyConvModelFixed`` (a Python loop of scipy 2-D convolutions). Loihi 2 ignores it.
    """

    FAST = "fast"
    REFERENCE = "reference"


def resolve_engine(engine: Engine | str) -> Engine:
    """Turn ``fast`` / ``reference`` into an :class:`Engine`.

    Raises:
        SimulationError: Any other name.
    """
    try:
        return Engine(engine)
    except ValueError:
        known = ", ".join(e.value for e in Engine)
        raise SimulationError(f"unknown Lava engine {engine!r}; known: {known}") from None


def loihi_available() -> bool:
    """Whether Intel's lava-loihi extension (needed for Loihi 2 hardware) is installed."""
    prepare_lava_import()
    from lava.utils import loihi

    return bool(loihi.is_installed())


def resolve_backend(backend: Backend | str) -> Backend:
    """Turn a request into the backend that will actually run (CPU or LOIHI2).

    Raises:
        SimulationError: ``loihi2`` asked for but lava-loihi is not installed, or an
            unknown backend name.
    """
    try:
        backend = Backend(backend)
    except ValueError:
        known = ", ".join(b.value for b in Backend)
        raise SimulationError(f"unknown backend {backend!r}; known: {known}") from None
    if backend is Backend.AUTO:
        return Backend.LOIHI2 if loihi_available() else Backend.CPU
    if backend is Backend.LOIHI2 and not loihi_available():
        raise SimulationError(
            "backend loihi2 needs Intel's lava-loihi extension (INRC), which is not installed; "
            "use --backend cpu"
        )
    return backend


def loihi2_model_map() -> dict[type, type]:
    """Process -> model pins of a Loihi 2 run: the fixed-point ``RingBuffer`` models."""
    prepare_lava_import()
    from lava.proc.io import sink, source

    return {source.RingBuffer: source.PySendModelFixed, sink.RingBuffer: sink.PyReceiveModelFixed}


def run_config(backend: Backend, engine: Engine | str = Engine.FAST) -> object:
    """The Lava run configuration for a resolved backend.

    CPU: ``Loihi2SimCfg(select_tag='fixed_pt')`` (bit-accurate fixed point; without the tag
    Lava picks float models and the spikes differ), with the fast engine's models in its
    ``exception_proc_model_map``. LOIHI2: ``Loihi2HwCfg`` without a tag (a tag would also
    filter the extension's neuro-core models, whose tags are not public) and with the
    fixed-point models of Lava's source and sink ``RingBuffer`` pinned in its
    ``exception_proc_model_map`` (each also has a float model; lava-dl's hardware examples pin
    the fixed ones the same way). The toolkit's own host processes have one (fixed-point)
    model each. The engine is unused (netx blocks get the chip's models).
    Built and inspected here; running it needs Intel's lava-loihi extension.

    Raises:
        SimulationError: An unresolved backend or an unknown engine.
    """
    engine = resolve_engine(engine)
    if backend is Backend.CPU:
        from lava.magma.core.run_configs import Loihi2SimCfg

        if engine is Engine.REFERENCE:
            return Loihi2SimCfg(select_tag="fixed_pt")
        from sne_loihi.sim.fast_models import fast_model_map

        return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=fast_model_map())
    if backend is Backend.LOIHI2:
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg(exception_proc_model_map=loihi2_model_map())
    raise SimulationError(f"backend {backend.value} must be resolved first (see resolve_backend)")
