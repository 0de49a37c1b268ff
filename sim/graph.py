"""One compiled Lava graph: source -> gate -> netx networks, op counters and readouts.

::

    RingBuffer --> Gate --out_k--> netx Network k --> Readout k
                          \\             | layer j .out (j = 0..L-2)
                           \\--in_0-->  OpCounter k <--in_{j+1}--/

Many samples per run, reset between samples (measured, lava-nc 0.10 / lava-dl 0.6):

* The source sends data index ``(t - 1) % steps`` at Lava step ``t`` (``t`` starts at 1).
* Each netx layer adds one step: neurons of weighted layer ``k`` (1-based) fire at step
  ``t`` for data index ``t - 1 - k``.
* ``hdf5.Network(reset_interval=T, reset_offset=1)`` gives layer ``k`` the reset phase
  ``1 + k``: its CUBA state is zeroed exactly at the step the first time step of every
  sample reaches it, so consecutive samples need no zero padding in between; the readout
  just reads layer ``L``'s spikes ``L`` steps later. (The default ``reset_offset=0`` resets
  one step early and contaminates the next sample.)
* A run has ``steps = capacity * T + flush`` steps with ``flush`` = the smallest multiple
  of T that is >= the deepest network's L, so the last sample drains out and every run starts
  at the same reset phase. Runs reuse the compiled graph: only the source data Var and the
  gate's ``active`` Var change.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.export.netx_file import LayerKind, NetxLayer, read_netx_layers
from sne_loihi.sim.backend import Backend, resolve_backend, run_config


@dataclass
class GraphRun:
    """Raw figures of one batch through the graph.

    Attributes:
        spikes_nft: Per network its output spikes ``[N, F, T]`` (int8).
        ops_nl: Per network synaptic events ``[N, L]`` per sample and weighted layer.
        seconds: Wall time of the Lava runs (excluding the chunk that compiled the graph).
        layer_spikes: With ``probe_layers``: per network, per weighted layer its spikes
            ``[N, *shape_xyz, T]`` in Lava order (the last one is ``spikes_nft``).
    """

    spikes_nft: list[np.ndarray]
    ops_nl: list[np.ndarray]
    seconds: float
    layer_spikes: list[list[np.ndarray]] | None = None


def _layer0_fanout(layer: NetxLayer) -> np.ndarray:
    """Fan-out shaped like the network's input port (a dense first layer takes flat input)."""
    fan = layer.fanout_xyz
    if layer.kind is LayerKind.DENSE and fan.ndim == 3:
        return fan.transpose(2, 1, 0).reshape(-1)
    return fan


def to_lava_input(x_nt: np.ndarray, port_shape: tuple[int, ...]) -> np.ndarray:
    """Torch-layout samples ``[N, *in_shape, T]`` -> one stream ``[*port_shape, N * T]``.

    ``[N, C, H, W, T]`` becomes ``(W, H, C)`` per step (netx's x, y, f order); a flat port
    takes the torch flatten order.
    """
    n, t = x_nt.shape[0], x_nt.shape[-1]
    if len(port_shape) == 3:
        if x_nt.ndim != 5:
            raise SimulationError(f"input must be [N, C, H, W, T] for this network, got shape {list(x_nt.shape)}")
        per = x_nt.transpose(0, 3, 2, 1, 4)  # N, W, H, C, T
    else:
        per = x_nt.reshape(n, -1, t)
    if tuple(per.shape[1:-1]) != tuple(port_shape):
        raise SimulationError(f"input of shape {list(x_nt.shape[1:-1])} does not fit the network input {list(port_shape)} (Lava order)")
    return np.moveaxis(per, 0, -2).reshape(*port_shape, n * t)


