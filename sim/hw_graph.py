"""The hardware-shaped Lava graph: what runs on Loihi 2 is what is tested on the CPU.

::

    host: mask every student's input ==> Injector --out_k--> netx Network k --> Readout k ==> host
                                                              (per-neuron spike counts, read once per run)

Differences from :class:`~sne_loihi.sim.graph.LavaGraph` (the *tapped* graph), which it
subclasses for everything else (input checks, chunking, the gate's ``active`` / per-sample
``mask`` interface, the cascade's argument checks):

* Per-student input injection: the gate is a host-side mask (:class:`HostGate`); the host
  zeroes every student's input for the samples it does not run, exactly what the gate
  process sent, and the :class:`~sne_loihi.sim.lava_processes.hardware.Injector` plays each student's
  stream on its own port (on Loihi 2 through its own ``PyToNx`` adapter).
* No hidden-layer taps: the op counter process is gone. Synaptic ops are per-neuron spike
  counts x fan-out, the counts accumulated per sample inside the neuron
  (:mod:`~sne_loihi.sim.lava_processes.hardware`) and read once per run; the first layer's ops come
  from the host's (masked) input. Per step the tapped graph added ``sum(fanout[spikes != 0])``
  over the same spikes, so the figures are equal.
* Outputs are read from the last layer only (one readout per student).
* The cascade is decided on the host between stage runs
  (:func:`~sne_loihi.sim.host_cascade.run_host_cascade`, the same pure
  :func:`~sne_loihi.sim.lava_processes.ensemble.decide_stage` as the tapped graph's decision process);
  each stage runs one student as an active set on the samples that go on, so it also runs
  students with neuron biases (folded batch norms), which the tapped graph's per-sample
  mask cannot switch off.
* Adapter latency: the plan (:func:`~sne_loihi.sim.graph_plan.plan_graph`, layout
  ``HARDWARE``) adds it to the reset offsets and the readout delay; the spike counters'
  delay adds the input latency (0 on the CPU).

* A bias-driven first layer (``lava.first_layer = "bias"``): the student's masked image goes
  to a host-side :class:`~sne_loihi.sim.lava_processes.bias_input.ConvBiasDriver` instead of
  the network's input, which writes the integer ``W * x + b`` into the first layer's
  ``bias_mant`` (on the chip the host would write it once per sample; CPU only here); the
  first layer's ops are counted at the sample's first step only.

It runs the toolkit's own exports (CUBA neurons, reset every sample, re-timed outputs, no
input neuron, no axonal delays); other netx files run in the tapped graph
(``sne simulate NET.net``), which also keeps the per-layer probes of the export's parity check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.sim.backend import Backend
from sne_loihi.sim.graph import LavaGraph
from sne_loihi.sim.graph_plan import Layout
from sne_loihi.sim.graph_types import CascadeRun, to_lava_input
from sne_loihi.sim.schedule import LavaSchedule

__all__ = ["HardwareGraph", "HostGate"]


@dataclass
class HostGate:
    """The gate as a host-side mask: ``active`` ``[K]`` and per-sample ``mask``
    ``[capacity, K]`` (0/1); student ``k`` gets sample ``n``'s input when both are 1."""

    active: np.ndarray
    mask: np.ndarray

    def on_nk(self, n: int) -> np.ndarray:
        """``[n, K]``: which student gets which of the first ``n`` samples."""
        return self.active[None, :] * self.mask[:n]


