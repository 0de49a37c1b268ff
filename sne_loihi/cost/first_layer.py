"""Which students take their first layer's input as a per-sample neuron bias (``lava.first_layer``).

The bias path (:mod:`sne_loihi.netx_format.bias_layer`) is exact when the first weighted
layer is a convolution whose CUBA current keeps no memory (``current_decay = 1``, SLAYER's
quantised ``iDecay`` 4096) and it receives the same graded image at every time step (the
students' encoding repeats the image; a 1-bit input is binary spikes, which the option does
not cover). Then the host computes ``W * x + b`` once per sample and the first layer's MACs
are charged once per sample instead of T times (:func:`sne_loihi.cost.ops.count_student_ops`).

:func:`resolve_first_layer` turns the config's choice into one per student: ``bias`` is
refused in one line for a student that does not allow it; ``auto`` falls back to
``synaptic`` for such a student and keeps the reason, which the manifest and the reports
print. Reads SLAYER blocks through plain attributes (no SLAYER import).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sne_loihi.config import FirstLayer, NeuronLibrary
from sne_loihi.errors import ExportError, SneError
from sne_loihi.netx_format.bias_layer import NO_CURRENT_MEMORY



@dataclass(frozen=True)
class FirstLayerChoice:
    """How one student's first layer is driven, and why not by the bias when it is not.

    Attributes:
        mode: ``BIAS`` or ``SYNAPTIC`` (never ``AUTO``).
        note: Why ``AUTO`` fell back to ``SYNAPTIC`` (empty otherwise).
    """

    mode: FirstLayer
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        """``{"first_layer": ..., "first_layer_note": ...}`` for JSON tables."""
        return {"first_layer": self.mode.value, "first_layer_note": self.note}


def bias_drive_refusal(library: NeuronLibrary | str, input_bits: int, current_decay: float) -> str | None:
    """The one rule, on plain values, for whether a first layer can be driven by a per-sample
    bias: why not, or ``None`` when it can. Config checks (before training) and exported
    students (after) both ask it; the latter also need a conv first layer.

    Args:
        library: The students' neuron library.
        input_bits: Bits of the graded input (1: binary spikes).
        current_decay: The first layer's CUBA current decay (1: no current memory).
    """
    name = str(getattr(library, "value", library))
    if name.lower() != NeuronLibrary.SLAYER.value:
        return f"it uses the {name} neuron library (only SLAYER students export to netx)"
    if current_decay != 1.0:
        return (f"its current_decay is {current_decay:g}, not 1: the current keeps memory, so a constant input "
                "is no constant drive")
    if input_bits == 1:
        return "its input is binary spikes (input_bits 1), not a graded image"
    return None


def _first_weighted_block(student: Any) -> Any:
    return next((b for b in getattr(student, "blocks", ()) if type(b).__name__ != "Flatten"), None)


def student_bias_refusal(student: Any) -> str | None:
    """Why ``student``'s first layer cannot be driven by a per-sample bias, or ``None``.

    Args:
        student: A student with ``.spec`` (``neuron_library``, ``input_bits``) and
            ``.blocks`` (SLAYER cuba blocks).
    """
    spec = getattr(student, "spec", None)
    library = getattr(spec, "neuron_library", NeuronLibrary.SLAYER)
    input_bits = int(getattr(spec, "input_bits", 0))
    why = bias_drive_refusal(library, input_bits, 1.0)  # library and input first; the decay is read below
    if why is not None:
        return why
    block = _first_weighted_block(student)
    if block is None or type(block).__name__ != "Conv":
        kind = "none" if block is None else type(block).__name__.lower()
        return f"its first weighted layer is {kind}, not a conv (the host's bias maths is a convolution)"
    neuron = getattr(block, "neuron", None)
    params = getattr(neuron, "device_params", None)
    if not isinstance(params, dict) or "iDecay" not in params:
        return "its first layer has no CUBA neuron with a current decay"
    i_decay = int(np.asarray(params["iDecay"]).reshape(-1)[0])
    return bias_drive_refusal(library, input_bits, i_decay / NO_CURRENT_MEMORY)


def resolve_first_layer(option: FirstLayer | str, students: Sequence[Any],
                        error: type[SneError] = ExportError) -> list[FirstLayerChoice]:
    """One :class:`FirstLayerChoice` per student for the config's ``lava.first_layer``.

    Raises:
        SneError (``error``): ``bias`` for a student that does not allow it (one line).
    """
    option = FirstLayer(option)
    if option is FirstLayer.SYNAPTIC:
        return [FirstLayerChoice(FirstLayer.SYNAPTIC) for _ in students]
    out = []
    for i, student in enumerate(students):
        why = student_bias_refusal(student)
        if why is None:
            out.append(FirstLayerChoice(FirstLayer.BIAS))
        elif option is FirstLayer.BIAS:
            raise error(f"lava.first_layer 'bias': student {i} cannot take its first layer's input as a per-sample "
                        f"neuron bias: {why}; use 'synaptic' or 'auto'")
        else:
            out.append(FirstLayerChoice(FirstLayer.SYNAPTIC, f"auto fell back to synaptic: {why}"))
    return out
