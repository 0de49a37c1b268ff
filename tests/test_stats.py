"""Statistics over seeds (sne_loihi.analysis.stats) and the equal-cost comparison of policies."""

from __future__ import annotations

import math

import pytest

from sne_loihi.analysis.stats import (
    Claim,
    Verdict,
    estimate,
    format_estimate,
    mean_sem,
    paired_difference,
    t_quantile,
    verdict,
)
from sne_loihi.errors import ConfigError


def test_mean_sem_and_t_interval_match_hand_computation() -> None:
    values = [1.0, 2.0, 4.0]
    mean, sem = mean_sem(values)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert mean == pytest.approx(7 / 3) and sem == pytest.approx(sd / math.sqrt(3))
    assert t_quantile(0.95, 2) == pytest.approx(4.302653, rel=1e-6)  # standard t table
    assert t_quantile(0.95, 1) == pytest.approx(12.706205, rel=1e-6)
    est = estimate(values)
    assert est.n == 3 and est.ci_low == pytest.approx(mean - 4.302653 * sem, rel=1e-6)
    assert est.ci_high == pytest.approx(mean + 4.302653 * sem, rel=1e-6)
    single = estimate([0.7])
    assert (single.mean, single.sem, single.ci_low, single.ci_high) == (0.7, 0.0, None, None)
    assert format_estimate(est, digits=1) == f"{mean:.1f} +/- {sem:.1f} [{est.ci_low:.1f}, {est.ci_high:.1f}]"
    assert format_estimate(single, signed=True) == "+0.70 +/- 0.00"
    with pytest.raises(ConfigError, match="no values"):
        mean_sem([])
    with pytest.raises(ConfigError, match="degree of freedom"):
        t_quantile(0.95, 0)


def test_paired_difference_pairs_by_seed_and_ignores_unmatched() -> None:
    a = {0: 10.0, 1: 12.0, 2: 11.0, 5: 99.0}
    b = {0: 9.0, 1: 10.0, 2: 11.0, 7: -99.0}
    d = paired_difference(a, b)
    assert d.n == 3 and d.mean == pytest.approx(1.0)
    assert d.sem == pytest.approx(estimate([1.0, 2.0, 0.0]).sem)
    with pytest.raises(ConfigError, match="at least one seed"):
        paired_difference({0: 1.0}, {1: 1.0})


@pytest.mark.parametrize(("values", "claim", "expected"), [
    ([1.0, 1.2, 0.9], Claim("a beats b"), Verdict.HOLDS),
    ([-1.0, -1.2, -0.9], Claim("a beats b"), Verdict.FAILS),
    ([-1.0, 1.2, 0.1], Claim("a beats b"), Verdict.UNRESOLVED),  # interval contains 0
    ([3.0], Claim("a beats b"), Verdict.ONE_SEED_FOR),  # one seed: no interval, only the side of its point
    ([-3.0], Claim("a beats b"), Verdict.ONE_SEED_AGAINST),
    ([8.0], Claim("within 15 points", 1, -15.0), Verdict.ONE_SEED_FOR),
    ([9.5], Claim("10x less energy", 1, 10.0), Verdict.ONE_SEED_AGAINST),
    ([-1.0, -1.2, -0.9], Claim("a below b", direction=-1), Verdict.HOLDS),
    ([12.0, 12.5, 11.8], Claim("ratio above 10", margin=10.0), Verdict.HOLDS),
    ([8.0, 8.5, 7.9], Claim("ratio above 10", margin=10.0), Verdict.FAILS),
    ([-5.0, -6.0, -5.5], Claim("within 15 points", margin=-15.0), Verdict.HOLDS),
])
def test_verdict(values: list[float], claim: Claim, expected: Verdict) -> None:
    assert verdict(claim, estimate(values)) == expected


def test_bad_claim_direction() -> None:
    with pytest.raises(ConfigError, match="direction"):
        Claim("x", direction=0)


