"""One compiled Lava graph: host input -> gate -> netx networks, op counters and readouts.

::

    host stream ==> Gate --out_k--> netx Network k --> Readout k ==> host
                     ^     \\             | layer j .out (j = 0..L-2)   \\
                     |      \\--in_0-->  OpCounter k <--in_{j+1}--/     \\ (with decision_classes > 0)
                     +---- mask_in ---- CascadeDecision <--in_k----------/

``==>``: Lava external pipes (one message per run each way: the gate receives the run's
whole input, readouts and counters send their records at the run's last step); ``Var.set``
and ``Var.get`` move data one element per message, seconds per CIFAR-size run.

Many samples per run, reset between samples (measured, lava-nc 0.10 / lava-dl 0.6):

* The gate plays data index ``(t - 1) % steps`` at Lava step ``t`` (``t`` starts at 1).
* Each netx layer adds one step: neurons of weighted layer ``k`` (1-based) fire at step
  ``t`` for data index ``t - 1 - k``.
* ``hdf5.Network(reset_interval=T, reset_offset=1)`` gives layer ``k`` the reset phase
  ``1 + k``: its CUBA state is zeroed exactly at the step the first time step of every
  sample reaches it, so consecutive samples need no zero padding in between; the readout
  just reads layer ``L``'s spikes ``L`` steps later. (The default ``reset_offset=0`` resets
  one step early and contaminates the next sample.)
* A run has ``steps = capacity * T + flush`` steps with ``flush`` = the smallest multiple
  of T that is >= the deepest network's L, so the last sample drains out and every run starts
  at the same reset phase. Runs reuse the compiled graph: only the input stream and the
  gate's ``active`` / per-sample ``mask`` Vars (and the decision's Vars) change, and the
  neuron biases of networks the active set switches off are written 0
  (:mod:`sne_loihi.sim.bias_gate`).
* Per-sample activation (:meth:`LavaGraph.run_cascade`): one run per stage; the decision
  process reads the networks' outputs, applies the cascade head at the stage's last step
  and sends the gate the next stage's per-sample mask.
* The offsets and delays come from the graph's plan (:mod:`sne_loihi.sim.graph_plan`): on
  the CPU as above; on Loihi 2 every host<->chip crossing goes through an adapter of the
  lava-loihi extension (:mod:`sne_loihi.sim.adapters`) and the plan adds the adapters'
  latency to the reset offset and to the readout and op-counter delays.

Networks exported by lava-dl itself (``sne simulate NET.net``), see
:func:`~sne_loihi.netx_format.netx_file.read_netx_network`:

* An input layer with a neuron becomes netx's ``Input`` block, whose ``inp`` port netx leaves
  unconnected (lava-dl issue #298); the gate drives the block's neuron (``a_in``) directly,
  as lava-dl's own examples do. The block adds no step and no synaptic ops; the op counter
  reads the spikes entering each synapse from the block that sends them.
* An ``Input`` block whose layer carries SLAYER's input transform (``weight`` / ``bias``)
  is driven through its neurons' bias, as netx means it (:mod:`sne_loihi.sim.lava_processes.bias_input`):
  the host turns the input into bias mantissas ``rint(weight * x + bias)``, the gate plays
  them and a ``BiasDriver`` writes them into ``bias_mant`` every step; this adds one step
  before the block (:func:`~sne_loihi.sim.graph_plan.input_lag`).
* ``reset_interval``: ``"T"`` (default, the toolkit's exports) resets every T steps; an
  integer resets at that interval; ``None`` never resets (state carries from sample to
  sample, as a plain ``hdf5.Network(file)``). netx gives block ``b`` the reset phase
  ``reset_offset + 1 + b``; the graph passes ``reset_offset=1``, or ``0`` when an ``Input``
  block driven through ``a_in`` comes first (it adds a block but no step), so every block is
  zeroed exactly when a sample's first step reaches it: with ``"T"`` each sample starts
  from rest.
* ``retime`` (default on): the readout and counters attribute data that left the source
  ``d`` steps earlier to its sample, ``d`` being the number of synapses on the way (plus
  the bias driver's step); off: everything a port sees at Lava step ``t`` belongs to data
  index ``t - 1`` (the raw netx timing).
* Axonal delays: only as netx runs them (``retime=False``, no per-sample reset), see
  :func:`~sne_loihi.sim.foreign_netx.check_networks`.

The toolkit's bias-driven first layer (``lava.first_layer = "bias"``, the file's
``inputDrive`` marker, :mod:`sne_loihi.netx_format.bias_layer`): the gate's output for that
network goes to a :class:`~sne_loihi.sim.lava_processes.bias_input.ConvBiasDriver` (host),
which computes the first conv layer's integer ``W * x + b`` from the sample's image and
writes it into the layer's ``bias_mant``; the network's ``inp`` (its conv synapse) receives
nothing. The driver writes in the management phase of the step the gate plays data ``j``,
and the neurons integrate it at the next step, when the conv synapse (which sends the
previous step's sum) would have delivered it: the offsets, delays and the step -> sample
rule are those of the synaptic path (no ``input_lag``). The op counter charges the first
layer at a sample's first step only (the input must be the same every step). CPU only.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.indices import check_student_indices
from sne_loihi.netx_format.bias_layer import BiasDrivenLayer, read_bias_driven_layer
from sne_loihi.netx_format.netx_file import NetxNetwork, read_netx_network
from sne_loihi.sim.bias_gate import BiasSwitch
from sne_loihi.sim.foreign_netx import bias_stream, check_networks
from sne_loihi.sim.backend import Backend, Engine, resolve_backend, resolve_engine, run_config
from sne_loihi.sim.graph_plan import AdapterLatency, GraphPlan, Layout, input_lag, plan_graph
from sne_loihi.sim.graph_types import (
    RESET_PER_SAMPLE, CascadeRun, GraphRun, check_switched_off, resolve_reset, to_lava_input,
)
from sne_loihi.sim.lava_runtime import abort_runtime, run_steps
from sne_loihi.sim.schedule import LavaSchedule, RunTiming

__all__ = ["RESET_PER_SAMPLE", "CascadeRun", "GraphRun", "LavaGraph", "LavaSchedule", "resolve_reset", "to_lava_input"]


class LavaGraph:
    """A compiled-once Lava graph over K netx networks that share one input.

    Args:
        net_paths: netx HDF5 files, one per member.
        input_bits: Bits of the graded input (0 = binary spikes).
        schedule: T (steps per sample), capacity (samples per Lava run; batches are
            cut/padded to it), reset interval (``"T"``: reset every sample, an integer, or
            ``None``: no reset) and ``retime`` (attribute outputs and ops to samples by the
            synaptic depth; ``False``: raw Lava steps); see the module docstring.
        backend: Requested backend; ``backend_used`` says what runs.
        probe_layers: Also record every layer's spikes (``GraphRun.layer_spikes``), for
            the export parity check; costs one more process per layer.
        decision_classes: With ``C > 0`` the graph holds a
            :class:`~sne_loihi.sim.lava_processes.ensemble.CascadeDecision` for a head of C classes that
            reads the networks' outputs and drives the gate per sample
            (:meth:`run_cascade`); costs one more process.
        engine: CPU process models for Lava's own processes: ``fast`` (vectorised, same
            spikes; see :mod:`sne_loihi.sim.fast_models`) or ``reference`` (Lava's own).
        num_layers: Build only the first ``num_layers`` layer groups of every file (netx's
            ``num_layers``); ``None``: all.
        adapter_latency: Steps the host<->chip adapters add (Loihi 2 only, where they are
            inserted; default :data:`~sne_loihi.sim.graph_plan.LOIHI2_ASSUMED_LATENCY`);
            0 on the CPU. It moves the reset offsets and the readout / counter delays
            (:attr:`plan`).

    Raises:
        SimulationError: Members with different input shapes, bad arguments, or an
            unavailable backend. ExportError (from the reader) for corrupt files.
    """

    #: The planned layout (:mod:`~sne_loihi.sim.graph_plan`); see also :mod:`~sne_loihi.sim.hw_graph`.
    LAYOUT = Layout.TAPPED

    def __init__(self, net_paths: Sequence[Path], input_bits: int, schedule: LavaSchedule,
                 backend: Backend | str = Backend.AUTO, probe_layers: bool = False, decision_classes: int = 0,
                 engine: Engine | str = Engine.FAST, num_layers: int | None = None,
                 adapter_latency: AdapterLatency | None = None) -> None:
        if not isinstance(schedule, LavaSchedule):
            raise SimulationError(f"a Lava graph takes a LavaSchedule, got {type(schedule).__name__}")
        self._check_options(schedule, probe_layers)
        from sne_loihi.sim.lava_processes.ensemble import MAX_LAYERS, MAX_STUDENTS

        if not 1 <= len(net_paths) <= MAX_STUDENTS:
            raise SimulationError(f"a graph holds 1..{MAX_STUDENTS} networks, got {len(net_paths)}")
        self.engine = resolve_engine(engine)
        self.backend_used = resolve_backend(backend)
        self.paths = [Path(p) for p in net_paths]
        self.num_layers = num_layers
        self.schedule = schedule
        self.reset_interval = schedule.reset_steps
        self.retime = schedule.retime
        self.networks: list[NetxNetwork] = [read_netx_network(p, num_layers) for p in self.paths]
        self.layers = [n.layers for n in self.networks]
        for p, layers in zip(self.paths, self.layers):
            if len(layers) > MAX_LAYERS:
                raise SimulationError(f"{p} has {len(layers)} weighted layers; the op counter handles {MAX_LAYERS}")
        self.input_bits, self.time_steps, self.capacity = int(input_bits), schedule.time_steps, schedule.capacity
        for p, n in zip(self.paths, self.networks):
            if n.sdnn_layer is not None and self.reset_interval is not None:
                raise SimulationError(f"{p}: layer/{n.sdnn_layer} has sigma-delta (SDNN) neurons, which netx never "
                                      "resets; run it with reset interval none (--reset-interval none)")
        self.signed_input = all(n.signed_input for n in self.networks)
        check_networks(self.paths, self.networks, retime=self.retime, reset_interval=schedule.reset_interval,
                       backend=self.backend_used)
        self.bias_input = self.networks[0].bias_input
        #: Per network its bias-driven first layer (``None``: driven through its synapses).
        self.bias_layers: list[BiasDrivenLayer | None] = [read_bias_driven_layer(p) for p in self.paths]
        loihi = self.backend_used is Backend.LOIHI2
        if loihi and any(self.bias_layers):
            p = self.paths[next(k for k, b in enumerate(self.bias_layers) if b is not None)]
            raise SimulationError(f"{p}: its first layer takes the input as a per-sample neuron bias, which only the "
                                  "CPU backend can write (a RefPort into a chip Var needs the lava-loihi extension); "
                                  "run it with --backend cpu or export it with lava.first_layer 'synaptic'")
        self.plan: GraphPlan = plan_graph(self.networks, layout=self.LAYOUT, adapters=loihi,
                                          latency=adapter_latency if loihi else AdapterLatency(),
                                          reset_interval=self.reset_interval, retime=self.retime,
                                          decision=decision_classes > 0)
        lat = self.plan.latency.input_steps + self.plan.latency.output_steps
        depth = max(len(n.layers) + n.total_delay + input_lag(n) for n in self.networks) + lat
        self.timing: RunTiming = schedule.timing(depth)
        self.steps = self.timing.steps
        from sne_loihi.sim.graph_size import check_graph_fits

        folders = {p.parent for p in self.paths}  # an export: its folder; else the file(s)
        where = str(folders.pop()) if len(self.paths) > 1 and len(folders) == 1 else ", ".join(map(str, self.paths))
        check_graph_fits(self.networks, self.capacity, self.time_steps, where)  # before any Lava process exists
        self.compilations = 0
        self.compile_seconds = 0.0
        self.probe_layers = probe_layers
        self.decision_classes = int(decision_classes)
        self._drivers: dict[int, object] = {}  # network -> its ConvBiasDriver
        self._drivers_on: dict[int, bool] = {}
        self._gate_mask_ones = True
        self._started = False
        self._failed = False  # a Lava process raised: stop() terminates instead of waiting
        self._build()

    @property
    def first_layer(self) -> tuple[str, ...]:
        """Per network how its first layer is driven: ``"bias"`` (per-sample neuron bias,
        counted once per sample) or ``"synaptic"``."""
        return tuple("bias" if b is not None else "synaptic" for b in self.bias_layers)

    def _check_options(self, schedule: LavaSchedule, probe_layers: bool) -> None:
        """Refuse what this layout cannot run (the tapped graph runs every schedule)."""

    @property
    def num_members(self) -> int:
        """K."""
        return len(self.paths)

    def _build(self) -> None:
        from sne_loihi.sim.lava_processes.ensemble import CascadeDecision, Gate

        self._build_nets()
        self.gate = Gate(shape=self.in_shape, num_students=self.num_members, timing=self.timing,
                         decision_port=self.decision_classes > 0)
        self.decision = None
        if self.decision_classes > 0:
            self.decision = CascadeDecision([int(np.prod(n.out.shape)) for n in self.nets],
                                            [len(layers) for layers in self.layers], self.decision_classes,
                                            self.timing)
            self.decision.mask_out.connect(self.gate.mask_in)
        self.counters, self.readouts, self.probes = [], [], []
        self._adapters: dict[int, object] = {}  # chip port id -> its NxToPy adapter (shared by host readers)
        for k, (net, desc) in enumerate(zip(self.nets, self.networks)):
            try:
                self._wire(k, net, desc)
            except (AssertionError, ValueError) as exc:  # Lava's port shape checks
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SimulationError(f"{self.paths[k]}: the network's ports do not fit: {first}") from None

    def _build_nets(self) -> None:
        """Build the members' netx networks (``self.nets``) and check they share one input
        shape (``self.in_shape``)."""
        from sne_loihi.students.slayer_student import import_slayer

        import_slayer()  # netx imports SLAYER: quietly first (no CUDA / Prophesee chatter on stdout)
        from lava.lib.dl.netx import hdf5

        bits = self.input_bits
        self.nets = []
        for p, desc in zip(self.paths, self.networks):
            try:
                self.nets.append(hdf5.Network(net_config=str(p), input_message_bits=bits, num_layers=self.num_layers,
                                              reset_interval=self.reset_interval,
                                              reset_offset=self.plan.reset_offsets[len(self.nets)]))
            except Exception as exc:  # netx raises RuntimeError/AssertionError/KeyError with multi-line text
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SimulationError(f"{p}: netx cannot build this network: {type(exc).__name__}: {first}") from None
        shapes = {self._input_shape(n) for n in self.nets}
        if len(shapes) != 1:
            raise SimulationError(f"networks of one graph must share the input shape, got {sorted(shapes)}")
        self.in_shape = shapes.pop()
        self._bias_switch = BiasSwitch(self.nets, self.networks)

    def _input_shape(self, net: object) -> tuple[int, ...]:
        """Shape of the port the gate drives: the network's ``inp``, or the ``Input`` block's neuron."""
        return tuple(self._input_port(net).shape)

    @staticmethod
    def _input_port(net: object) -> object:
        first = net.layers[0]
        return first.neuron.a_in if type(first).__name__ == "Input" else net.inp

    def _wire(self, k: int, net: object, desc: NetxNetwork) -> None:
        """Connect member ``k``: gate -> network, every synapse's input -> op counter,
        output -> readout (and decision), probes."""
        from sne_loihi.sim.lava_processes.ensemble import OpCounter, Readout

        layers = desc.layers
        if len(net.layers) != desc.num_blocks:
            raise SimulationError(f"{self.paths[k]}: netx built {len(net.layers)} blocks, expected {desc.num_blocks}")
        first = int(desc.input_neuron)  # index in net.layers of weighted layer 0
        fanouts = [lay.port_fanout for lay in layers]
        once = [self.bias_layers[k] is not None] + [False] * (len(layers) - 1)
        counter = OpCounter(fanouts, delays=self.plan.tap_delays[k], timing=self.timing, once=once)
        link = self._link
        gate_out = getattr(self.gate, f"out_{k}")
        if self.bias_layers[k] is not None:
            self._drive_first_layer(k, gate_out, net)
        elif desc.bias_input is not None:
            from sne_loihi.sim.lava_processes.bias_input import BiasDriver

            driver = BiasDriver(tuple(net.layers[0].neuron.bias_mant.shape))
            gate_out.connect(driver.inp)
            driver.drive(net.layers[0].neuron.bias_mant)
        else:
            link(gate_out, self._input_port(net), to_chip=True)
        if desc.input_neuron:
            link(net.layers[0].out, counter.in_0, to_chip=False)
        else:
            gate_out.connect(counter.in_0)
        for j in range(1, len(layers)):
            link(net.layers[first + j - 1].out, getattr(counter, f"in_{j}"), to_chip=False)
        readout = Readout(tuple(net.out.shape), delay=self.plan.readout_delays[k], timing=self.timing)
        link(net.out, readout.inp, to_chip=False)
        if self.decision is not None:
            link(net.out, getattr(self.decision, f"in_{k}"), to_chip=False)
        self.counters.append(counter)
        self.readouts.append(readout)
        probes = []
        for j in range(len(layers) - 1 if self.probe_layers else 0):
            block = net.layers[first + j]
            probes.append(Readout(tuple(block.out.shape), delay=self.plan.tap_delays[k][j + 1], timing=self.timing))
            self._link(block.out, probes[-1].inp, to_chip=False)
        self.probes.append(probes)

    def _drive_first_layer(self, k: int, source: object, net: object) -> None:
        """Network ``k``'s first layer by a per-sample bias: ``source`` (its gated image) ->
        :class:`~sne_loihi.sim.lava_processes.bias_input.ConvBiasDriver` -> the layer's ``bias_mant``."""
        from sne_loihi.sim.lava_processes.bias_input import ConvBiasDriver

        driver = ConvBiasDriver(self.in_shape, self.bias_layers[k])
        source.connect(driver.inp)
        driver.drive(net.layers[0].neuron.bias_mant)
        self._drivers[k] = driver
        self._drivers_on[k] = True

    def _link(self, src: object, dst: object, to_chip: bool) -> None:
        """Connect a host port with a netx port: directly on the CPU, through an adapter of
        the lava-loihi extension on Loihi 2 (see :mod:`sne_loihi.sim.adapters`)."""
        if not self.plan.adapters:
            src.connect(dst)
            return
        from sne_loihi.sim.adapters import connect_through_adapter

        connect_through_adapter(src, dst, to_chip, self.input_bits if to_chip else 0, self._adapters)

    @property
    def runtime(self) -> object | None:
        """The Lava runtime (created by the first run, then reused)."""
        return self._root().runtime if self._started else None

    def set_active(self, active: Sequence[int]) -> None:
        """Switch the gate to ``active`` (member indices) for the next runs; no rebuild.

        Raises:
            SimulationError: An index outside ``0..K-1`` or a repeated index.
        """
        idx = check_student_indices(active, self.num_members, "active", SimulationError)
        mask = np.zeros(self.num_members, dtype=np.int32)
        mask[idx] = 1
        self._active_mask = mask
        self._write(self.gate.active, mask)
        self._bias_switch.apply(mask, self._set_var)  # a switched-off network's neuron biases are 0
        for k, driver in self._drivers.items():  # and a bias-driven first layer gets none of its own
            if self._drivers_on[k] != bool(mask[k]):
                self._set_var(driver.bias_on, np.array([int(mask[k])], dtype=np.int32))
                self._drivers_on[k] = bool(mask[k])

    def _biased(self) -> bool:
        """Whether any network has neuron biases (they drive neurons with no input)."""
        return any(lay.bias_xyz is not None for layers in self.layers for lay in layers)

    def _write(self, var: object, value: np.ndarray) -> None:
        """Set one of the gate's Vars (:meth:`_set_var`)."""
        self._set_var(var, value)

    def _set_var(self, var: object, value: np.ndarray) -> None:
        """Set a Var: its initial value before the first run, ``Var.set`` after."""
        if self._started:
            var.set(value)
        else:
            var.init = value

    def set_gate_mask(self, mask_nk: np.ndarray | None) -> None:
        """The gate's per-sample mask for the next run (``None``: all ones)."""
        if mask_nk is None:
            if not self._gate_mask_ones:
                self._write(self.gate.mask, np.ones((self.capacity, self.num_members), dtype=np.int32))
                self._gate_mask_ones = True
            return
        full = np.zeros((self.capacity, self.num_members), dtype=np.int32)
        full[: len(mask_nk)] = mask_nk
        self._write(self.gate.mask, full)
        self._gate_mask_ones = False

    def _root(self) -> object:
        """The process the runtime is created, run and stopped through."""
        return self.gate

    def _run_config(self) -> object:
        """The Lava run configuration of the graph's backend and engine."""
        return run_config(self.backend_used, self.engine)

    def _compile(self) -> float:
        """Compile the graph and start Lava's processes (no time step is run); returns the
        seconds it took."""
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # Lava's model search imports every sibling .py of a process's module as a top-level
            # module (see sne_loihi.sim.lava_processes) and warns for one it cannot import that way.
            warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)
            run_cfg = self._run_config()
            try:
                self._root().create_runtime(run_cfg=run_cfg)
            except Exception as exc:  # Lava's compiler: multi-line messages of any type
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                names = ", ".join(str(p) for p in self.paths)
                raise SimulationError(f"Lava cannot compile the graph of {names}: {type(exc).__name__}: {first}") from exc
        self._started = True
        self.compilations += 1
        seconds = time.perf_counter() - t0
        self.compile_seconds += seconds
        return seconds

    def run_chunk(self, x_n_in_t: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[list[np.ndarray]], float]:
        """One Lava run over ``x_n_in_t`` (at most ``capacity`` samples, checked input); returns
        per network its output spikes, ops and (with ``probe_layers``) layer spikes, and the
        seconds spent compiling (first run)."""
        n = x_n_in_t.shape[0]
        stream = np.zeros((*self.in_shape, self.steps), dtype=np.int32)
        stream[..., : n * self.time_steps] = to_lava_input(x_n_in_t, self.in_shape)
        compile_s = self._compile() if not self._started else 0.0
        self.gate.send_stream(stream)
        self._run_steps(self.gate, self.steps)
        # Every readout and counter sent its record at the run's last step: read them all.
        spikes = [r.receive()[:n].astype(np.int32 if desc.graded_output else np.int8)
                  for r, desc in zip(self.readouts, self.networks)]
        ops = [c.receive()[:, :n].T.astype(np.int64) for c in self.counters]
        layer_spikes = [[p.receive()[:n].astype(np.int8) for p in probes] + [s] for probes, s in zip(self.probes, spikes)]
        return spikes, ops, layer_spikes, compile_s

    def _check_input(self, x_n_in_t: np.ndarray) -> np.ndarray:
        x_n_in_t = np.asarray(x_n_in_t)
        if x_n_in_t.dtype.kind not in "biuf":  # complex, object, strings: not spike counts
            raise SimulationError(f"input must hold real integers, got an array of dtype {x_n_in_t.dtype}")
        if x_n_in_t.ndim < 3 or x_n_in_t.shape[-1] != self.time_steps:
            raise SimulationError(f"input must be [N, ..., T={self.time_steps}], got shape {list(x_n_in_t.shape)}")
        if self.bias_input is not None:  # real values, through the file's input transform
            return bias_stream(self.bias_input, x_n_in_t)
        if any(self.bias_layers) and x_n_in_t.size and not np.array_equal(x_n_in_t, np.broadcast_to(
                x_n_in_t[..., :1], x_n_in_t.shape)):
            raise SimulationError("a first layer driven by a per-sample bias needs the same input at every time step; "
                                  "this input changes over the steps (export with lava.first_layer 'synaptic')")
        if self.signed_input:  # a sigma-delta input neuron takes signed 24-bit values
            lo, hi, what = -2 ** 23, 2 ** 23 - 1, "signed 24-bit values for a sigma-delta input layer"
        else:
            lo, hi = 0, 2 ** self.input_bits - 1 if self.input_bits > 0 else 1
            what = (f"{self.input_bits}-bit graded spikes" if self.input_bits > 0 else
                    "binary spikes; graded input needs --input-bits B")
        if x_n_in_t.size and (x_n_in_t.min() < lo or x_n_in_t.max() > hi or not np.all(np.equal(np.mod(x_n_in_t, 1), 0))):
            raise SimulationError(f"input must hold integers in {lo}..{hi} ({what})")
        return x_n_in_t.astype(np.int32)

    def run(self, x_n_in_t: np.ndarray, active: Sequence[int] | None = None, mask_nk: np.ndarray | None = None) -> GraphRun:
        """Run samples ``x_n_in_t`` (torch layout ``[N, *in_shape, T]``, integers) through the graph.

        Args:
            x_n_in_t: Graded input integers in ``0 .. 2**input_bits - 1``.
            active: Member indices to switch on (``None`` keeps the current set; all at first).
            mask_nk: Optional per-sample gate ``[N, K]`` (0/1): member k runs for sample n
                only where it is 1 (and active). ``None``: every active member, every sample.

        Raises:
            SimulationError: Wrong T, values outside the input range, bad ``active`` or mask.
        """
        x_n_in_t = self._check_input(x_n_in_t)
        if mask_nk is not None:
            mask_nk = np.asarray(mask_nk)
            if mask_nk.shape != (x_n_in_t.shape[0], self.num_members) or not np.isin(mask_nk, (0, 1)).all():
                raise SimulationError(f"per-sample mask must be 0/1 of shape [{x_n_in_t.shape[0]}, {self.num_members}], "
                                      f"got {list(mask_nk.shape)}")
        if active is not None:
            self.set_active(active)
        elif not hasattr(self, "_active_mask"):
            self.set_active(range(self.num_members))
        spikes: list[list[np.ndarray]] = [[] for _ in self.paths]
        ops: list[list[np.ndarray]] = [[] for _ in self.paths]
        layer_spikes: list[list[list[np.ndarray]]] = [[] for _ in self.paths]
        seconds = compile_s = 0.0
        for start in range(0, x_n_in_t.shape[0], self.capacity):
            self.set_gate_mask(None if mask_nk is None else mask_nk[start:start + self.capacity])
            t0 = time.perf_counter()
            chunk_spikes, chunk_ops, chunk_layers, chunk_compile = self.run_chunk(x_n_in_t[start:start + self.capacity])
            seconds += time.perf_counter() - t0 - chunk_compile
            compile_s += chunk_compile
            for k in range(self.num_members):
                spikes[k].append(chunk_spikes[k])
                ops[k].append(chunk_ops[k])
                layer_spikes[k].append(chunk_layers[k])
        merged = [[np.concatenate([c[j] for c in chunks]) for j in range(len(chunks[0]))] for chunks in layer_spikes]
        run = GraphRun([np.concatenate(s) for s in spikes], [np.concatenate(o) for o in ops], seconds,
                       merged if self.probe_layers else None, compile_s)
        if self._biased():  # a bias fires with no input
            check_switched_off([str(p) for p in self.paths], run.spikes_nft, run.ops_nl, self._active_mask, mask_nk)
        return run

    def run_cascade(self, x_n_in_t: np.ndarray, head_w: np.ndarray, head_b: np.ndarray, order: Sequence[int],
                    threshold: float) -> CascadeRun:
        """Per-sample activation decided inside the graph (see
        :class:`~sne_loihi.sim.lava_processes.ensemble.CascadeDecision`): for every chunk of ``capacity``
        samples, stage ``j`` is one Lava run in which the gate feeds member ``order[j]`` to
        the samples the decision process kept running. The host only sets the head, order and
        threshold, starts each stage and reads the records; it stops early once the decision
        process has stopped every sample. Nothing is recompiled.

        Args:
            x_n_in_t: Input as for :meth:`run`.
            head_w: ``[C, sum F]`` head over the members' concatenated rates (C =
                ``decision_classes``); ``head_b``: ``[C]``.
            order: Members in cascade order (distinct; members not listed never run).
            threshold: Stop a sample once its top softmax probability reaches it.

        Raises:
            SimulationError: A graph built without ``decision_classes``, a head of the wrong
                shape, a bad order or threshold, or bad input.
        """
        from sne_loihi.sim.graph_cascade import run_graph_cascade

        return run_graph_cascade(self, x_n_in_t, head_w, head_b, order, threshold)

    def check_cascade(self, x_n_in_t: np.ndarray, head_w: np.ndarray, head_b: np.ndarray, order: Sequence[int],
                      threshold: float, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """Validated ``(x_n_in_t, head_w, head_b, order)`` of a cascade run (head of ``classes`` rows).

        Raises:
            SimulationError: Bad input, a head of the wrong shape, a bad order or threshold.
        """
        x_n_in_t = self._check_input(x_n_in_t)
        total = sum(int(np.prod(n.out.shape)) for n in self.nets)
        head_w, head_b = np.asarray(head_w, dtype=np.float64), np.asarray(head_b, dtype=np.float64)
        if head_w.shape != (classes, total) or head_b.shape != (classes,):
            raise SimulationError(f"cascade head must be [{classes}, {total}] + [{classes}], "
                                  f"got {list(head_w.shape)} + {list(head_b.shape)}")
        order = check_student_indices(order, self.num_members, "cascade order", SimulationError, nonempty=True)
        if not np.isfinite(threshold):
            raise SimulationError(f"cascade threshold must be a finite number, got {threshold}")
        return x_n_in_t, head_w, head_b, order

    def _run_steps(self, process: object, steps: int) -> None:
        """Run the graph ``steps`` steps through ``process`` (:func:`~sne_loihi.sim.lava_runtime.run_steps`).
        After a failure or Ctrl-C (which reached Lava's processes too) :meth:`stop` tears the
        runtime down without waiting on the failed processes, where Lava's own ``stop`` would
        wait forever.

        Raises:
            SimulationError: A Lava process raised.
        """
        try:
            run_steps(process, steps, ", ".join(str(p) for p in self.paths))
        except BaseException:
            self._failed = True
            raise

    def stop(self) -> None:
        """Stop the Lava runtime (its OS processes). Safe to call twice; after a failed run the
        processes are terminated instead of asked to stop (the failed ones never answer)."""
        if self._started:
            try:
                if self._failed:
                    abort_runtime(self._root().runtime)
                else:
                    self._root().stop()
            finally:
                self._started = False

    def __enter__(self) -> "LavaGraph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
