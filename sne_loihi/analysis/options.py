"""What a run report holds beyond the cost table (:class:`ReportOptions`): the config's
``report`` section plus what a caller adds; light, so the command line can import it
without importing torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sne_loihi.checks import check_section
from sne_loihi.config import ReportConfig


@dataclass
class ReportOptions(ReportConfig):
    """The ``report`` section of the run config (:class:`~sne_loihi.config.ReportConfig`:
    energy profile, activation analysis, noise, evaluation batches, NeuroBench) plus:

    Attributes:
        extra_sections: Additional sections (heading, markdown), e.g. Lava results.
        extra_data: Additional JSON data.

    Raises:
        ConfigError: A value the config's rules refuse (:func:`sne_loihi.checks.check_section`).
    """

    extra_sections: list[tuple[str, str]] = field(default_factory=list)
    extra_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_section(self, "report")

    @classmethod
    def from_config(cls, section: ReportConfig) -> ReportOptions:
        """The options of a config's ``report`` section."""
        return cls(**{f.name: getattr(section, f.name) for f in dataclasses.fields(ReportConfig)})
