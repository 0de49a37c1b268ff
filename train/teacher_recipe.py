"""The teacher's training recipe beyond plain cross-entropy: airbench94's tricks.

Each piece is switched by a ``teacher.*`` config key and off by default, so existing presets
train as before: BatchNorm-bias learning-rate groups (``bias_lr_scale``), the warm-up + linear
decay schedule stepped per batch (``schedule``), lookahead weight averaging
(``lookahead_every``), alternating flips and reflect-padded translations (``flip``,
``translate``) and test-time augmentation (``tta``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.config import FlipMode, LrSchedule, TeacherConfig, TestTimeAugment
from sne_loihi.data import augment_nchw

#: The warm-up starts at this fraction of ``lr``; the decay ends at ``END_FACTOR * lr``.
START_FACTOR, END_FACTOR = 0.2, 0.07
#: Lookahead's decay at step t of T is ``LOOKAHEAD_BASE * (t / T) ** 3`` (airbench94).
LOOKAHEAD_BASE = 0.95**5


def param_groups(model: nn.Module, lr: float, weight_decay: float, bias_lr_scale: float) -> Iterable[Any]:
    """The optimiser's parameters: ``model.parameters()``, or with ``bias_lr_scale != 1`` two
    groups, everything else at ``lr`` (first, the group whose ``lr`` the metrics report) and the
    BatchNorm biases at ``lr * bias_lr_scale`` with ``weight_decay / bias_lr_scale`` (the same
    decay per step)."""
    if bias_lr_scale == 1.0:
        return model.parameters()
    biases = [m.bias for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None]
    ids = {id(p) for p in biases}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": rest},
        {"params": biases, "lr": lr * bias_lr_scale, "weight_decay": weight_decay / bias_lr_scale},
    ]


def warmup_linear(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Factor on ``lr`` at ``step``: ``START_FACTOR -> 1`` over the warm-up, then ``1 -> END_FACTOR``."""
    warmup = int(total_steps * warmup_fraction)
    if step < warmup:
        frac = step / warmup
        return START_FACTOR * (1 - frac) + frac
    frac = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return 1 - frac + END_FACTOR * frac


