"""Activation policies (method.md section 5): inactive students cost nothing, K = N is the full
ensemble, random K and all-subsets draws, the per-sample cascade, dropout training, noise and
the energy of a policy point. One tiny 4-student ensemble, dropout-trained (K = 2) on digits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sne_loihi.errors import ConfigError

N_STUDENTS, TRAIN_K = 4, 2


@dataclass
class Trained:
    model: torch.nn.Module
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_train: torch.Tensor
    y_train: torch.Tensor
    batches: list[tuple[list[bool], list[torch.Tensor]]]  # (active, rates) seen by the loss


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """``train_students`` with ``train_active = 2``, recording what every batch's loss saw."""
    from sne_loihi.config import DataConfig, EnsembleConfig, RunConfig, StudentConfig, TrainConfig
    from sne_loihi.data import load_dataset
    from sne_loihi.partition import fixed_partition
    from sne_loihi.train import students as train_mod

    cfg = RunConfig(
        data=DataConfig(name="digits", max_train=300, max_test=60),
        student=StudentConfig(arch="digits_tiny", time_steps=2),
        ensemble=EnsembleConfig(num_students=N_STUDENTS, alpha=0.0, train_active=TRAIN_K),
        train=TrainConfig(epochs=3, batch_size=30, lr=3e-2, threads=1, device="cpu"),
    )
    data = load_dataset(cfg.data, 0)
    batches: list[tuple[list[bool], list[torch.Tensor]]] = []
    real_loss = train_mod.ensemble_loss

    def recording_loss(logits, labels, rates, targets, groups, alpha, active_n=None):  # noqa: ANN001, ANN202
        batches.append((list(active_n), [r.detach().clone() for r in rates]))
        return real_loss(logits, labels, rates, targets, groups, alpha, active_n)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "ensemble_loss", recording_loss)
        result = train_mod.train_students(cfg, data, None, fixed_partition(16, N_STUDENTS, 0), torch.ones(16),
                                          tmp_path_factory.mktemp("dropout"), progress=False)
    return Trained(result.model.eval(), data.x_test_nchw, data.y_test, data.x_train_nchw, data.y_train, batches)


@pytest.fixture(scope="module")
def table(trained: Trained):  # noqa: ANN201
    from sne_loihi.ensemble.policies import student_table

    return student_table(trained.model, trained.x_test, trained.y_test, batch_size=25)


@pytest.fixture(scope="module")
def cascade_head(trained: Trained) -> torch.nn.Linear:
    from sne_loihi.ensemble.cascade import train_cascade_head
    from sne_loihi.ensemble.policies import student_table

    train_table = student_table(trained.model, trained.x_train, trained.y_train)
    return train_cascade_head(trained.model.head, train_table, epochs=15, seed=0)


def ops_by_running(model: torch.nn.Module, x: torch.Tensor, mask_sn: torch.Tensor) -> torch.Tensor:
    """``[S, N]`` ops of the ensemble actually run with a per-sample mask: every student's
    counted ops scattered to the samples it ran on (zero elsewhere)."""
    from sne_loihi.cost import count_student_ops

    with torch.no_grad():
        out = model(x, mask_sn)
    ops = torch.zeros(len(x), model.num_students, dtype=torch.float64)
    for i, (student, sout, idx) in enumerate(zip(model.students, out.student_outputs, out.sample_index)):
        if sout is not None:
            ops[idx, i] = count_student_ops(student, sout).total_n.cpu()
    return ops


def test_students_are_alive(table) -> None:  # noqa: ANN001
    """The checks below compare non-trivial numbers: every student spikes and costs ops."""
    assert all(r.sum() > 0 for r in table.rates)
    assert bool(((table.macs_sn + table.acs_sn) > 0).all())


# ---- inactive students are never counted; K = N is the full ensemble ---------------------------

