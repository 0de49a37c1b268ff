"""Switching a biased network off: its neuron biases are 0 while the gate holds it off.

The gate switches a network off by feeding it zeros, which silences a network without neuron
biases. A folded batch norm leaves a per-channel bias in the CUBA neurons (``bias_mant``) that
drives them with no input. So for the runs in which a network is off for every sample (it is
not in the active set), its biases are written 0, and written back when an active set switches
it on again: torch runs nothing for a switched-off student, and the network then fires
nothing. The write is a ``Var.set`` of the neurons' ``bias_mant`` between runs (on Loihi 2 too;
not tried on hardware here).

A per-sample mask cannot switch biases (they would have to change within a run); such runs
stay checked by :func:`~sne_loihi.sim.graph_types.check_switched_off`. The hardware-shaped
graph's cascade (:func:`~sne_loihi.sim.host_cascade.run_host_cascade`) therefore runs each
stage as an active set of one student on the samples that go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sne_loihi.netx_format import NetxNetwork

__all__ = ["BiasSwitch", "NeuronBias", "neuron_biases"]


@dataclass(frozen=True)
class NeuronBias:
    """One block's neuron bias: its Lava ``bias_mant`` Var and the value the file gave it."""

    var: object
    value: np.ndarray


def neuron_biases(net: object, network: NetxNetwork) -> list[NeuronBias]:
    """The nonzero neuron biases of a built netx network.

    An ``Input`` block driven through its bias (a foreign file's input transform) is left out:
    its bias is the input, and the gate already zeroes it.

    Args:
        net: The ``lava.lib.dl.netx.hdf5.Network``.
        network: Its description (:func:`~sne_loihi.netx_format.read_netx_network`).
    """
    found = []
    for j, block in enumerate(net.layers):
        if j == 0 and network.bias_input is not None:
            continue
        var = getattr(block.neuron, "bias_mant", None)
        if var is None:
            continue
        value = np.broadcast_to(np.asarray(var.init), var.shape).copy()
        if value.any():
            found.append(NeuronBias(var, value))
    return found


class BiasSwitch:
    """The neuron biases of a graph's networks, switched with the gate's active set.

    Args:
        nets: The built netx networks.
        networks: Their descriptions, in the same order.
    """

    def __init__(self, nets: Sequence[object], networks: Sequence[NetxNetwork]) -> None:
        self.biases = [neuron_biases(net, desc) for net, desc in zip(nets, networks)]
        self.on = [True] * len(self.biases)

    def apply(self, on_k: np.ndarray, write: Callable[[object, np.ndarray], None]) -> None:
        """Write 0 into the biases of the networks ``on_k`` switches off and the file's values
        into those it switches back on (only where that changes).

        Args:
            on_k: 0/1 per network.
            write: Sets a Var (its initial value before the first run, ``Var.set`` after).
        """
        for k, biases in enumerate(self.biases):
            on = bool(on_k[k])
            if on == self.on[k]:
                continue
            for bias in biases:
                write(bias.var, bias.value if on else np.zeros_like(bias.value))
            self.on[k] = on
