"""Custom Lava processes of the ensemble graph: gate, synaptic-op counter, readout.

All models are ``PyLoihiProcessModel`` tagged ``fixed_pt`` and use numpy only (torch inside
a Lava process model can hang: Lava forks one OS process per leaf process).

Timing (measured, see :mod:`sne_loihi.sim.graph`): one run of the graph has ``steps``
time steps and the source sends sample data index ``j = (t - 1) % steps`` at Lava time step
``t``. The gate forwards in the same step. A netx layer adds one step (its synapse sends the
previous step's accumulation), so the spikes leaving weighted layer ``k`` (1-based) at step
``t`` belong to data index ``j - k``. A port that sees data delayed by ``delay`` steps
attributes what it receives to ``idx = (t - 1) % steps - delay``, i.e. to sample
``idx // T`` and step ``idx % T`` (ignored outside ``0 <= idx < samples * T``).
Records are cleared at the first step of every run, so ``Var.get()`` after a run returns
that run's figures only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sne_loihi.sim.lava_import import prepare_lava_import
from sne_loihi.sim.schedule import RunTiming

prepare_lava_import()  # before any Lava import: see its docstring

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

#: Port counts are fixed in a process model's class: the gate serves at most this many
#: students and a counter at most this many weighted layers.
MAX_STUDENTS = 16
MAX_LAYERS = 12


class Gate(AbstractProcess):
    """The graph's input: plays the host's input stream and forwards it to the active
    students only (zeros to the others).

    The host sends one run's whole input ``[*shape, steps]`` through the external pipe of
    ``stream_in`` before every run (:meth:`send_stream`, one message; ``Var.set`` would send
    it element by element, seconds per CIFAR run); at Lava step ``t`` the gate plays
    ``stream[..., (t - 1) % steps]``, as Lava's ``RingBuffer`` does with its ``data`` Var.

    Student ``k`` receives the step's input when ``active[k]`` and ``mask[sample, k]`` (and,
    with ``decision_port``, the mask received on ``mask_in``) are all 1, where ``sample`` is
    the sample the step's data belongs to (the counters' timing rule with delay 0). Vars:
    ``active`` (``[num_students]``, whole run) and ``mask`` (``[capacity, num_students]``,
    per sample, all ones by default); change them with ``.set(...)`` between ``run()``
    calls, no rebuild or recompilation.

    Args:
        shape: Input shape (Lava order).
        num_students: Number of output ports ``out_0 .. out_{n-1}``.
        timing: T, samples per run (capacity) and steps of one run.
        decision_port: Add the InPort ``mask_in`` (``[capacity, num_students]``) through
            which a :class:`CascadeDecision` switches students per sample.
    """

    def __init__(self, shape: tuple[int, ...], num_students: int, timing: RunTiming,
                 decision_port: bool = False) -> None:
        if not 1 <= num_students <= MAX_STUDENTS:
            raise ValueError(f"the gate serves 1..{MAX_STUDENTS} students, got {num_students}")
        super().__init__(shape=shape, num_students=num_students, timing=timing, decision_port=decision_port)
        capacity = timing.capacity
        self.stream_in = InPort(shape=(*shape, timing.steps))
        self.stream_in.flag_external_pipe(buffer_size=1)
        # A process model's ports are fixed in its class, so every gate has MAX_STUDENTS
        # ports; those beyond num_students stay unconnected (a 1-element placeholder).
        for k in range(MAX_STUDENTS):
            setattr(self, f"out_{k}", OutPort(shape=shape if k < num_students else (1,)))
        self.mask_in = InPort(shape=(capacity, num_students) if decision_port else (1,))
        self.active = Var(shape=(num_students,), init=np.ones(num_students, dtype=np.int32))
        self.mask = Var(shape=(capacity, num_students), init=np.ones((capacity, num_students), dtype=np.int32))

    def send_stream(self, stream: np.ndarray) -> None:
        """Hand the next run's input ``[*shape, steps]`` (int32) to the gate (after the
        runtime was created, before the run)."""
        self.stream_in.external_pipe_csp_send_port.send(np.ascontiguousarray(stream, dtype=np.int32))


class OpCounter(AbstractProcess):
    """Counts one student's synaptic events per weighted layer and sample.

    Port ``in_k`` receives the spikes (graded for layer 0) entering weighted layer ``k``;
    every step it adds ``sum(fanout_k[spikes != 0])`` to ``ops[k, sample]`` (a layer marked
    ``once``: at the sample's first step only, e.g. a first layer driven by a per-sample bias,
    whose MACs the host performs once per sample).

    Args:
        fanouts: Per layer the fan-out array, shaped like that layer's input port.
        delays: Per layer how many steps its input lags the source (``k`` for layer ``k``).
        timing: T, samples per run (capacity) and steps of one run (all samples plus the flush).
        once: Per layer, count only a sample's first step (default: every step).
    """

    def __init__(self, fanouts: Sequence[np.ndarray], delays: Sequence[int], timing: RunTiming,
                 once: Sequence[bool] | None = None) -> None:
        if not 1 <= len(fanouts) <= MAX_LAYERS:
            raise ValueError(f"the op counter handles 1..{MAX_LAYERS} layers, got {len(fanouts)}")
        once = [False] * len(fanouts) if once is None else [bool(v) for v in once]
        super().__init__(fanouts=[np.asarray(f, dtype=np.int64) for f in fanouts], delays=list(delays), timing=timing,
                         once=once)
        capacity = timing.capacity
        for k in range(MAX_LAYERS):  # unused ports stay unconnected (see Gate)
            setattr(self, f"in_{k}", InPort(shape=np.shape(fanouts[k]) if k < len(fanouts) else (1,)))
        self.ops = Var(shape=(len(fanouts), capacity), init=np.zeros((len(fanouts), capacity), dtype=np.int64))
        self.ops_out = OutPort(shape=(len(fanouts), capacity))
        self.ops_out.flag_external_pipe(buffer_size=1)

    def receive(self) -> np.ndarray:
        """The counts of the run that just ended ``[L, capacity]`` (sent through an external
        pipe at the run's last step; read once after every run)."""
        return self.ops_out.external_pipe_csp_recv_port.recv()


class Readout(AbstractProcess):
    """Records a layer's spikes per sample and step (``spikes[sample, *shape, t]``).

    At the last step of every run the record is also sent through the external pipe of
    ``spikes_out`` (one message; :meth:`receive` reads it after the run).

    Args:
        shape: Shape of the recorded port (``(F,)`` for a dense output layer).
        delay: Steps the output lags the source (number of weighted layers).
        timing: T, samples per run (capacity) and steps of one run.
    """

    def __init__(self, shape: tuple[int, ...], delay: int, timing: RunTiming) -> None:
        super().__init__(delay=delay, timing=timing)
        self.inp = InPort(shape=tuple(shape))
        full = (timing.capacity, *shape, timing.time_steps)
        self.spikes = Var(shape=full, init=np.zeros(full, dtype=np.int32))
        self.spikes_out = OutPort(shape=full)
        self.spikes_out.flag_external_pipe(buffer_size=1)

    def receive(self) -> np.ndarray:
        """The record of the run that just ended ``[capacity, *shape, T]`` (read once after
        every run)."""
        return self.spikes_out.external_pipe_csp_recv_port.recv()


class CascadeDecision(AbstractProcess):
    """Per-sample activation inside the graph: reads the students' output spikes and tells
    the gate, per sample, which student runs next.

    One Lava run (``steps`` time steps, all samples) is one *stage*. In stage ``j`` the
    mask sent to the gate has student ``order[j]`` on for the samples still running. The
    process adds every sample's output spikes of the students it ran to ``counts``; at the
    last step of the stage (when the last sample's spikes have left the deepest network)
    it applies the head to the rates so far, ``counts / T`` (zeros for the students not
    run), and stops the samples whose top softmax probability reaches ``threshold``; the
    others get student ``order[j + 1]`` in the next stage (none after the last one).

    The mask is sent at the start of every step (before this step's spikes are received),
    which closes the gate -> networks -> decision -> gate loop without a deadlock.

    Vars (set between runs, no recompilation): ``enabled`` (0: send all ones, the gate then
    follows its own Vars), ``head_w`` ``[classes, sum F]``, ``head_b``, ``threshold``,
    ``order`` (``[num_students]``, unused entries -1), ``stage``, ``mask`` (the mask of the
    current stage), ``ran`` (``[capacity, num_students]``, what each sample has run),
    ``counts`` (``[capacity, sum F]``, output spikes so far).

    Args:
        sizes: Output neurons of every student (F_k).
        delays: Per student, steps its output lags the source (its weighted layers).
        num_classes: Rows of the head.
        timing: T, samples per run (capacity) and steps of one run.
    """

    def __init__(self, sizes: Sequence[int], delays: Sequence[int], num_classes: int, timing: RunTiming) -> None:
        n, total = len(sizes), int(sum(sizes))
        if not 1 <= n <= MAX_STUDENTS or len(delays) != n:
            raise ValueError(f"the decision serves 1..{MAX_STUDENTS} students with one delay each, got {n}")
        super().__init__(sizes=[int(f) for f in sizes], delays=[int(d) for d in delays], timing=timing)
        capacity = timing.capacity
        for k in range(MAX_STUDENTS):  # unused ports stay unconnected (see Gate)
            setattr(self, f"in_{k}", InPort(shape=(int(sizes[k]),) if k < n else (1,)))
        self.mask_out = OutPort(shape=(capacity, n))
        self.enabled = Var(shape=(1,), init=np.zeros(1, dtype=np.int32))
        self.head_w = Var(shape=(num_classes, total), init=np.zeros((num_classes, total)))
        self.head_b = Var(shape=(num_classes,), init=np.zeros(num_classes))
        self.threshold = Var(shape=(1,), init=np.ones(1))
        self.order = Var(shape=(n,), init=np.arange(n, dtype=np.int32))
        self.stage = Var(shape=(1,), init=np.zeros(1, dtype=np.int32))
        self.mask = Var(shape=(capacity, n), init=np.zeros((capacity, n), dtype=np.int32))
        self.ran = Var(shape=(capacity, n), init=np.zeros((capacity, n), dtype=np.int32))
        self.counts = Var(shape=(capacity, total), init=np.zeros((capacity, total), dtype=np.int32))


def top_probability(logits_nc: np.ndarray) -> np.ndarray:
    """``max softmax`` per row, in float64: ``1 / sum(exp(logits - max))``."""
    z = np.asarray(logits_nc, dtype=np.float64)
    return 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)