def test_evaluate_with_a_subset_counts_only_the_active_students(trained: Trained, table) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.evaluate import evaluate_ensemble

    res = evaluate_ensemble(trained.model, trained.x_test, trained.y_test, active=[0, 2], batch_size=25)
    assert res.student_active_fraction == [1.0, 0.0, 1.0, 0.0]
    assert all(v == 0.0 for v in res.student_ops[1] + res.student_ops[3])
    # the same numbers as each active student counted alone, and as the table's columns 0 and 2
    alone = [evaluate_ensemble(trained.model, trained.x_test, trained.y_test, active=[i], batch_size=25)
             for i in (0, 2)]
    assert res.student_ops[0] == alone[0].student_ops[0] and res.student_ops[2] == alone[1].student_ops[2]
    assert res.macs_per_sample == pytest.approx(float(table.macs_sn[:, [0, 2]].sum(1).mean()), rel=1e-12)
    assert res.acs_per_sample == pytest.approx(float(table.acs_sn[:, [0, 2]].sum(1).mean()), rel=1e-12)
    full = evaluate_ensemble(trained.model, trained.x_test, trained.y_test, batch_size=25)
    assert res.ops_per_sample < full.ops_per_sample


def test_policy_points_and_per_sample_masks_count_only_what_ran(trained: Trained, table) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.policies import policy_point, subset_points

    for point in subset_points(trained.model.head, table, 2):
        subset = [int(i) for i in point.setting.split(",")]
        assert point.macs == pytest.approx(float(table.macs_sn[:, subset].sum(1).mean()), rel=1e-12)
        assert point.acs == pytest.approx(float(table.acs_sn[:, subset].sum(1).mean()), rel=1e-12)
        assert point.mean_active == 2.0
    # an arbitrary per-sample mask (some samples run one student, some three): the table's
    # cost equals the ops of the ensemble really run with that mask, sample by sample
    mask = torch.rand(len(trained.y_test), N_STUDENTS, generator=torch.Generator().manual_seed(4)) < 0.5
    mask[:, 1] |= ~mask.any(1)
    ran = ops_by_running(trained.model, trained.x_test, mask)
    assert bool((ran[~mask] == 0).all()) and bool((ran[mask] > 0).all())
    assert torch.equal(ran, (table.macs_sn + table.acs_sn) * mask)
    point = policy_point("test", "mask", trained.model.head, table, mask)
    assert point.macs + point.acs == pytest.approx(float(ran.sum(1).mean()), rel=1e-12)
    assert point.mean_active == pytest.approx(float(mask.sum(1).double().mean()))


def test_k_equals_n_reproduces_the_full_ensemble_exactly(trained: Trained, table) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.ensemble.policies import head_logits, random_k_point, subset_points

    full = evaluate_ensemble(trained.model, trained.x_test, trained.y_test, batch_size=25)
    k_n = evaluate_ensemble(trained.model, trained.x_test, trained.y_test, active=N_STUDENTS, batch_size=25)
    assert torch.equal(k_n.logits, full.logits) and k_n.accuracy == full.accuracy
    assert (k_n.macs_per_sample, k_n.acs_per_sample) == (full.macs_per_sample, full.acs_per_sample)
    logits = head_logits(trained.model.head, table, torch.ones(len(trained.y_test), N_STUDENTS, dtype=torch.bool))
    assert torch.equal(logits, full.logits)
    (all_subset,) = subset_points(trained.model.head, table, N_STUDENTS)
    random_n = random_k_point(trained.model.head, table, N_STUDENTS, batch_size=25)
    for point in (all_subset, random_n):
        assert point.accuracy == full.accuracy
        assert point.macs == pytest.approx(full.macs_per_sample, rel=1e-12)
        assert point.acs == pytest.approx(full.acs_per_sample, rel=1e-12)
    assert 0.2 < full.accuracy < 1.0  # trained a little: better than chance (0.1)


# ---- random K and all subsets ---------------------------------------------------------------------

def test_random_k_draws_k_distinct_students_per_batch_seeded() -> None:
    from sne_loihi.ensemble.policies import random_k_mask

    mask = random_k_mask(103, N_STUDENTS, 2, batch_size=10, seed=3)
    assert mask.shape == (103, N_STUDENTS) and bool((mask.sum(1) == 2).all())
    for start in range(0, 103, 10):  # one draw per batch, shared by its samples
        assert bool((mask[start:start + 10] == mask[start]).all())
    assert len({tuple(mask[s].tolist()) for s in range(0, 103, 10)}) > 1
    assert torch.equal(mask, random_k_mask(103, N_STUDENTS, 2, batch_size=10, seed=3))
    assert not torch.equal(mask, random_k_mask(103, N_STUDENTS, 2, batch_size=10, seed=4))
    for bad in (0, N_STUDENTS + 1):
        with pytest.raises(ConfigError, match="1..4"):
            random_k_mask(10, N_STUDENTS, bad)


