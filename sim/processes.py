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

from collections.abc import Sequence

import numpy as np

from sne_loihi.sim.backend import prepare_lava_import

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
    """Forwards the input to the active students only (zeros to the others).

    The active set is the Var ``active`` (``[num_students]``, 1 = on): change it with
    ``gate.active.set(...)`` between ``run()`` calls, no rebuild or recompilation.

    Args:
        shape: Input shape (Lava order).
        num_students: Number of output ports ``out_0 .. out_{n-1}``.
    """

    def __init__(self, shape: tuple[int, ...], num_students: int) -> None:
        if not 1 <= num_students <= MAX_STUDENTS:
            raise ValueError(f"the gate serves 1..{MAX_STUDENTS} students, got {num_students}")
        super().__init__(shape=shape, num_students=num_students)
        self.inp = InPort(shape=shape)
        # A process model's ports are fixed in its class, so every gate has MAX_STUDENTS
        # ports; those beyond num_students stay unconnected (a 1-element placeholder).
        for k in range(MAX_STUDENTS):
            setattr(self, f"out_{k}", OutPort(shape=shape if k < num_students else (1,)))
        self.active = Var(shape=(num_students,), init=np.ones(num_students, dtype=np.int32))


class OpCounter(AbstractProcess):
    """Counts one student's synaptic events per weighted layer and sample.

    Port ``in_k`` receives the spikes (graded for layer 0) entering weighted layer ``k``;
    every step it adds ``sum(fanout_k[spikes != 0])`` to ``ops[k, sample]``.

    Args:
        fanouts: Per layer the fan-out array, shaped like that layer's input port.
        delays: Per layer how many steps its input lags the source (``k`` for layer ``k``).
        time_steps: T, steps per sample.
        steps: Time steps of one run (all samples plus the flush).
        capacity: Samples per run.
    """

    def __init__(self, fanouts: Sequence[np.ndarray], delays: Sequence[int], time_steps: int, steps: int,
                 capacity: int) -> None:
        if not 1 <= len(fanouts) <= MAX_LAYERS:
            raise ValueError(f"the op counter handles 1..{MAX_LAYERS} layers, got {len(fanouts)}")
        super().__init__(fanouts=[np.asarray(f, dtype=np.int64) for f in fanouts], delays=list(delays),
                         time_steps=time_steps, steps=steps)
        for k in range(MAX_LAYERS):  # unused ports stay unconnected (see Gate)
            setattr(self, f"in_{k}", InPort(shape=np.shape(fanouts[k]) if k < len(fanouts) else (1,)))
        self.ops = Var(shape=(len(fanouts), capacity), init=np.zeros((len(fanouts), capacity), dtype=np.int64))


class Readout(AbstractProcess):
    """Records a layer's spikes per sample and step (``spikes[sample, *shape, t]``).

    Args:
        shape: Shape of the recorded port (``(F,)`` for a dense output layer).
        delay: Steps the output lags the source (number of weighted layers).
        time_steps: T.
        steps: Time steps of one run.
        capacity: Samples per run.
    """

    def __init__(self, shape: tuple[int, ...], delay: int, time_steps: int, steps: int, capacity: int) -> None:
        super().__init__(delay=delay, time_steps=time_steps, steps=steps)
        self.inp = InPort(shape=tuple(shape))
        full = (capacity, *shape, time_steps)
        self.spikes = Var(shape=full, init=np.zeros(full, dtype=np.int32))


def _sample_step(time_step: int, delay: int, steps: int, time_steps: int, capacity: int) -> tuple[int, int] | None:
    """Which (sample, step) a port lagging ``delay`` steps sees at Lava ``time_step``."""
    idx = (time_step - 1) % steps - delay
    if idx < 0:
        return None
    sample, step = divmod(idx, time_steps)
    return (sample, step) if sample < capacity else None


def _first_step(time_step: int, steps: int) -> bool:
    return (time_step - 1) % steps == 0


@implements(proc=Gate, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGateModel(PyLoihiProcessModel):
    """numpy gate: ``out_k = inp if active[k] else 0``."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    active: np.ndarray = LavaPyType(np.ndarray, np.int32)
    locals().update({f"out_{k}": LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24) for k in range(MAX_STUDENTS)})

    def run_spk(self) -> None:
        """Receive the input and send it (or zeros) to every student."""
        data = self.inp.recv()
        zeros = np.zeros_like(data)
        for k in range(self.proc_params["num_students"]):
            getattr(self, f"out_{k}").send(data if self.active[k] else zeros)


@implements(proc=OpCounter, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyOpCounterModel(PyLoihiProcessModel):
    """numpy op counter (see :class:`OpCounter`)."""

    ops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    locals().update({f"in_{k}": LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24) for k in range(MAX_LAYERS)})

    def run_spk(self) -> None:
        """Add this step's synaptic events of every layer to its sample's count."""
        p = self.proc_params
        if _first_step(self.time_step, p["steps"]):
            self.ops[:] = 0
        capacity = self.ops.shape[1]
        for k, (fan, delay) in enumerate(zip(p["fanouts"], p["delays"])):
            data = getattr(self, f"in_{k}").recv()
            where = _sample_step(self.time_step, delay, p["steps"], p["time_steps"], capacity)
            if where is not None:
                self.ops[k, where[0]] += int(fan[data != 0].sum())


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutModel(PyLoihiProcessModel):
    """numpy readout (see :class:`Readout`)."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        """Store this step's output spikes at their sample and step."""
        p = self.proc_params
        if _first_step(self.time_step, p["steps"]):
            self.spikes[:] = 0
        data = self.inp.recv()
        where = _sample_step(self.time_step, p["delay"], p["steps"], p["time_steps"], self.spikes.shape[0])
        if where is not None:
            self.spikes[where[0], ..., where[1]] = data