def test_equal_cost_rows_interpolate_the_best_cascade_point() -> None:
    from sne_loihi.analysis.activation import accuracy_at_cost, equal_cost_rows
    from sne_loihi.ensemble.policies import PolicyPoint

    def pt(ops: float, acc: float, k: float = 1.0) -> PolicyPoint:
        return PolicyPoint("p", "s", acc, 0.0, ops, k)

    cascade = [pt(100, 0.5), pt(300, 0.9), pt(200, 0.4)]  # unsorted; at 200 the best at or below is 0.5
    assert accuracy_at_cost(cascade, 50) is None
    assert accuracy_at_cost(cascade, 200) == pytest.approx(0.5)
    assert accuracy_at_cost(cascade, 250) == pytest.approx(0.7)  # 0.5 -> 0.9 between 200 and 300
    assert accuracy_at_cost(cascade, 1000) == pytest.approx(0.9)
    random = [pt(80, 0.3, 1), pt(250, 0.6, 2), pt(400, 0.95, 3)]
    rows = equal_cost_rows(random, cascade)
    assert [r["k"] for r in rows] == [1, 2]  # K = N left out
    assert rows[0]["per_sample_accuracy"] is None and rows[0]["difference"] is None
    assert rows[1]["per_sample_accuracy"] == pytest.approx(0.7)
    assert rows[1]["difference"] == pytest.approx(0.1)


def _report(teacher: float, ens: float, noisy_t: float, noisy_e: float, rk: dict[int, float], drop1: float) -> dict:
    """A minimal run report.json payload (accuracies in [0, 1])."""
    point = lambda k, acc: {"setting": f"K={k}", "accuracy": acc, "acs": 1e6 * k, "macs": 0.0}  # noqa: E731
    return {
        "config": {"ensemble": {"num_students": 2}},
        "evaluation": {"rows": [
            {"model": "teacher t", "accuracy": teacher, "macs": 4e6, "acs": 0.0, "energy_pj": 4e6 * 4.6},
            {"model": "ensemble 2xs", "accuracy": ens, "macs": 1e5, "acs": 2e6, "energy_pj": 1e5 * 4.6 + 2e6 * 0.9}]},
        "activation": {"random_k": [point(k, a) for k, a in rk.items()], "equal_cost": {}},
        "dropout": {"1": {"accuracy": drop1, "acs": 1.5e6}},
        "noise": [{"model": "teacher", "sigma": 0.05, "mean": noisy_t, "sem": 0.0, "repeats": 3},
                  {"model": "ensemble 2x", "sigma": 0.05, "mean": noisy_e, "sem": 0.0, "repeats": 3}],
    }


def test_reproduction_sections_pair_seeds_and_judge_claims() -> None:
    from sne_loihi.analysis.reproduction import build_sections

    reports = {0: _report(0.90, 0.80, 0.70, 0.78, {1: 0.60, 2: 0.80}, 0.70),
               1: _report(0.92, 0.83, 0.74, 0.80, {1: 0.62, 2: 0.83}, 0.73),
               2: _report(0.91, 0.81, 0.70, 0.80, {1: 0.60, 2: 0.81}, 0.71)}
    secs = {s.key: s for s in build_sections(reports)}
    assert "table3" not in secs  # no partition benchmark given
    claims = {c.quantity: c for s in secs.values() for c in s.claims}
    drop = claims["teacher drop - ensemble drop at sigma 0.05"]
    assert drop.per_seed == pytest.approx({0: 18.0, 1: 15.0, 2: 20.0})  # (90-70)-(80-78), ...
    assert drop.verdict == Verdict.HOLDS
    d6 = claims["dropout acc - random acc at K=1"]
    assert d6.per_seed == pytest.approx({0: 10.0, 1: 11.0, 2: 11.0}) and d6.paper is None  # N = 2: no paper row
    assert claims["dropout ACs - random ACs at K=1"].per_seed == pytest.approx({0: 0.5, 1: 0.5, 2: 0.5})
    gap = claims["ensemble - teacher accuracy"]
    assert gap.per_seed == pytest.approx({0: -10.0, 1: -9.0, 2: -10.0}) and gap.verdict == Verdict.HOLDS  # within 15
    ratio = 4e6 * 4.6 / (1e5 * 4.6 + 2e6 * 0.9)
    assert claims["energy ratio teacher / ensemble"].estimate.mean == pytest.approx(ratio)
    # no equal-cost rows and no cascade-head random K in these reports: left out, not zeros
    assert not any(c.table == "per-sample" for c in claims.values())
    assert [r.label for r in secs["like_for_like"].rows] == ["random K=1, ensemble head", "random K=2, ensemble head"]