def test_random_k_point_equals_evaluate_with_the_same_draws(trained: Trained, table) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.ensemble.policies import random_k_point

    for k in (1, 3):
        point = random_k_point(trained.model.head, table, k, batch_size=25, seed=7)
        ev = evaluate_ensemble(trained.model, trained.x_test, trained.y_test, active=k, batch_size=25, seed=7)
        assert point.accuracy == ev.accuracy and point.mean_active == k
        assert point.macs == pytest.approx(ev.macs_per_sample, rel=1e-12)
        assert point.acs == pytest.approx(ev.acs_per_sample, rel=1e-12)
        # 60 samples in batches of 25: 3 draws of k students each
        assert sum(ev.student_active_fraction) == pytest.approx(k)


def test_all_subsets_mode_gives_n_choose_k_points(trained: Trained, table) -> None:  # noqa: ANN001
    from sne_loihi.analysis.activation import ActivationAnalysis
    from sne_loihi.ensemble.policies import subset_points

    analysis = ActivationAnalysis()
    for k in range(1, N_STUDENTS + 1):
        points = subset_points(trained.model.head, table, k)
        assert len(points) == math.comb(N_STUDENTS, k)
        assert len({p.setting for p in points}) == len(points)
        analysis.subsets[k] = points
    mean = analysis.subset_mean(2)
    assert mean["subsets"] == 6
    assert mean["acs"] == pytest.approx(sum(p.acs for p in analysis.subsets[2]) / 6)
    # every student is in half of the pairs: the mean pair costs half the full ensemble
    assert mean["macs"] + mean["acs"] == pytest.approx(float((table.macs_sn + table.acs_sn).sum(1).mean()) / 2)
    with pytest.raises(ConfigError, match="1..4"):
        subset_points(trained.model.head, table, 0)


# ---- per-sample cascade ---------------------------------------------------------------------------

def test_cascade_extremes_first_student_only_and_full_ensemble(trained: Trained, table, cascade_head) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.policies import cascade_mask, cascade_points, head_logits

    order = [2, 0, 3, 1]
    assert bool(cascade_mask(cascade_head, table, 1.01, order).all())
    first_only = cascade_mask(cascade_head, table, 0.0, order)
    assert bool(first_only[:, 2].all()) and not bool(first_only[:, [0, 1, 3]].any())
    hi, lo = cascade_points(cascade_head, table, [1.01, 0.0], order)
    everything = torch.ones(len(trained.y_test), N_STUDENTS, dtype=torch.bool)
    full_acc = float((head_logits(cascade_head, table, everything).argmax(-1) == table.labels).float().mean())
    assert hi.accuracy == full_acc and hi.mean_active == N_STUDENTS
    assert hi.macs + hi.acs == pytest.approx(float((table.macs_sn + table.acs_sn).sum(1).mean()), rel=1e-12)
    assert lo.mean_active == 1.0
    assert lo.macs + lo.acs == pytest.approx(float((table.macs_sn[:, 2] + table.acs_sn[:, 2]).mean()), rel=1e-12)


def test_cascade_cost_grows_with_threshold_and_masks_are_prefixes(trained: Trained, table, cascade_head) -> None:  # noqa: ANN001
    from sne_loihi.analysis.activation import DEFAULT_THRESHOLDS
    from sne_loihi.ensemble.policies import cascade_mask, cascade_points, head_logits

    order = [2, 0, 3, 1]
    points = cascade_points(cascade_head, table, DEFAULT_THRESHOLDS, order)
    costs = [p.macs + p.acs for p in points]
    assert all(a <= b for a, b in zip(costs, costs[1:])) and costs[0] < costs[-1]
    assert all(a.mean_active <= b.mean_active for a, b in zip(points, points[1:]))
    rank = torch.tensor([order.index(i) for i in range(N_STUDENTS)])
    conf = []  # [k - 1]: top probability of every sample on the first k students of the order
    for k in range(1, N_STUDENTS + 1):
        prefix = (rank < k).expand(len(trained.y_test), N_STUDENTS)
        conf.append(torch.softmax(head_logits(cascade_head, table, prefix), -1).max(-1).values)
    threshold = float(conf[0].median())  # about half the samples stop after the first student
    mask = cascade_mask(cascade_head, table, threshold, order)
    counts = mask.sum(1)
    assert len(set(counts.tolist())) > 1  # the decision really is per sample
    assert torch.equal(mask, rank.unsqueeze(0) < counts.unsqueeze(1))  # prefixes of the order
    # the definition: a sample stops at the first prefix whose top probability reaches the
    # threshold (or after the last student), and every shorter prefix stayed below it
    for k in range(1, N_STUDENTS + 1):
        assert bool((conf[k - 1][counts > k] < threshold).all())
        if k < N_STUDENTS:
            assert bool((conf[k - 1][counts == k] >= threshold).all())
    # and its cost is that of the ensemble run with the per-sample mask (inactive: 0 ops)
    ran = ops_by_running(trained.model, trained.x_test, mask)
    assert torch.equal(ran, (table.macs_sn + table.acs_sn) * mask)


