"""Validation of student index lists (active sets, cascade orders); no heavy imports, so the
Lava stage can use it without loading torch models."""

from __future__ import annotations

from collections.abc import Sequence

from sne_loihi.errors import ConfigError, SneError


def check_student_indices(
    indices: Sequence[int], num_students: int, what: str, error: type[SneError] = ConfigError
) -> list[int]:
    """Distinct student indices in ``0..N-1`` (as ints, in the given order).

    Args:
        indices: The indices to check.
        num_students: N.
        what: How an error names them, e.g. ``"cascade order"``.
        error: The :class:`~sne_loihi.errors.SneError` subclass to raise.

    Raises:
        error: An index out of range or a repeated index.
    """
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < num_students]
    if bad:
        raise error(f"{what} index {bad[0]} out of range 0..{num_students - 1}")
    if len(set(idx)) != len(idx):
        raise error(f"{what} repeats a student: {idx}")
    return idx
