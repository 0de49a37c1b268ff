"""How much memory a Lava graph takes, estimated before it is built, and the refusal of one
that would not fit (no Lava import).

Lava's CPU backend keeps every Var in the parent process and in the OS process of its model
(the process builder copies it), netx hands dense weights over as full int64 matrices and
conv kernels once, and a graph records its input stream and its output spikes for every
step of a run (``capacity * T`` steps plus the flush). The estimate counts, in bytes:

- ``3 * 8`` per stored synapse (a dense layer's full ``out x in`` matrix, a conv layer's
  whole kernel, zeros included: Lava stores both dense) and ``8`` per im2col entry of the fast
  conv model's product (output positions x the kernel's ``C_in / groups x kH x kW``);
- :data:`BYTES_PER_NEURON` per neuron (the LIF / sigma-delta state, its ports and copies);
- ``4 * (members + 2)`` per input value and step (the stream, each member's gated copy and
  the injector's), ``8`` per neuron and step of a run for the recorded spikes.

It is a lower bound of the real use, not a measurement; a graph whose estimate exceeds the
memory available now (``MemAvailable`` of ``/proc/meminfo``, else ``os.sysconf``) is refused
in one line before Lava starts (it would swap, or be killed without a message).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from sne_loihi.errors import SimulationError
from sne_loihi.layers import LayerKind
from sne_loihi.netx_format import NetxNetwork

#: Bytes per neuron of a Lava neuron process (u, v, bias, ports; parent and child copies).
BYTES_PER_NEURON = 256


@dataclass(frozen=True)
class GraphSize:
    """What a Lava graph holds.

    Attributes:
        neurons: Neurons of every member network.
        synapses: Weights Lava stores (dense matrices and conv kernels in full, zeros included).
        steps: Time steps of one run (``capacity * T`` plus the flush).
        bytes: The memory estimate (see the module docstring).
    """

    neurons: int
    synapses: int
    steps: int
    bytes: int


def estimate_graph(networks: Sequence[NetxNetwork], capacity: int, time_steps: int) -> GraphSize:
    """The size of a graph of ``networks`` running ``capacity`` samples of ``time_steps``
    steps per Lava run."""
    neurons = synapses = im2col = 0
    depth = 0
    for net in networks:
        neurons += net.num_neurons
        depth = max(depth, len(net.layers) + net.total_delay + 1)
        for layer in net.layers:
            n_in, n_out = math.prod(layer.in_shape_xyz), math.prod(layer.out_shape_xyz)
            if layer.kind is LayerKind.CONV:
                kernel = layer.stored_weights or layer.num_weights  # a sparse kernel is stored (and gathered) whole
                synapses += kernel
                per_channel = kernel // max(layer.out_shape_xyz[-1], 1)
                im2col = max(im2col, math.prod(layer.out_shape_xyz[:-1]) * per_channel)
            else:
                synapses += n_in * n_out
    flush = time_steps * math.ceil(depth / max(time_steps, 1))
    steps = capacity * time_steps + flush
    inputs = max((math.prod(net.input_shape_xyz) for net in networks), default=0)
    total = (24 * synapses + 8 * im2col + BYTES_PER_NEURON * neurons
             + 4 * inputs * steps * (len(networks) + 2) + 8 * neurons * steps)
    return GraphSize(neurons=neurons, synapses=synapses, steps=steps, bytes=total)


def available_memory() -> int:
    """Bytes of memory available now: ``MemAvailable`` of ``/proc/meminfo``, else the free
    physical pages ``os.sysconf`` reports."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_graph_fits(networks: Sequence[NetxNetwork], capacity: int, time_steps: int, where: str) -> GraphSize:
    """Refuse a graph whose memory estimate exceeds the memory available.

    Args:
        where: What is simulated (files, an export), for the message.

    Raises:
        SimulationError: One line with the graph's size, the estimate and what is available.
    """
    size = estimate_graph(networks, capacity, time_steps)
    free = available_memory()
    if size.bytes > free:
        raise SimulationError(
            f"{where}: the Lava graph ({size.neurons:,} neurons, {size.synapses:,} stored synapses, {size.steps:,} "
            f"steps of {capacity} samples per run) needs at least {size.bytes / 2**30:.1f} GiB, more than the "
            f"{free / 2**30:.1f} GiB available; use a smaller --capacity or fewer time steps")
    return size
