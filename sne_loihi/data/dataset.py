"""The :class:`Dataset` container, the ``DATASETS`` registry and :func:`load_dataset`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from sne_loihi.checks import check_section
from sne_loihi.config import DataConfig
from sne_loihi.errors import DataError
from sne_loihi.registry import Registry


@dataclass(frozen=True)
class Dataset:
    """An image classification data set held in memory.

    Attributes:
        name: Registered data set name.
        x_train_nchw: Training images, float32 in [0, 1], ``[N, C, H, W]``.
        y_train: Training labels, int64, ``[N]``.
        x_test_nchw: Test images, float32 in [0, 1], ``[M, C, H, W]``.
        y_test: Test labels, int64, ``[M]``.
        class_names: One name per class, index = label.
    """

    name: str
    x_train_nchw: torch.Tensor
    y_train: torch.Tensor
    x_test_nchw: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.x_train_nchw.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)


DatasetLoader = Callable[[DataConfig, int], Dataset]

#: Data sets without an official split: their train/test split is drawn with the run's seed
#: and ``data.test_fraction``, so artifacts trained with other values saw other test images
#: (an image tree is split so when it has no ``train/`` and ``test/`` folders).
SEEDED_SPLIT: frozenset[str] = frozenset({"digits", "imagefolder"})


def split_mismatch(trained: DataConfig, trained_seed: int, wanted: DataConfig, wanted_seed: int) -> str | None:
    """Why data of ``wanted`` would not be the data an artifact was ``trained`` on, or ``None``.

    Only what changes the test set counts: the data set, and for :data:`SEEDED_SPLIT` sets
    the seed and test fraction of the split (another ``max_train`` / ``max_test`` subset or
    another seed of an officially split set keeps train and test apart).
    """
    if trained.name != wanted.name:
        return f"it was trained on {trained.name}, this run uses {wanted.name}"
    if wanted.name in SEEDED_SPLIT and (trained_seed, trained.test_fraction) != (wanted_seed, wanted.test_fraction):
        return (f"its {wanted.name} split used seed {trained_seed} and test fraction {trained.test_fraction}, this run "
                f"asks for seed {wanted_seed} and {wanted.test_fraction}, whose test images include images it was "
                f"trained on")
    return None


#: ``name -> loader(cfg: DataConfig, seed: int) -> Dataset``.
DATASETS: Registry[DatasetLoader] = Registry("data set")


def stratified_subset(labels: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """Indices of a class-balanced subset of at most ``limit`` samples.

    Every class is shuffled (seeded), then samples are taken round-robin over the classes
    (rank 0 of every class, then rank 1, ...; ties broken by a seeded random order of the
    classes), so class counts differ by at most one while every class has samples left.
    Subsets for growing ``limit`` are nested. The returned indices are sorted.

    Args:
        labels: int64 labels ``[N]``.
        limit: Maximum subset size; ``0`` or ``>= N`` keeps everything.
        seed: Seed of the shuffles.

    Returns:
        int64 indices into ``labels``.
    """
    n = len(labels)
    if limit <= 0 or limit >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    class_order = classes[torch.randperm(len(classes), generator=gen)]
    rank = torch.empty(n, dtype=torch.int64)
    tiebreak = torch.empty(n, dtype=torch.int64)
    for position, c in enumerate(class_order.tolist()):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        rank[members] = torch.arange(len(members))
        tiebreak[members] = position
    order = torch.argsort(rank * len(classes) + tiebreak)
    return torch.sort(order[:limit]).values


def _names(names: object) -> str:
    names = list(names)  # type: ignore[call-overload]
    return ", ".join(map(str, names[:6])) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")


def check_class_names(cfg: DataConfig, data: Dataset) -> Dataset:
    """``data``, if its classes are the ones ``cfg.class_names`` recorded (or none are).

    Raises:
        DataError: Other classes, or the same in another order.
    """
    if cfg.class_names is not None and tuple(cfg.class_names) != tuple(data.class_names):
        raise DataError(f"{cfg.name}: the data's classes ({_names(data.class_names)}) are not the ones this run "
                        f"recorded in data.class_names ({_names(cfg.class_names)}); labels would mean other classes")
    return data


def load_dataset(cfg: DataConfig, seed: int = 0) -> Dataset:
    """Load the data set ``cfg.name`` and apply ``cfg.max_train`` / ``cfg.max_test``.

    Args:
        cfg: Data settings.
        seed: Seed of the train/test split (digits) and of the stratified subsets.

    Raises:
        ConfigError: Unknown data set name or negative limits.
        DataError: The data cannot be read (see the loaders), or its classes are not
            ``cfg.class_names`` (when recorded).
    """
    check_section(cfg, "data")  # the config's own rules (a DataConfig may come without a RunConfig)
    data = check_class_names(cfg, DATASETS.get(cfg.name)(cfg, seed))
    for part, labels in (("training", data.y_train), ("test", data.y_test)):
        if len(labels) == 0:
            raise DataError(f"{cfg.name}: the data set has no {part} images")
    if len(data.class_names) < 2 or len(torch.unique(data.y_train)) < 2:
        raise DataError(f"{cfg.name}: the training images carry {len(torch.unique(data.y_train))} label(s) of "
                        f"{len(data.class_names)} class(es) ({_names(data.class_names)}); a classifier needs at "
                        "least two classes")
    train_idx = stratified_subset(data.y_train, cfg.max_train, seed)
    test_idx = stratified_subset(data.y_test, cfg.max_test, seed + 1)
    if len(train_idx) == len(data.y_train) and len(test_idx) == len(data.y_test):
        return data
    return replace(
        data,
        x_train_nchw=data.x_train_nchw[train_idx].contiguous(),
        y_train=data.y_train[train_idx],
        x_test_nchw=data.x_test_nchw[test_idx].contiguous(),
        y_test=data.y_test[test_idx],
    )
