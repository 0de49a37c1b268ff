"""Host<->chip adapters for a Loihi 2 run (``lava.proc.embedded_io`` of Intel's lava-loihi).

Lava's open code only names the channels between the host and the chip; every lava-dl Loihi 2
example inserts an explicit adapter for each crossing: ``eio.spike.PyToNxAdapter`` where a
host process drives a netx block, ``eio.spike.NxToPyAdapter`` where the host reads a block.
The extension is not installed here, so this module is exercised only up to the import of
``embedded_io`` (the graph plan, :mod:`sne_loihi.sim.graph_plan`, is tested instead).
"""

from __future__ import annotations

from sne_loihi.errors import SimulationError


def _embedded_io() -> object:
    """``lava.proc.embedded_io``, or a one-line refusal without the extension."""
    try:
        from lava.proc import embedded_io
    except ImportError:
        raise SimulationError("the Loihi 2 graph needs lava.proc.embedded_io from Intel's lava-loihi extension, "
                              "which is not installed; use --backend cpu") from None
    return embedded_io


def connect_through_adapter(src: object, dst: object, to_chip: bool, message_bits: int,
                            out_adapters: dict[int, object]) -> None:
    """Connect ``src`` to ``dst`` through an adapter.

    Args:
        src, dst: Lava ports (host -> chip when ``to_chip``, else chip -> host).
        to_chip: Direction.
        message_bits: Graded payload bits of a host -> chip adapter (0: binary spikes).
        out_adapters: ``id(src) -> NxToPyAdapter``: one adapter per chip port, shared by its
            host readers (updated in place).

    Raises:
        SimulationError: The extension is missing.
    """
    eio = _embedded_io()
    if to_chip:
        adapter = eio.spike.PyToNxAdapter(shape=tuple(dst.shape), num_message_bits=int(message_bits))
        src.connect(adapter.inp)
        adapter.out.connect(dst)
        return
    adapter = out_adapters.get(id(src))
    if adapter is None:
        adapter = out_adapters[id(src)] = eio.spike.NxToPyAdapter(shape=tuple(src.shape))
        src.connect(adapter.inp)
    adapter.out.connect(dst)
