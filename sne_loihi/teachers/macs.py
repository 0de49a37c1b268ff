"""Teacher cost: multiply-accumulates per sample, counted by torch's FlopCounterMode."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def teacher_macs(model: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass for one sample.

    Runs the model in eval mode on one zero image (on the model's device) under
    :class:`torch.utils.flop_counter.FlopCounterMode`, which counts convolutions and matrix
    products (linear layers) as 2 FLOPs per multiply-accumulate; MACs = FLOPs / 2.
    BatchNorm, activations, pooling and residual additions are not counted (as in the MAC
    figures the literature quotes).

    Args:
        model: A teacher (anything whose ``forward`` takes ``[1, C, H, W]``).
        in_shape: ``(C, H, W)``.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.zeros(1, *in_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