def test_prefix_masks_and_cascade_order_validation(table) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.cascade import prefix_masks
    from sne_loihi.ensemble.policies import cascade_mask

    order = [3, 1, 0, 2]
    masks = prefix_masks(400, order, torch.Generator().manual_seed(0))
    rank = torch.tensor([order.index(i) for i in range(4)])
    counts = masks.sum(1)
    assert torch.equal(masks, rank.unsqueeze(0) < counts.unsqueeze(1))
    assert set(counts.tolist()) == {1, 2, 3, 4}
    assert torch.equal(masks, prefix_masks(400, order, torch.Generator().manual_seed(0)))
    partial = prefix_masks(50, [2, 0], torch.Generator().manual_seed(1), num_students=4)
    assert not bool(partial[:, [1, 3]].any()) and bool(partial[:, 2].all())
    head = torch.nn.Linear(sum(r.shape[1] for r in table.rates), 10)
    for bad, match in (([0, 0, 1], "names student 0 more than once"), ([4], "out of range"), ([], "at least one")):
        with pytest.raises(ConfigError, match=match):
            cascade_mask(head, table, 0.5, bad)


# ---- dropout training (--train-active K) ----------------------------------------------------------

def test_dropout_training_zeroes_inactive_students_in_every_batch(trained: Trained) -> None:
    from sne_loihi.train.students import _eval_active, random_active

    assert len(trained.batches) == 3 * 10  # 3 epochs of 300 samples in batches of 30
    drawn = set()
    for active, rates in trained.batches:
        assert sum(active) == TRAIN_K
        drawn.add(tuple(active))
        for on, rate in zip(active, rates):
            assert bool((rate == 0).all()) if not on else rate.shape[0] == 30
    assert len(drawn) > 1
    assert any(bool(r.any()) for active, rates in trained.batches for on, r in zip(active, rates) if on)
    gen = torch.Generator().manual_seed(0)
    assert random_active(4, 0, gen).all() and random_active(4, 4, gen).all()
    assert int(random_active(4, 3, gen).sum()) == 3
    assert _eval_active(TRAIN_K, N_STUDENTS) == TRAIN_K and _eval_active(0, N_STUDENTS) == N_STUDENTS


