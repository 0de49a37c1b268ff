"""Validation of student index lists (active sets, cascade orders); no heavy imports, so the
Lava stage can use it without loading torch models."""

from __future__ import annotations

import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sne_loihi.config import comma_items
from sne_loihi.errors import ConfigError, SimulationError, SneError

ALL = "all"


def check_student_indices(
    indices: Sequence[int], num_students: int, what: str, error: type[SneError] = ConfigError,
    nonempty: bool = False,
) -> list[int]:
    """Distinct student indices in ``0..N-1`` (as ints, in the given order).

    Args:
        indices: The indices to check.
        num_students: N.
        what: How an error names them, e.g. ``"cascade order"``.
        error: The :class:`~sne_loihi.errors.SneError` subclass to raise.
        nonempty: Refuse an empty list (a cascade order names at least one student).

    Raises:
        error: Not a sequence, an entry that is not an integer (booleans included), an index
            out of range, a repeated index, or (with ``nonempty``) no index.
    """
    if isinstance(indices, (str, bytes)):
        raise error(f"{what} must be a sequence of student indices, got the string {indices!r}")
    try:
        items = list(indices)
    except TypeError:
        raise error(f"{what} must be a sequence of student indices, got {indices!r}") from None
    if any(isinstance(i, bool) or str(getattr(i, "dtype", "")) in ("bool", "torch.bool") for i in items):
        raise error(f"{what} must be integer student indices, got booleans {items!r} (a mask is not a list of indices)")
    try:
        idx = [operator.index(i) for i in items]
    except TypeError:
        raise error(f"{what} must be integer student indices, got {items!r}") from None
    if nonempty and not idx:
        raise error(f"{what} names no student")
    bad = [i for i in idx if not 0 <= i < num_students]
    if bad:
        raise error(f"{what} index {bad[0]} out of range 0..{num_students - 1}")
    repeated = sorted({i for i in idx if idx.count(i) > 1})
    if repeated:
        names = ", ".join(map(str, repeated))
        raise error(f"{what} list {idx} names student {names} more than once")
    return idx


@dataclass(frozen=True)
class ActiveSet:
    """One choice of students to switch on.

    Attributes:
        indices: The active student indices (sorted).
        label: How it was asked for (``all``, ``0,2``, ``k=2 -> [1, 3]``).
    """

    indices: tuple[int, ...]
    label: str


def parse_active(text: str | None, num_students: int, seed: int = 0) -> ActiveSet:
    """Parse an ``--active`` value: ``all``, indices ``0,2,3``, or ``k=K`` (K drawn at random).

    Args:
        text: The option value (``None`` means all; an empty or blank value is an error).
        num_students: N.
        seed: Seed of the random draw for ``k=K``.

    Raises:
        SimulationError: Empty (also an empty item, ``0,,2``), not one of the forms, an index
            outside ``0..N-1``, a repeated index, or K outside ``1..N``.
    """
    if text is not None and not str(text).strip():  # "" is a typo, not "all"
        raise SimulationError("--active must not be empty: give all, indices like 0,2, or k=K")
    value = (text or ALL).strip().lower()
    if value == ALL:
        return ActiveSet(tuple(range(num_students)), ALL)
    if value.startswith("k="):
        try:
            k = int(value[2:])
        except ValueError:
            raise SimulationError(f"--active {text!r}: k=K needs an integer K") from None
        if not 1 <= k <= num_students:
            raise SimulationError(f"--active {text!r}: K must be in 1..{num_students}")
        drawn = tuple(sorted(random.Random(seed).sample(range(num_students), k)))
        return ActiveSet(drawn, f"k={k} -> {list(drawn)}")
    items = comma_items(value, "--active", SimulationError)  # "0,,2" is a typo, not "0,2"
    try:
        idx = tuple(int(t) for t in items)
    except ValueError:
        raise SimulationError(f"--active {text!r}: expected 'all', indices like 0,2 or k=K") from None
    check_student_indices(idx, num_students, f"--active {text!r}: student", SimulationError)
    return ActiveSet(tuple(sorted(idx)), ",".join(map(str, sorted(idx))))
