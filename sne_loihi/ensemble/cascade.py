"""A head for per-sample activation, trained so that partial features are meaningful.

The cascade head starts from the ensemble's head and is fine-tuned on the training set's
cached student rates with random *prefix* masks: for each sample a K in 1..N is drawn and
only the first K students (in cascade order) keep their rates, the rest read zeros. The
students are frozen, so this costs one pass of the students over the training set plus a
few seconds of logistic-regression-sized training.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from sne_loihi.ensemble.model import Ensemble
from sne_loihi.ensemble.policies import StudentTable, check_order
from sne_loihi.errors import ConfigError
from sne_loihi.run_files import CASCADE_HEAD_FILE


def prefix_masks(
    num_samples: int, order: Sequence[int], generator: torch.Generator, num_students: int | None = None
) -> torch.Tensor:
    """``[S, N]`` bool: for each sample the first K students of ``order``, K uniform in 1..len(order).

    Args:
        num_samples: S.
        order: Cascade order (distinct student indices).
        generator: Source of the K draws.
        num_students: N (default ``len(order)``); students not in ``order`` are never on.
    """
    n = len(order) if num_students is None else int(num_students)
    order = check_order(order, n)
    k = torch.randint(1, len(order) + 1, (num_samples,), generator=generator)
    rank = torch.full((n,), n, dtype=torch.long)  # students outside the order: never reached
    rank[torch.as_tensor(order)] = torch.arange(len(order))
    return rank.unsqueeze(0) < k.unsqueeze(1)


def train_cascade_head(
    head: torch.nn.Linear,
    table: StudentTable,
    *,
    order: Sequence[int] | None = None,
    epochs: int = 60,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> torch.nn.Linear:
    """Fine-tune a copy of ``head`` on masked training-set rates (the original is untouched)."""
    order = check_order(order, table.num_students)
    gen = torch.Generator().manual_seed(seed)
    cascade = copy.deepcopy(head).cpu().train()
    opt = torch.optim.Adam(cascade.parameters(), lr=lr)
    rates = [r.float() for r in table.rates]
    s = len(table.labels)
    for _ in range(epochs):
        perm = torch.randperm(s, generator=gen)
        for start in range(0, s, batch_size):
            idx = perm[start : start + batch_size]
            mask = prefix_masks(len(idx), order, gen, table.num_students)
            x = torch.cat([r[idx] * mask[:, i : i + 1] for i, r in enumerate(rates)], dim=1)
            loss = F.cross_entropy(cascade(x), table.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return cascade.eval()




def save_cascade_head(
    path: Path, head: torch.nn.Linear, order: Sequence[int], config: dict | None = None, ensemble_key: str | None = None,
    ensemble_sha256: str | None = None,
) -> None:
    """Write ``RUN/cascade_head.pt``: ``{"config", "head": state_dict, "order": [...],
    "ensemble_key", "ensemble_sha256"}``; ``ensemble_key`` (:func:`sne_loihi.io.file_key` of
    the ensemble checkpoint it was trained for, its size and mtime) and ``ensemble_sha256``
    (its content, which survives a copy or a git clone that changes the mtime) let a later
    stage tell a current head from a stale one."""
    from sne_loihi.io import save_checkpoint

    payload = {"config": dict(config or {}), "head": head.state_dict(), "order": [int(i) for i in order]}
    if ensemble_key is not None:
        payload["ensemble_key"] = str(ensemble_key)
    if ensemble_sha256 is not None:
        payload["ensemble_sha256"] = str(ensemble_sha256)
    save_checkpoint(Path(path), payload)


def current_cascade_head(run_dir: Path, num_students: int) -> torch.nn.Linear | None:
    """``RUN/cascade_head.pt`` if it was trained for the current ``RUN/ensemble.pt`` (its
    ``ensemble_key`` matches, or else its ``ensemble_sha256`` does: a copied or cloned run
    folder has new mtimes; and its order is ``0..N-1``), else ``None``: missing, stale,
    written before heads carried the key, or unreadable (it is derived data; an unreadable
    head is reported by one ``warning:`` line on stderr, :func:`sne_loihi.io.load_cache`).

    Raises:
        UnsafeFileError: The head file would run code if loaded.
    """
    from sne_loihi.run_files import ENSEMBLE_FILE
    from sne_loihi.errors import CheckpointError, UnsafeFileError
    from sne_loihi.io import load_cache, same_content

    run_dir = Path(run_dir)
    path, ckpt = run_dir / CASCADE_HEAD_FILE, run_dir / ENSEMBLE_FILE
    if not (path.is_file() and ckpt.is_file()):
        return None
    payload = load_cache(path, what="cascade head")
    if payload is None:
        return None
    sha = payload.get("ensemble_sha256")
    if not same_content(ckpt, payload.get("ensemble_key"), sha if isinstance(sha, str) else None):
        return None
    try:
        head, order = load_cascade_head(path, num_students)
    except UnsafeFileError:
        raise
    except CheckpointError as exc:
        print(f"warning: {exc}; ignored (the next report or pipeline run trains a new one)", file=sys.stderr)
        return None
    return head if order == list(range(num_students)) else None


def ensure_cascade_head(
    run_dir: Path, model: Ensemble, x_train_nchw: torch.Tensor, y_train: torch.Tensor, *,
    config: dict | None = None, batch_size: int = 256, seed: int = 0,
) -> tuple[torch.nn.Linear, bool]:
    """The run's cascade head: :func:`current_cascade_head`, or else one trained now on the
    training set's student rates (:func:`train_cascade_head`) and saved in
    ``RUN/cascade_head.pt``.

    Returns:
        The head and whether it was (re)trained.

    Raises:
        CheckpointError: The run folder has no ensemble checkpoint.
    """
    from sne_loihi.run_files import ENSEMBLE_FILE
    from sne_loihi.ensemble.policies import student_table
    from sne_loihi.errors import CheckpointError
    from sne_loihi.io import file_key, sha256_file

    run_dir = Path(run_dir)
    ckpt = run_dir / ENSEMBLE_FILE
    if not ckpt.is_file():
        raise CheckpointError(f"no ensemble in {run_dir} (expected {ckpt})")
    head = current_cascade_head(run_dir, model.num_students)
    if head is not None:
        return head, False
    table = student_table(model, x_train_nchw, y_train, batch_size)
    head = train_cascade_head(model.head, table, batch_size=batch_size, seed=seed)
    save_cascade_head(run_dir / CASCADE_HEAD_FILE, head, range(model.num_students), config, ensemble_key=file_key(ckpt),
                      ensemble_sha256=sha256_file(ckpt))
    return head, True


def load_cascade_head(path: Path, num_students: int) -> tuple[torch.nn.Linear, list[int]]:
    """Read a cascade head written by :func:`save_cascade_head` (or an older file without
    ``order``, which means ``0..N-1``).

    Args:
        path: The ``.pt`` file or the run folder holding ``cascade_head.pt``.
        num_students: N, to check the order.

    Raises:
        CheckpointError: Missing or unreadable file, or a payload that is not a linear head
            with a valid order.
    """
    from sne_loihi.errors import CheckpointError
    from sne_loihi.io import load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / CASCADE_HEAD_FILE
    ckpt = load_checkpoint(path)
    state = ckpt.get("head")
    w = state.get("weight") if isinstance(state, dict) else None
    b = state.get("bias") if isinstance(state, dict) else None
    if not (isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor) and w.dim() == 2 and b.shape == w.shape[:1]):
        raise CheckpointError(f"{path}: not a cascade head (needs 'head' with a 2-D weight and a matching bias)")
    try:
        order = check_order(ckpt.get("order"), num_students)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    head = torch.nn.Linear(w.shape[1], w.shape[0])
    head.load_state_dict({"weight": w, "bias": b})
    return head.eval(), order
