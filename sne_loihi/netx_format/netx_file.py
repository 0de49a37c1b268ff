"""netx HDF5 files: read and validate any netx network (h5py only; the writer is
:mod:`sne_loihi.export.netx_write`).

File layout written by :func:`~sne_loihi.export.netx_write.write_student_hdf5` (what ``lava.lib.dl.netx.hdf5.Network``
reads unchanged)::

    layer/0   type=input, shape=[C, H, W]      (no neuron: Lava feeds the first synapse)
    layer/1.. each SLAYER block's own ``export_hdf5`` group (conv, flatten, dense)

Shapes inside the file are in torch order (``[C, H, W]``); netx reverses them to Lava's
``(x, y, f)`` = ``(W, H, C)`` order. :func:`read_netx_layers` returns Lava-order shapes and,
per weighted layer, the synaptic fan-out of every input neuron (the number of non-zero
weights leaving it), which the op counters multiply with the layer's non-zero inputs.

Files written by lava-dl itself (not by this toolkit) are read too
(:func:`read_netx_network`): an input layer with a CUBA or sigma-delta neuron (netx builds
an ``Input`` block for it), driven by the input or, when the layer carries SLAYER's input
transform (``weight`` / ``bias``), by its neurons' bias (:class:`InputTransform`); dense
layers stored with any shape (``[N, 1, 1]`` after a flatten; netx's dense ports are flat),
dense layers with axonal delays, conv layers whose stored delays are all zero, CUBA neurons
flagged ``gradedSpike`` (netx builds them as binary LIF neurons; a note says so), and
sigma-delta (SDNN) layers. Everything netx cannot build, or builds differently from what the
file says, is refused with one line naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sne_loihi.errors import ExportError
from sne_loihi.layers import LayerKind
from sne_loihi.netx_format.limits import check_conv_geometry, check_file_objects, check_layer_group, check_weights
from sne_loihi.netx_format.neuron_bias import BIAS_MANT_MAX, BIAS_MANT_MIN, read_layer_bias

#: Layer types netx's ``hdf5.Network`` can build (platform notes).
SUPPORTED_TYPES = ("input", "conv", "dense", "flatten")


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
        stored_weights: Number of weights Lava stores for the layer: the whole conv kernel or
            dense matrix, zeros included (what its memory and the fast conv model's im2col
            product scale with).
        fanout_port: The fan-out shaped like the Lava port the input spikes leave from.
        max_delay: Largest axonal delay (steps).
        bias_xyz: The CUBA neurons' bias mantissas (``bias_mant``, Lava order, int64; see
            :mod:`~sne_loihi.netx_format.neuron_bias`), or ``None`` when the layer has no bias.
    """

    kind: LayerKind
    index: int
    in_shape_xyz: tuple[int, ...]
    out_shape_xyz: tuple[int, ...]
    fanout_xyz: np.ndarray
    num_weights: int
    fanout_port: np.ndarray | None = None
    stored_weights: int = 0
    max_delay: int = 0
    bias_xyz: np.ndarray | None = None

    @property
    def port_fanout(self) -> np.ndarray:
        """The fan-out shaped like the Lava port the layer's input spikes leave from (flat
        after a netx dense block, ``(x, y, f)`` after a conv or an input block)."""
        return self.fanout_xyz if self.fanout_port is None else self.fanout_port


#: Lava's LIF ``bias_mant`` is a signed 13-bit integer.
BIAS_MANT_RANGE = (BIAS_MANT_MIN, BIAS_MANT_MAX)