def next_stage_mask(running_n: np.ndarray, confidence_n: np.ndarray, threshold: float, order: Sequence[int],
                    stage: int, num_students: int) -> np.ndarray:
    """The cascade rule after stage ``stage``: ``[S, N]`` mask with student ``order[stage + 1]``
    on for the samples that ran and stayed below ``threshold`` (all zeros after the last stage)."""
    mask = np.zeros((len(running_n), num_students), dtype=np.int32)
    if stage + 1 < len(order):
        mask[:, order[stage + 1]] = (np.asarray(running_n) != 0) & (np.asarray(confidence_n) < threshold)
    return mask


def decide_stage(mask_nk: np.ndarray, ran_nk: np.ndarray, counts_nf: np.ndarray, head_w: np.ndarray,
                 head_b: np.ndarray, threshold: float, order: Sequence[int], stage: int,
                 time_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One cascade decision after stage ``stage`` (in the graph's decision process or on the
    host between stage runs): returns ``(next mask, ran)``.

    Args:
        mask_nk: The stage's mask (student ``order[stage]`` on for the samples that ran it).
        ran_nk: What every sample has run before this stage.
        counts_nf: Output spikes so far of the students each sample ran, ``[S, sum F]``.
        head_w, head_b: The cascade head; ``threshold``: stop at this top probability.
        order: The cascade order; ``time_steps``: T (rates are ``counts / T``).
    """
    running = mask_nk[:, order[stage]].copy()
    ran = ran_nk | mask_nk
    confidence = top_probability((counts_nf / float(time_steps)) @ head_w.T + head_b)
    return next_stage_mask(running, confidence, float(threshold), order, stage, mask_nk.shape[1]), ran


def cpu_model(proc: type, *tags: str) -> Callable[[type], type]:
    """Lava's three decorators of a CPU process model of ``proc`` (LoihiProtocol, tagged
    ``fixed_pt`` or ``tags``)."""

    def decorate(model: type) -> type:
        return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(*(tags or ("fixed_pt",)))(model)))

    return decorate


def play_stream(model: PyLoihiProcessModel) -> np.ndarray:
    """This step's slice ``[..., step]`` of the run's input stream, which the model's
    ``stream_in`` external pipe delivers whole at the run's first step."""
    timing: RunTiming = model.proc_params["timing"]
    if timing.first_step(model.time_step):
        model._stream = model.stream_in.csp_ports[-1].recv()
    return model._stream[..., timing.step_in_run(model.time_step)]


