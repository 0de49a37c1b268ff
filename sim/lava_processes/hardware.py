"""Lava processes and models of the hardware-shaped graph (:mod:`sne_loihi.sim.hw_graph`).

* :class:`Injector`: the host's input, one output port per student. The host masks every
  student's stream itself (the gate's decision, taken before the data leaves the host), so
  on Loihi 2 each port feeds its own ``PyToNx`` adapter and nothing else crosses per step
  but the students' inputs and outputs.
* Spike counting inside the neuron: :class:`PyLifCountModel` / :class:`PyLifResetCountModel`
  subclass Lava's bit-accurate CUBA models (``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc``,
  the models netx's ``LIF`` / ``LIFReset`` neurons get on the CPU) and add, per neuron and
  sample, the number of spikes it sent (Var ``spike_counts`` ``[capacity, *shape]``). The
  dynamics are the parent's, untouched (the spike vector is only recorded in
  ``reset_voltage``). :func:`add_spike_counter` gives a netx neuron process those Vars, and on
  the CPU an external-pipe port through which the model sends the counts once, at the
  run's last step (``Var.get`` moves one element per message).

What Lava allows: netx builds its neurons as ``lava.proc.lif.process.LIF`` / ``LIFReset``,
whose open models have no spike counter, and a process's Vars are fixed by its class; the
counter Vars are therefore added to the netx neuron instances before compilation (through
Lava's own member registration) and the counting models are chosen through the run
configuration's ``exception_proc_model_map`` (:func:`count_model_map`). On Loihi 2 the
neurons run the extension's neuro-core models, which hold no such counter: there the
counts need a neuron microcode with a counter register (or the extension's activity
profiler), which can only be written and checked with the extension (see the README).
"""

from __future__ import annotations

import numpy as np

from sne_loihi.sim.backend import prepare_lava_import

prepare_lava_import()  # before any Lava import: see its docstring

from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.proc.lif.models import PyLifModelBitAcc, PyLifResetModelBitAcc  # noqa: E402
from lava.proc.lif.process import LIF, LIFReset  # noqa: E402

from sne_loihi.sim.lava_processes.ensemble import MAX_STUDENTS, cpu_model, play_stream  # noqa: E402
from sne_loihi.sim.schedule import RunTiming  # noqa: E402

#: Names of the members :func:`add_spike_counter` adds to a neuron process.
COUNTS_VAR, TIMING_VAR, COUNTS_PORT = "spike_counts", "count_timing", "counts_out"


class Injector(AbstractProcess):
    """Plays one run's per-student input streams ``[K, *shape, steps]`` (sent by the host
    through an external pipe before every run): student ``k``'s port ``out_k`` sends
    ``stream[k, ..., (t - 1) % steps]`` at Lava step ``t``, as the gate did.

    Args:
        shape: Input shape (Lava order).
        num_students: K (ports ``out_0 .. out_{K-1}``).
        timing: The graph's run timing (its ``steps``: time steps of one run).
    """

    def __init__(self, shape: tuple[int, ...], num_students: int, timing: RunTiming) -> None:
        if not 1 <= num_students <= MAX_STUDENTS:
            raise ValueError(f"the injector serves 1..{MAX_STUDENTS} students, got {num_students}")
        super().__init__(shape=shape, num_students=num_students, timing=timing)
        self.stream_in = InPort(shape=(num_students, *shape, timing.steps))
        self.stream_in.flag_external_pipe(buffer_size=1)
        for k in range(MAX_STUDENTS):  # a model's ports are fixed in its class (see ensemble.Gate)
            setattr(self, f"out_{k}", OutPort(shape=shape if k < num_students else (1,)))

    def send_streams(self, streams: np.ndarray) -> None:
        """Hand the next run's streams ``[K, *shape, steps]`` (int32) to the injector."""
        self.stream_in.external_pipe_csp_send_port.send(np.ascontiguousarray(streams, dtype=np.int32))