def make_scheduler(
    schedule: LrSchedule, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, warmup_fraction: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """``COSINE``: per-epoch cosine over ``epochs``; ``WARMUP_LINEAR``: per-step :func:`warmup_linear`.

    A per-step schedule rebuilt with another ``epochs`` on resume continues on the new
    budget's curve from the step reached (its state holds only the step count).
    """
    if LrSchedule(schedule) is LrSchedule.COSINE:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    total = max(epochs * steps_per_epoch, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_linear(step, total, warmup_fraction))


def per_step(schedule: LrSchedule) -> bool:
    """Whether ``schedule`` is stepped after every batch (else after every epoch)."""
    return LrSchedule(schedule) is not LrSchedule.COSINE


class Lookahead:
    """airbench's lookahead: every ``every`` steps the slow copy moves towards the weights,
    ``slow += (1 - decay) * (w - slow)``, and the weights are set to it.

    The slow copy covers every float entry of the ``state_dict`` (BatchNorm statistics too).
    :attr:`state` is what the epoch checkpoint stores.
    """

    def __init__(self, model: nn.Module, every: int, total_steps: int) -> None:
        self.every, self.total = every, max(total_steps, 1)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> None:
        """After optimiser step number ``step`` (1-based, counted over the whole run)."""
        if step % self.every == 0:
            self._pull(model, LOOKAHEAD_BASE * (min(step, self.total) / self.total) ** 3)

    @torch.no_grad()
    def finish(self, model: nn.Module) -> None:
        """End of training: the weights become the slow copy (the last steps since an update are dropped)."""
        self._pull(model, 1.0)

    def _pull(self, model: nn.Module, decay: float) -> None:
        current = model.state_dict()
        for key, slow in self.state.items():
            slow.lerp_(current[key], 1 - decay)
            current[key].copy_(slow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the slow copy from a checkpoint's ``lookahead`` entry."""
        for key, slow in self.state.items():
            slow.copy_(state[key])


class AlternatingFlips:
    """Training images indexed as an epoch shows them under ``FlipMode.ALTERNATING``.

    Each image gets one random flip (from ``seed``); in odd epochs every flip is inverted.
    ``view(epoch)[idx]`` gathers a batch with its flips applied (the images are not copied).
    """

    def __init__(self, x_nchw: torch.Tensor, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x_nchw = x_nchw
        self.flipped = torch.rand(len(x_nchw), generator=gen) < 0.5

    def __len__(self) -> int:
        return len(self.x_nchw)

    def view(self, epoch: int) -> _FlipView:
        """The images as epoch ``epoch`` (0-based) shows them: index it with a batch's indices."""
        return _FlipView(self.x_nchw, self.flipped ^ bool(epoch % 2))


class _FlipView:
    """``view[idx]``: the images ``idx`` with their flips applied."""

    def __init__(self, x_nchw: torch.Tensor, flipped: torch.Tensor) -> None:
        self.x_nchw, self.flipped = x_nchw, flipped

    def __len__(self) -> int:
        return len(self.x_nchw)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.x_nchw[idx]
        return torch.where(self.flipped[idx][:, None, None, None], x.flip(-1), x)


def random_translate(x_nchw: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Shift every image by up to ``pad`` pixels: a random crop of its reflect-padded copy."""
    if pad == 0:
        return x_nchw
    n, c, h, w = x_nchw.shape
    padded = F.pad(x_nchw, (pad,) * 4, mode="reflect")
    off_y = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x_nchw.device)
    off_x = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x_nchw.device)
    rows = (off_y[:, None] + torch.arange(h, device=x_nchw.device))[:, None, :, None]
    cols = (off_x[:, None] + torch.arange(w, device=x_nchw.device))[:, None, None, :]
    batch = torch.arange(n, device=x_nchw.device)[:, None, None, None]
    chan = torch.arange(c, device=x_nchw.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_cutout(x_nchw: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square of every image, centred at a uniformly random pixel
    (clipped at the borders, as DeVries & Taylor's cutout); a new tensor."""
    if size == 0:
        return x_nchw
    n, _, h, w = x_nchw.shape
    cy = torch.randint(0, h, (n,), generator=generator).to(x_nchw.device)
    cx = torch.randint(0, w, (n,), generator=generator).to(x_nchw.device)
    top, left = cy - size // 2, cx - size // 2
    rows = torch.arange(h, device=x_nchw.device)[None, :]
    cols = torch.arange(w, device=x_nchw.device)[None, :]
    inside_nh = (rows >= top[:, None]) & (rows < top[:, None] + size)
    inside_nw = (cols >= left[:, None]) & (cols < left[:, None] + size)
    hole = (inside_nh[:, :, None] & inside_nw[:, None, :])[:, None]  # [N, 1, H, W]
    return x_nchw.masked_fill(hole, 0.0)


def teacher_augmenter(
    tcfg: TeacherConfig, enabled: bool, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The teacher's batch augmentation (drawing from ``generator``), ``None`` when off.

    ``RANDOM`` flips: :func:`sne_loihi.data.augment_nchw` with ``pad = translate`` (zero
    padding; today's augmentation at the default 4). ``ALTERNATING``: the flips come from
    :class:`AlternatingFlips` when the batch is indexed; this only translates. Then
    ``cutout`` (:func:`random_cutout`) when it is > 0.
    """
    if not enabled:
        return None
    if FlipMode(tcfg.flip) is FlipMode.RANDOM:
        shift = lambda x_nchw: augment_nchw(x_nchw, generator, pad=tcfg.translate)  # noqa: E731
    else:
        shift = lambda x_nchw: random_translate(x_nchw, generator, tcfg.translate)  # noqa: E731
    if tcfg.cutout == 0:
        return shift
    return lambda x_nchw: random_cutout(shift(x_nchw), generator, tcfg.cutout)


def tta_forward(model: nn.Module, mode: TestTimeAugment) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model``'s forward averaged over the views of ``mode`` (see :class:`TestTimeAugment`)."""
    mode = TestTimeAugment(mode)
    if mode is TestTimeAugment.NONE:
        return model

    def mirror(x_nchw: torch.Tensor) -> torch.Tensor:
        return 0.5 * model(x_nchw) + 0.5 * model(x_nchw.flip(-1))

    def mirror_translate(x_nchw: torch.Tensor) -> torch.Tensor:
        h, w = x_nchw.shape[-2:]
        padded = F.pad(x_nchw, (1,) * 4, mode="reflect")
        shifted = [padded[..., :h, :w], padded[..., 2 : h + 2, 2 : w + 2]]
        return 0.5 * mirror(x_nchw) + 0.25 * (mirror(shifted[0]) + mirror(shifted[1]))

    return mirror if mode is TestTimeAugment.FLIP else mirror_translate


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Optimiser steps in one epoch (the last batch may be partial)."""
    return math.ceil(n_samples / batch_size)
