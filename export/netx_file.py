"""netx HDF5 files: write a SLAYER student, read and validate any netx network (h5py only).

File layout written by :func:`write_student_hdf5` (what ``lava.lib.dl.netx.hdf5.Network``
reads unchanged)::

    layer/0   type=input, shape=[C, H, W]      (no neuron: Lava feeds the first synapse)
    layer/1.. each SLAYER block's own ``export_hdf5`` group (conv, flatten, dense)

Shapes inside the file are in torch order (``[C, H, W]``); netx reverses them to Lava's
``(x, y, f)`` = ``(W, H, C)`` order. :func:`read_netx_layers` returns Lava-order shapes and,
per weighted layer, the synaptic fan-out of every input neuron (the number of non-zero
weights leaving it), which the op counters multiply with the layer's non-zero inputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from sne_loihi.errors import ExportError

#: Layer types netx's ``hdf5.Network`` can build (platform notes).
SUPPORTED_TYPES = ("input", "conv", "dense", "flatten")


class LayerKind(str, Enum):
    """Weighted layer kinds a netx network is made of (``flatten`` only reshapes)."""

    CONV = "conv"
    DENSE = "dense"


@dataclass(frozen=True)
class NetxLayer:
    """One weighted layer (synapse + CUBA neurons) of a netx network.

    Attributes:
        kind: Conv or dense.
        index: Index of its ``layer/{index}`` group in the file.
        in_shape_xyz: Shape of the spikes entering it, in Lava (x, y, f) order, as they come
            out of the previous layer (before any flatten).
        out_shape_xyz: Shape of its neurons in Lava order.
        fanout_xyz: Per input neuron, the number of non-zero synapses leaving it
            (``in_shape_xyz``).
        num_weights: Number of non-zero weights.
    """

    kind: LayerKind
    index: int
    in_shape_xyz: tuple[int, ...]
    out_shape_xyz: tuple[int, ...]
    fanout_xyz: np.ndarray
    num_weights: int


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


def write_student_hdf5(student: object, path: Path, in_shape_chw: tuple[int, int, int] | None = None) -> Path:
    """Write a SLAYER student as a netx HDF5 file, without touching the student.

    Each block's ``export_hdf5`` runs on a deep copy (it removes weight normalisation in
    place). A ``flatten`` block needs its shape, which SLAYER only learns in ``forward``; it
    is computed from the previous layer's output shape when missing.

    Args:
        student: A ``Student`` with ``.blocks`` (SLAYER cuba Conv/Flatten/Dense) and ``.spec``.
        path: Output file (overwritten).
        in_shape_chw: Input shape; defaults to ``student.spec.in_shape``.

    Raises:
        ExportError: SpikingJelly students (no netx export) or unsupported blocks.
    """
    import h5py

    spec = getattr(student, "spec", None)
    backend = str(getattr(getattr(spec, "backend", None), "value", getattr(spec, "backend", "slayer")))
    if backend.lower() != "slayer":
        raise ExportError(f"only SLAYER students can be exported to netx (this student uses {backend!r})")
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
            block.export_hdf5(layers.create_group(str(i)))
            if name != "Flatten":
                shape = [int(v) for v in np.atleast_1d(layers[str(i)]["shape"][()])]
    return path


def _scalar(v: object) -> int:
    return int(np.asarray(v).reshape(-1)[0])


def _pair(v: object) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def conv_fanout_chw(weight: np.ndarray, in_chw: tuple[int, int, int], out_hw: tuple[int, int],
                    stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                    groups: int) -> np.ndarray:
    """Fan-out of every input neuron of a 2-D convolution (torch layouts).

    Args:
        weight: ``[C_out, C_in / groups, kH, kW]``.
        in_chw: Input shape.
        out_hw: Output height and width.

    Returns:
        ``[C_in, H, W]`` int64: non-zero synapses leaving each input neuron.
    """
    c_out, c_in_g, kh, kw = weight.shape
    c_in, h, w = in_chw
    nz = weight != 0
    out_g = c_out // groups
    # cnt[c, ky, kx]: non-zero weights of input channel c at kernel offset (ky, kx)
    cnt = np.zeros((c_in, kh, kw), dtype=np.int64)
    for c in range(c_in):
        g = c // c_in_g
        cnt[c] = nz[g * out_g:(g + 1) * out_g, c % c_in_g].sum(axis=0)
    fan = np.zeros(in_chw, dtype=np.int64)
    oy, ox = np.arange(out_hw[0]), np.arange(out_hw[1])
    for ky in range(kh):
        iy = oy * stride[0] - padding[0] + ky * dilation[0]
        iy = iy[(iy >= 0) & (iy < h)]
        for kx in range(kw):
            ix = ox * stride[1] - padding[1] + kx * dilation[1]
            ix = ix[(ix >= 0) & (ix < w)]
            fan[:, iy[:, None], ix[None, :]] += cnt[:, ky, kx][:, None, None]
    return fan


def _chw_to_xyz(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def read_netx_layers(path: Path) -> list[NetxLayer]:
    """Read and validate a netx HDF5 network; return its weighted layers in order.

    Every dataset is read, so a truncated file fails here rather than inside Lava.

    Raises:
        ExportError: Missing, unreadable, truncated or structurally invalid file, layer types
            netx cannot build, or an input layer with a neuron (netx leaves it unconnected).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"netx file not found: {path}")
    try:
        with h5py.File(path, "r") as fh:
            return _read_layers(fh, path)
    except ExportError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/ValueError for damaged files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{path} is not a readable netx HDF5 file (corrupt or truncated?): {first}") from None


