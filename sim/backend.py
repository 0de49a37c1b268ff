"""Where the Lava graph runs: the CPU fixed-point simulation or Loihi 2 hardware.

The hardware path is deliberately thin: it needs Intel's non-public lava-loihi extension,
which is not installed here, so only the detection and the refusal are tested. With the
extension the netx blocks get Loihi 2 (Nc) models and the custom gate / counter / readout
processes, which only have Python models, run on the host CPU.
"""

from __future__ import annotations

from enum import Enum

from sne_loihi.errors import SimulationError


class Backend(str, Enum):
    """Requested execution backend."""

    AUTO = "auto"
    CPU = "cpu"
    LOIHI2 = "loihi2"


def loihi_available() -> bool:
    """Whether Intel's lava-loihi extension (needed for Loihi 2 hardware) is installed."""
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


def run_config(backend: Backend) -> object:
    """The Lava run configuration for a resolved backend.

    CPU: ``Loihi2SimCfg(select_tag='fixed_pt')`` (bit-accurate fixed point; without the tag
    Lava picks float models and the spikes differ). LOIHI2: ``Loihi2HwCfg`` (untested here).
    """
    if backend is Backend.CPU:
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag="fixed_pt")
    if backend is Backend.LOIHI2:
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    raise SimulationError(f"backend {backend.value} must be resolved first (see resolve_backend)")