class HardwareGraph(LavaGraph):
    """The hardware-shaped graph (see the module docstring); same constructor and results
    as :class:`~sne_loihi.sim.graph.LavaGraph` except that ``probe_layers`` is refused and
    ``decision_classes > 0`` only enables :meth:`run_cascade` (no decision process).

    Raises:
        SimulationError: As the tapped graph, and for networks this graph does not run
            (see the module docstring) or ``probe_layers``.
    """

    LAYOUT = Layout.HARDWARE

    def _check_options(self, schedule: LavaSchedule, probe_layers: bool) -> None:
        if probe_layers:
            raise SimulationError("the hardware-shaped graph reads no hidden layer; probe layers in the tapped "
                                  "graph (LavaGraph)")
        if not schedule.per_sample:
            raise SimulationError("the hardware-shaped graph resets every sample and re-times its outputs; run other "
                                  "timings in the tapped graph (LavaGraph)")

    def _build(self) -> None:
        from sne_loihi.sim.lava_processes.hardware import Injector, add_spike_counter
        from sne_loihi.sim.lava_processes.ensemble import Readout

        for p, desc in zip(self.paths, self.networks):
            if desc.input_neuron or desc.sdnn_layer is not None or desc.max_delay:
                raise SimulationError(f"{p}: the hardware-shaped graph runs CUBA networks without an input neuron or "
                                      "axonal delays; simulate this file with `sne simulate` (tapped graph)")
        self._build_nets()
        k_all = self.num_members
        self.gate = HostGate(np.ones(k_all, dtype=np.int32), np.ones((self.capacity, k_all), dtype=np.int32))
        self.decision = None
        self.counters, self.probes = [], [[] for _ in self.paths]
        self.injector = Injector(self.in_shape, k_all, self.timing)
        self.readouts, self._adapters = [], {}
        self.count_neurons: list[list[object]] = []
        shift_in = self.plan.latency.input_steps
        on_cpu = self.backend_used is Backend.CPU
        for k, (net, desc) in enumerate(zip(self.nets, self.networks)):
            if len(net.layers) != desc.num_blocks:
                raise SimulationError(f"{self.paths[k]}: netx built {len(net.layers)} blocks, expected {desc.num_blocks}")
            neurons = [block.neuron for block in net.layers]  # every CUBA neuron gets the counting model
            try:
                for j, neuron in enumerate(neurons):
                    add_spike_counter(neuron, j + 1 + shift_in, self.timing, pipe=on_cpu)
                source = getattr(self.injector, f"out_{k}")
                if self.bias_layers[k] is not None:  # the host computes the first layer's input as its bias
                    self._drive_first_layer(k, source, net)
                else:
                    self._link(source, net.inp, to_chip=True)
                readout = Readout(tuple(net.out.shape), delay=self.plan.readout_delays[k], timing=self.timing)
                self._link(net.out, readout.inp, to_chip=False)
            except (AssertionError, ValueError) as exc:  # Lava's port shape checks, a non-CUBA neuron
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SimulationError(f"{self.paths[k]}: the network does not fit the hardware-shaped graph: "
                                      f"{first}") from None
            self.readouts.append(readout)
            self.count_neurons.append(neurons)

    def _write(self, var: object, value: np.ndarray) -> None:
        """The gate's Vars live on the host: set in place."""
        var[...] = value

    def _root(self) -> object:
        return self.injector

    def _run_config(self) -> object:
        cfg = super()._run_config()
        if self.backend_used is Backend.CPU:
            from sne_loihi.sim.lava_processes.hardware import count_model_map

            cfg.exception_proc_model_map.update(count_model_map())
        return cfg

    def _read_counts(self, neuron: object) -> np.ndarray:
        """A neuron's per-sample spike counts ``[capacity, *shape]`` of the last run: through
        the CPU model's pipe (one message), on Loihi 2 with ``Var.get``."""
        from sne_loihi.sim.lava_processes.hardware import COUNTS_VAR, receive_counts

        if self.backend_used is Backend.CPU:
            return receive_counts(neuron)
        return np.asarray(getattr(neuron, COUNTS_VAR).get()).reshape(self.capacity, *neuron.s_out.shape)

    def run_chunk(self, x_n_in_t: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[list[np.ndarray]], float]:
        """One Lava run over ``x_n_in_t`` (at most ``capacity`` samples), as
        :meth:`LavaGraph.run_chunk` (no layer spikes)."""
        n, t, k_all = x_n_in_t.shape[0], self.time_steps, self.num_members
        stream = np.zeros((*self.in_shape, self.steps), dtype=np.int32)
        stream[..., : n * t] = to_lava_input(x_n_in_t, self.in_shape)
        on_step_k = np.zeros((self.steps, k_all), dtype=np.int32)
        on_step_k[: n * t] = np.repeat(self.gate.on_nk(n), t, axis=0)
        streams = stream[None] * np.moveaxis(on_step_k, 0, -1).reshape(k_all, *([1] * len(self.in_shape)), self.steps)
        compile_s = self._compile() if not self._started else 0.0
        self.injector.send_streams(streams)
        self._run_steps(self.injector, self.steps)
        spikes = [r.receive()[:n].astype(np.int8) for r in self.readouts]
        ops = []
        axes = tuple(range(len(self.in_shape)))
        for k, (desc, neurons) in enumerate(zip(self.networks, self.count_neurons)):
            ops_nl = np.zeros((n, len(desc.layers)), dtype=np.int64)
            x_fnt = (streams[k][..., : n * t] != 0).reshape(*self.in_shape, n, t)
            if self.bias_layers[k] is not None:  # the host computes it once per sample (constant input, checked)
                x_fnt = x_fnt[..., :1]
            fan0 = desc.layers[0].port_fanout.astype(np.int64)
            ops_nl[:, 0] = (x_fnt.sum(axis=-1) * fan0[..., None]).sum(axis=axes)
            counts = [self._read_counts(neuron)[:n].astype(np.int64) for neuron in neurons]
            for j in range(1, len(desc.layers)):
                ops_nl[:, j] = (counts[j - 1] * desc.layers[j].port_fanout[None]).reshape(n, -1).sum(axis=1)
            ops.append(ops_nl)
            # the output neurons count too: their counts must be the spikes the readout recorded
            if not np.array_equal(counts[-1].reshape(n, -1), (spikes[k] != 0).sum(axis=-1).reshape(n, -1)):
                raise SimulationError(f"{self.paths[k]}: the output neurons counted other spikes than the readout "
                                      "recorded (the counters' timing is off)")
        return spikes, ops, [[s] for s in spikes], compile_s

    def run_cascade(self, x_n_in_t: np.ndarray, head_w: np.ndarray, head_b: np.ndarray, order: Sequence[int],
                    threshold: float) -> CascadeRun:
        """The cascade of :meth:`LavaGraph.run_cascade`, decided on the host between the stage
        runs (:func:`~sne_loihi.sim.host_cascade.run_host_cascade`).

        Raises:
            SimulationError: A graph built with ``decision_classes=0``; bad input, head,
                order or threshold.
        """
        from sne_loihi.sim.host_cascade import run_host_cascade

        if self.decision_classes <= 0:
            raise SimulationError("this Lava graph was built without the cascade (no cascade decision process; "
                                  "build it with decision_classes > 0)")
        return run_host_cascade(self, x_n_in_t, head_w, head_b, order, threshold)
