"""Spiking students: specs, architectures, input encoding and the SLAYER/SpikingJelly builders.

Importing this package is cheap: SLAYER and SpikingJelly are imported only inside
:func:`build_student`.
"""

from __future__ import annotations

from sne_loihi.students.archs import STUDENT_ARCHS, student_spec
from sne_loihi.students.base import Student, StudentOutput, encode_for, encode_input
from sne_loihi.students.build import NEURON_LIBRARIES, build_student
from sne_loihi.layers import LayerKind
from sne_loihi.students.spec import LayerSpec, StudentSpec

__all__ = [
    "NEURON_LIBRARIES", "STUDENT_ARCHS", "LayerKind", "LayerSpec", "Student", "StudentOutput", "StudentSpec",
    "build_student", "encode_for", "encode_input", "student_spec",
]