@dataclass(frozen=True)
class InputTransform:
    """SLAYER's input transform of an input layer with a neuron (``cuba.Input(weight=, bias=)``):
    its neurons integrate ``weight * x + bias``. netx reads both integers (``int(...)``, as
    ``hdf5.Network.create_input`` does: ``weight`` 64 when absent, ``bias`` 0) into
    ``Input.transform`` and leaves the neuron's bias at 0 for the user to drive ("the input
    must be handled through neuron's bias"), as lava-dl's own tests do by setting
    ``bias_mant`` by hand.

    Attributes:
        weight: The transform's weight (64 = 1.0: SLAYER's weight scale).
        bias: The transform's bias.
    """

    weight: int
    bias: int

    def bias_mant(self, x: np.ndarray) -> np.ndarray:
        """The neurons' ``bias_mant`` for input ``x``: ``rint(weight * x + bias)`` (int64)."""
        return np.rint(self.weight * np.asarray(x, dtype=np.float64) + self.bias).astype(np.int64)


@dataclass(frozen=True)
class NetxNetwork:
    """What netx builds from a file: its weighted layers and whether an ``Input`` block
    (an input layer with a neuron) comes first.

    Attributes:
        layers: The weighted layers (conv / dense) in order.
        input_neuron: The file's input layer has a neuron; netx makes it the first block
            and the network's input drives that neuron's ``a_in`` directly (no synapse, no
            step of delay, no synaptic ops).
        input_shape_xyz: Shape of the network's input in Lava order.
        num_groups: Layer groups read (all, or the first ``num_layers``).
        sdnn_layer: Index of the first layer group with sigma-delta (SDNN) neurons, or
            ``None``. netx builds them as Lava's ``Delta`` (input layer), ``SigmaDelta`` or
            ``Sigma`` (``sigma_output``) processes; they send signed graded messages and
            netx never resets them.
        graded_output: The last block sends graded messages (SDNN), not binary spikes.
        bias_input: The input layer's neuron is driven by its bias (the layer carries an
            input transform), or ``None``: the input drives the neuron's ``a_in``.
        notes: Lines to show the user: what netx builds differently from what the file
            says, where the run still equals netx's (e.g. ``gradedSpike`` CUBA neurons).
    """

    layers: list[NetxLayer]
    input_neuron: bool
    input_shape_xyz: tuple[int, ...]
    num_groups: int
    sdnn_layer: int | None = None
    graded_output: bool = False
    bias_input: InputTransform | None = None
    notes: tuple[str, ...] = ()

    @property
    def signed_input(self) -> bool:
        """The input drives a sigma-delta input neuron, which takes signed graded values."""
        return self.input_neuron and self.sdnn_layer == 0

    @property
    def num_blocks(self) -> int:
        """Blocks netx builds (``len(hdf5.Network.layers)``)."""
        return len(self.layers) + int(self.input_neuron)

    @property
    def max_delay(self) -> int:
        """Largest axonal delay of any layer (steps)."""
        return max((layer.max_delay for layer in self.layers), default=0)

    @property
    def total_delay(self) -> int:
        """Longest sum of axonal delays along the network (steps)."""
        return sum(layer.max_delay for layer in self.layers)

    @property
    def delayed_layer(self) -> NetxLayer | None:
        """The first layer with a non-zero axonal delay, or ``None``."""
        return next((layer for layer in self.layers if layer.max_delay > 0), None)

    @property
    def num_neurons(self) -> int:
        """Neurons netx builds: the weighted layers' and an ``Input`` block's."""
        inputs = int(np.prod(self.input_shape_xyz)) if self.input_neuron else 0
        return inputs + sum(int(np.prod(layer.out_shape_xyz)) for layer in self.layers)


def _scalar(v: object) -> int:
    return int(np.asarray(v).reshape(-1)[0])


def as_pair(v: object) -> tuple[int, int]:
    """A netx ``stride`` / ``padding`` / ``dilation`` entry (one value or two) as ``(y, x)``."""
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


def read_netx_layers(path: Path, num_layers: int | None = None) -> list[NetxLayer]:
    """Read and validate a netx HDF5 network; return its weighted layers in order.

    Every dataset is read, so a truncated file fails here rather than inside Lava.

    Args:
        path: The netx file.
        num_layers: Read only the first ``num_layers`` layer groups (as
            ``hdf5.Network(num_layers=...)`` builds them); ``None``: all.

    Raises:
        ExportError: Missing, unreadable, truncated or structurally invalid file, or layers
            netx cannot build (one line naming the layer and the reason).
    """
    return read_netx_network(path, num_layers).layers


