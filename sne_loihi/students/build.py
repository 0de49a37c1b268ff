"""Build a student from its spec with its neuron library (a registry of builders).

Each builder imports its library (SLAYER, SpikingJelly) only when called: both pull in
cv2/torchvision and take seconds to import. The builders import :mod:`.base`; this module
imports the builders, so nothing here imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable

from sne_loihi.config import NeuronLibrary
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
NEURON_LIBRARIES: dict[NeuronLibrary, Callable[[StudentSpec], Student]] = {
    NeuronLibrary.SLAYER: _build_slayer,
    NeuronLibrary.SPIKINGJELLY: _build_spikingjelly,
}


def build_student(spec: StudentSpec) -> Student:
    """Build the network ``spec`` describes with its neuron library.

    Raises:
        ConfigError: A neuron library without a builder.
    """
    try:
        builder = NEURON_LIBRARIES[NeuronLibrary(spec.neuron_library)]
    except (KeyError, ValueError):
        raise ConfigError(f"no student builder for neuron library {spec.neuron_library!r}") from None
    return builder(spec)
