"""Per-sample activation decided on the host between stage runs (the hardware-shaped way).

On Loihi 2 the in-graph :class:`~sne_loihi.sim.lava_processes.ensemble.CascadeDecision` would be one more
host process fed by every student's output through an adapter every step. Here the host
takes the same decision between stage runs with the same pure function
(:func:`~sne_loihi.sim.lava_processes.ensemble.decide_stage`), from the readouts' spike records, and
feeds the next stage's student only the samples that go on; the graph needs no decision
process. It is how
the hardware-shaped graph (:class:`~sne_loihi.sim.hw_graph.HardwareGraph`, the default) runs
the cascade; the tapped graph keeps the in-graph version, and tests check both give the same
spikes, ops, decisions and stage counts.

Each stage is a run of one student, as an active set: only the samples still running are fed,
side by side (each sample starts from rest, so its spikes do not depend on its slot), and the
other students are switched off for the run. So a student with neuron biases (a folded batch
norm, :mod:`~sne_loihi.sim.bias_gate`) runs exactly: its biases are on only in its own stage,
and the samples that stopped are not in that run at all, where a per-sample mask would leave
their biases driving the neurons.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sne_loihi.sim.graph_types import CascadeRun, check_switched_off

if TYPE_CHECKING:
    from sne_loihi.sim.graph import LavaGraph


def run_host_cascade(graph: "LavaGraph", x_n_in_t: np.ndarray, head_w: np.ndarray, head_b: np.ndarray,
                     order: Sequence[int], threshold: float) -> CascadeRun:
    """The cascade of :meth:`~sne_loihi.sim.graph.LavaGraph.run_cascade`, decided on the host.

    Works on any graph (with or without a decision process; a decision process is left
    disabled, so the gate follows the host's active set). Leaves every member active.

    Raises:
        SimulationError: Bad input, head, order or threshold.
    """
    from sne_loihi.sim.lava_processes.ensemble import decide_stage

    x_n_in_t, head_w, head_b, order = graph.check_cascade(x_n_in_t, head_w, head_b, order, threshold, np.shape(head_w)[0])
    k_all, t = graph.num_members, graph.time_steps
    sizes = [int(np.prod(n.out.shape)) for n in graph.nets]
    bounds = np.cumsum([0, *sizes])
    names = [str(p) for p in graph.paths]
    graph.set_gate_mask(None)
    n_all = x_n_in_t.shape[0]
    spikes = [np.zeros((n_all, f, t), dtype=np.int8) for f in sizes]
    ops = [np.zeros((n_all, len(layers)), dtype=np.int64) for layers in graph.layers]
    ran_all = np.zeros((n_all, k_all), dtype=bool)
    stages, seconds, compile_s = [], 0.0, 0.0
    try:
        for start in range(0, n_all, graph.capacity):
            chunk = x_n_in_t[start:start + graph.capacity]
            n = chunk.shape[0]
            mask = np.zeros((n, k_all), dtype=np.int32)
            mask[:, order[0]] = 1
            ran = np.zeros((n, k_all), dtype=np.int32)
            counts = np.zeros((n, int(bounds[-1])), dtype=np.int64)
            for stage in range(len(order)):
                member = order[stage]
                rows = np.flatnonzero(mask[:, member])  # the samples still running, side by side
                graph.set_active([member])  # the others get no input and, if biased, bias 0
                t0 = time.perf_counter()
                chunk_spikes, chunk_ops, _, chunk_compile = graph.run_chunk(chunk[rows])
                seconds += time.perf_counter() - t0 - chunk_compile
                compile_s += chunk_compile
                check_switched_off(names, chunk_spikes, chunk_ops, np.arange(k_all) == member, None)
                for k in range(k_all):
                    spikes[k][start + rows] += chunk_spikes[k]
                    ops[k][start + rows] += chunk_ops[k]
                # the decision counts the output spikes of the students each sample ran
                counts[rows, bounds[member]:bounds[member + 1]] += (chunk_spikes[member] != 0).sum(axis=-1)
                mask, ran = decide_stage(mask, ran, counts, head_w, head_b, threshold, order, stage, t)
                if not mask.any():
                    break
            stages.append(stage + 1)
            ran_all[start:start + n] = ran.astype(bool)
    finally:
        graph.set_active(range(k_all))
    return CascadeRun(spikes, ops, ran_all, stages, seconds, compile_s)
