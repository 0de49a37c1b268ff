"""Exact synaptic-operation counts of a student's forward pass (method.md section 6).

Rule (what Loihi performs, and what the Lava op-counter process counts): for every weighted
layer, ``ops = sum over time steps of sum over input neurons with a non-zero input of that
neuron's fan-out``, where the fan-out is the number of NON-ZERO QUANTISED weights leaving
the neuron (convolution borders, padding, stride, dilation and groups included). A zero
weight is no synapse on Loihi, so it costs nothing.

A layer fed graded values (the first weighted layer, fed pixels; unless SLAYER's input is
1 bit) performs multiply-accumulates (MAC); layers fed binary spikes perform accumulates (AC).

A first layer driven by a per-sample neuron bias (``lava.first_layer = "bias"``,
:mod:`sne_loihi.cost.first_layer`) receives the same image every step and the host computes
its ``W * x + b`` once per sample: its MACs are counted for one time step, not T
(:func:`count_student_ops` with ``first_layer=FirstLayer.BIAS``; the Lava op counter counts
the same once per sample).

Fan-out layouts (:func:`fanout_per_input`): ``[C, H, W]`` for a convolution's input,
``[F]`` for a dense layer's input, with ``F`` in torch's flatten order (C, H, W row-major,
what ``slayer.block.cuba.Flatten`` produces). Lava's ``(x, y, f)`` order is the transpose
``fan.permute(2, 1, 0)`` of a conv fan-out; a dense layer after a flatten receives
``fan.reshape(C, H, W).permute(2, 1, 0)`` from Lava's point of view.

No SLAYER or SpikingJelly import happens here: blocks are read through plain torch
attributes (SLAYER synapses are ``torch.nn.Conv3d`` subclasses with a ``_pre_hook_fx``
quantiser; SpikingJelly blocks are ``Sequential(Conv2d | Linear, LIFNode)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.weight_norm import WeightNorm

from sne_loihi.config import FirstLayer, NeuronLibrary
from sne_loihi.errors import ConfigError
from sne_loihi.students.base import Student, StudentOutput
from sne_loihi.layers import LayerKind
from sne_loihi.students.spec import StudentSpec


class OpKind(str, Enum):
    """Multiply-accumulate (graded input) or accumulate (binary spikes)."""

    MAC = "mac"
    AC = "ac"


@dataclass(frozen=True)
class SynapseView:
    """The geometry and effective weights of one weighted block.

    Attributes:
        kind: CONV or DENSE.
        weight: The weights the forward pass multiplies with (quantised for SLAYER):
            ``[O, I/groups, kh, kw]`` for conv, ``[O, I]`` for dense.
        stride, padding, dilation: Per spatial axis (conv only).
        groups: Convolution groups.
    """

    kind: LayerKind
    weight: torch.Tensor
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


def _raw_weight(synapse: nn.Module) -> torch.Tensor:
    """The synapse's weight as its forward computes it (weight normalisation applied)."""
    for hook in synapse._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm):
            return hook.compute_weight(synapse)
    return synapse.weight


def synapse_view(block: nn.Module, kind: LayerKind) -> SynapseView:
    """Read a weighted block of either backend.

    SLAYER: ``block.synapse`` (a ``Conv3d`` subclass, weights ``[O, I, kh, kw, 1]`` or
    ``[O, I, 1, 1, 1]``) with its ``pre_hook_fx`` (``neuron.quantize_8bit``) applied, the
    same call its forward makes. SpikingJelly: ``block[0]`` (``Conv2d`` / ``Linear``).

    Raises:
        TypeError: A block of neither form.
    """
    synapse = getattr(block, "synapse", None)
    if synapse is None and isinstance(block, nn.Sequential) and len(block) > 0:
        synapse = block[0]
    if not isinstance(synapse, (nn.Conv3d, nn.Conv2d, nn.Linear)):
        raise TypeError(f"cannot read the synapse of a {type(block).__name__} block")
    weight = _raw_weight(synapse)
    hook = getattr(synapse, "_pre_hook_fx", None)
    if hook is not None:
        weight = hook(weight)
    if kind is LayerKind.DENSE:
        return SynapseView(kind, weight.reshape(weight.shape[0], -1))
    if isinstance(synapse, nn.Conv3d):
        weight = weight.squeeze(-1)
    return SynapseView(kind, weight, tuple(synapse.stride[:2]), tuple(synapse.padding[:2]),
                       tuple(synapse.dilation[:2]), int(synapse.groups))


