"""The :class:`Partition` of the teacher's feature dimensions among the students.

A partition assigns every teacher feature dimension ``0 .. feature_dim - 1`` to exactly one
of ``num_groups`` groups; group ``i`` is the share student ``i`` imitates (method.md
section 4). Canonical form (what every partitioner returns): indices sorted inside each
group and groups ordered by their smallest index, so equal partitions compare equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.config import PartitionStrategy
from sne_loihi.errors import CheckpointError, ConfigError
from sne_loihi.io import atomic_write_json

PARTITION_FORMAT = 1


@dataclass(frozen=True)
class Partition:
    """Feature-dimension groups, one per student, in student order.

    Attributes:
        strategy: How the partition was computed.
        groups: ``groups[i]`` are the teacher feature indices student ``i`` imitates.
        feature_dim: D, the teacher's feature size; the groups cover ``0 .. D-1`` exactly once.

    Construction validates (see :meth:`validate`), so a ``Partition`` object is always valid.
    """

    strategy: PartitionStrategy
    groups: tuple[tuple[int, ...], ...]
    feature_dim: int

    def __post_init__(self) -> None:
        self.validate()

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of feature dimensions per group."""
        return tuple(len(g) for g in self.groups)

    @property
    def num_groups(self) -> int:
        """N, the number of groups (students)."""
        return len(self.groups)

    def validate(self) -> None:
        """Check that the groups cover ``0 .. feature_dim - 1`` exactly once, none empty.

        Raises:
            ConfigError: One line naming the first problem found.
        """
        if not isinstance(self.strategy, PartitionStrategy):
            raise ConfigError(f"partition strategy must be a PartitionStrategy, got {self.strategy!r}")
        d = self.feature_dim
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ConfigError(f"partition feature_dim must be a positive integer, got {d!r}")
        if not isinstance(self.groups, tuple) or not self.groups:
            raise ConfigError("partition needs at least one group")
        indices: list[int] = []
        for i, group in enumerate(self.groups):
            if not isinstance(group, tuple) or not group:
                raise ConfigError(f"partition group {i} is empty or not a tuple of indices")
            for j in group:
                if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
                    raise ConfigError(f"partition group {i} holds a non-integer index {j!r}")
                if not 0 <= j < d:
                    raise ConfigError(f"partition group {i} holds index {j}, outside 0..{d - 1}")
                indices.append(int(j))
        # Sized by the indices the file holds, never by d (a corrupt file may claim any d).
        unique, counts = np.unique(np.asarray(indices, dtype=np.int64), return_counts=True)
        dup = unique[counts > 1]
        if dup.size:
            raise ConfigError(f"partition assigns feature {int(dup[0])} to more than one group")
        if unique.size != d:
            gaps = np.flatnonzero(unique != np.arange(unique.size))
            first = int(gaps[0]) if gaps.size else int(unique.size)
            raise ConfigError(f"partition leaves {d - unique.size} of {d} features unassigned (first: {first})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the ``partition`` entry of checkpoints and ``partition.json``)."""
        return {
            "format": PARTITION_FORMAT,
            "strategy": self.strategy.value,
            "feature_dim": int(self.feature_dim),
            "groups": [[int(j) for j in g] for g in self.groups],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Partition:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ConfigError: Missing keys, unknown strategy or an invalid partition.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a partition must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("strategy", "feature_dim", "groups") if k not in data]
        if missing:
            raise ConfigError(f"partition lacks key(s): {', '.join(missing)}")
        fmt = data.get("format", PARTITION_FORMAT)
        if fmt != PARTITION_FORMAT:
            raise ConfigError(f"partition format {fmt!r} is not supported (expected {PARTITION_FORMAT})")
        try:
            strategy = PartitionStrategy(data["strategy"])
        except ValueError:
            known = ", ".join(s.value for s in PartitionStrategy)
            raise ConfigError(f"unknown partition strategy {data['strategy']!r}; known: {known}") from None
        groups = data["groups"]
        if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
            raise ConfigError("partition 'groups' must be a list of lists of feature indices")
        return cls(strategy, tuple(tuple(g) for g in groups), data["feature_dim"])

    def save(self, path: Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path, feature_dim: int | None = None) -> Partition:
        """Read a partition file and optionally check it against the teacher's feature size.

        Args:
            path: A file written by :meth:`save`.
            feature_dim: The teacher's D; ``None`` skips the check.

        Raises:
            CheckpointError: Missing, unreadable or corrupt file, invalid content, or a
                partition made for a different feature size.
        """
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"partition file not found: {path}")
        from sne_loihi.json_files import read_json_file

        data = read_json_file(path, "partition file", CheckpointError)  # size and nesting bounded
        try:
            part = cls.from_dict(data)
        except ConfigError as exc:
            raise CheckpointError(f"invalid partition file {path}: {exc}") from None
        if feature_dim is not None and part.feature_dim != feature_dim:
            raise CheckpointError(
                f"partition file {path} splits {part.feature_dim} features but the teacher has "
                f"{feature_dim}; recompute the partition for this teacher"
            )
        return part


