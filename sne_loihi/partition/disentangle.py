"""Teacher disentanglement: the chunk-dissimilarity loss L_sim and the fine-tuning loop.

method.md section 4, "teacher fine-tuning": the feature vector f_T in R^D is split into N
contiguous equal chunks ``c_1 .. c_N`` (chunk j = columns ``j*D/N .. (j+1)*D/N - 1``), each
chunk of each sample is L2-normalised, and

    L_sim = mean over samples k of the mean over ordered pairs j != l of ||c_j,k - c_l,k||_2.

The teacher is fine-tuned with ``L_CE + beta * L_sim``, ``beta < 0``: minimising the total
maximises L_sim, pushing a sample's normalised chunks apart on the unit sphere. Afterwards
the contiguous split (:func:`sne_loihi.partition.contiguous_partition`) is used.

Note on post-ReLU features: non-negative unit vectors have pairwise distance at most
sqrt(2) (orthogonal, i.e. disjoint supports), so for a ReLU teacher L_sim is bounded by
sqrt(2) ~ 1.414, not by method.md's optima for signed chunks (2 for N = 2, sqrt(8/3) for
N = 4). Fine-tuning a ReLU teacher drives each sample's chunks towards disjoint supports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sne_loihi.distributed import backward_step, check_divides, setup
from sne_loihi.errors import ConfigError

#: Chunks whose L2 norm is at most this are treated as the zero vector (see similarity_loss).
CHUNK_EPS = 1e-8


def _check_chunks(feature_dim: int, num_chunks: int) -> None:
    if isinstance(num_chunks, bool) or not isinstance(num_chunks, int) or num_chunks < 2:
        raise ConfigError(f"L_sim needs at least 2 chunks (students), got {num_chunks!r}")
    if feature_dim % num_chunks:
        raise ConfigError(
            f"L_sim splits the feature vector into equal chunks: feature size {feature_dim} "
            f"is not divisible by {num_chunks}"
        )


def normalized_chunks(features_nd: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """Split ``[S, D]`` features into N contiguous chunks and L2-normalise each one.

    A chunk whose norm is at most :data:`CHUNK_EPS` (e.g. all of its post-ReLU features are
    zero) becomes the zero vector with zero gradient, instead of the ``1/eps`` gradient a
    clamped division would produce. Its distance to any unit chunk is then 1.

    Returns:
        ``[S, N, D/N]``.
    """
    s, d = features_nd.shape
    chunks = features_nd.reshape(s, num_chunks, d // num_chunks)
    norms = torch.linalg.vector_norm(chunks, dim=-1, keepdim=True)
    live = norms > CHUNK_EPS
    safe = torch.where(live, norms, torch.ones_like(norms))
    return torch.where(live, chunks / safe, torch.zeros_like(chunks))


def similarity_loss(features_nd: torch.Tensor, num_chunks: int) -> torch.Tensor:
    """L_sim: mean pairwise distance between a sample's L2-normalised feature chunks.

    Exactly method.md's definition (ordered pairs j != l; the distance is symmetric so this
    equals the mean over unordered pairs). Its maximum is 2 for N = 2 (anti-parallel
    chunks) and ``sqrt(2 N / (N - 1))`` when the chunks form a regular simplex (needs
    D/N >= N - 1), e.g. ``sqrt(8/3)`` for N = 4.

    Pair distances use ``sqrt(|a|^2 + |b|^2 - 2 a.b)``; coincident chunks (distance 0) get a
    zero gradient instead of sqrt's infinite one.

    Args:
        features_nd: Teacher features ``[S, D]`` (any float dtype and device).
        num_chunks: N >= 2, dividing D.

    Returns:
        Scalar tensor (differentiable).

    Raises:
        ConfigError: Wrong ndim, no samples, N < 2 or D not divisible by N.
    """
    if features_nd.ndim != 2 or features_nd.shape[0] == 0:
        raise ConfigError(f"L_sim needs [samples, features] with samples > 0, got shape {tuple(features_nd.shape)}")
    _check_chunks(features_nd.shape[1], num_chunks)
    c = normalized_chunks(features_nd, num_chunks)
    gram = c @ c.transpose(1, 2)  # [S, N, N]
    sq_norm = torch.diagonal(gram, dim1=1, dim2=2)  # 1 (or 0 for dead chunks)
    sq = (sq_norm[:, :, None] + sq_norm[:, None, :] - 2.0 * gram).clamp_min(0.0)
    pos = sq > 1e-12
    dist = torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    off_diag = ~torch.eye(num_chunks, dtype=torch.bool, device=features_nd.device)
    per_sample = dist[:, off_diag].mean(dim=1)
    return per_sample.mean()


def _features_and_logits(teacher: nn.Module, x_nchw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f_T and logits; one forward pass when the teacher has ``head(features)``."""
    feats = teacher.features(x_nchw)
    head = getattr(teacher, "head", None)
    if callable(head):
        return feats, head(feats)
    return feats, teacher(x_nchw)


