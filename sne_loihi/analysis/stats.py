"""Statistics over seeds: mean +/- SEM, Student-t confidence intervals, paired differences and
the verdict on a relative claim.

Pure functions on plain numbers (no torch), so a report's arithmetic is unit-tested apart
from the runs that feed it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sne_loihi.errors import ConfigError


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for a single value).

    Raises:
        ConfigError: No values.
    """
    n = len(values)
    if n == 0:
        raise ConfigError("mean of no values")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t quantile: the ``t`` with ``P(|T| <= t) = confidence`` for ``dof``
    degrees of freedom (``scipy.stats.t``)."""
    from scipy.stats import t

    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if dof < 1:
        raise ConfigError(f"a t interval needs at least 1 degree of freedom, got {dof}")
    return float(t.ppf(0.5 + confidence / 2.0, dof))


@dataclass(frozen=True)
class Estimate:
    """Mean over ``n`` values (seeds) with its SEM and two-sided Student-t interval.

    ``ci_low``/``ci_high`` are ``None`` when ``n < 2`` (no interval can be formed).
    """

    mean: float
    sem: float
    n: int
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def contains(self, value: float) -> bool | None:
        """Whether ``value`` lies inside the interval (``None``: no interval)."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low <= value <= self.ci_high


def estimate(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean +/- SEM of ``values`` and the t interval ``mean +/- t(n-1) * SEM``."""
    vals = [float(v) for v in values]
    mean, sem = mean_sem(vals)
    if len(vals) < 2:
        return Estimate(mean, sem, len(vals), None, None, confidence)
    half = t_quantile(confidence, len(vals) - 1) * sem
    return Estimate(mean, sem, len(vals), mean - half, mean + half, confidence)


def paired_difference(a: Mapping[Any, float], b: Mapping[Any, float], confidence: float = 0.95) -> Estimate:
    """``a - b`` paired by key (seed): the estimate of the per-key differences over the keys
    both hold.

    Raises:
        ConfigError: The two share no key.
    """
    keys = sorted(set(a) & set(b), key=str)
    if not keys:
        raise ConfigError("a paired difference needs at least one seed present on both sides")
    return estimate([float(a[k]) - float(b[k]) for k in keys], confidence)


class Verdict(str, enum.Enum):
    """What the runs say about a relative claim."""

    HOLDS = "holds"
    FAILS = "does not hold"
    UNRESOLVED = "not resolved at this budget"
    #: One seed gives a point and no interval: which side of the margin it lies on, said as such.
    ONE_SEED_FOR = "one seed: on the claimed side (no interval)"
    ONE_SEED_AGAINST = "one seed: on the other side (no interval)"


@dataclass(frozen=True)
class Claim:
    """A relative claim about a quantity estimated over seeds: ``quantity > margin``
    (``direction = +1``) or ``quantity < margin`` (``direction = -1``)."""

    text: str
    direction: int = 1
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ConfigError(f"claim direction must be +1 or -1, got {self.direction}")


def verdict(claim: Claim, est: Estimate) -> Verdict:
    """``HOLDS`` when the whole interval lies on the claimed side of the margin, ``FAILS`` when
    it lies wholly on the other side, else (interval contains the margin) ``UNRESOLVED``. One
    seed: ``ONE_SEED_FOR`` / ``ONE_SEED_AGAINST`` by the side its value lies on (``UNRESOLVED``
    on the margin); no seed: ``UNRESOLVED``."""
    if est.ci_low is None or est.ci_high is None:
        if est.n != 1:
            return Verdict.UNRESOLVED
        side = claim.direction * (est.mean - claim.margin)
        return Verdict.ONE_SEED_FOR if side > 0 else Verdict.ONE_SEED_AGAINST if side < 0 else Verdict.UNRESOLVED
    lo, hi = (est.ci_low - claim.margin, est.ci_high - claim.margin)
    if claim.direction < 0:
        lo, hi = -hi, -lo
    if lo > 0:
        return Verdict.HOLDS
    if hi < 0:
        return Verdict.FAILS
    return Verdict.UNRESOLVED


def format_estimate(est: Estimate, scale: float = 1.0, digits: int = 2, signed: bool = False, spec: str | None = None) -> str:
    """``"m +/- sem [lo, hi]"`` (values times ``scale``) with ``digits`` decimals, or the
    format ``spec`` (e.g. ``".3g"``) when given; no interval for a single seed."""
    body = spec or f".{digits}f"
    sign = "+" if signed else ""
    text = f"{est.mean * scale:{sign}{body}} +/- {est.sem * scale:{body}}"
    if est.ci_low is not None and est.ci_high is not None:
        text += f" [{est.ci_low * scale:{sign}{body}}, {est.ci_high * scale:{sign}{body}}]"
    return text
