"""Cost of students and teachers: exact synaptic-op counts, teacher MACs, energy profiles.

``teacher_macs`` lives with the teachers (:mod:`sne_loihi.teachers.macs`) and is re-exported
here on first access, so importing this package does not build the teacher registry.
"""

from __future__ import annotations

from typing import Any

from sne_loihi.cost.energy import ENERGY_PROFILES, EnergyProfile, energy_pj, load_energy_profile
from sne_loihi.cost.ops import (
    OpKind,
    StudentOps,
    SynapseView,
    count_layer_ops,
    count_student_ops,
    fanout_per_input,
    layer_op_kinds,
    neuron_updates_per_sample,
    student_fanouts,
    synapse_view,
)

__all__ = [
    "ENERGY_PROFILES", "EnergyProfile", "OpKind", "StudentOps", "SynapseView", "count_layer_ops",
    "count_student_ops", "energy_pj", "fanout_per_input", "layer_op_kinds", "load_energy_profile",
    "neuron_updates_per_sample", "student_fanouts", "synapse_view", "teacher_macs",
]


def __getattr__(name: str) -> Any:
    if name == "teacher_macs":
        from sne_loihi.teachers.macs import teacher_macs

        return teacher_macs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
