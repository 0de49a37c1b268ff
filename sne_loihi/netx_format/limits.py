"""What a netx HDF5 file may declare and hold, checked before and while it is read (h5py
only, no Lava import).

A netx file is untrusted input. :func:`check_file_objects` walks every object of the file
before any dataset is read: links to other files (``h5py.ExternalLink``), datasets stored in
raw files outside it (``dataset.external``) and virtual datasets (``dataset.is_virtual``) are
refused, so every byte read comes from the one file named (whose sha256 the export manifest
records); declared shapes are bounded (:data:`MAX_DATASET_ELEMENTS` per dataset,
:data:`MAX_DECLARED_BYTES` per file) before anything is allocated, so a few-KB compressed
file declaring a 10**9-element dataset is refused unread.

:func:`check_layer_group` and :func:`check_weights` then check the values netx would hand
Lava against what Lava's fixed-point models (which model Loihi) represent, refusing what
netx would change silently:

- weights: finite integers in ``-256..255`` (Loihi's 8-bit weight mantissa and its sign, the
  widest range Lava's ``weightutils._validate_weights`` accepts in any sign mode); netx casts
  with ``astype(int)`` (a weight of 0.4 would become 0) and its ``optimize_weight_bits``
  clips a dense layer of mixed signs to ``-256..254``, so neither is accepted;
- ``vThMant``: an integer in ``0 .. 2**17 - 1`` (Lava's LIF ``vth``: unsigned 17 bits,
  shifted left by 6 into the 24-bit state; the sigma-delta models' 24-bit ``vth`` at
  ``state_exp`` 6 holds the same);
- ``iDecay`` / ``vDecay``: integers in ``0..4096`` (netx passes ``du = iDecay - 1`` and
  ``dv = vDecay``; Lava adds its 1-bit offset to ``du``, so both give decay constants in
  ``0..4096``);
- ``refDelay``: an integer in ``0..1`` (Loihi's 6-bit refractory delay holds up to 63, but
  Lava's LIF has no refractory period and netx does not pass it, so a neuron declaring more
  would run on the chip otherwise than in every simulation; SLAYER's CUBA export writes 1);
- ``messageBits``: an integer in ``0..24`` (Lava's ports carry 24 bits);
- conv ``stride`` / ``dilation`` / ``groups`` in ``1..127`` and ``padding`` / kernel sizes in
  ``0..127`` / ``1..127`` (Lava's ``Conv`` stores them as int8), with a geometry that fits the
  layer's input and output shapes;
- an input layer's transform ``weight`` / ``bias`` (netx reads them with ``int(...)``):
  integers within Lava's 13-bit ``bias_mant``;
- ``shape``: 1 to 3 positive integers, at most :data:`MAX_LAYER_NEURONS` neurons a layer.

Every refusal is one line naming the file, the layer group and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.errors import ExportError
from sne_loihi.netx_format.neuron_bias import BIAS_MANT_MAX, BIAS_MANT_MIN

#: Layer groups a file may hold.
MAX_LAYER_GROUPS = 1024
#: Groups and datasets a file may hold in all (walked before anything is read).
MAX_OBJECTS = 100_000
#: How deep objects may sit below the root (``layer/1/neuron/vThMant`` is 4 deep).
MAX_DEPTH = 4
#: Elements one dataset may declare (a dense layer of 2**26 synapses is half of the
#: 120M synapses of a Loihi 2 chip; 512 MiB as float64).
MAX_DATASET_ELEMENTS = 2 ** 26
#: Bytes all datasets of a file may declare together (as stored, before decompression).
MAX_DECLARED_BYTES = 2 * 2 ** 30
#: Neurons one layer may declare (``shape``): 16x a Loihi 2 chip's 1M neurons.
MAX_LAYER_NEURONS = 2 ** 24
#: Time steps an input stream or an export may use per sample.
MAX_TIME_STEPS = 1024
#: Loihi's weight mantissa and sign: the widest range Lava accepts in any sign mode.
WEIGHT_MIN, WEIGHT_MAX = -(2 ** 8), 2 ** 8 - 1
#: netx's ``optimize_weight_bits`` clips a dense layer of mixed signs to ``-256..254``.
WEIGHT_MAX_MIXED = 2 ** 8 - 2
#: Lava's LIF threshold mantissa: unsigned 17 bits.
VTH_MAX = 2 ** 17 - 1
#: Decay constants in units of 1/4096.
DECAY_MAX = 4096
#: Loihi's refractory delay: 6 bits.
REF_DELAY_MAX = 63
#: The longest refractory delay Lava's LIF models (none: a spike resets and the next step
#: integrates again), which is Loihi's behaviour at a delay of 0 or 1.
REF_DELAY_SIMULATED = 1
#: Graded messages carry at most 24 bits.
MESSAGE_BITS_MAX = 24
#: Lava's ``Conv`` holds kernel size, stride, padding, dilation and groups as int8.
CONV_PARAM_MAX = 127

#: Neuron fields: (lowest, highest, required for CUBA neurons).
_NEURON_FIELDS: dict[str, tuple[int, int, bool]] = {
    "vThMant": (0, VTH_MAX, True),
    "iDecay": (0, DECAY_MAX, True),
    "vDecay": (0, DECAY_MAX, True),
    "refDelay": (0, REF_DELAY_MAX, False),
    "messageBits": (0, MESSAGE_BITS_MAX, False),
}


def _refuse(path: Path, where: str, text: str) -> ExportError:
    return ExportError(f"{path}: {where} {text}")


def check_file_objects(fh: Any, path: Path) -> None:
    """Walk every group and dataset of an open file before anything is read.

    Raises:
        ExportError: A link to another file, a user-defined or dangling link, a dataset
            stored outside the file or virtual, a dataset of a type netx does not use (not a
            number, bool or string), one without a value, one declaring more than
            :data:`MAX_DATASET_ELEMENTS` elements, more than :data:`MAX_DECLARED_BYTES` in
            all, more than :data:`MAX_OBJECTS` objects, or nesting deeper than
            :data:`MAX_DEPTH`.
    """
    import h5py

    state = {"objects": 0, "bytes": 0}

    def walk(group: Any, prefix: str, depth: int) -> None:
        for name in group:
            where = f"{prefix}{name}"
            state["objects"] += 1
            if state["objects"] > MAX_OBJECTS:
                raise ExportError(f"{path} holds more than {MAX_OBJECTS:,} groups and datasets; netx files hold a few "
                                  "per layer")
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(path, where, f"is a link to another file ({link.filename}:{link.path}); a netx file must "
                                           "hold all its data itself")
            if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
                raise _refuse(path, where, f"is a {type(link).__name__}; a netx file holds plain groups and datasets")
            obj = group.get(name)
            if obj is None:
                raise _refuse(path, where, "is a link to nothing")
            if isinstance(obj, h5py.Group):
                if depth >= MAX_DEPTH:
                    raise _refuse(path, where, f"nests groups deeper than netx files do ({MAX_DEPTH} levels)")
                walk(obj, where + "/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                state["bytes"] += _check_dataset(obj, path, where)
                if state["bytes"] > MAX_DECLARED_BYTES:
                    raise ExportError(f"{path}: its datasets declare more than {MAX_DECLARED_BYTES / 2**30:g} GiB in all "
                                      f"(at {where}); refused before reading")

    walk(fh, "", 1)
    if "layer" in fh and isinstance(fh["layer"], h5py.Group) and len(fh["layer"]) > MAX_LAYER_GROUPS:
        raise ExportError(f"{path} has {len(fh['layer'])} layer groups, more than {MAX_LAYER_GROUPS}")


def _check_dataset(ds: Any, path: Path, where: str) -> int:
    """One dataset's storage and declared size; returns its declared bytes."""
    import h5py

    if ds.is_virtual:
        raise _refuse(path, where, "is a virtual dataset (its data lives in other files); a netx file must hold all "
                                   "its data itself")
    if ds.external:
        raise _refuse(path, where, f"stores its data in a raw file outside the netx file ({ds.external[0][0]!r}); "
                                   "refused")
    if ds.shape is None:
        raise _refuse(path, where, "is an empty dataset without a value")
    dtype = ds.dtype
    text = h5py.check_string_dtype(dtype) is not None
    if not text and dtype.kind not in "biuf":
        raise _refuse(path, where, f"has type {dtype}; netx files hold numbers, booleans and strings")
    size = int(np.prod(ds.shape, dtype=object))
    if size > MAX_DATASET_ELEMENTS or (text and size > 64):
        limit = 64 if text else MAX_DATASET_ELEMENTS
        raise _refuse(path, where, f"declares shape {list(ds.shape)} ({size:,} elements, more than {limit:,}); refused "
                                   "before reading")
    return size * max(int(dtype.itemsize), 1)


