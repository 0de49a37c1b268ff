"""Feature partitions, capacity rule, L_sim and teacher fine-tuning (method.md section 4)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from sne_loihi.config import PartitionStrategy
from sne_loihi.errors import CheckpointError, ConfigError
from sne_loihi.partition import (
    EQUAL_SIZE_STRATEGIES,
    PARTITIONERS,
    Partition,
    balanced_assignment,
    group_widths,
    compute_partition,
    contiguous_partition,
    finetune_teacher,
    fixed_partition,
    greedy_rebalance,
    similarity_loss,
)

BALANCED = sorted(s.value for s in EQUAL_SIZE_STRATEGIES)


def relu_features(samples: int = 200, dim: int = 24, seed: int = 0, dead: tuple[int, ...] = ()) -> np.ndarray:
    """Post-ReLU-like features with correlated column blocks and optional dead columns."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(samples, 4))
    mix = rng.normal(size=(4, dim)) + 0.3 * rng.normal(size=(1, dim))
    feats = np.maximum(latent @ mix + 0.3 * rng.normal(size=(samples, dim)), 0.0)
    feats[:, list(dead)] = 0.0
    return feats


def covers_once(part: Partition) -> bool:
    flat = sorted(j for g in part.groups for j in g)
    return flat == list(range(part.feature_dim))


# ---- Partition dataclass ------------------------------------------------------------------


def test_partition_roundtrip_and_canonical_order(tmp_path):
    part = fixed_partition(10, 3, seed=1)
    assert part.sizes == tuple(len(g) for g in part.groups) and sorted(part.sizes) == [3, 3, 4]
    assert part.num_groups == 3 and covers_once(part)
    assert all(list(g) == sorted(g) for g in part.groups)
    assert [g[0] for g in part.groups] == sorted(g[0] for g in part.groups)
    path = tmp_path / "p.json"
    part.save(path)
    assert Partition.load(path) == part
    assert Partition.load(path, feature_dim=10) == part
    assert Partition.from_dict(json.loads(path.read_text())) == part


def test_fixed_partition_is_seeded():
    assert fixed_partition(32, 4, seed=3) == fixed_partition(32, 4, seed=3)
    assert fixed_partition(32, 4, seed=3) != fixed_partition(32, 4, seed=4)
    assert fixed_partition(32, 4, seed=3).sizes == (8, 8, 8, 8)


def test_contiguous_partition():
    part = contiguous_partition(12, 4)
    assert part.groups == ((0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11))
    assert part.strategy == PartitionStrategy.FINETUNE
    with pytest.raises(ConfigError, match="divisible"):
        contiguous_partition(10, 4)


@pytest.mark.parametrize(
    ("groups", "dim", "message"),
    [
        (((0, 1), (1, 2)), 3, "more than one group"),
        (((0,), (2,)), 3, "unassigned"),
        (((0, 1, 2), ()), 3, "empty"),
        (((0, 1), (2, 3)), 3, "outside"),
        (((0, 1), (2,)), 0, "positive"),
        (((0, 1), (2,)), 10**13, "unassigned"),  # a corrupt file's huge D: one line, no huge allocation
    ],
)
def test_invalid_partitions_raise_one_line_errors(groups, dim, message):
    with pytest.raises(ConfigError, match=message) as info:
        Partition(PartitionStrategy.FIXED, groups, dim)
    assert "\n" not in str(info.value)


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Partition.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        Partition.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"strategy": "fixed", "feature_dim": 3, "groups": [[0, 1], [1, 2]]}))
    with pytest.raises(CheckpointError, match="invalid partition"):
        Partition.load(wrong)
    ok = tmp_path / "ok.json"
    fixed_partition(16, 4, seed=0).save(ok)
    with pytest.raises(CheckpointError, match="splits 16 features but the teacher has 64") as info:
        Partition.load(ok, feature_dim=64)
    assert "\n" not in str(info.value)


# ---- strategies ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", PARTITIONERS.names())
def test_every_strategy_gives_a_valid_partition(strategy):
    feats = relu_features(dead=(3, 11))
    part = compute_partition(strategy, feats, 4, seed=0)
    assert part.strategy == PartitionStrategy(strategy)
    assert part.feature_dim == 24 and part.num_groups == 4 and covers_once(part)
    assert min(part.sizes) >= 1
    assert compute_partition(strategy, feats, 4, seed=0) == part  # deterministic for a seed


