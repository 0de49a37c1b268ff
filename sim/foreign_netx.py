"""Rules of a Lava graph over netx files written elsewhere (``sne simulate NET.net``).

What :class:`~sne_loihi.sim.graph.LavaGraph` refuses in one line for such files, and the
host side of an input layer driven by its neurons' bias (:mod:`sne_loihi.sim.lava_processes.bias_input`).
No Lava import.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.netx_format.netx_file import BIAS_MANT_RANGE, InputTransform, NetxNetwork
from sne_loihi.sim.backend import Backend
from sne_loihi.sim.graph_types import RESET_PER_SAMPLE


def check_networks(paths: Sequence[Path], networks: Sequence[NetxNetwork], *, retime: bool,
                   reset_interval: int | str | None, backend: Backend) -> None:
    """Refuse what the graph cannot run as netx would.

    * Axonal delays differ per neuron, so no re-timing undoes them, and spikes still on
      their way when a sample ends reach the next sample after its reset (a reset zeroes
      the neurons, not the synapses' delay buffers): a network with non-zero delays runs
      only with ``retime=False`` and ``reset_interval`` ``None`` or an integer, as netx runs it.
    * Networks of one graph share one input stream: all or none take it through the input
      neurons' bias; the bias is written every step from the host, so only on the CPU.

    Args:
        reset_interval: As given to the graph (``"T"``, an integer or ``None``).

    Raises:
        SimulationError: One line naming the file and the layer.
    """
    for p, n in zip(paths, networks):
        layer = n.delayed_layer
        if layer is not None and (retime or reset_interval == RESET_PER_SAMPLE):
            raise SimulationError(
                f"{p}: layer/{layer.index} has axonal delays (up to {layer.max_delay} steps), which re-timing cannot "
                "undo and which carry spikes past a per-sample reset into the next sample; run it as netx does with "
                "--no-retime and --reset-interval none (or an integer)")
    bias = [n.bias_input is not None for n in networks]
    if any(bias) and not all(bias):
        raise SimulationError("networks of one graph must all, or none, take their input through the input neurons' bias")
    if any(bias) and backend is Backend.LOIHI2:
        raise SimulationError(f"{paths[bias.index(True)]}: the input layer takes its input through its neurons' bias, "
                              "which only the CPU backend can write every step")


def bias_stream(transform: InputTransform, x_n_in_t: np.ndarray) -> np.ndarray:
    """The input neurons' bias mantissas for input ``x_n_in_t``: ``rint(weight * x + bias)``, int32.

    Raises:
        SimulationError: Non-finite input, or mantissas outside Lava's 13-bit ``bias_mant``.
    """
    if not np.all(np.isfinite(x_n_in_t)):
        raise SimulationError("input must hold finite numbers (they drive the input neurons' bias)")
    mant = transform.bias_mant(x_n_in_t)
    lo, hi = BIAS_MANT_RANGE
    if mant.size and (mant.min() < lo or mant.max() > hi):
        raise SimulationError(f"input drives the input neurons' bias as rint({transform.weight} * x + {transform.bias}), "
                              f"which must lie in {lo}..{hi} (Lava's 13-bit bias_mant); got {int(mant.min())}.."
                              f"{int(mant.max())}")
    return mant.astype(np.int32)
