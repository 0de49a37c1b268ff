"""The simulation stage (installed as ``sne_loihi.sim``): Lava simulation of exported
ensembles, the hardware-shaped graph (per-student input, spike counts in the neurons,
readouts), the tapped reference graph (gate, synaptic-op counters), backends, and the stage
behind ``sne simulate`` and the pipeline's Lava step (:mod:`.stage`).

The only package that imports Lava (``lava.magma``, ``lava.proc``, ``lava.lib.dl.netx``);
the imports happen when a graph is built, not when this package is imported. It reads
exports through the core :mod:`sne_loihi.netx_format` and never imports
:mod:`sne_loihi.export` or :mod:`sne_loihi.train`.
"""

from sne_loihi.sim.backend import Backend, Engine, loihi_available, resolve_backend, resolve_engine
from sne_loihi.sim.graph import CascadeRun, GraphRun, LavaGraph
from sne_loihi.sim.hw_graph import HardwareGraph
from sne_loihi.sim.schedule import LavaSchedule, RunTiming
from sne_loihi.sim.simulator import CascadeResult, EnsembleSimulator, SimResult, encode_images, simulate_network

__all__ = [
    "Backend", "CascadeResult", "Engine", "CascadeRun", "EnsembleSimulator", "GraphRun", "HardwareGraph", "LavaGraph", "LavaSchedule",
    "RunTiming", "SimResult",
    "encode_images", "loihi_available", "resolve_backend", "resolve_engine", "simulate_network",
]