@pytest.mark.parametrize("strategy", BALANCED)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_strategies_make_equal_groups(strategy, seed):
    feats = np.random.default_rng(seed).random((150, 36)) ** 3  # skewed, unequal clusters
    part = compute_partition(strategy, feats, 6, seed=seed)
    assert part.sizes == (6,) * 6 and covers_once(part)


def test_kmeans_and_agglomerative_recover_planted_groups():
    """Columns built from 3 orthogonal sources of unequal multiplicity are grouped by source."""
    rng = np.random.default_rng(0)
    sources = np.abs(rng.normal(size=(300, 3)))
    owner = np.array([0] * 6 + [1] * 3 + [2] * 9)
    rng.shuffle(owner)
    feats = sources[:, owner] * rng.uniform(0.5, 2.0, size=owner.size) + 0.01 * rng.random((300, owner.size))
    expected = {tuple(np.flatnonzero(owner == k)) for k in range(3)}
    for strategy in ("agglomerative", "kmeans"):
        part = compute_partition(strategy, feats, 3, seed=0)
        assert set(part.groups) == expected, strategy


def test_agglomerative_matches_scipy_complete_cosine():
    from scipy.cluster.hierarchy import fcluster, linkage

    feats = np.random.default_rng(5).random((40, 15))
    part = compute_partition(PartitionStrategy.AGGLOMERATIVE, feats, 4, seed=0)
    ref_labels = fcluster(linkage(feats.T, method="complete", metric="cosine"), t=4, criterion="maxclust")
    ref = {tuple(np.flatnonzero(ref_labels == k)) for k in np.unique(ref_labels)}
    assert len(ref) == 4 and set(part.groups) == ref


def test_agglomerative_asks_sklearn_for_complete_cosine(monkeypatch):
    import sklearn.cluster

    seen = {}
    real = sklearn.cluster.AgglomerativeClustering

    class Spy(real):
        def fit(self, x, y=None):
            seen.update(self.get_params())
            return super().fit(x, y)

    monkeypatch.setattr(sklearn.cluster, "AgglomerativeClustering", Spy)
    compute_partition("agglomerative", relu_features(), 3, seed=0)
    assert seen["metric"] == "cosine" and seen["linkage"] == "complete" and seen["n_clusters"] == 3


def test_dead_columns_are_shared_in_proportion_to_live_group_sizes():
    dead = 12
    feats = relu_features(dim=24, dead=tuple(range(dead)))
    for strategy in ("agglomerative", "kmeans"):
        live_only = compute_partition(strategy, feats[:, dead:], 3, seed=0)
        part = compute_partition(strategy, feats, 3, seed=0)
        assert covers_once(part)
        live_groups = [tuple(j - dead for j in g if j >= dead) for g in part.groups]
        assert set(live_groups) == set(live_only.groups), strategy  # dead columns do not move live ones
        live_sizes = np.array([len(g) for g in live_groups])
        assert len(set(live_sizes)) > 1, strategy  # the test needs unequal clusters
        quota = live_sizes * 24 / live_sizes.sum()  # each group keeps its share of the live features
        assert np.all(np.abs(np.array(part.sizes) - quota) < 1), (strategy, part.sizes, quota)
        assert np.all(np.array(part.sizes) >= live_sizes)


def test_balanced_kmeans_fills_deficits_with_dead_columns_before_moving_live_ones():
    dead = 6
    feats = relu_features(dim=20, dead=tuple(range(dead)))
    live_only = compute_partition("kmeans", feats[:, dead:], 2, seed=0)
    assert max(live_only.sizes) <= 10  # the dead columns can make up every deficit
    part = compute_partition("balanced-kmeans", feats, 2, seed=0)
    assert covers_once(part) and part.sizes == (10, 10)
    assert {tuple(j - dead for j in g if j >= dead) for g in part.groups} == set(live_only.groups)
    one_live = np.zeros((5, 8))
    one_live[:, 0] = 1.0
    with pytest.raises(ConfigError, match="only 1 of 8 teacher features"):
        compute_partition("agglomerative", one_live, 2, seed=0)


