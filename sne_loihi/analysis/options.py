"""What a run report holds beyond the cost table (:class:`ReportOptions`): light, so the
command line can read its defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sne_loihi.config import DEFAULT_ENERGY_PROFILE
from sne_loihi.errors import ConfigError


@dataclass
class ReportOptions:
    """What goes into a report beyond the cost table.

    Attributes:
        energy_profile: Name of a registered profile or a TOML file.
        activation: Random-K, all-subset and per-sample (cascade) analysis.
        noise: Gaussian noise sigmas for the robustness table (empty: skip).
        repeats: Noise draws per level.
        batch_size: Evaluation batch size.
        draw_batch: Random K (and dropout-trained ensembles at their K) draw a new set of K
            students every ``draw_batch`` test samples, the paper's per-batch evaluation; a
            small value averages over many draws, so one lucky or unlucky draw (e.g. the best
            student for every sample at K = 1) does not decide the comparison.
        neurobench: Add NeuroBench's synaptic-op counts next to ours
            (:mod:`sne_loihi.cost.neurobench_check`; needs the ``interop`` extra).
        neurobench_samples: Test samples for it (0: all).
        extra: Additional sections (heading, markdown) and JSON data, e.g. Lava results.
    """

    energy_profile: str = DEFAULT_ENERGY_PROFILE
    activation: bool = True
    noise: list[float] = field(default_factory=list)
    repeats: int = 10
    batch_size: int = 256
    draw_batch: int = 32
    neurobench: bool = False
    neurobench_samples: int = 0
    extra_sections: list[tuple[str, str]] = field(default_factory=list)
    extra_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.draw_batch < 1:
            raise ConfigError(f"--draw-batch must be >= 1, got {self.draw_batch}")
        if self.repeats < 1:
            raise ConfigError(f"--repeats must be >= 1, got {self.repeats}")
        if self.neurobench_samples < 0:
            raise ConfigError(f"--neurobench-samples must be >= 0, got {self.neurobench_samples}")
