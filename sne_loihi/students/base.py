"""The student contract shared by both neuron libraries and the input encoding.

A student maps time-expanded input ``x_nchwt`` to a :class:`StudentOutput`: the last layer's
spikes ``spikes_nft`` and the input of every weighted layer (what the op counter needs).
Its feature sub-vector is the firing rate ``spikes_nft.mean(-1)``.

Layouts (both backends): ``layer_inputs[l]`` is ``[N, C, H, W, T]`` when weighted layer
``l`` is a convolution and ``[N, F, T]`` when it is dense; time is always last.

Neither SLAYER nor SpikingJelly is imported here (the builders live in :mod:`.build`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sne_loihi.config import NeuronLibrary
from sne_loihi.errors import ConfigError
from sne_loihi.students.spec import StudentSpec


def encode_input(x_nchw: torch.Tensor, time_steps: int, input_bits: int) -> torch.Tensor:
    """Quantise pixels to ``input_bits``-bit integers and repeat them over time.

    ``x_int = round(clamp(x, 0, 1) * (2**bits - 1))``, as floats, on ``x_nchw``'s device.
    These are exactly the integers the Lava graph's input (the gate's stream) sends as graded spikes with
    ``input_message_bits = input_bits`` (platform notes: torch must see what Lava sees).

    Args:
        x_nchw: Images in [0, 1] (values outside are clamped).
        time_steps: T (>= 1).
        input_bits: Bits per pixel (>= 1).

    Returns:
        ``x_nchwt``: ``[N, C, H, W, T]`` float tensor of integers in ``0 .. 2**bits - 1``.

    Raises:
        ConfigError: ``time_steps`` or ``input_bits`` < 1, or input that is not 4-D.
    """
    if time_steps < 1 or input_bits < 1:
        raise ConfigError(f"encode_input needs time_steps >= 1 and input_bits >= 1, got {time_steps}, {input_bits}")
    if x_nchw.dim() != 4:
        raise ConfigError(f"encode_input expects images [N, C, H, W], got shape {list(x_nchw.shape)}")
    levels = float(2**input_bits - 1)
    x_int = torch.round(x_nchw.float().clamp(0.0, 1.0) * levels)
    return x_int.unsqueeze(-1).expand(*x_int.shape, time_steps).contiguous()


def _encode_direct(x_nchw: torch.Tensor, time_steps: int) -> torch.Tensor:
    return x_nchw.clamp(0, 1).unsqueeze(-1).expand(*x_nchw.shape, time_steps).contiguous()


#: How each neuron library's students receive the image: SLAYER students get the quantised
#: integers Lava will send as graded spikes; the SpikingJelly reference gets float pixels (the paper).
ENCODERS: dict[NeuronLibrary, Callable[[torch.Tensor, Any], torch.Tensor]] = {
    NeuronLibrary.SLAYER: lambda x_nchw, spec: encode_input(x_nchw, spec.time_steps, spec.input_bits),
    NeuronLibrary.SPIKINGJELLY: lambda x_nchw, spec: _encode_direct(x_nchw, spec.time_steps),
}


def encode_for(spec: Any, x_nchw: torch.Tensor) -> torch.Tensor:
    """Encode images for a student with ``spec`` (``x_nchw`` -> ``x_nchwt``) as its neuron
    library takes them (:data:`ENCODERS`)."""
    return ENCODERS[NeuronLibrary(spec.neuron_library)](x_nchw, spec)


@dataclass
class StudentOutput:
    """One forward pass of a student.

    Attributes:
        spikes_nft: ``[N, out_features, T]`` output spikes of the last layer (0/1).
        layer_inputs: Per weighted layer, its input (``[N, C, H, W, T]`` for conv,
            ``[N, F, T]`` for dense): the graded encoded input for layer 0, spikes after.
    """

    spikes_nft: torch.Tensor
    layer_inputs: list[torch.Tensor]


class Student(nn.Module):
    """Base of both backends: a spec, its ordered blocks and the forward contract.

    Subclasses implement :meth:`run_blocks`. ``blocks`` holds one module per
    :class:`~sne_loihi.students.spec.LayerSpec`, in order (for SLAYER the cuba
    Conv/Flatten/Dense blocks whose ``export_hdf5`` writes the netx file).

    Args:
        spec: The student's spec.
        blocks: One module per layer of ``spec.layers``.
    """

    def __init__(self, spec: StudentSpec, blocks: nn.ModuleList) -> None:
        super().__init__()
        if len(blocks) != len(spec.layers):
            raise ValueError(f"{len(blocks)} blocks for {len(spec.layers)} layers")
        self.spec = spec
        self.blocks = blocks

    def check_input(self, x_nchwt: torch.Tensor) -> None:
        """Raise :class:`ConfigError` unless ``x_nchwt`` is ``[N, *in_shape, T]``."""
        want = (*self.spec.in_shape, self.spec.time_steps)
        if x_nchwt.dim() != 5 or tuple(x_nchwt.shape[1:]) != want:
            raise ConfigError(f"student expects input [N, {', '.join(map(str, want))}] (N, C, H, W, T), "
                              f"got {list(x_nchwt.shape)}")

    def run_blocks(self, x_nchwt: torch.Tensor) -> StudentOutput:
        """Backend-specific forward pass (input already checked)."""
        raise NotImplementedError

    def forward(self, x_nchwt: torch.Tensor) -> StudentOutput:
        """Run the student on encoded input (:func:`encode_input` for SLAYER).

        Raises:
            ConfigError: Input of the wrong shape.
        """
        self.check_input(x_nchwt)
        return self.run_blocks(x_nchwt)

    @staticmethod
    def rates(out: StudentOutput) -> torch.Tensor:
        """Firing rate of every output neuron, ``[N, F]`` in [0, 1]: the feature sub-vector."""
        return out.spikes_nft.mean(dim=-1)