def read_netx_network(path: Path, num_layers: int | None = None) -> NetxNetwork:
    """Like :func:`read_netx_layers`, with what else netx builds (an input neuron block).

    Raises:
        ExportError: As :func:`read_netx_layers`.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"netx file not found: {path}")
    if num_layers is not None and num_layers < 1:
        raise ExportError(f"the number of layers to run must be >= 1, got {num_layers}")
    try:
        with h5py.File(path, "r") as fh:
            return _read_layers(fh, path, num_layers)
    except ExportError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/ValueError for damaged files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{path} is not a readable netx HDF5 file (corrupt or truncated?): {first}") from None


def _text(value: object) -> str:
    value = value[0] if np.ndim(value) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_neuron(g: object, path: Path, key: str, notes: list[str]) -> str:
    """CUBA-LIF neurons with binary spikes, or sigma-delta neurons; returns the type
    (``CUBA`` for a layer without a neuron group, as netx assumes). A ``gradedSpike`` CUBA
    neuron adds a line to ``notes``: netx ignores the flag (Lava's LIF sends binary spikes)."""
    if "neuron" not in g:
        return "CUBA"
    neuron_type = _text(g["neuron/type"][()]) if "neuron/type" in g else "CUBA"
    if neuron_type not in ("CUBA", "LOIHI", "SDNN"):
        raise ExportError(f"{path}: layer/{key} has {neuron_type} neurons; supported are CUBA-LIF (CUBA, LOIHI) "
                          "and sigma-delta (SDNN)")
    if neuron_type == "SDNN":
        for name in g["neuron"].keys():
            g["neuron"][name][()]
        return neuron_type
    for name in g["neuron"].keys():
        g["neuron"][name][()]
    if "messageBits" in g["neuron"] and int(np.asarray(g["neuron/messageBits"][()]).reshape(-1)[0]) > 0:
        raise ExportError(f"{path}: layer/{key} has {neuron_type} neurons with neuron/messageBits > 0; netx builds "
                          "Lava's LIF for them, which sends binary spikes, so it would not run as written")
    if "gradedSpike" in g["neuron"] and bool(np.asarray(g["neuron/gradedSpike"][()]).reshape(-1)[0]):
        notes.append(f"{path}: layer/{key} has gradedSpike {neuron_type} neurons; netx builds Lava's LIF for them, "
                     "which sends binary spikes: run as netx runs it (binary spikes), not as SLAYER's graded forward")
    return neuron_type


def _input_transform(g: object, path: Path, key: str) -> InputTransform:
    """An input layer's ``weight`` / ``bias``, read as netx reads them (one number each)."""
    values = {}
    for name, default in (("weight", 64), ("bias", 0)):
        if name not in g:
            values[name] = default
            continue
        a = np.asarray(g[name][()], dtype=np.float64).reshape(-1)
        if a.size != 1 or not np.isfinite(a[0]):
            raise ExportError(f"{path}: layer/{key} input {name} must be one finite number (netx reads int({name})), "
                              f"got {a.size} values")
        values[name] = int(a[0])
    return InputTransform(weight=values["weight"], bias=values["bias"])


def _conv_delay(g: object, path: Path, key: str) -> None:
    """netx ignores a conv layer's delays: all zero is what it runs; anything else is refused."""
    if "delay" not in g:
        return
    delay = np.asarray(g["delay"][()], dtype=np.float64)
    if delay.size and (not np.all(np.isfinite(delay)) or np.abs(delay).max() > 0):
        worst = np.nanmax(np.abs(delay)) if np.isfinite(delay).any() else float("nan")
        raise ExportError(f"{path}: layer/{key} is a conv layer with axonal delays (up to {worst:g} steps), which netx "
                          "ignores (it would run the layer without them); only dense layers' delays can run")


def _dense_delay(g: object, path: Path, key: str, weight: np.ndarray) -> int:
    """Largest axonal delay of a dense layer, checked as netx reads it."""
    if "delay" not in g:
        return 0
    delay = np.asarray(g["delay"][()])
    if delay.ndim != 1 or delay.size not in (weight.shape[0], weight.shape[1]):
        raise ExportError(f"{path}: layer/{key} has delays of shape {list(delay.shape)}, which fit neither its "
                          f"{weight.shape[0]} outputs nor its {weight.shape[1]} inputs")
    if not np.all(np.isfinite(delay)) or delay.min() < 0 or not np.all(np.equal(np.mod(delay, 1), 0)):
        raise ExportError(f"{path}: layer/{key} delays must be integers >= 0")
    if delay.max() > 62:
        raise ExportError(f"{path}: layer/{key} has a delay of {int(delay.max())} steps; netx clamps delays to 62 "
                          "(Loihi's limit), so it would not run as written")
    return int(delay.max())


def _read_layers(fh: object, path: Path, num_layers: int | None = None) -> NetxNetwork:
    check_file_objects(fh, path)  # links, external storage, declared sizes: before any read
    if "layer" not in fh:
        raise ExportError(f"{path} has no 'layer' group: not a netx network")
    group = fh["layer"]
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if not keys or keys != [str(i) for i in range(len(keys))]:
        raise ExportError(f"{path}: layer groups must be named 0..n-1, found {list(group.keys())}")
    if num_layers is not None:
        keys = keys[:num_layers]
    shape: tuple[int, ...] | None = None  # torch order, current activation shape
    src_flat = False  # the Lava port the next layer's input leaves from is flat
    flattened = False  # a flatten layer since the last block
    input_neuron = False
    bias_input: InputTransform | None = None
    notes: list[str] = []
    sdnn_layer: int | None = None
    last_type = "CUBA"
    input_shape: tuple[int, ...] | None = None
    out: list[NetxLayer] = []
    for key in keys:
        g = group[key]
        if "type" not in g:
            raise ExportError(f"{path}: layer/{key} has no 'type'")
        kind = _text(g["type"][()])
        if kind not in SUPPORTED_TYPES:
            hint = f"; run the {key} layer groups before it with --layers {key}" if int(key) > 0 else ""
            raise ExportError(f"{path}: layer/{key} has type {kind!r}, which netx cannot build "
                              f"(it builds {', '.join(SUPPORTED_TYPES)}){hint}")
        check_layer_group(g, path, key, kind)
        if kind == "input":
            if out or input_neuron:
                raise ExportError(f"{path}: layer/{key} is an input layer after other layers")
            if "shape" not in g:
                raise ExportError(f"{path}: layer/{key} is an input layer without a 'shape'")
            shape = tuple(int(v) for v in np.atleast_1d(g["shape"][()]))
            if "neuron" in g:
                last_type = _check_neuron(g, path, key, notes)
                if last_type == "SDNN" and sdnn_layer is None:
                    sdnn_layer = int(key)
                if "bias" in g or "weight" in g:
                    if last_type == "SDNN":
                        raise ExportError(f"{path}: layer/{key} is a sigma-delta input layer with an input weight/bias; "
                                          "netx's Delta neuron has no bias to drive it with")
                    bias_input = _input_transform(g, path, key)
                input_neuron = True
                src_flat = len(shape) == 1
            continue
        if kind == "flatten":
            if shape is None:
                raise ExportError(f"{path}: layer/{key} flattens before any shape is known")
            flattened = True
            continue
        weight = np.asarray(g["weight"][()])
        check_weights(weight, kind, path, key)
        out_shape = tuple(int(v) for v in np.atleast_1d(g["shape"][()]))
        last_type = _check_neuron(g, path, key, notes)
        if last_type == "SDNN" and sdnn_layer is None:
            sdnn_layer = int(key)
        bias = None
        if "bias" in g and last_type != "SDNN":
            bias = _chw_to_xyz(read_layer_bias(g["bias"][()], out_shape, f"{path}: layer/{key}"))
        if shape is None:
            raise ExportError(f"{path}: layer/{key} has no known input shape (add an input layer with 'shape')")
        if input_shape is None:
            input_shape = shape if input_neuron else (shape if kind == "conv" else (int(np.prod(shape)),))
        delay = 0
        if kind == "conv":
            _conv_delay(g, path, key)
            if weight.ndim == 5:
                weight = weight[..., 0]
            if src_flat or flattened:
                raise ExportError(f"{path}: layer/{key} is a conv layer after a flat layer; netx cannot connect it")
            if len(shape) != 3 or weight.ndim != 4 or weight.shape[0] != out_shape[0]:
                raise ExportError(f"{path}: layer/{key} conv weight {weight.shape} does not fit input {shape} -> {out_shape}")
            stride, padding, dilation = (as_pair(g[name][()]) for name in ("stride", "padding", "dilation"))
            groups = _scalar(g["groups"][()])
            if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or groups < 1:
                raise ExportError(f"{path}: layer/{key} conv stride {list(stride)}, dilation {list(dilation)} and "
                                  f"groups {groups} must be >= 1 and padding {list(padding)} >= 0")
            check_conv_geometry(weight.shape, shape, out_shape, stride, padding, dilation, groups, path, key)
            fan = conv_fanout_chw(weight, shape, out_shape[1:], stride, padding, dilation, groups)
            kind_e = LayerKind.CONV
            port = _chw_to_xyz(fan)
        else:
            weight = weight.reshape(out_shape[0], -1) if weight.ndim == 1 else weight
            if weight.ndim != 2 or weight.shape != (int(np.prod(out_shape)), int(np.prod(shape))):
                raise ExportError(f"{path}: layer/{key} dense weight {weight.shape} does not fit input {shape} -> {out_shape}")
            if out and not src_flat and not flattened and len(shape) == 3:
                raise ExportError(f"{path}: layer/{key} is a dense layer after a conv layer without a flatten layer; "
                                  "netx cannot connect it")
            if input_neuron and not out and not src_flat and not flattened and len(shape) > 1:
                raise ExportError(f"{path}: layer/{key} is a dense layer after a {list(shape)} input neuron layer "
                                  "without a flatten layer; netx cannot connect it")
            delay = _dense_delay(g, path, key, weight)
            counts = (weight != 0).sum(axis=0).astype(np.int64)
            fan = counts.reshape(shape)
            # a dense port is flat: the torch flatten order (netx flattens x, y, f transposed)
            port = counts if (src_flat or (not out and not input_neuron)) else _chw_to_xyz(fan)
            kind_e = LayerKind.DENSE
        out.append(NetxLayer(
            kind=kind_e, index=int(key), in_shape_xyz=tuple(reversed(shape)), out_shape_xyz=tuple(reversed(out_shape)),
            fanout_xyz=np.ascontiguousarray(_chw_to_xyz(fan)), num_weights=int((weight != 0).sum()),
            fanout_port=np.ascontiguousarray(port), max_delay=delay,
            bias_xyz=None if bias is None else np.ascontiguousarray(bias), stored_weights=int(weight.size),
        ))
        shape = out_shape
        src_flat = kind_e is LayerKind.DENSE
        flattened = False
    if not out:
        raise ExportError(f"{path} has no conv or dense layer" + (f" in its first {num_layers} layer groups"
                                                                  if num_layers is not None else ""))
    in_xyz = tuple(reversed(input_shape)) if len(input_shape) == 3 else (int(np.prod(input_shape)),)
    return NetxNetwork(layers=out, input_neuron=input_neuron, input_shape_xyz=in_xyz, num_groups=len(keys),
                       sdnn_layer=sdnn_layer, graded_output=last_type == "SDNN", bias_input=bias_input,
                       notes=tuple(notes))