def _integers(value: Any, path: Path, where: str, lo: int, hi: int, count: int | None = 1) -> np.ndarray:
    """``value`` as int64 after checking it holds finite integers in ``lo..hi`` (``count``
    values, or any number when ``None``)."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise _refuse(path, where, f"must hold integers, got {a.dtype}")
    a = a.reshape(-1)
    if count is not None and a.size != count:
        raise _refuse(path, where, f"must hold {count} value{'s' if count > 1 else ''}, got {a.size}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise _refuse(path, where, "holds NaN or infinity")
        if not np.array_equal(np.rint(a), a):
            bad = a[np.rint(a) != a][0]
            raise _refuse(path, where, f"holds {bad:g}, not an integer (netx would truncate it)")
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a.min() if a.min() < lo else a.max()
        raise _refuse(path, where, f"holds {bad:g}, outside {lo}..{hi}")
    return a.astype(np.int64)


def _one_or_two(g: Any, name: str, path: Path, where: str, lo: int) -> tuple[int, int]:
    if name not in g:
        raise _refuse(path, where, f"has no '{name}'")
    a = np.asarray(g[name][()]).reshape(-1)
    if a.size not in (1, 2):
        raise _refuse(path, f"{where} {name}", f"must hold 1 or 2 values, got {a.size}")
    v = _integers(a, path, f"{where} {name}", lo, CONV_PARAM_MAX, None)
    return (int(v[0]), int(v[-1]))


def check_shape(value: Any, path: Path, where: str) -> tuple[int, ...]:
    """A layer's ``shape``: 1 to 3 positive integers, at most :data:`MAX_LAYER_NEURONS` neurons.

    Raises:
        ExportError: Naming the layer.
    """
    a = np.atleast_1d(np.asarray(value))
    if a.ndim != 1 or not 1 <= a.size <= 3:
        raise _refuse(path, f"{where} shape", f"must hold 1 to 3 sizes, got shape {list(a.shape)}")
    shape = tuple(int(v) for v in _integers(a, path, f"{where} shape", 1, MAX_LAYER_NEURONS, None))
    neurons = int(np.prod(shape, dtype=object))
    if neurons > MAX_LAYER_NEURONS:
        raise _refuse(path, f"{where} shape", f"{list(shape)} declares {neurons:,} neurons, more than "
                                              f"{MAX_LAYER_NEURONS:,} a layer")
    return shape


def check_layer_group(g: Any, path: Path, key: str, kind: str) -> None:
    """The small fields of one layer group (its shape, neuron, conv parameters, input
    transform), checked before the reader uses them.

    Raises:
        ExportError: A field missing, not an integer (netx would truncate it), non-finite
            or outside what Lava represents; one line naming the layer and the field.
    """
    where = f"layer/{key}"
    if "shape" in g:
        check_shape(g["shape"][()], path, where)
    if "neuron" in g:
        neuron = g["neuron"]
        neuron_type = "CUBA"
        if "type" in neuron:
            raw = neuron["type"][()]
            raw = raw.reshape(-1)[0] if isinstance(raw, np.ndarray) and raw.size else raw
            neuron_type = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        sdnn = neuron_type == "SDNN"
        for name, (lo, hi, cuba_needs) in _NEURON_FIELDS.items():
            # netx reads vThMant of every sigma-delta neuron but a Sigma output's
            needed = (name == "vThMant" and "sigma_output" not in neuron) if sdnn else (
                cuba_needs and neuron_type in ("CUBA", "LOIHI"))
            if name not in neuron:
                if needed:
                    raise _refuse(path, where, f"{neuron_type} neuron has no neuron/{name}, which netx reads")
                continue
            _integers(neuron[name][()], path, f"{where} neuron/{name}", lo, hi)
        ref_delay = int(np.max(neuron["refDelay"][()])) if "refDelay" in neuron else 0
        if ref_delay > REF_DELAY_SIMULATED:
            raise _refuse(path, where, f"neuron/refDelay holds {ref_delay}: Loihi 2 would hold "
                                       "these neurons refractory after a spike, and Lava's LIF (what netx builds) has no "
                                       f"refractory period, so no simulation would run what the chip runs (at most "
                                       f"{REF_DELAY_SIMULATED}, what SLAYER's CUBA export writes)")
    if kind == "input":
        for name in ("weight", "bias"):
            if name in g:
                _integers(g[name][()], path, f"{where} input {name}", BIAS_MANT_MIN, BIAS_MANT_MAX)
    if kind == "conv":
        for name in ("stride", "dilation"):
            _one_or_two(g, name, path, where, 1)
        _one_or_two(g, "padding", path, where, 0)
        if "groups" not in g:
            raise _refuse(path, where, "has no 'groups'")
        _integers(g["groups"][()], path, f"{where} groups", 1, CONV_PARAM_MAX)


def check_weights(weight: np.ndarray, kind: str, path: Path, key: str) -> None:
    """A weighted layer's stored weights, as netx hands them to Lava.

    Raises:
        ExportError: Not numbers, NaN or infinite, not integers (netx's ``astype(int)`` would
            truncate them), outside ``-256..255``, or above 254 in a dense layer of mixed
            signs (netx's ``optimize_weight_bits`` would clip them).
    """
    where = f"layer/{key} weight"
    if weight.dtype.kind not in "biuf":
        raise _refuse(path, where, f"must hold numbers, got {weight.dtype}")
    if kind == "conv" and weight.ndim == 5 and weight.shape[-1] != 1:
        raise _refuse(path, where, f"of shape {list(weight.shape)} has a last axis of {weight.shape[-1]}; netx reads "
                                   "only its first entry")
    if not weight.size:
        return
    if weight.dtype.kind == "f":
        finite = np.isfinite(weight)
        if not finite.all():
            raise _refuse(path, where, f"holds {weight[~finite].reshape(-1)[0]:g} (NaN or infinity)")
        frac = np.rint(weight) != weight
        if frac.any():
            raise _refuse(path, where, f"holds {weight[frac].reshape(-1)[0]:g}, not an integer (netx's astype(int) "
                                       "would truncate it)")
    lo, hi = float(weight.min()), float(weight.max())
    if lo < WEIGHT_MIN or hi > WEIGHT_MAX:
        bad = lo if lo < WEIGHT_MIN else hi
        raise _refuse(path, where, f"holds {bad:g}, outside Loihi's 8-bit weight mantissa and sign "
                                   f"({WEIGHT_MIN}..{WEIGHT_MAX})")
    if kind == "dense" and lo < 0 < hi and hi > WEIGHT_MAX_MIXED:
        raise _refuse(path, where, f"holds {hi:g} beside negative weights; netx clips a dense layer of mixed signs to "
                                   f"{WEIGHT_MIN}..{WEIGHT_MAX_MIXED}, so it would not run as written")


def check_conv_geometry(weight_shape: tuple[int, ...], in_chw: tuple[int, ...], out_chw: tuple[int, ...],
                        stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int], groups: int,
                        path: Path, key: str) -> None:
    """A conv layer's kernel, groups and output size must fit its input and output shapes.

    Args:
        weight_shape: ``[C_out, C_in / groups, kH, kW]`` (a trailing axis of 1 dropped).

    Raises:
        ExportError: A kernel larger than Lava's int8 holds, channels the groups do not
            divide, or an output size the convolution does not give.
    """
    where = f"layer/{key}"
    c_out, c_in_g, kh, kw = (int(v) for v in weight_shape)
    if not (1 <= kh <= CONV_PARAM_MAX and 1 <= kw <= CONV_PARAM_MAX):
        raise _refuse(path, f"{where} weight", f"has a {kh}x{kw} kernel; Lava's Conv holds 1..{CONV_PARAM_MAX}")
    if len(out_chw) != 3:
        raise _refuse(path, f"{where} shape", f"of a conv layer must be [C, H, W], got {list(out_chw)}")
    if c_in_g * groups != in_chw[0] or c_out % groups:
        raise _refuse(path, f"{where} groups", f"{groups} with weight {list(weight_shape)} does not fit {in_chw[0]} input "
                                               f"and {c_out} output channels")
    size = [(n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, p, d, k, s in zip(in_chw[1:], padding, dilation, (kh, kw), stride)]
    if size != list(out_chw[1:]):
        raise _refuse(path, f"{where} shape", f"{list(out_chw)} is not what the convolution gives from input "
                                              f"{list(in_chw)} ({[out_chw[0], *size]})")
