"""Batch norm for SLAYER students, folded into the Loihi network at the end of training.

A network of spiking convolutions without normalisation trains far below its ANN twin (measured
on CIFAR-10: the same students as ReLU nets reach 60% without and 72% with batch norm), so
``student.norm = "batch"`` trains every hidden weighted layer with a batch norm on its synaptic
input ``z`` (before the CUBA neuron). Loihi has no batch norm, but with ``current_decay = 1``
the neuron's current is ``z`` itself, so the eval-mode affine ``s * z + b`` folds exactly into

* the weights: ``w' = s * q(w)`` per output channel (requantised to SLAYER's 8-bit grid by the
  synapse's own quantiser when it runs, so the folded network is what netx and Lava run), and
* a per-channel neuron bias ``b = beta - s * mean``, on the grid of :data:`BIAS_STEP`, which
  Loihi adds to the voltage at every step (``synapse.bias`` in SLAYER's block, added to ``z``).

The fold itself changes the network by the requantisation only; :func:`fold_student` returns a
new student (spec ``norm = FOLDED``) and leaves the trained one as it was. Before folding,
:func:`recalibrate` recomputes the statistics with the final weights on the training images as
training shows them: the running averages collected during training lag the changing weights
(measured on CIFAR-10 after 7 of 20 epochs: 44.7% with them, 54.9% recomputed), and statistics of
clean images do not match what the network learnt on augmented ones (after 19 epochs: running
averages 66.15%, clean 62.90%, augmented 65.75%).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import nn

from sne_loihi.config import StudentNorm
from sne_loihi.students.norms import ChannelBatchNorm, add_norms, norm_layers
from sne_loihi.students.spec import StudentSpec

__all__ = ["BIAS_STEP", "ChannelBatchNorm", "add_norms", "batch_norms", "fold_student", "folded_spec", "norm_layers",
           "quantize_bias", "recalibrate"]

#: Real-unit grid of a folded bias: SLAYER's neuron state is ``z * 4096`` truncated to an
#: integer and Loihi's bias is an integer mantissa times ``2**exp`` in the same units, so a
#: bias on multiples of ``1/64`` (an integer of state units times 64) is exact on both.
BIAS_STEP = 1.0 / 64.0


def batch_norms(model: nn.Module) -> Iterator[ChannelBatchNorm]:
    """Every :class:`ChannelBatchNorm` in ``model``."""
    return (m for m in model.modules() if isinstance(m, ChannelBatchNorm))


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Recompute every batch norm's statistics as the plain average over ``batches``.

    Runs ``model(x, active)`` for each ``(x_nchw, active_n)`` in training mode (batch
    statistics, no gradients); the model is left in eval mode. Returns the samples seen.
    """
    norms = list(batch_norms(model))
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    seen = 0
    model.train()
    try:
        for x_nchw, active_n in batches:
            model(x_nchw, active_n)
            seen += len(x_nchw)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return seen


def quantize_bias(bias: torch.Tensor) -> torch.Tensor:
    """``bias`` rounded to the nearest multiple of :data:`BIAS_STEP`."""
    return torch.round(bias / BIAS_STEP) * BIAS_STEP


def folded_spec(spec: StudentSpec) -> StudentSpec:
    """The spec of ``spec``'s folded student."""
    return dataclasses.replace(spec, norm=StudentNorm.FOLDED)


@torch.no_grad()
def fold_student(student: nn.Module) -> nn.Module:
    """A new student with each batch norm folded into its layer's weights and bias.

    Args:
        student: A SLAYER student built with ``norm = BATCH`` (eval-mode statistics used).

    Returns:
        The folded student (spec ``norm = FOLDED``), on ``student``'s device.

    Raises:
        ValueError: ``student`` has no batch norms to fold.
    """
    from sne_loihi.students.build import build_student

    if student.spec.norm is not StudentNorm.BATCH:
        raise ValueError(f"only a batch-norm student folds, this one has norm {student.spec.norm.value!r}")
    device = next(student.parameters()).device
    folded = build_student(folded_spec(student.spec)).to(device)
    state = {k: v for k, v in student.state_dict().items() if ".batch_norm." not in k}
    missing, unexpected = folded.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("synapse.bias") for k in missing):
        raise ValueError(f"fold: weights do not match (missing {missing}, unexpected {unexpected})")
    for index in norm_layers(student.spec):
        source, target = student.blocks[index], folded.blocks[index]
        norm = source.batch_norm
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        synapse = source.synapse
        weight_q = synapse.pre_hook_fx(synapse.weight) if synapse.pre_hook_fx is not None else synapse.weight
        target.synapse.weight.copy_(weight_q * scale.view(-1, *[1] * (weight_q.dim() - 1)))
        target.synapse.bias.copy_(quantize_bias(norm.bias - scale * norm.running_mean))
    return folded.eval()