@cpu_model(Injector)
class PyInjectorModel(PyLoihiProcessModel):
    """numpy injector (see :class:`Injector`)."""

    stream_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    locals().update({f"out_{k}": LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24) for k in range(MAX_STUDENTS)})

    def run_spk(self) -> None:
        """Send every student this step's slice of its stream."""
        streams_k = play_stream(self)  # [K, *shape]
        for k in range(self.proc_params["num_students"]):
            getattr(self, f"out_{k}").send(streams_k[k])


def add_spike_counter(neuron: AbstractProcess, delay: int, timing: RunTiming, pipe: bool) -> None:
    """Give a netx neuron process (``LIF`` / ``LIFReset``) the Vars of the counting models.

    Args:
        neuron: The neuron process (before compilation).
        delay: Steps between a sample's data leaving the host and this neuron's spikes for it
            (the weighted layer's 1-based index plus the input latency).
        timing: T, samples per run (capacity) and time steps of one run.
        pipe: Also add the external-pipe port the CPU model sends the counts through.

    Raises:
        ValueError: Not a CUBA neuron of Lava.
    """
    if type(neuron) not in (LIF, LIFReset):
        raise ValueError(f"spike counting needs a CUBA neuron (LIF/LIFReset), got {type(neuron).__name__}")
    shape, capacity = tuple(neuron.s_out.shape), timing.capacity
    members = {COUNTS_VAR: Var(shape=(capacity, *shape), init=np.zeros((capacity, *shape), dtype=np.int32)),
               TIMING_VAR: Var(shape=(3,), init=np.array([delay, timing.time_steps, timing.steps], dtype=np.int32))}
    for name, var in members.items():
        setattr(neuron, name, var)
    neuron._init_proc_member_obj(members)
    neuron.vars.add_members(members)
    if pipe:
        port = OutPort(shape=(capacity, *shape))
        setattr(neuron, COUNTS_PORT, port)
        neuron._init_proc_member_obj({COUNTS_PORT: port})
        neuron.out_ports.add_members({COUNTS_PORT: port})
        port.flag_external_pipe(buffer_size=1)


def receive_counts(neuron: AbstractProcess) -> np.ndarray:
    """The counts ``[capacity, *shape]`` the neuron's model sent at the last run's end."""
    return getattr(neuron, COUNTS_PORT).external_pipe_csp_recv_port.recv()


class _CountMixin:
    """Per-sample spike counts on top of a bit-accurate CUBA model (see the module docstring)."""

    spike_counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    count_timing: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def reset_voltage(self, spike_vector: np.ndarray) -> None:
        self._spiked = spike_vector
        super().reset_voltage(spike_vector)

    def run_spk(self) -> None:
        if not hasattr(self, "_timing"):  # a neuron's Vars, not proc params: netx built the process
            delay, time_steps, steps = (int(v) for v in self.count_timing)
            self._delay, self._timing = delay, RunTiming(time_steps, self.spike_counts.shape[0], steps)
        timing = self._timing
        if timing.first_step(self.time_step):
            self.spike_counts[:] = 0
        super().run_spk()
        where = timing.sample_step(self.time_step, self._delay)
        if where is not None:
            self.spike_counts[where[0]] += self._spiked != 0
        if timing.last_step(self.time_step):
            self.counts_out.send(self.spike_counts)


@cpu_model(LIF, "bit_accurate_loihi", "fixed_pt")
class PyLifCountModel(_CountMixin, PyLifModelBitAcc):
    """``PyLifModelBitAcc`` (same dynamics) + per-sample spike counts."""


@cpu_model(LIFReset, "bit_accurate_loihi", "fixed_pt")
class PyLifResetCountModel(_CountMixin, PyLifResetModelBitAcc):
    """``PyLifResetModelBitAcc`` (same dynamics) + per-sample spike counts."""


def count_model_map() -> dict[type, type]:
    """Process -> counting model, for a CPU run configuration's ``exception_proc_model_map``."""
    return {LIF: PyLifCountModel, LIFReset: PyLifResetCountModel}
