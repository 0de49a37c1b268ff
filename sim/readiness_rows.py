"""One checked row of the Loihi 2 readiness report, and how a row is made from a limit."""

from __future__ import annotations

from dataclasses import dataclass

from sne_loihi.sim.loihi2_limits import Limit, Status


@dataclass
class ReadinessRow:
    """One checked figure: ``student`` / ``layer`` are ``None`` for ensemble rows."""

    check: str
    value: str
    limit: str
    source: str
    basis: str
    status: Status
    student: int | None = None
    layer: int | None = None


def make_row(check: str, value: object, limit: Limit, status: Status, student: int | None = None,
             layer: int | None = None, limit_text: str | None = None) -> ReadinessRow:
    """A :class:`ReadinessRow` checked against ``limit`` (its text ``limit_text`` when the
    limit reads better in words)."""
    return ReadinessRow(check=check, value=str(value), limit=limit_text or f"{limit.name} <= {limit.value:,}",
                        source=limit.source, basis=limit.basis, status=status, student=student, layer=layer)
