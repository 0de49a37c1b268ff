"""The norm layers of a SLAYER student as built (see :mod:`sne_loihi.students.fold` for the
training form and the fold). Kept apart from the fold, which builds students, so the student
builders can import this without an import circle."""

from __future__ import annotations

import torch
from torch import nn

from sne_loihi.config import StudentNorm
from sne_loihi.students.spec import StudentSpec


class ChannelBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over every dimension but the channel (dim 1) of any rank >= 2.

    One module serves both engines: the fast engine's ``[T*N, C, H, W]`` or ``[T*N, F]`` and
    SLAYER's time-last ``[N, C, H, W, T]`` / ``[N, F, T]`` synaptic inputs.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002  (torch's name)
        if input.dim() < 2:
            raise ValueError(f"ChannelBatchNorm needs a [N, C, ...] input, got {input.dim()}-D")


def norm_layers(spec: StudentSpec) -> list[int]:
    """Indices (into ``spec.layers``) of the layers that carry a norm or a folded bias: every
    weighted layer but the output layer (whose rates are the student's features)."""
    weighted = [i for i, layer in enumerate(spec.layers) if layer.weighted]
    return weighted[:-1]


def add_norms(blocks: nn.ModuleList, spec: StudentSpec, thresholds: list[float]) -> None:
    """Give the blocks of :func:`norm_layers` what ``spec.norm`` asks for, in place.

    ``BATCH``: ``block.batch_norm``, a :class:`ChannelBatchNorm` whose scale starts at the
    layer's threshold (a normalised input then spreads over about one threshold; at 1 the
    first layer, whose threshold is ``2**bits - 1`` times larger, would hardly fire).
    ``FOLDED``: a zero ``block.synapse.bias`` (not trained; loaded from the checkpoint).

    Args:
        blocks: SLAYER blocks, one per layer of ``spec``.
        spec: The student's spec.
        thresholds: Each layer's threshold (the first weighted layer's scaled by the input levels).
    """
    for index in norm_layers(spec):
        block, channels = blocks[index], spec.layers[index].out_features
        if spec.norm is StudentNorm.BATCH:
            norm = ChannelBatchNorm(channels)
            with torch.no_grad():
                norm.weight.fill_(thresholds[index])
            block.batch_norm = norm
        elif spec.norm is StudentNorm.FOLDED:
            block.synapse.bias = nn.Parameter(torch.zeros(channels), requires_grad=False)