def test_train_active_larger_than_n_is_refused(tmp_path: Path) -> None:
    from sne_loihi.config import EnsembleConfig, RunConfig
    from sne_loihi.partition import fixed_partition
    from sne_loihi.train.students import train_students

    cfg = RunConfig(ensemble=EnsembleConfig(num_students=2, alpha=0.0, train_active=3))
    with pytest.raises(ConfigError, match="train_active 3 exceeds the 2 students"):
        train_students(cfg, None, None, fixed_partition(4, 2, 0), torch.ones(4), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


# ---- noise sweep ----------------------------------------------------------------------------------

def test_pixel_noise_is_clipped_seeded_and_shared_by_models() -> None:
    from sne_loihi.analysis.noise import add_pixel_noise, noise_sweep

    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    noisy = add_pixel_noise(x, 0.5, torch.Generator().manual_seed(1))
    assert noisy.min() == 0.0 and noisy.max() == 1.0  # clipped, and the clip is reached
    assert torch.equal(noisy, add_pixel_noise(x, 0.5, torch.Generator().manual_seed(1)))
    assert torch.equal(add_pixel_noise(x, 0.0, torch.Generator().manual_seed(1)), x)
    inner = (noisy > 0) & (noisy < 1)
    assert 0.3 < float((noisy - x)[inner].std()) < 0.6

    y = torch.arange(20) % 3
    seen: dict[str, list[torch.Tensor]] = {"a": [], "b": []}

    def model(name: str):  # noqa: ANN202
        def predict(images: torch.Tensor) -> torch.Tensor:
            seen[name].append(images.clone())
            return (images.flatten(1).mean(1) * 5).long() % 3
        return predict

    results = noise_sweep({"a": model("a"), "b": model("b")}, x, y, [0.0, 0.1], repeats=3, seed=2)
    assert [(r.model, r.sigma, r.repeats) for r in results] == [
        ("a", 0.0, 3), ("b", 0.0, 3), ("a", 0.1, 3), ("b", 0.1, 3)]
    assert all(torch.equal(p, q) for p, q in zip(seen["a"], seen["b"]))  # same noisy images
    assert len(seen["a"]) == 6 and not torch.equal(seen["a"][3], seen["a"][4])  # a new draw per repeat
    assert results[0].sem == 0.0  # sigma 0: every repeat is the clean accuracy
    again = noise_sweep({"a": model("a")}, x, y, [0.1], repeats=3, seed=2)
    assert (again[0].mean, again[0].sem) == (results[2].mean, results[2].sem)


def test_mean_sem_and_option_errors() -> None:
    from scipy import stats

    from sne_loihi.analysis.noise import mean_sem, noise_sweep, parse_levels

    values = [0.9, 0.85, 0.88, 0.91, 0.8]
    mean, sem = mean_sem(values)
    assert mean == pytest.approx(sum(values) / 5) and sem == pytest.approx(float(stats.sem(values)))
    assert mean_sem([0.7]) == (0.7, 0.0)
    assert parse_levels("0.01, 0.03,0.05") == [0.01, 0.03, 0.05]
    for text in ("a,b", ""):
        with pytest.raises(ConfigError):
            parse_levels(text)
    x, y = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ConfigError, match="repeats"):
        noise_sweep({}, x, y, [0.1], repeats=0)
    with pytest.raises(ConfigError, match=">= 0"):
        noise_sweep({}, x, y, [-0.1], repeats=1)


# ---- energy of a policy point ---------------------------------------------------------------------

def test_point_energy_per_profile() -> None:
    from sne_loihi.analysis.activation import point_energy_nj
    from sne_loihi.cost import ENERGY_PROFILES
    from sne_loihi.ensemble.policies import PolicyPoint

    point = PolicyPoint("random", "K=2", 0.9, macs=1000.0, acs=20000.0, mean_active=2.0, neuron_updates=300.0)
    # 45 nm: MACs and ACs priced apart, neuron updates not charged
    assert point_energy_nj(point, ENERGY_PROFILES.get("cmos45nm")()) == pytest.approx((1000 * 4.6 + 20000 * 0.9) / 1000)
    # Loihi: every synaptic event 23.6 pJ, every neuron update 81 pJ
    assert point_energy_nj(point, ENERGY_PROFILES.get("loihi")()) == pytest.approx((21000 * 23.6 + 300 * 81.0) / 1000)


def test_policy_points_count_the_active_students_neuron_updates(trained: Trained, table) -> None:  # noqa: ANN001
    from sne_loihi.cost import neuron_updates_per_sample
    from sne_loihi.ensemble.policies import random_k_point, subset_points

    per_student = [neuron_updates_per_sample(s.spec) for s in trained.model.students]
    # digits_tiny on 8x8 (16 outputs over 4 students): conv 4x4x4 + dense 32 + dense 4, T = 2
    assert per_student == [(64 + 32 + 4) * 2] * N_STUDENTS
    for point in subset_points(trained.model.head, table, 3):
        assert point.neuron_updates == sum(per_student[int(i)] for i in point.setting.split(","))
    assert random_k_point(trained.model.head, table, 2, batch_size=25).neuron_updates == 2 * per_student[0]


@pytest.mark.parametrize("bad", ["all", "0,1", [0.5], [None]])
def test_student_indices_that_are_not_integers_are_one_error(bad: object) -> None:
    from sne_loihi.errors import SimulationError
    from sne_loihi.indices import check_student_indices

    with pytest.raises(SimulationError, match="active student"):
        check_student_indices(bad, 4, "active student", SimulationError)