def test_greedy_rebalance_takes_closest_elements_from_excess_clusters():
    labels = np.array([0, 0, 0, 0, 0, 1])
    dist_to_1 = np.array([0.9, 0.2, 0.5, 0.1, 0.7, 0.0])
    dist = np.stack([np.zeros(6), dist_to_1], axis=1)
    out = greedy_rebalance(labels, dist, target=3)
    assert out.tolist() == [0, 1, 0, 1, 0, 1]


def test_balanced_assignment_is_optimal():
    rng = np.random.default_rng(0)
    dist = rng.random((6, 2))
    labels = balanced_assignment(dist, target=3)
    cost = dist[np.arange(6), labels].sum()
    best = min(
        dist[list(c), 0].sum() + dist[[j for j in range(6) if j not in c], 1].sum()
        for c in itertools.combinations(range(6), 3)
    )
    assert np.bincount(labels).tolist() == [3, 3] and cost == pytest.approx(best)


@pytest.mark.parametrize(
    ("strategy", "feats", "groups", "message"),
    [
        ("fixed", np.ones((5, 4)), 5, "cannot split 4"),
        ("kmeans", np.ones((5, 4)), 0, "positive integer"),
        ("nope", np.ones((5, 4)), 2, "unknown partition strategy 'nope'"),
        ("kmeans", np.ones((5, 4, 1)), 2, "matrix"),
        ("kmeans", np.full((5, 4), np.nan), 2, "NaN"),
        ("balanced-kmeans", np.random.default_rng(0).random((5, 10)), 4, "divisible"),
        ("balanced-optimal", np.random.default_rng(0).random((5, 10)), 4, "divisible"),
        ("finetune", np.random.default_rng(0).random((5, 10)), 4, "divisible"),
    ],
)
def test_compute_partition_input_errors(strategy, feats, groups, message):
    with pytest.raises(ConfigError, match=message) as info:
        compute_partition(strategy, feats, groups, seed=0)
    assert "\n" not in str(info.value)


# ---- capacity rule ------------------------------------------------------------------------


def test_group_widths_keep_total_cost_of_equal_split():
    sizes = [20, 15, 14, 15]
    widths = group_widths(sizes, base_width=0.5)
    d, n = sum(sizes), len(sizes)
    assert sum(w * w for w in widths) == pytest.approx(n * 0.5**2)
    for w, s in zip(widths, sizes):
        assert w * w / (0.5**2) == pytest.approx(n * s / d)
    assert group_widths([16, 16, 16, 16], 0.75) == [0.75] * 4
    with pytest.raises(ConfigError):
        group_widths([], 1.0)
    with pytest.raises(ConfigError):
        group_widths([3, 0], 1.0)
    with pytest.raises(ConfigError):
        group_widths([3, 3], 0.0)


# ---- L_sim --------------------------------------------------------------------------------


def test_lsim_antiparallel_chunks_is_two():
    f = torch.tensor([[3.0, 4.0, -0.3, -0.4], [0.0, 2.0, 0.0, -5.0]])
    assert float(similarity_loss(f, 2)) == pytest.approx(2.0, abs=1e-6)


def test_lsim_regular_tetrahedron_is_sqrt_8_over_3():
    verts = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
    scales = np.array([1.0, 0.1, 7.0, 2.0])[:, None]  # L_sim is scale-invariant per chunk
    f = torch.tensor((verts * scales).reshape(1, 12))
    assert float(similarity_loss(f, 4)) == pytest.approx(math.sqrt(8 / 3), abs=1e-9)


def test_lsim_matches_naive_definition_and_has_finite_gradients():
    torch.manual_seed(0)
    f = torch.relu(torch.randn(7, 12))
    f[0, 0:4] = 0.0  # a dead chunk
    f[1, 4:8] = f[1, 0:4]  # coincident chunks
    f.requires_grad_(True)
    loss = similarity_loss(f, 3)
    naive = []
    for row in f.detach():
        chunks = [c / c.norm() if c.norm() > 0 else c for c in row.split(4)]
        naive.append(np.mean([float((chunks[j] - chunks[l]).norm()) for j in range(3) for l in range(3) if j != l]))
    assert float(loss) == pytest.approx(float(np.mean(naive)), abs=1e-6)
    loss.backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().max() < 1e3