def canonical_groups(groups: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Sort indices inside each group and order groups by their smallest index."""
    sorted_groups = [tuple(sorted(int(j) for j in g)) for g in groups]
    return tuple(sorted(sorted_groups, key=lambda g: g[0] if g else -1))


def groups_from_labels(labels: np.ndarray, num_groups: int) -> tuple[tuple[int, ...], ...]:
    """Canonical groups from a per-dimension cluster label array (labels in ``0..N-1``)."""
    labels = np.asarray(labels)
    return canonical_groups([np.flatnonzero(labels == k).tolist() for k in range(num_groups)])


def _check_split(feature_dim: int, num_groups: int) -> None:
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1:
        raise ConfigError(f"number of groups must be a positive integer, got {num_groups!r}")
    if num_groups > feature_dim:
        raise ConfigError(f"cannot split {feature_dim} features into {num_groups} non-empty groups")


def fixed_partition(feature_dim: int, num_groups: int, seed: int) -> Partition:
    """Random groups of (near-)equal size: a seeded permutation cut into N chunks.

    If ``feature_dim`` is not divisible by ``num_groups`` the first ``D % N`` chunks get
    one extra dimension (sizes differ by at most 1; :func:`group_widths` then sizes the
    students). This is the "no disentanglement" baseline, so it accepts any ``N <= D``.

    Raises:
        ConfigError: ``num_groups < 1`` or ``num_groups > feature_dim``.
    """
    _check_split(feature_dim, num_groups)
    perm = np.random.default_rng(seed).permutation(feature_dim)
    chunks = np.array_split(perm, num_groups)
    return Partition(PartitionStrategy.FIXED, canonical_groups(chunks), feature_dim)


def contiguous_partition(
    feature_dim: int, num_groups: int, strategy: PartitionStrategy = PartitionStrategy.FINETUNE
) -> Partition:
    """Contiguous equal chunks: group j = ``j*D/N .. (j+1)*D/N - 1``.

    This is the split :func:`sne_loihi.partition.similarity_loss` disentangles during teacher
    fine-tuning, so it needs ``D % N == 0`` like the loss does.

    Raises:
        ConfigError: ``num_groups < 1``, ``num_groups > feature_dim`` or D not divisible by N.
    """
    _check_split(feature_dim, num_groups)
    if feature_dim % num_groups:
        raise ConfigError(
            f"contiguous equal split needs the feature size ({feature_dim}) to be divisible by "
            f"the number of groups ({num_groups})"
        )
    size = feature_dim // num_groups
    groups = tuple(tuple(range(j * size, (j + 1) * size)) for j in range(num_groups))
    return Partition(strategy, groups, feature_dim)
