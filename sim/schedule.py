"""The Lava schedule: how samples pass through one compiled graph (no Lava import).

Two value objects travel together from the graph to every process it builds:

* :class:`LavaSchedule`, what a caller chooses: T (steps per sample), the capacity
  (samples per Lava run), the reset interval and whether outputs are re-timed.
* :class:`RunTiming`, what the processes need once the graph knows its depth: T, the
  capacity and the time steps of one run (``capacity * T`` plus the flush), with the rule
  that maps a Lava time step to the (sample, step) a port sees.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from sne_loihi.config import DEFAULT_LAVA_CAPACITY
from sne_loihi.errors import SimulationError
from sne_loihi.sim.graph_types import RESET_PER_SAMPLE, resolve_reset

__all__ = ["LavaSchedule", "RunTiming"]


def _count(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _as_ints(obj: object, *names: str) -> None:
    """Store the named fields of a frozen dataclass as plain ``int`` (numpy integers come in)."""
    for name in names:
        object.__setattr__(obj, name, int(getattr(obj, name)))


@dataclass(frozen=True)
class RunTiming:
    """The timing of one Lava run, shared by a graph and its processes.

    Attributes:
        time_steps: T, steps per sample.
        capacity: Samples per run.
        steps: Time steps of one run (all samples plus the flush).

    Raises:
        SimulationError: A value that is not an integer >= 1, or fewer ``steps`` than
            ``capacity * time_steps``.
    """

    time_steps: int
    capacity: int
    steps: int

    def __post_init__(self) -> None:
        if not all(_count(v) for v in (self.time_steps, self.capacity, self.steps)):
            raise SimulationError(f"time steps, capacity and run steps must be integers >= 1 "
                                  f"(got {self.time_steps!r}, {self.capacity!r}, {self.steps!r})")
        if self.steps < self.capacity * self.time_steps:
            raise SimulationError(f"a run of {self.steps} steps cannot hold {self.capacity} samples of "
                                  f"{self.time_steps} steps")
        _as_ints(self, "time_steps", "capacity", "steps")

    def step_in_run(self, time_step: int) -> int:
        """The 0-based step within its run of Lava ``time_step`` (1-based): the data index a
        source plays."""
        return (time_step - 1) % self.steps

    def first_step(self, time_step: int) -> bool:
        """Lava ``time_step`` is the first step of a run."""
        return self.step_in_run(time_step) == 0

    def last_step(self, time_step: int) -> bool:
        """Lava ``time_step`` is the last step of a run."""
        return time_step % self.steps == 0

    def sample_step(self, time_step: int, delay: int) -> tuple[int, int] | None:
        """Which (sample, step) a port lagging ``delay`` steps sees at Lava ``time_step``
        (``None`` before the first sample reaches it and after the last one left)."""
        idx = self.step_in_run(time_step) - delay
        if idx < 0:
            return None
        sample, step = divmod(idx, self.time_steps)
        return (sample, step) if sample < self.capacity else None


@dataclass(frozen=True)
class LavaSchedule:
    """How samples pass through a graph (see :mod:`sne_loihi.sim.graph`).

    Attributes:
        time_steps: T, steps per sample.
        capacity: Samples per Lava run (batches are cut/padded to it).
        reset_interval: ``"T"`` (reset every sample), an integer, or ``None`` (no reset).
        retime: Attribute outputs and ops to samples by the synaptic depth; ``False``: raw
            Lava steps.

    Raises:
        SimulationError: T or the capacity not an integer >= 1, or a bad reset interval.
    """

    time_steps: int
    capacity: int = DEFAULT_LAVA_CAPACITY
    reset_interval: int | str | None = RESET_PER_SAMPLE
    retime: bool = True

    def __post_init__(self) -> None:
        for name in ("time_steps", "capacity"):
            if not _count(getattr(self, name)):
                raise SimulationError(f"{name} must be >= 1, got {getattr(self, name)}")
        resolve_reset(self.reset_interval, self.time_steps)
        _as_ints(self, "time_steps", "capacity")
        object.__setattr__(self, "retime", bool(self.retime))

    @property
    def reset_steps(self) -> int | None:
        """The reset interval in steps (``None``: never)."""
        return resolve_reset(self.reset_interval, self.time_steps)

    @property
    def per_sample(self) -> bool:
        """Every sample starts from rest and outputs are re-timed (the toolkit's exports)."""
        return self.reset_interval == RESET_PER_SAMPLE and self.retime

    def timing(self, depth: int) -> RunTiming:
        """The run timing for networks ``depth`` steps deep: ``capacity * T`` steps plus a
        flush of the smallest multiple of T that is >= ``depth``."""
        t = self.time_steps
        return RunTiming(t, self.capacity, self.capacity * t + math.ceil(depth / t) * t)
