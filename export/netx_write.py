"""Write a SLAYER student as a netx HDF5 file (the layout :mod:`sne_loihi.netx_format.netx_file` reads)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from sne_loihi.errors import ExportError
from sne_loihi.config import FirstLayer, StudentNorm
from sne_loihi.netx_format.bias_layer import mark_bias_driven
from sne_loihi.netx_format.neuron_bias import bias_mantissas


def copy_module(module: object) -> object:
    """``copy.deepcopy`` that also works after a forward pass under weight normalisation.

    ``torch.nn.utils.weight_norm`` leaves the recomputed ``weight`` as a non-leaf tensor
    attribute, which ``deepcopy`` refuses; those attributes are copied as detached clones.
    """
    import torch

    memo: dict[int, object] = {}
    for sub in module.modules():
        for value in vars(sub).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(module, memo)


def check_norm_folded(student: object) -> None:
    """Refuse a student that still carries batch norms (``student.norm = "batch"`` whose
    training stopped before the fold): Loihi has no batch norm, and exporting the blocks
    without it would silently change the network.

    Raises:
        ExportError: The student's spec says ``norm = batch`` or a block holds a ``batch_norm``.
    """
    norm = getattr(getattr(student, "spec", None), "norm", None)
    unfolded = norm is not None and StudentNorm(norm) is StudentNorm.BATCH
    unfolded = unfolded or any(getattr(b, "batch_norm", None) is not None for b in getattr(student, "blocks", ()))
    if unfolded:
        raise ExportError("this student has batch norm that was not folded; finish (resume) its training, which "
                          "folds it at the end (student.norm = 'batch' stopped before the fold), then export")


def write_student_hdf5(student: object, path: Path, in_shape_chw: tuple[int, int, int] | None = None,
                       first_layer: FirstLayer = FirstLayer.SYNAPTIC) -> Path:
    """Write a SLAYER student as a netx HDF5 file, without touching the student.

    Each block's ``export_hdf5`` runs on a deep copy (it removes weight normalisation in
    place). A ``flatten`` block needs its shape, which SLAYER only learns in ``forward``; it
    is computed from the previous layer's output shape when missing.

    Args:
        student: A ``Student`` with ``.blocks`` (SLAYER cuba Conv/Flatten/Dense) and ``.spec``.
        path: Output file (overwritten).
        in_shape_chw: Input shape; defaults to ``student.spec.in_shape``.
        first_layer: ``BIAS``: mark the first weighted layer as driven by a per-sample
            neuron bias (``inputDrive = "bias"``, :mod:`sne_loihi.netx_format.bias_layer`);
            ``SYNAPTIC`` (default): an ordinary netx network.

    A block's synapse bias (a folded batch norm's per-channel neuron bias, real units) is
    written as the layer's ``bias`` dataset, ``64 * bias``: netx reads it into the neuron's
    ``bias_mant`` (exponent 6), see :mod:`sne_loihi.netx_format.neuron_bias`.

    Raises:
        ExportError: SpikingJelly students (no netx export), a student whose batch norm was
            not folded, unsupported blocks, a bias Loihi cannot store, or ``BIAS`` for a
            student whose first layer does not allow it.
    """
    import h5py

    spec = getattr(student, "spec", None)
    library = str(getattr(getattr(spec, "neuron_library", None), "value", getattr(spec, "neuron_library", "slayer")))
    if library.lower() != "slayer":
        raise ExportError(f"only SLAYER students can be exported to netx (this student uses {library!r})")
    check_norm_folded(student)
    first_layer = FirstLayer(first_layer)
    if first_layer is FirstLayer.AUTO:
        raise ExportError("write_student_hdf5 takes a resolved first layer (bias or synaptic), not 'auto'")
    if first_layer is FirstLayer.BIAS:
        from sne_loihi.cost.first_layer import student_bias_refusal

        why = student_bias_refusal(student)
        if why is not None:
            raise ExportError(f"this student's first layer cannot be driven by a per-sample bias: {why}")
    marked = first_layer is not FirstLayer.BIAS
    if in_shape_chw is None:
        in_shape_chw = tuple(int(v) for v in spec.in_shape)
    import torch

    blocks = copy_module(student.blocks)  # export_hdf5 mutates (weight-norm removal)
    # SLAYER learns neuron / flatten shapes in forward: one zero step through the copy.
    probe = next(iter(blocks.parameters()), torch.zeros(()))
    with torch.no_grad():
        x = torch.zeros(1, *in_shape_chw, 1, dtype=probe.dtype, device=probe.device)
        for block in blocks:
            x = block(x)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = list(in_shape_chw)
    with h5py.File(path, "w") as fh:
        layers = fh.create_group("layer")
        inp = layers.create_group("0")
        inp.create_dataset("type", (1,), "S10", [b"input"])
        inp.create_dataset("shape", data=np.array(shape, dtype=np.int64))
        for i, block in enumerate(blocks, start=1):
            name = type(block).__name__
            if name == "Flatten":
                shape = [int(np.prod(shape))]
            elif name not in ("Conv", "Dense"):
                raise ExportError(f"block {i - 1} is a {name}; netx supports only Conv, Flatten and Dense")
            group = layers.create_group(str(i))
            block.export_hdf5(group)
            bias = getattr(getattr(block, "synapse", None), "bias", None)
            if bias is not None:
                group.create_dataset("bias", data=bias_mantissas(bias.detach().cpu().double().numpy(),
                                                                 f"student block {i - 1}"))
            if not marked and name != "Flatten":  # the first weighted layer
                mark_bias_driven(group)
                marked = True
            if name != "Flatten":
                shape = [int(v) for v in np.atleast_1d(layers[str(i)]["shape"][()])]
    return path
