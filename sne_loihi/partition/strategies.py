"""Partition strategies (method.md section 4) behind the ``PARTITIONERS`` registry.

Every partitioner is ``fn(features_nd, num_groups, seed) -> Partition`` where
``features_nd`` is the teacher's feature matrix F (training samples x D). The columns of F
(one per feature dimension) are what gets clustered; similarity between two dimensions is
the cosine of their columns.

Dead features. Post-ReLU teachers often have dimensions that are zero on every training
sample. Their cosine similarity is undefined (scikit-learn's cosine agglomerative
clustering refuses zero vectors). The clustering strategies therefore cluster only the live
columns and then place the dead ones. A dead feature carries no information and every
student reproduces it trivially (rate 0). ``agglomerative`` and ``kmeans`` share the dead
columns among the groups in proportion to the groups' live sizes (largest remainder), so
each group's size, hence its student's capacity (:func:`sne_loihi.partition.group_widths`),
follows its share of the live features; filling the smallest groups instead would make the
groups equal whenever many columns are dead and hide the clustering's imbalance. The
balanced strategies place each dead column in the currently smallest group (ties: the
smallest index), so dead columns fill deficits before any live column is moved, and treat
dead columns as being at cosine distance 1 from every centroid (a zero vector is orthogonal
to everything).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sne_loihi.config import PartitionStrategy
from sne_loihi.errors import ConfigError
from sne_loihi.partition.base import (
    Partition,
    contiguous_partition,
    fixed_partition,
    groups_from_labels,
)
from sne_loihi.registry import Registry

Partitioner = Callable[[np.ndarray, int, int], Partition]

PARTITIONERS: Registry[Partitioner] = Registry("partition strategy")

#: Strategies whose groups all have D / N dimensions (they need D % N == 0).
EQUAL_SIZE_STRATEGIES = frozenset(
    {PartitionStrategy.BALANCED_KMEANS, PartitionStrategy.BALANCED_OPTIMAL, PartitionStrategy.FINETUNE}
)

#: Lloyd-style rounds of the balanced-optimal strategy (stops early when labels settle).
BALANCED_OPTIMAL_ROUNDS = 10


def compute_partition(
    strategy: PartitionStrategy | str, features_nd: np.ndarray, num_groups: int, seed: int
) -> Partition:
    """Split the teacher's feature dimensions into ``num_groups`` groups.

    Args:
        strategy: A :class:`PartitionStrategy` (or its value).
        features_nd: Teacher features over the training set, ``[samples, D]``, finite.
        num_groups: N, the number of students (1 <= N <= D).
        seed: Seed for the random permutation / k-means initialisation.

    Returns:
        A valid, canonical :class:`Partition`.

    Raises:
        ConfigError: Unknown strategy, bad shape, non-finite features, N out of range, or
            D not divisible by N for an equal-size strategy.
    """
    try:
        strategy = PartitionStrategy(strategy)
    except ValueError:
        known = ", ".join(PARTITIONERS.names())
        raise ConfigError(f"unknown partition strategy {strategy!r}; known: {known}") from None
    fn = PARTITIONERS.get(strategy.value)
    feats = np.asarray(features_nd, dtype=np.float64)
    if feats.ndim != 2:
        raise ConfigError(f"teacher features must be a [samples, features] matrix, got shape {feats.shape}")
    n_samples, dim = feats.shape
    if n_samples < 1 or dim < 1:
        raise ConfigError(f"teacher features are empty (shape {feats.shape})")
    if not np.isfinite(feats).all():
        raise ConfigError("teacher features contain NaN or infinite values")
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1:
        raise ConfigError(f"number of students must be a positive integer, got {num_groups!r}")
    if num_groups > dim:
        raise ConfigError(f"cannot split {dim} teacher features among {num_groups} students")
    if strategy in EQUAL_SIZE_STRATEGIES and dim % num_groups:
        raise ConfigError(
            f"partition {strategy.value!r} makes equal groups: the feature size ({dim}) must be "
            f"divisible by the number of students ({num_groups})"
        )
    part = fn(feats, int(num_groups), int(seed))
    if part.feature_dim != dim or part.num_groups != num_groups:
        raise RuntimeError(f"partitioner {strategy.value} returned a partition of the wrong shape")
    return part


# ---- column geometry ---------------------------------------------------------------------


def unit_columns(features_nd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised columns of F as rows ``[D, samples]`` and the live-column mask.

    A column is dead when its norm is at most ``1e-12`` times the largest column norm (in
    practice: exactly zero on every sample); dead rows are returned as zeros.
    """
    cols = np.asarray(features_nd, dtype=np.float64).T
    norms = np.linalg.norm(cols, axis=1)
    live = norms > 1e-12 * norms.max() if norms.max() > 0 else np.zeros_like(norms, dtype=bool)
    unit = np.zeros_like(cols)
    unit[live] = cols[live] / norms[live, None]
    return unit, live