def _read_layers(fh: object, path: Path) -> list[NetxLayer]:
    if "layer" not in fh:
        raise ExportError(f"{path} has no 'layer' group: not a netx network")
    group = fh["layer"]
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if not keys or keys != [str(i) for i in range(len(keys))]:
        raise ExportError(f"{path}: layer groups must be named 0..n-1, found {list(group.keys())}")
    shape: tuple[int, ...] | None = None  # torch order, current activation shape
    out: list[NetxLayer] = []
    for key in keys:
        g = group[key]
        if "type" not in g:
            raise ExportError(f"{path}: layer/{key} has no 'type'")
        kind = g["type"][()]
        kind = (kind[0] if np.ndim(kind) else kind).decode() if not isinstance(kind, str) else kind
        if kind not in SUPPORTED_TYPES:
            raise ExportError(f"{path}: layer/{key} has type {kind!r}; netx supports {', '.join(SUPPORTED_TYPES)}")
        if kind == "input":
            if "neuron" in g:
                raise ExportError(f"{path}: layer/{key} is an input layer with a neuron; netx leaves it unconnected")
            shape = tuple(int(v) for v in np.atleast_1d(g["shape"][()]))
            continue
        if kind == "flatten":
            if shape is None:
                raise ExportError(f"{path}: layer/{key} flattens before any shape is known")
            continue
        weight = np.asarray(g["weight"][()])
        out_shape = tuple(int(v) for v in np.atleast_1d(g["shape"][()]))
        neuron_type = g["neuron/type"][()] if "neuron/type" in g else b"CUBA"
        neuron_type = neuron_type.decode() if isinstance(neuron_type, bytes) else str(neuron_type)
        if neuron_type not in ("CUBA", "LOIHI"):
            raise ExportError(f"{path}: layer/{key} has {neuron_type} neurons; only CUBA-LIF is supported")
        for name in g["neuron"].keys() if "neuron" in g else []:
            g["neuron"][name][()]
        if shape is None:
            raise ExportError(f"{path}: layer/{key} has no known input shape (add an input layer with 'shape')")
        if kind == "conv":
            if weight.ndim == 5:
                weight = weight[..., 0]
            if len(shape) != 3 or weight.ndim != 4 or weight.shape[0] != out_shape[0]:
                raise ExportError(f"{path}: layer/{key} conv weight {weight.shape} does not fit input {shape} -> {out_shape}")
            fan = conv_fanout_chw(weight, shape, out_shape[1:], _pair(g["stride"][()]), _pair(g["padding"][()]),
                                  _pair(g["dilation"][()]), _scalar(g["groups"][()]))
            kind_e = LayerKind.CONV
        else:
            weight = weight.reshape(out_shape[0], -1) if weight.ndim == 1 else weight
            if weight.shape != (out_shape[0], int(np.prod(shape))):
                raise ExportError(f"{path}: layer/{key} dense weight {weight.shape} does not fit input {shape} -> {out_shape}")
            fan = (weight != 0).sum(axis=0).astype(np.int64).reshape(shape)
            kind_e = LayerKind.DENSE
        out.append(NetxLayer(
            kind=kind_e, index=int(key), in_shape_xyz=tuple(reversed(shape)), out_shape_xyz=tuple(reversed(out_shape)),
            fanout_xyz=np.ascontiguousarray(_chw_to_xyz(fan)), num_weights=int((weight != 0).sum()),
        ))
        shape = out_shape
    if not out:
        raise ExportError(f"{path} has no conv or dense layer")
    return out