class LavaGraph:
    """A compiled-once Lava graph over K netx networks that share one input.

    Args:
        net_paths: netx HDF5 files, one per member.
        input_bits: Bits of the graded input (0 = binary spikes).
        time_steps: T, steps per sample.
        capacity: Samples per Lava run (batches are cut/padded to it).
        backend: Requested backend; ``backend_used`` says what runs.
        probe_layers: Also record every layer's spikes (``GraphRun.layer_spikes``), for
            the export parity check; costs one more process per layer.

    Raises:
        SimulationError: Members with different input shapes, bad arguments, or an
            unavailable backend. ExportError (from the reader) for corrupt files.
    """

    def __init__(self, net_paths: Sequence[Path], input_bits: int, time_steps: int, capacity: int = 16,
                 backend: Backend | str = Backend.AUTO, probe_layers: bool = False) -> None:
        if time_steps < 1 or capacity < 1:
            raise SimulationError(f"time_steps and capacity must be >= 1 (got {time_steps}, {capacity})")
        from sne_loihi.sim.processes import MAX_LAYERS, MAX_STUDENTS

        if not 1 <= len(net_paths) <= MAX_STUDENTS:
            raise SimulationError(f"a graph holds 1..{MAX_STUDENTS} networks, got {len(net_paths)}")
        self.backend_used = resolve_backend(backend)
        self.paths = [Path(p) for p in net_paths]
        self.layers = [read_netx_layers(p) for p in self.paths]
        for p, layers in zip(self.paths, self.layers):
            if len(layers) > MAX_LAYERS:
                raise SimulationError(f"{p} has {len(layers)} weighted layers; the op counter handles {MAX_LAYERS}")
        self.input_bits, self.time_steps, self.capacity = int(input_bits), int(time_steps), int(capacity)
        depth = max(len(layers) for layers in self.layers)
        self.steps = capacity * time_steps + math.ceil(depth / time_steps) * time_steps
        self.compilations = 0
        self.probe_layers = probe_layers
        self._started = False
        self._build()

    @property
    def num_members(self) -> int:
        """K."""
        return len(self.paths)

    def _build(self) -> None:
        from lava.lib.dl.netx import hdf5
        from lava.proc.io.source import RingBuffer

        from sne_loihi.sim.processes import Gate, OpCounter, Readout

        t, bits = self.time_steps, self.input_bits
        self.nets = [hdf5.Network(net_config=str(p), input_message_bits=bits, reset_interval=t, reset_offset=1)
                     for p in self.paths]
        shapes = {tuple(n.inp.shape) for n in self.nets}
        if len(shapes) != 1:
            raise SimulationError(f"networks of one graph must share the input shape, got {sorted(shapes)}")
        self.in_shape = shapes.pop()
        self.source = RingBuffer(data=np.zeros((*self.in_shape, self.steps), dtype=np.int32))
        self.gate = Gate(shape=self.in_shape, num_students=self.num_members)
        self.source.s_out.connect(self.gate.inp)
        self.counters, self.readouts, self.probes = [], [], []
        for k, (net, layers) in enumerate(zip(self.nets, self.layers)):
            if len(net.layers) != len(layers):
                raise SimulationError(f"{self.paths[k]}: netx built {len(net.layers)} layers, expected {len(layers)}")
            fanouts = [_layer0_fanout(layers[0])] + [lay.fanout_xyz for lay in layers[1:]]
            counter = OpCounter(fanouts, delays=range(len(layers)), time_steps=t, steps=self.steps,
                                capacity=self.capacity)
            gate_out = getattr(self.gate, f"out_{k}")
            gate_out.connect(net.inp)
            gate_out.connect(counter.in_0)
            for j in range(1, len(layers)):
                net.layers[j - 1].out.connect(getattr(counter, f"in_{j}"))
            readout = Readout(tuple(net.out.shape), delay=len(layers), time_steps=t, steps=self.steps,
                              capacity=self.capacity)
            net.out.connect(readout.inp)
            self.counters.append(counter)
            self.readouts.append(readout)
            probes = []
            for j in range(len(layers) - 1 if self.probe_layers else 0):
                probes.append(Readout(tuple(net.layers[j].out.shape), delay=j + 1, time_steps=t, steps=self.steps,
                                      capacity=self.capacity))
                net.layers[j].out.connect(probes[-1].inp)
            self.probes.append(probes)

    @property
    def runtime(self) -> object | None:
        """The Lava runtime (created by the first run, then reused)."""
        return self.source.runtime if self._started else None

    def set_active(self, active: Sequence[int]) -> None:
        """Switch the gate to ``active`` (member indices) for the next runs; no rebuild.

        Raises:
            SimulationError: An index outside ``0..K-1`` or a repeated index.
        """
        idx = [int(i) for i in active]
        bad = [i for i in idx if not 0 <= i < self.num_members]
        if bad:
            raise SimulationError(f"active index {bad[0]} out of range 0..{self.num_members - 1}")
        if len(set(idx)) != len(idx):
            raise SimulationError(f"active indices repeat: {idx}")
        mask = np.zeros(self.num_members, dtype=np.int32)
        mask[idx] = 1
        self._active_mask = mask
        if self._started:
            self.gate.active.set(mask)

    def _run_chunk(self, x_nt: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[list[np.ndarray]]]:
        from lava.magma.core.run_conditions import RunSteps

        n = x_nt.shape[0]
        stream = np.zeros((*self.in_shape, self.steps), dtype=np.int32)
        stream[..., : n * self.time_steps] = to_lava_input(x_nt, self.in_shape)
        if not self._started:
            self.source.data.init = stream
            self.gate.active.init = self._active_mask
            with warnings.catch_warnings():
                # Lava's model search imports every sibling .py of processes.py as a top-level
                # module and warns that graph.py / simulator.py cannot be imported that way.
                warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)
                self.source.run(condition=RunSteps(num_steps=self.steps), run_cfg=run_config(self.backend_used))
            self._started = True
            self.compilations += 1
        else:
            self.source.data.set(stream)
            self.source.run(condition=RunSteps(num_steps=self.steps))
        spikes = [r.spikes.get()[:n].astype(np.int8) for r in self.readouts]
        ops = [c.ops.get()[:, :n].T.astype(np.int64) for c in self.counters]
        layer_spikes = [[p.spikes.get()[:n].astype(np.int8) for p in probes] + [s] for probes, s in zip(self.probes, spikes)]
        return spikes, ops, layer_spikes

    def run(self, x_nt: np.ndarray, active: Sequence[int] | None = None) -> GraphRun:
        """Run samples ``x_nt`` (torch layout ``[N, *in_shape, T]``, integers) through the graph.

        Args:
            x_nt: Graded input integers in ``0 .. 2**input_bits - 1``.
            active: Member indices to switch on (``None`` keeps the current set; all at first).

        Raises:
            SimulationError: Wrong T, values outside the input range, bad ``active``.
        """
        x_nt = np.asarray(x_nt)
        if x_nt.ndim < 3 or x_nt.shape[-1] != self.time_steps:
            raise SimulationError(f"input must be [N, ..., T={self.time_steps}], got shape {list(x_nt.shape)}")
        hi = 2 ** self.input_bits - 1 if self.input_bits > 0 else 1
        if x_nt.size and (x_nt.min() < 0 or x_nt.max() > hi or not np.all(np.equal(np.mod(x_nt, 1), 0))):
            raise SimulationError(f"input must hold integers in 0..{hi} ({self.input_bits}-bit graded spikes)")
        if active is not None:
            self.set_active(active)
        elif not hasattr(self, "_active_mask"):
            self.set_active(range(self.num_members))
        x_nt = x_nt.astype(np.int32)
        spikes: list[list[np.ndarray]] = [[] for _ in self.paths]
        ops: list[list[np.ndarray]] = [[] for _ in self.paths]
        layer_spikes: list[list[list[np.ndarray]]] = [[] for _ in self.paths]
        seconds = 0.0
        for start in range(0, x_nt.shape[0], self.capacity):
            first = not self._started
            t0 = time.perf_counter()
            chunk_spikes, chunk_ops, chunk_layers = self._run_chunk(x_nt[start:start + self.capacity])
            if not first:
                seconds += time.perf_counter() - t0
            for k in range(self.num_members):
                spikes[k].append(chunk_spikes[k])
                ops[k].append(chunk_ops[k])
                layer_spikes[k].append(chunk_layers[k])
        merged = [[np.concatenate([c[j] for c in chunks]) for j in range(len(chunks[0]))] for chunks in layer_spikes]
        return GraphRun([np.concatenate(s) for s in spikes], [np.concatenate(o) for o in ops], seconds,
                        merged if self.probe_layers else None)

    def stop(self) -> None:
        """Stop the Lava runtime (its OS processes). Safe to call twice."""
        if self._started:
            try:
                self.source.stop()
            finally:
                self._started = False

    def __enter__(self) -> "LavaGraph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
