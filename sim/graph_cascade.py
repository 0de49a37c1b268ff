"""Per-sample activation decided inside the tapped graph (its
:class:`~sne_loihi.sim.lava_processes.ensemble.CascadeDecision` process): for every chunk of
``capacity`` samples, stage ``j`` is one Lava run in which the gate feeds member ``order[j]`` to
the samples the decision process kept running. The host only sets the head, order and
threshold, starts each stage and reads the records. The hardware-shaped graph decides on the
host instead (:mod:`~sne_loihi.sim.host_cascade`); tests check both agree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.sim.graph_types import CascadeRun


def run_graph_cascade(graph: object, x_n_in_t: np.ndarray, head_w: np.ndarray, head_b: np.ndarray,
                      order: Sequence[int], threshold: float) -> CascadeRun:
    """The cascade of :meth:`~sne_loihi.sim.graph.LavaGraph.run_cascade`, decided in the graph.

    ``graph`` is the :class:`~sne_loihi.sim.graph.LavaGraph` (not imported here: it calls this).

    Raises:
        SimulationError: A graph without a decision process or with neuron biases; bad input,
            head, order or threshold (:meth:`~sne_loihi.sim.graph.LavaGraph.check_cascade`).
    """
    if graph.decision is None:
        raise SimulationError("this Lava graph has no cascade decision process (build it with decision_classes > 0)")
    if graph._biased():
        raise SimulationError("the in-graph cascade masks students per sample, which cannot switch off neuron "
                              "biases; run biased networks' cascade in the hardware-shaped graph (HardwareGraph)")
    x_n_in_t, head_w, head_b, order = graph.check_cascade(x_n_in_t, head_w, head_b, order, threshold, graph.decision_classes)
    total = head_w.shape[1]
    graph.set_active(range(graph.num_members))
    graph.set_gate_mask(None)
    d = graph.decision
    padded = np.full(graph.num_members, -1, dtype=np.int32)
    padded[: len(order)] = order
    for var, value in ((d.head_w, head_w), (d.head_b, head_b), (d.threshold, np.array([float(threshold)])),
                       (d.order, padded), (d.enabled, np.ones(1, dtype=np.int32))):
        graph._write(var, value)
    n_all = x_n_in_t.shape[0]
    spikes = [np.zeros((n_all, int(np.prod(n.out.shape)), graph.time_steps), dtype=np.int8) for n in graph.nets]
    ops = [np.zeros((n_all, len(layers)), dtype=np.int64) for layers in graph.layers]
    ran = np.zeros((n_all, graph.num_members), dtype=bool)
    stages, seconds, compile_s = [], 0.0, 0.0
    try:
        for start in range(0, n_all, graph.capacity):
            chunk = x_n_in_t[start:start + graph.capacity]
            n = chunk.shape[0]
            first_mask = np.zeros((graph.capacity, graph.num_members), dtype=np.int32)
            first_mask[:n, order[0]] = 1
            zeros_nk = np.zeros((graph.capacity, graph.num_members), dtype=np.int32)
            for var, value in ((d.stage, np.zeros(1, dtype=np.int32)), (d.mask, first_mask), (d.ran, zeros_nk),
                               (d.counts, np.zeros((graph.capacity, total), dtype=np.int32))):
                graph._write(var, value)
            for stage in range(len(order)):
                t0 = time.perf_counter()
                chunk_spikes, chunk_ops, _, chunk_compile = graph.run_chunk(chunk)
                seconds += time.perf_counter() - t0 - chunk_compile
                compile_s += chunk_compile
                for k in range(graph.num_members):
                    spikes[k][start:start + n] += chunk_spikes[k]
                    ops[k][start:start + n] += chunk_ops[k]
                if not d.mask.get()[:n].any():
                    break
            stages.append(stage + 1)
            ran[start:start + n] = d.ran.get()[:n].astype(bool)
            check_counts(d.counts.get()[:n], [s[start:start + n] for s in spikes])
    finally:
        graph._set_var(d.enabled, np.zeros(1, dtype=np.int32))  # Var.set once running, else its init
    return CascadeRun(spikes, ops, ran, stages, seconds, compile_s)


def check_counts(counts_nf: np.ndarray, spikes_nft: Sequence[np.ndarray]) -> None:
    """The decision process must have seen exactly the spikes the readouts recorded."""
    readout = np.concatenate([s.sum(axis=-1) for s in spikes_nft], axis=1)
    if not np.array_equal(counts_nf.astype(np.int64), readout.astype(np.int64)):
        raise SimulationError("the cascade decision counted other output spikes than the readouts recorded "
                              f"({int(np.count_nonzero(counts_nf != readout))} differing counts): a network "
                              "fires while switched off (a neuron bias), so per-sample gating is not exact")