def _record_run(model: PyLoihiProcessModel, record: np.ndarray, out: PyOutPort, add: Callable[[], None]) -> None:
    """One step of a process that keeps a per-run ``record``: clear it at the run's first
    step, ``add`` this step's figures, send it through ``out`` at the run's last step."""
    timing: RunTiming = model.proc_params["timing"]
    if timing.first_step(model.time_step):
        record[:] = 0
    add()
    if timing.last_step(model.time_step):
        out.send(record)


@cpu_model(Gate)
class PyGateModel(PyLoihiProcessModel):
    """numpy gate: ``out_k = inp if active[k] and mask[sample, k] (and mask_in[sample, k]) else 0``."""

    stream_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    mask_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    active: np.ndarray = LavaPyType(np.ndarray, np.int32)
    mask: np.ndarray = LavaPyType(np.ndarray, np.int32)
    locals().update({f"out_{k}": LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24) for k in range(MAX_STUDENTS)})

    def run_spk(self) -> None:
        """Play this step's input (and receive the decision's mask); send it (or zeros) to every student."""
        p = self.proc_params
        data = play_stream(self)
        on = self.active.copy()
        where = p["timing"].sample_step(self.time_step, 0)
        if p["decision_port"]:
            decided = self.mask_in.recv()
            if where is not None:
                on = on * decided[where[0]]
        if where is not None:
            on = on * self.mask[where[0]]
        zeros = np.zeros_like(data)
        for k in range(p["num_students"]):
            getattr(self, f"out_{k}").send(data if on[k] else zeros)