def test_lsim_of_non_negative_features_is_at_most_sqrt2():
    """Post-ReLU chunks live in the positive orthant: the bound is sqrt(2), reached by
    chunks with disjoint supports."""
    torch.manual_seed(1)
    f = torch.relu(torch.randn(500, 16))
    assert float(similarity_loss(f, 4)) <= math.sqrt(2) + 1e-6
    disjoint = torch.zeros(3, 16)
    for j in range(4):
        disjoint[:, 4 * j + j] = 1.0 + j
    assert float(similarity_loss(disjoint, 4)) == pytest.approx(math.sqrt(2), abs=1e-6)


def test_lsim_errors():
    with pytest.raises(ConfigError, match="at least 2"):
        similarity_loss(torch.ones(3, 4), 1)
    with pytest.raises(ConfigError, match="divisible"):
        similarity_loss(torch.ones(3, 10), 4)
    with pytest.raises(ConfigError, match="samples"):
        similarity_loss(torch.ones(10), 2)


# ---- teacher fine-tuning on real data -----------------------------------------------------


class TinyTeacher(nn.Module):
    """8x8 digits MLP teacher: features() is a 16-d post-ReLU layer."""

    def __init__(self, with_head: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16), nn.ReLU())
        self.classifier = nn.Linear(16, 10)
        if with_head:
            self.head = self.classifier
        self.feature_calls = 0

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        self.feature_calls += 1
        return self.body(x_nchw)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x_nchw))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return x[perm[:1300]], y[perm[:1300]], x[perm[1300:]], y[perm[1300:]]


def _test_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunks: int) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        acc = float((model.classifier(feats).argmax(-1) == y).float().mean())
        return float(similarity_loss(feats, chunks)), acc


@pytest.mark.parametrize("with_head", [True, False])
def test_finetuning_raises_lsim_on_digits(digits, with_head):
    x_tr, y_tr, x_te, y_te = digits
    torch.manual_seed(0)
    model = TinyTeacher(with_head)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(5):  # plain CE pre-training
        for idx in torch.randperm(len(y_tr)).split(64):
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    lsim_before, acc_before = _test_stats(model, x_te, y_te, 4)
    model.feature_calls = 0
    history = finetune_teacher(
        model, x_tr, y_tr, num_chunks=4, beta=-1.0, epochs=2, lr=2e-3, batch_size=64,
        device="cpu", progress=False,
    )
    calls = model.feature_calls
    lsim_after, acc_after = _test_stats(model, x_te, y_te, 4)
    print(f"head={with_head} L_sim {lsim_before:.3f} -> {lsim_after:.3f}, acc {acc_before:.3f} -> {acc_after:.3f}")
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) == {"epoch", "loss", "ce", "l_sim", "train_acc"}
    for h in history:
        assert h["loss"] == pytest.approx(h["ce"] - h["l_sim"], rel=1e-6, abs=1e-6)
    assert lsim_after > lsim_before + 0.05
    assert acc_after > 0.8
    steps = 2 * math.ceil(len(y_tr) / 64)
    # one features() per step with head(), two without (forward calls it again); +1 shape probe
    assert calls == (1 if with_head else 2) * steps + 1


def test_finetune_rejects_bad_settings(digits):
    x_tr, y_tr, _, _ = digits
    kwargs = dict(epochs=1, lr=1e-3, batch_size=64, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="beta must be negative"):
        finetune_teacher(TinyTeacher(True), x_tr, y_tr, num_chunks=4, beta=0.5, **kwargs)
    with pytest.raises(ConfigError, match="not divisible by 3"):
        finetune_teacher(TinyTeacher(True), x_tr, y_tr, num_chunks=3, beta=-1.0, **kwargs)
    with pytest.raises(ConfigError, match="labels"):
        finetune_teacher(TinyTeacher(True), x_tr, y_tr[:10], num_chunks=4, beta=-1.0, **kwargs)