def _live_or_fail(live: np.ndarray, num_groups: int, strategy: str) -> np.ndarray:
    idx = np.flatnonzero(live)
    if idx.size < num_groups:
        raise ConfigError(
            f"{strategy} partition: only {idx.size} of {live.size} teacher features are ever "
            f"non-zero on the training set, fewer than the {num_groups} students"
        )
    return idx


def _fill_dead(labels: np.ndarray, live: np.ndarray, num_groups: int) -> np.ndarray:
    """Give each dead column (label -1) to the currently smallest group."""
    labels = labels.copy()
    sizes = np.bincount(labels[live], minlength=num_groups)
    for j in np.flatnonzero(~live):
        k = int(np.argmin(sizes))
        labels[j] = k
        sizes[k] += 1
    return labels


def _share_dead(labels: np.ndarray, live: np.ndarray, num_groups: int) -> np.ndarray:
    """Give the dead columns (label -1) to the groups in proportion to their live sizes.

    Group k ends with ``floor(live_k * D / L)`` columns plus one for the groups with the
    largest remainders (ties: smallest index), ``L`` live columns in all; so every final size
    is within one of ``live_k * D / L`` and never below ``live_k``.
    """
    labels = labels.copy()
    live_sizes = np.bincount(labels[live], minlength=num_groups)
    quota = live_sizes * labels.size / live_sizes.sum()
    final = np.floor(quota).astype(np.int64)
    final[np.argsort(-(quota - final), kind="stable")[: labels.size - final.sum()]] += 1
    labels[np.flatnonzero(~live)] = np.repeat(np.arange(num_groups), final - live_sizes)
    return labels


def _cosine_distance(unit_dn: np.ndarray, centroids_kn: np.ndarray) -> np.ndarray:
    """``1 - cos`` between unit columns ``[D, S]`` and centroids ``[N, S]`` -> ``[D, N]``."""
    norms = np.linalg.norm(centroids_kn, axis=1, keepdims=True)
    c = centroids_kn / np.maximum(norms, 1e-12)
    return 1.0 - unit_dn @ c.T


def _spherical_kmeans(unit_dn: np.ndarray, live: np.ndarray, num_groups: int, seed: int, name: str):
    """k-means on the live unit columns; returns labels (dead = -1) and centroids ``[N, S]``."""
    from sklearn.cluster import KMeans

    idx = _live_or_fail(live, num_groups, name)
    km = KMeans(n_clusters=num_groups, n_init=10, random_state=seed).fit(unit_dn[idx])
    labels = np.full(unit_dn.shape[0], -1, dtype=np.int64)
    labels[idx] = km.labels_
    counts = np.bincount(km.labels_, minlength=num_groups)
    if (counts == 0).any():
        raise ConfigError(
            f"{name} partition: the teacher features have fewer than {num_groups} distinct directions"
        )
    return labels, km.cluster_centers_


def _partition(strategy: PartitionStrategy, labels: np.ndarray, num_groups: int) -> Partition:
    return Partition(strategy, groups_from_labels(labels, num_groups), labels.size)


# ---- strategies --------------------------------------------------------------------------


@PARTITIONERS.register(PartitionStrategy.FIXED.value)
def partition_fixed(features_nd: np.ndarray, num_groups: int, seed: int) -> Partition:
    """Random (near-)equal groups, ignoring the feature values (see :func:`fixed_partition`)."""
    return fixed_partition(features_nd.shape[1], num_groups, seed)


@PARTITIONERS.register(PartitionStrategy.FINETUNE.value)
def partition_finetune(features_nd: np.ndarray, num_groups: int, seed: int) -> Partition:
    """Contiguous equal chunks: the split a teacher fine-tuned with L_sim has disentangled."""
    del seed  # deterministic
    return contiguous_partition(features_nd.shape[1], num_groups, PartitionStrategy.FINETUNE)


