"""Standard image augmentation (random crop with zero padding + horizontal flip) in torch."""

from __future__ import annotations

import torch


def augment_nchw(x_nchw: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel shifted crop (zero padding) and random horizontal flip.

    Vectorised over the batch with one gather; runs on the device of ``x_nchw``. Random
    numbers come from ``generator`` (on its own device), so a seeded generator gives the
    same result on CPU and GPU.

    Args:
        x_nchw: Images ``[N, C, H, W]``.
        generator: Source of randomness.
        pad: Maximum shift in pixels (the crop window is taken from the image padded by
            ``pad`` zeros on every side); ``0`` disables the crop.

    Returns:
        Augmented images, same shape, dtype and device.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    n, _, h, w = x_nchw.shape
    gdev = generator.device
    off_y = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gdev)
    off_x = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=gdev)
    flip = torch.rand(n, generator=generator, device=gdev) < 0.5
    dev = x_nchw.device
    off_y, off_x, flip = off_y.to(dev), off_x.to(dev), flip.to(dev)
    padded = torch.nn.functional.pad(x_nchw, (pad, pad, pad, pad))
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows_nh = off_y[:, None] + ar_h[None, :]
    cols_nw = off_x[:, None] + torch.where(flip[:, None], (w - 1 - ar_w)[None, :], ar_w[None, :])
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chan = torch.arange(x_nchw.shape[1], device=dev)[None, :, None, None]
    return padded[batch, chan, rows_nh[:, None, :, None], cols_nw[:, None, None, :]]
