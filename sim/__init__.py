"""Lava simulation of exported ensembles: the hardware-shaped graph (per-student input, spike
counts in the neurons, readouts), the tapped reference graph (gate, synaptic-op counters), backends.

The only package that imports Lava (``lava.magma``, ``lava.proc``, ``lava.lib.dl.netx``);
the imports happen when a graph is built, not when this package is imported.
"""

from sne_loihi.sim.backend import Backend, Engine, loihi_available, resolve_backend, resolve_engine
from sne_loihi.sim.graph import CascadeRun, GraphRun, LavaGraph
from sne_loihi.sim.hw_graph import HardwareGraph
from sne_loihi.sim.simulator import CascadeResult, EnsembleSimulator, SimResult, encode_images, simulate_network

__all__ = [
    "Backend", "CascadeResult", "Engine", "CascadeRun", "EnsembleSimulator", "GraphRun", "HardwareGraph", "LavaGraph", "SimResult",
    "encode_images", "loihi_available", "resolve_backend", "resolve_engine", "simulate_network",
]
