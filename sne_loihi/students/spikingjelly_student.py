"""SpikingJelly reference students: the paper's LIF neuron (method.md Eqs. 1-3), torch only.

The same :class:`LayerSpec` list as the SLAYER students, built from
``spikingjelly.activation_based`` layers in multi-step mode with the torch backend:
``layer.Conv2d`` / ``layer.Linear`` (no bias, like the SLAYER synapses) each followed by
``neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, surrogate=Sigmoid(alpha=4.0))``,
and ``layer.Flatten``. Input is direct encoding: the float [0, 1] image repeated T times
(no quantisation). The spec's :class:`NeuronConfig` (CUBA parameters) does not apply here.
With ``student.norm = "batch"`` every weighted layer but the last gets a float batch norm
between its synapse and its neurons (torch's ``BatchNorm2d``/``1d`` in SpikingJelly's
``SeqToANNContainer``), as the
SLAYER students train before their fold: the same recipe, so the two neuron models can be
compared (the SpikingJelly students keep the batch norm, applied over time x batch; nothing is
folded or quantised).

These students are for comparison only; they cannot be exported to netx.
Import this module only when building one (SpikingJelly pulls in cv2/torchvision).
"""

from __future__ import annotations

import torch
from torch import nn

from sne_loihi.config import StudentNorm
from sne_loihi.students.base import Student, StudentOutput
from sne_loihi.students.norms import norm_layers
from sne_loihi.layers import LayerKind
from sne_loihi.students.spec import StudentSpec

#: The paper's LIF settings (SpikingJelly defaults used by the KD reference).
LIF_TAU = 2.0
SIGMOID_ALPHA = 4.0

#: Multiplier on torch's default (Kaiming-uniform) initial weights. Without batch norm and
#: bias, the default initialisation leaves the LIF neurons (threshold 1, tau 2) silent on
#: [0, 1] pixels (measured on digits: no spikes in any layer at scale 1-2); at 6 the hidden
#: layers fire at 3-13 % at the start of training, like the SLAYER students do.
INIT_WEIGHT_SCALE = 6.0
#: Initial batch-norm scale of a normed layer: a LIF neuron (tau 2, threshold 1) at rest reaches
#: its threshold in one step from an input of tau * threshold = 2, so a normalised input starts
#: spread over that (the SLAYER students' norms likewise start at their threshold).
BN_INIT_SCALE = LIF_TAU * 1.0


def _to_time_last(x_t: torch.Tensor) -> torch.Tensor:
    """``[T, N, ...]`` -> ``[N, ..., T]`` (a view)."""
    return x_t.movedim(0, -1)


class SpikingJellyStudent(Student):
    """A SpikingJelly student; each weighted block is ``Sequential(synapse, LIFNode)``."""

    def run_blocks(self, x_nchwt: torch.Tensor) -> StudentOutput:
        from spikingjelly.activation_based import functional

        functional.reset_net(self)
        layer_inputs: list[torch.Tensor] = []
        x_t = x_nchwt.movedim(-1, 0)  # SpikingJelly multi-step layout: time first
        for layer, block in zip(self.spec.layers, self.blocks):
            if layer.weighted:
                layer_inputs.append(_to_time_last(x_t))
            x_t = block(x_t)
        return StudentOutput(spikes_nft=_to_time_last(x_t), layer_inputs=layer_inputs)


def build_spikingjelly_student(spec: StudentSpec) -> SpikingJellyStudent:
    """Build the SpikingJelly LIF network described by ``spec`` (multi-step, torch backend)."""
    from spikingjelly.activation_based import layer as sj_layer
    from spikingjelly.activation_based import neuron, surrogate

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=LIF_TAU, v_threshold=1.0, v_reset=0.0,
                              surrogate_function=surrogate.Sigmoid(alpha=SIGMOID_ALPHA),
                              step_mode="m", backend="torch")

    normed = set(norm_layers(spec)) if StudentNorm(spec.norm) is StudentNorm.BATCH else set()
    blocks: list[nn.Module] = []
    for index, (layer, (in_shape, _)) in enumerate(zip(spec.layers, spec.layer_shapes())):
        if layer.kind is LayerKind.FLATTEN:
            blocks.append(sj_layer.Flatten(step_mode="m"))
            continue
        if layer.kind is LayerKind.CONV:
            synapse = sj_layer.Conv2d(in_shape[0], layer.out_features, layer.kernel, stride=layer.stride,
                                      padding=layer.padding, bias=False, step_mode="m")
        else:
            synapse = sj_layer.Linear(in_shape[0], layer.out_features, bias=False, step_mode="m")
        if index not in normed:  # a batch norm sets the scale itself (and Adam's steps stay relative to it)
            with torch.no_grad():
                synapse.weight.mul_(INIT_WEIGHT_SCALE)
        if index in normed:
            bn = (nn.BatchNorm2d if layer.kind is LayerKind.CONV else nn.BatchNorm1d)(layer.out_features)
            with torch.no_grad():
                bn.weight.fill_(BN_INIT_SCALE)
            blocks.append(nn.Sequential(synapse, sj_layer.SeqToANNContainer(bn), lif()))
        else:
            blocks.append(nn.Sequential(synapse, lif()))
    return SpikingJellyStudent(spec, nn.ModuleList(blocks))