class _FeaturesAndLogits(nn.Module):
    """The teacher as one ``forward -> (f_T, logits)``, so DistributedDataParallel sees the
    whole step go through its forward."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, x_nchw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _features_and_logits(self.teacher, x_nchw)


def finetune_teacher(
    teacher: nn.Module,
    x_train_nchw: torch.Tensor,
    y_train: torch.Tensor,
    *,
    num_chunks: int,
    beta: float,
    epochs: int,
    lr: float,
    batch_size: int,
    device: torch.device | str,
    augment_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Fine-tune ``teacher`` in place with ``L = L_CE + beta * L_sim`` (Adam).

    The teacher must expose ``features(x) -> f_T [B, D]`` and ``forward(x) -> logits``. If
    it also has ``head(f_T) -> logits`` the logits are computed from the same features (one
    forward pass); otherwise ``forward`` runs separately. The model is left in eval mode.

    Args:
        teacher: The ANN teacher (moved to ``device``).
        x_train_nchw: Training images ``[S, C, H, W]`` (any device; batches are moved).
        y_train: Integer labels ``[S]``.
        num_chunks: N, the number of students; must divide D.
        beta: Weight of L_sim; must be negative (L_sim is maximised).
        epochs, lr, batch_size, weight_decay: Optimisation settings.
        device: Where to train.
        augment_fn: Optional ``x_nchw -> x_nchw`` applied to each training batch.
        progress: Show a tqdm bar.
        seed: Seed of the batch shuffling.

    Returns:
        One record per epoch: ``{epoch, loss, ce, l_sim, train_acc}`` (sample-weighted means
        over the epoch, in train mode).

    Raises:
        ConfigError: beta >= 0, N < 2, D not divisible by N, bad settings or mismatched data.
    """
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta < 0):
        raise ConfigError(f"beta must be negative (L_sim is maximised), got {beta!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"fine-tuning epochs must be a positive integer, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"learning rate must be positive, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if x_train_nchw.ndim != 4 or len(x_train_nchw) == 0 or len(x_train_nchw) != len(y_train):
        raise ConfigError(
            f"fine-tuning needs images [S, C, H, W] and S labels, got {tuple(x_train_nchw.shape)} "
            f"and {tuple(y_train.shape)}"
        )
    if not callable(getattr(teacher, "features", None)):
        raise ConfigError(f"teacher {type(teacher).__name__} has no features(x) method")
    device = torch.device(device)
    teacher.to(device)
    teacher.eval()
    with torch.no_grad():
        probe = teacher.features(x_train_nchw[:2].to(device))
    if probe.ndim != 2:
        raise ConfigError(f"teacher features must be [batch, D], got shape {tuple(probe.shape)}")
    _check_chunks(probe.shape[1], num_chunks)

    dist = setup(device)
    check_divides(batch_size, "fine-tuning batch size")
    optimizer = torch.optim.Adam(teacher.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = len(x_train_nchw)
    dist.check_last_batch(n, batch_size, "teacher fine-tuning")
    step_model = dist.wrap(_FeaturesAndLogits(teacher), device)
    n_batches = -(-n // batch_size)
    bar = tqdm(total=epochs * n_batches, desc="teacher fine-tune", disable=not (progress and dist.is_main), unit="batch")
    history: list[dict[str, Any]] = []
    for epoch in range(epochs):
        teacher.train()
        sums = {"loss": 0.0, "ce": 0.0, "l_sim": 0.0, "correct": 0.0}
        order = iter(torch.randperm(n, generator=gen).split(batch_size))
        with dist.training(teacher):
            for shard, x, y in dist.batches(order, x_train_nchw, y_train, device, augment_fn):
                feats, logits = step_model(x)
                ce = F.cross_entropy(logits, y)
                l_sim = similarity_loss(feats, num_chunks)
                loss = ce + beta * l_sim
                weight = dist.loss_weight(shard)
                backward_step(loss if weight is None else loss * weight, optimizer)
                b = len(shard)
                sums["loss"] += float(loss.detach()) * b
                sums["ce"] += float(ce.detach()) * b
                sums["l_sim"] += float(l_sim.detach()) * b
                sums["correct"] += float((logits.argmax(-1) == y).sum())
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, ce=f"{float(ce):.3f}", l_sim=f"{float(l_sim):.3f}")
        sums = dist.sum(sums, device)
        history.append({
            "epoch": epoch + 1,
            "loss": sums["loss"] / n,
            "ce": sums["ce"] / n,
            "l_sim": sums["l_sim"] / n,
            "train_acc": sums["correct"] / n,
        })
    bar.close()
    teacher.eval()
    return history