@cpu_model(OpCounter)
class PyOpCounterModel(PyLoihiProcessModel):
    """numpy op counter (see :class:`OpCounter`)."""

    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    ops_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    locals().update({f"in_{k}": LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24) for k in range(MAX_LAYERS)})

    def run_spk(self) -> None:
        """Add this step's synaptic events of every layer to its sample's count."""
        _record_run(self, self.ops, self.ops_out, self._count)

    def _count(self) -> None:
        p = self.proc_params
        for k, (fan, delay, once) in enumerate(zip(p["fanouts"], p["delays"], p["once"])):
            data = getattr(self, f"in_{k}").recv()
            where = p["timing"].sample_step(self.time_step, delay)
            if where is not None and not (once and where[1] > 0):
                self.ops[k, where[0]] += int(fan[data != 0].sum())


@cpu_model(Readout)
class PyReadoutModel(PyLoihiProcessModel):
    """numpy readout (see :class:`Readout`)."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int32)
    spikes_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def run_spk(self) -> None:
        """Store this step's output spikes at their sample and step."""
        _record_run(self, self.spikes, self.spikes_out, self._store)

    def _store(self) -> None:
        data = self.inp.recv()
        where = self.proc_params["timing"].sample_step(self.time_step, self.proc_params["delay"])
        if where is not None:
            self.spikes[where[0], ..., where[1]] = data


@cpu_model(CascadeDecision)
class PyCascadeDecisionModel(PyLoihiProcessModel):
    """numpy cascade decision (see :class:`CascadeDecision`)."""

    mask_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    enabled: np.ndarray = LavaPyType(np.ndarray, np.int32)
    head_w: np.ndarray = LavaPyType(np.ndarray, np.float64)
    head_b: np.ndarray = LavaPyType(np.ndarray, np.float64)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.float64)
    order: np.ndarray = LavaPyType(np.ndarray, np.int32)
    stage: np.ndarray = LavaPyType(np.ndarray, np.int32)
    mask: np.ndarray = LavaPyType(np.ndarray, np.int32)
    ran: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    locals().update({f"in_{k}": LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24) for k in range(MAX_STUDENTS)})

    def run_spk(self) -> None:
        """Send the stage's mask, collect output spikes, decide at the stage's last step."""
        p = self.proc_params
        timing: RunTiming = p["timing"]
        enabled = bool(self.enabled[0])
        self.mask_out.send(self.mask if enabled else np.ones_like(self.mask))
        offset = 0
        for k, (size, delay) in enumerate(zip(p["sizes"], p["delays"])):
            data = getattr(self, f"in_{k}").recv()
            where = timing.sample_step(self.time_step, delay)
            if enabled and where is not None and self.mask[where[0], k]:
                self.counts[where[0], offset:offset + size] += (data != 0).astype(np.int32)
            offset += size
        if enabled and timing.last_step(self.time_step):  # the stage's last step
            self._decide()

    def _decide(self) -> None:
        stage = int(self.stage[0])
        order = [int(i) for i in self.order if i >= 0]
        if stage >= len(order):
            return
        mask, ran = decide_stage(self.mask, self.ran, self.counts, self.head_w, self.head_b, float(self.threshold[0]),
                                 order, stage, self.proc_params["timing"].time_steps)
        self.mask[:], self.ran[:] = mask, ran
        self.stage[0] = stage + 1
