"""Build a student from its spec with its neuron library (a registry of builders).

Each builder imports its library (SLAYER, SpikingJelly) only when called: both pull in
cv2/torchvision and take seconds to import. The builders import :mod:`.base`; this module
imports the builders, so nothing here imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable

from sne_loihi.config import StudentBackend
from sne_loihi.errors import ConfigError
from sne_loihi.students.base import Student
from sne_loihi.students.spec import StudentSpec


def _build_slayer(spec: StudentSpec) -> Student:
    from sne_loihi.students.slayer_student import build_slayer_student

    return build_slayer_student(spec)


def _build_spikingjelly(spec: StudentSpec) -> Student:
    from sne_loihi.students.spikingjelly_student import build_spikingjelly_student

    return build_spikingjelly_student(spec)


#: Builder per neuron library; each imports its library only when called.
BACKENDS: dict[StudentBackend, Callable[[StudentSpec], Student]] = {
    StudentBackend.SLAYER: _build_slayer,
    StudentBackend.SPIKINGJELLY: _build_spikingjelly,
}


def build_student(spec: StudentSpec) -> Student:
    """Build the network ``spec`` describes with its backend's neuron library.

    Raises:
        ConfigError: A backend without a builder.
    """
    try:
        builder = BACKENDS[StudentBackend(spec.backend)]
    except (KeyError, ValueError):
        raise ConfigError(f"no student builder for backend {spec.backend!r}") from None
    return builder(spec)
