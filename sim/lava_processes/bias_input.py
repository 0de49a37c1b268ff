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

:class:`ConvBiasDriver` does the same for the toolkit's own bias-driven first layer
(``lava.first_layer = "bias"``, :mod:`sne_loihi.netx_format.bias_layer`): it receives the
step's (gated) integer image, computes the first conv layer's ``sum(W_mant * x) + b_mant``
exactly in integers (once per sample: a step whose image equals the previous step's reuses
the mantissas) and writes them into that layer's ``bias_mant``, saturated to the chip's 13-bit
register where that changes no spike (:meth:`~sne_loihi.netx_format.bias_layer.BiasDrivenLayer.register`). The conv synapse then
receives nothing. Timing: the driver writes in the management phase of the step the gate
plays data ``j`` and the neurons integrate it the next step, which is exactly when the conv
synapse (one step of delay) would have delivered it, so reset offsets and delays are those
of the synaptic path.
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
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from sne_loihi.netx_format.bias_layer import BiasDrivenLayer


class _BiasWriterModel(PyLoihiProcessModel):
    """What both drivers share: every step, in the management phase, write the mantissas
    ``run_spk`` left in ``self._next`` into the connected ``bias_mant`` (the neurons integrate
    them from the next step on)."""

    bias: PyRefPort

    def post_guard(self) -> bool:
        """Every step."""
        return True

    def run_post_mgmt(self) -> None:
        """Write the mantissas; the write is done before the next step starts."""
        self.bias.write(np.asarray(self._next, dtype=int))
        self.bias.wait()


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
class PyBiasDriverModel(_BiasWriterModel):
    """numpy bias driver (see :class:`BiasDriver`)."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    bias: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, int)

    def run_spk(self) -> None:
        """Receive this step's bias mantissas."""
        self._next = self.inp.recv()



class ConvBiasDriver(AbstractProcess):
    """Computes a bias-driven first conv layer's ``bias_mant`` from the image received on
    ``inp`` and writes it into the layer's neurons every step (see the module docstring).

    Args:
        in_shape: The image's shape (Lava order), the shape of ``inp``.
        layer: The first layer's weights, geometry and own bias (read from the netx file).

    Vars:
        bias_on: ``[1]``, 1 (default): add the layer's own bias mantissas; 0: the network
            is switched off (its input is zero and it gets no bias), set by the graph with
            the active set as :class:`~sne_loihi.sim.bias_gate.BiasSwitch` does for the
            other layers.
    """

    def __init__(self, in_shape: tuple[int, ...], layer: BiasDrivenLayer) -> None:
        super().__init__(in_shape=tuple(in_shape), layer=layer)
        self.inp = InPort(shape=tuple(in_shape))
        self.bias = RefPort(layer.out_shape_xyz)
        self.bias_on = Var(shape=(1,), init=np.ones(1, dtype=np.int32))

    def drive(self, bias_mant: object) -> None:
        """Connect to the first layer's ``bias_mant`` Var."""
        self.bias.connect_var(bias_mant)


@implements(proc=ConvBiasDriver, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvBiasDriverModel(_BiasWriterModel):
    """numpy driver of a bias-driven first conv layer (see :class:`ConvBiasDriver`)."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    bias: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, int)
    bias_on: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        """Receive this step's image; compute the mantissas when it or ``bias_on`` changed."""
        x = self.inp.recv()
        on = bool(self.bias_on[0])
        last = getattr(self, "_last", None)
        if last is None or last[1] != on or not np.array_equal(last[0], x):
            layer: BiasDrivenLayer = self.proc_params["layer"]
            self._next = layer.register_xyz(x, with_bias=on)
            self._last = (np.array(x, copy=True), on)