@torch.no_grad()
def fanout_from_view(view: SynapseView, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Per input neuron, the number of non-zero synapses leaving it (float64, exact).

    Conv: the adjoint of the convolution applied to ones, computed as the gradient of
    ``sum(conv2d(x, W != 0))`` with respect to ``x`` (the convolution is linear, so that
    gradient at input neuron i counts every (output neuron, non-zero weight) pair reached
    from i, with borders, stride, dilation and groups exactly as the forward pass has them).
    """
    mask = (view.weight != 0).to(torch.float64)
    if view.kind is LayerKind.DENSE:
        return mask.sum(dim=0)
    x = torch.ones(1, *in_shape, dtype=torch.float64, device=mask.device, requires_grad=True)
    with torch.enable_grad():
        out = F.conv2d(x, mask, None, view.stride, view.padding, view.dilation, view.groups)
        (grad,) = torch.autograd.grad(out.sum(), x)
    return grad[0]


def fanout_per_input(block: nn.Module, kind: LayerKind, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Fan-out of every input neuron of one weighted block (see the module doc for layouts).

    Args:
        block: A SLAYER cuba Conv/Dense block or a SpikingJelly weighted block.
        kind: The block's layer kind.
        in_shape: Its input shape without batch and time: ``(C, H, W)`` or ``(F,)``.

    Returns:
        float64 tensor of shape ``in_shape`` holding integer counts.
    """
    return fanout_from_view(synapse_view(block, kind), tuple(in_shape))


def student_fanouts(student: Student) -> list[torch.Tensor]:
    """:func:`fanout_per_input` of every weighted layer of ``student``, in order."""
    spec = student.spec
    return [
        fanout_per_input(block, layer.kind, in_shape)
        for layer, block, (in_shape, _) in zip(spec.layers, student.blocks, spec.layer_shapes())
        if layer.weighted
    ]


def layer_op_kinds(spec: StudentSpec) -> list[OpKind]:
    """MAC for the first weighted layer when its input is graded, AC everywhere else.

    The first weighted layer sees the encoded image: graded integers for SLAYER (binary only
    when ``input_bits == 1``) and float pixels for SpikingJelly. Every later layer sees the
    previous layer's binary spikes.
    """
    graded = not (spec.neuron_library is NeuronLibrary.SLAYER and spec.input_bits == 1)
    n = len(spec.weighted_layers())
    return [OpKind.MAC if (i == 0 and graded) else OpKind.AC for i in range(n)]


@dataclass
class StudentOps:
    """Synaptic operations of one forward pass, per sample and weighted layer.

    Attributes:
        ops_nl: ``[N, L]`` float64 counts (exact integers), on the input's device.
        kinds: The op kind of each of the L weighted layers.
        first_layer: ``BIAS``: the first layer's ops are one time step's (computed once per
            sample); ``SYNAPTIC``: every step's.
    """

    ops_nl: torch.Tensor
    kinds: list[OpKind]
    first_layer: FirstLayer = FirstLayer.SYNAPTIC

    def _of_kind(self, kind: OpKind) -> torch.Tensor:
        cols = [i for i, k in enumerate(self.kinds) if k is kind]
        return self.ops_nl[:, cols].sum(dim=1)

    @property
    def macs_n(self) -> torch.Tensor:
        """``[N]`` MACs per sample."""
        return self._of_kind(OpKind.MAC)

    @property
    def acs_n(self) -> torch.Tensor:
        """``[N]`` ACs per sample."""
        return self._of_kind(OpKind.AC)

    @property
    def total_n(self) -> torch.Tensor:
        """``[N]`` all synaptic ops per sample."""
        return self.ops_nl.sum(dim=1)

    def mean_per_layer(self) -> list[float]:
        """Mean ops per sample of every layer."""
        return self.ops_nl.mean(dim=0).tolist()


def count_layer_ops(x_in: torch.Tensor, fanout: torch.Tensor) -> torch.Tensor:
    """``[N]`` ops of one layer: per sample, sum over steps and inputs of ``(x != 0) * fan-out``.

    Args:
        x_in: The layer's input ``[N, *in_shape, T]``.
        fanout: :func:`fanout_per_input` of the layer (``in_shape``).
    """
    if tuple(x_in.shape[1:-1]) != tuple(fanout.shape):
        raise ValueError(f"layer input {list(x_in.shape)} does not match fan-out {list(fanout.shape)}")
    active = (x_in != 0).sum(dim=-1).to(torch.float64)  # non-zero steps per input neuron
    return (active * fanout.to(active.device)).flatten(1).sum(dim=1)


def once_per_sample(x_in: torch.Tensor) -> torch.Tensor:
    """A bias-driven first layer's input for its op count: step 0 of ``[N, *in_shape, T]``,
    which stands for every step.

    Raises:
        ConfigError: The input changes over the steps (the bias holds one value per sample).
    """
    first = x_in[..., :1]
    if not torch.equal(x_in, first.expand_as(x_in)):
        raise ConfigError("a first layer driven by a per-sample bias needs the same input at every time step; this "
                          "input changes over the steps (use lava.first_layer 'synaptic')")
    return first


@torch.no_grad()
def count_student_ops(student: Student, out: StudentOutput,
                      first_layer: FirstLayer = FirstLayer.SYNAPTIC) -> StudentOps:
    """Count the synaptic ops of the forward pass that produced ``out``.

    Uses the weights the blocks actually multiply with (SLAYER: quantised by the synapse's
    ``pre_hook_fx``; SpikingJelly: float, so only exact zeros are absent synapses).

    Args:
        student: The student.
        out: Its forward pass.
        first_layer: ``BIAS``: the first layer is driven by a per-sample bias, its MACs
            counted once per sample (one step's); ``SYNAPTIC`` (default): every step's.

    Raises:
        ValueError: ``out`` does not come from a student of this spec.
        ConfigError: ``BIAS`` with an input that changes over the steps, or ``AUTO`` (resolve
            it per student first, :func:`sne_loihi.cost.first_layer.resolve_first_layer`).
    """
    first_layer = FirstLayer(first_layer)
    if first_layer is FirstLayer.AUTO:
        raise ConfigError("count_student_ops takes a resolved first layer (bias or synaptic), not 'auto'")
    fanouts = student_fanouts(student)
    if len(out.layer_inputs) != len(fanouts):
        raise ValueError(f"{len(out.layer_inputs)} layer inputs for {len(fanouts)} weighted layers")
    inputs = list(out.layer_inputs)
    if first_layer is FirstLayer.BIAS:
        inputs[0] = once_per_sample(inputs[0])
    cols = [count_layer_ops(x, fan) for x, fan in zip(inputs, fanouts)]
    return StudentOps(ops_nl=torch.stack(cols, dim=1), kinds=layer_op_kinds(student.spec), first_layer=first_layer)


def neuron_updates_per_sample(spec: StudentSpec) -> int:
    """Neuron updates of one sample: every neuron of every weighted layer, every time step."""
    neurons = sum(math.prod(out) for layer, (_, out) in zip(spec.layers, spec.layer_shapes()) if layer.weighted)
    return int(neurons) * spec.time_steps