@PARTITIONERS.register(PartitionStrategy.AGGLOMERATIVE.value)
def partition_agglomerative(features_nd: np.ndarray, num_groups: int, seed: int) -> Partition:
    """Agglomerative clustering of the columns, complete linkage, cosine distance.

    Groups may differ in size. Deterministic (``seed`` unused); dead columns are shared out
    afterwards in proportion to the live group sizes (module docstring).
    """
    from sklearn.cluster import AgglomerativeClustering

    del seed
    unit, live = unit_columns(features_nd)
    idx = _live_or_fail(live, num_groups, "agglomerative")
    labels = np.full(unit.shape[0], -1, dtype=np.int64)
    if num_groups == 1:
        labels[idx] = 0
    else:
        model = AgglomerativeClustering(n_clusters=num_groups, metric="cosine", linkage="complete")
        labels[idx] = model.fit(unit[idx]).labels_
    return _partition(PartitionStrategy.AGGLOMERATIVE, _share_dead(labels, live, num_groups), num_groups)


@PARTITIONERS.register(PartitionStrategy.KMEANS.value)
def partition_kmeans(features_nd: np.ndarray, num_groups: int, seed: int) -> Partition:
    """k-means on the L2-normalised columns (Euclidean distance between unit vectors is a
    monotone function of cosine distance). Groups may differ in size."""
    unit, live = unit_columns(features_nd)
    labels, _ = _spherical_kmeans(unit, live, num_groups, seed, "kmeans")
    return _partition(PartitionStrategy.KMEANS, _share_dead(labels, live, num_groups), num_groups)


def greedy_rebalance(labels: np.ndarray, dist_dn: np.ndarray, target: int) -> np.ndarray:
    """The paper's reallocation: make every cluster hold exactly ``target`` elements.

    For each cluster with a deficit (in label order), repeatedly take, from the clusters
    that still hold more than ``target``, the element closest to the deficit cluster's
    centroid, until the deficit is filled. Centroids stay fixed.

    Args:
        labels: Cluster label per element ``[D]`` (all in ``0..N-1``).
        dist_dn: Distance of each element to each cluster's centroid ``[D, N]``.
        target: D / N.
    """
    labels = labels.copy()
    n = dist_dn.shape[1]
    sizes = np.bincount(labels, minlength=n)
    for k in range(n):
        while sizes[k] < target:
            donors = sizes > target
            cand = np.flatnonzero(donors[labels])
            j = int(cand[np.argmin(dist_dn[cand, k])])
            sizes[labels[j]] -= 1
            labels[j] = k
            sizes[k] += 1
    return labels


@PARTITIONERS.register(PartitionStrategy.BALANCED_KMEANS.value)
def partition_balanced_kmeans(features_nd: np.ndarray, num_groups: int, seed: int) -> Partition:
    """k-means (cosine) followed by the paper's greedy reallocation; all groups have D / N."""
    unit, live = unit_columns(features_nd)
    labels, centroids = _spherical_kmeans(unit, live, num_groups, seed, "balanced-kmeans")
    labels = _fill_dead(labels, live, num_groups)
    target = unit.shape[0] // num_groups
    labels = greedy_rebalance(labels, _cosine_distance(unit, centroids), target)
    return _partition(PartitionStrategy.BALANCED_KMEANS, labels, num_groups)


def balanced_assignment(dist_dn: np.ndarray, target: int) -> np.ndarray:
    """Minimum-total-distance assignment of D elements to N clusters of exactly ``target``.

    Solved exactly with :func:`scipy.optimize.linear_sum_assignment` on the ``[D, D]`` cost
    matrix in which every cluster's column is repeated ``target`` times.
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.repeat(dist_dn, target, axis=1)
    rows, slots = linear_sum_assignment(cost)
    labels = np.empty(dist_dn.shape[0], dtype=np.int64)
    labels[rows] = slots // target
    return labels


@PARTITIONERS.register(PartitionStrategy.BALANCED_OPTIMAL.value)
def partition_balanced_optimal(features_nd: np.ndarray, num_groups: int, seed: int) -> Partition:
    """Equal groups by exact balanced assignment, alternated with centroid updates.

    Starts from the k-means centroids; each round assigns the columns to centroid slots
    (each centroid has D / N slots) minimising the total cosine distance, then moves each
    centroid to the mean unit column of its group; stops when the labels no longer change
    or after :data:`BALANCED_OPTIMAL_ROUNDS` rounds.
    """
    unit, live = unit_columns(features_nd)
    _, centroids = _spherical_kmeans(unit, live, num_groups, seed, "balanced-optimal")
    target = unit.shape[0] // num_groups
    labels = None
    for _ in range(BALANCED_OPTIMAL_ROUNDS):
        new = balanced_assignment(_cosine_distance(unit, centroids), target)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centroids = np.stack([unit[labels == k].mean(axis=0) for k in range(num_groups)])
    return _partition(PartitionStrategy.BALANCED_OPTIMAL, labels, num_groups)
