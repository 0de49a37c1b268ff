"""Drive an ``Input`` block's neurons through their bias, as netx means its input layer.

netx builds an input layer with a neuron as an ``Input`` block whose ``inp`` port is left
unconnected ("the input must be handled through neuron's bias"); it reads the layer's
SLAYER input transform (``weight``, ``bias``) into ``Input.transform`` and builds the neuron
with bias 0. lava-dl's own tests drive such a network by setting the neuron's ``bias_mant``
by hand before the run. :class:`BiasDriver` does the same for every step of a stream: it
receives the step's bias mantissas (the host computes ``rint(weight * x + bias)``, see
:class:`~sne_loihi.netx_format.netx_file.InputTransform`) and writes them into the neuron's
``bias_mant`` through a Lava ``RefPort`` in the step's management phase, as Lava's own
``io.reset.Reset`` writes ``u`` / ``v``. The neuron integrates the new bias from the next
step on, so the block sees data index ``j`` at Lava step ``j + 2`` (one step later than an
``Input`` block driven through ``a_in``; the graph's plan adds that step, see
:func:`~sne_loihi.sim.graph_plan.input_lag`).

A RefPort reaches a Var of a process running on the same host; on Loihi 2 the bias would
have to be written into the chip through the lava-loihi extension, so the graph refuses a
bias-driven input there.
"""

from __future__ import annotations

import numpy as np

from sne_loihi.sim.backend import prepare_lava_import

prepare_lava_import()  # before any Lava import: see its docstring

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class BiasDriver(AbstractProcess):
    """Writes the bias mantissas received on ``inp`` each step into a neuron's ``bias_mant``.

    Args:
        shape: The neurons' shape (Lava order), also the shape of ``inp``.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(shape=shape)
        self.inp = InPort(shape=shape)
        self.bias = RefPort(shape)

    def drive(self, bias_mant: object) -> None:
        """Connect to the neuron's ``bias_mant`` Var."""
        self.bias.connect_var(bias_mant)


@implements(proc=BiasDriver, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBiasDriverModel(PyLoihiProcessModel):
    """numpy bias driver (see :class:`BiasDriver`)."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    bias: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, int)

    def run_spk(self) -> None:
        """Receive this step's bias mantissas."""
        self._next = self.inp.recv()

    def post_guard(self) -> bool:
        """Every step."""
        return True

    def run_post_mgmt(self) -> None:
        """Write them into the neuron (it integrates them from the next step on)."""
        self.bias.write(np.asarray(self._next, dtype=int))
        self.bias.wait()  # the write is done before the next step starts
