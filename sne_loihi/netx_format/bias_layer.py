"""A first layer driven by a per-sample neuron bias: the netx file's marker and the host's
integer maths (h5py and numpy only; written by :mod:`sne_loihi.export.netx_write`, run by
:mod:`sne_loihi.sim`).

With ``current_decay = 1`` (SLAYER's scale 4096, netx's ``iDecay`` 4096, Lava's ``du`` 4095
plus its 1-bit offset) Lava's bit-accurate LIF keeps no current: ``u[t] = a_in[t] << 6``, and
``v[t] = decay(v[t-1]) + u[t] + (bias_mant << bias_exp)``. The student's input is the same
graded image at every one of its T steps, so the first layer's synaptic input
``a_in = sum(W_mant * x)`` is the same every step, and the per-sample mantissa

    bias_mant = sum(W_mant * x) + b_mant        (bias_exp = 6, netx's exponent)

gives the neurons exactly the voltage the synapse would (``b_mant``: the layer's own stored
neuron bias, a folded batch norm, 0 without one). :meth:`BiasDrivenLayer.mantissas_nchw` is
that integer convolution of the integer input with the file's integer weights.

The file says so with one dataset in the first weighted layer's group,
``inputDrive = "bias"``. netx reads only the keys it knows, so the file is still an ordinary
netx network: fed the graded image through its synapses it gives the same spikes. The conv
synapse stays in the file (the host reads its weights); on the chip it receives nothing.

Range: the chip's ``bias_mant`` is a signed 13-bit register (-4096..4095); the per-sample
mantissas are often wider. Saturating them there changes no spike when the layer's threshold
mantissa ``vThMant`` is below 4095 (:attr:`BiasDrivenLayer.saturates_exactly`): with no current
memory and the same drive ``d`` at every step, ``v = decay(v) + d``, so a neuron with
``d > vThMant`` fires at every step and is reset, whatever ``d`` (4095 does the same), and one
with ``d < 0`` never fires (-4096 does the same). Only drives at or below the threshold shape
the spike train, and those fit. The host then writes the saturated mantissas
(:meth:`BiasDrivenLayer.register_xyz`), which is what the chip's register holds, and the Lava
graph's parity with torch checks the argument on every sample it runs. For a layer whose
threshold does not fit, the host writes the exact mantissas (Lava's CPU model stores any
value) and :func:`exponent_needed` says which ``bias_exp`` the chip would need and whether it
is still exact there (the readiness report counts both cases, :mod:`sne_loihi.sim.readiness`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sne_loihi.errors import ExportError
from sne_loihi.netx_format.netx_file import as_pair
from sne_loihi.netx_format.neuron_bias import BIAS_MANT_MAX, BIAS_MANT_MIN, NETX_BIAS_EXP, read_layer_bias

#: The dataset in the first weighted layer's group that marks a bias-driven first layer.
INPUT_DRIVE_KEY = "inputDrive"
#: Its value.
BIAS_DRIVE = b"bias"
#: netx's ``iDecay`` of a current without memory (SLAYER's ``current_decay = 1`` x 4096).
NO_CURRENT_MEMORY = 1 << 12
#: Largest ``bias_exp`` of Lava's LIF (unsigned 3 bits).
BIAS_EXP_MAX = 7


def mark_bias_driven(group: object) -> None:
    """Write the marker into an h5py layer group (the first weighted layer's)."""
    group.create_dataset(INPUT_DRIVE_KEY, (1,), "S8", [BIAS_DRIVE])


def _text(value: object) -> bytes:
    value = np.asarray(value).reshape(-1)[0] if np.ndim(value) else value
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass(frozen=True)
class BiasDrivenLayer:
    """The first (conv) layer of a network whose neurons take the input as their bias.

    Attributes:
        weight_oihw: Integer weights as stored (torch order ``[O, C / groups, kH, kW]``).
        stride, padding, dilation: ``(y, x)`` pairs, torch order.
        groups: Convolution groups.
        bias_chw: The layer's own neuron bias mantissas ``[O, H', W']`` (zeros without one).
        in_shape_chw, out_shape_chw: Input image and neuron shapes (torch order).
        v_th_mant: The layer's threshold mantissa (``neuron/vThMant``, compared with the
            bias mantissa at exponent 6 on the same scale).
        graded_spikes: The layer's neurons send graded spikes (their payload carries the
            voltage, so a saturated drive could change it).
    """

    weight_oihw: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias_chw: np.ndarray
    in_shape_chw: tuple[int, int, int]
    out_shape_chw: tuple[int, int, int]
    v_th_mant: int
    graded_spikes: bool = False

    @property
    def saturates_exactly(self) -> bool:
        """Whether mantissas saturated to the signed 13-bit register give the same spikes as
        the exact ones (the threshold mantissa is below the register's largest value; see the
        module docstring)."""
        return not self.graded_spikes and 0 <= self.v_th_mant < BIAS_MANT_MAX

    def register(self, mant: np.ndarray) -> np.ndarray:
        """What the host writes into ``bias_mant`` for exact mantissas ``mant``: saturated to
        the 13-bit register when that changes no spike, else ``mant`` unchanged."""
        return np.clip(mant, BIAS_MANT_MIN, BIAS_MANT_MAX) if self.saturates_exactly else mant

    @property
    def neurons(self) -> int:
        """Values the host writes per sample (one mantissa per first-layer neuron)."""
        return int(np.prod(self.out_shape_chw))

    @property
    def out_shape_xyz(self) -> tuple[int, int, int]:
        """The neurons' shape in Lava order."""
        return tuple(reversed(self.out_shape_chw))

    def synaptic_nchw(self, x_nchw: np.ndarray) -> np.ndarray:
        """``sum(W_mant * x)`` per neuron for integer images ``[N, C, H, W]`` (int64, exact).

        A cross-correlation as torch's ``conv2d`` computes it (what Lava's ``Conv`` computes
        with its flipped kernel). float64 products are exact below 2**53, which
        ``max|x| * max sum|w|`` is checked against; int64 arithmetic above.
        """
        x = np.asarray(x_nchw)
        n, c, h, w = x.shape
        if (c, h, w) != tuple(self.in_shape_chw):
            raise ExportError(f"the bias-driven first layer takes [N, {', '.join(map(str, self.in_shape_chw))}] "
                              f"images, got {list(x.shape)}")
        o, cg, kh, kw = self.weight_oihw.shape
        _, ho, wo = self.out_shape_chw
        bound = int(np.abs(x).max(initial=0)) * int(np.abs(self.weight_oihw).reshape(o, -1).sum(axis=1).max(initial=0))
        dtype = np.float64 if bound < 2 ** 53 else np.int64
        (py, px), (sy, sx), (dy, dx) = self.padding, self.stride, self.dilation
        padded = np.pad(x.astype(dtype), ((0, 0), (0, 0), (py, py), (px, px)))
        iy = (np.arange(ho) * sy)[:, None] + (np.arange(kh) * dy)[None, :]  # [Ho, kH]
        ix = (np.arange(wo) * sx)[:, None] + (np.arange(kw) * dx)[None, :]  # [Wo, kW]
        patches = padded[:, :, iy[:, None, :, None], ix[None, :, None, :]]  # [N, C, Ho, Wo, kH, kW]
        og = o // self.groups
        outs = []
        for g in range(self.groups):
            p = patches[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, cg * kh * kw)
            wg = self.weight_oihw[g * og:(g + 1) * og].reshape(og, -1).astype(dtype)
            outs.append(p @ wg.T)
        out = outs[0] if self.groups == 1 else np.concatenate(outs, axis=1)
        return np.rint(out).astype(np.int64).reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def mantissas_nchw(self, x_nchw: np.ndarray) -> np.ndarray:
        """The per-sample ``bias_mant`` (exponent 6) of every neuron: ``sum(W_mant * x) + b_mant``."""
        return self.synaptic_nchw(x_nchw) + self.bias_chw[None]

    def mantissas_xyz(self, x_xyz: np.ndarray, with_bias: bool = True) -> np.ndarray:
        """One sample in Lava order (``(W, H, C)`` image -> ``(W', H', O)`` mantissas); the
        layer's own bias only when ``with_bias`` (a switched-off network gets none)."""
        syn = self.synaptic_nchw(np.asarray(x_xyz).transpose(2, 1, 0)[None])[0]
        return (syn + self.bias_chw if with_bias else syn).transpose(2, 1, 0)

    def register_xyz(self, x_xyz: np.ndarray, with_bias: bool = True) -> np.ndarray:
        """:meth:`mantissas_xyz` as the host writes them (:meth:`register`)."""
        return self.register(self.mantissas_xyz(x_xyz, with_bias))


def exponent_needed(mant: np.ndarray) -> tuple[int, bool]:
    """``(bias_exp, exact)``: the smallest exponent ``e >= 6`` at which every mantissa
    ``m`` fits Loihi's signed 13-bit ``bias_mant`` as ``m >> (e - 6)``, and whether that shift
    loses nothing (every ``m`` a multiple of ``2**(e - 6)``). ``e`` may exceed
    :data:`BIAS_EXP_MAX` (then no exponent holds them)."""
    m = np.asarray(mant, dtype=np.int64)
    shift = 0
    while m.size and ((m >> shift).min() < BIAS_MANT_MIN or (m >> shift).max() > BIAS_MANT_MAX):
        shift += 1
    exact = bool(not m.size or not np.any(m & ((1 << shift) - 1)))
    return NETX_BIAS_EXP + shift, exact


def read_bias_driven_layer(path: Path) -> BiasDrivenLayer | None:
    """The bias-driven first layer of a netx file, or ``None`` when the file has no marker.

    Raises:
        ExportError: A marker on another layer than the first weighted one, on a layer that
            is not a conv, a first layer whose current keeps memory (``iDecay`` != 4096), an
            input layer with a neuron in front of it, or an unreadable file.
    """
    return _open(path, marked=True)


def read_first_conv_layer(path: Path) -> BiasDrivenLayer | None:
    """The first weighted layer of any toolkit netx file as the bias path would drive it
    (marker or not), or ``None`` when it could not be: not a conv, an input neuron in front
    of it, or a current with memory (the readiness report's what-if for synaptic exports).

    Raises:
        ExportError: An unreadable file.
    """
    return _open(path, marked=False)


def _open(path: Path, marked: bool) -> BiasDrivenLayer | None:
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as fh:
            from sne_loihi.netx_format.limits import check_file_objects

            check_file_objects(fh, path)  # links, external storage, declared sizes: before any read
            return _read(fh, path) if marked else _first_conv(fh, path)
    except ExportError:
        raise
    except Exception as exc:  # h5py: OSError/KeyError/ValueError for damaged files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{path} is not a readable netx HDF5 file (corrupt or truncated?): {first}") from None


def _keys(fh: object) -> tuple[object, list[str], list[str]]:
    group = fh["layer"]
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    return group, keys, [k for k in keys if _text(group[k]["type"][()]) in (b"conv", b"dense")]


def _first_conv(fh: object, path: Path) -> BiasDrivenLayer | None:
    group, keys, weighted = _keys(fh)
    if not weighted:
        return None
    try:
        return _layer(group, keys, weighted[0], path)
    except ExportError:
        return None


def _read(fh: object, path: Path) -> BiasDrivenLayer | None:
    group, keys, weighted = _keys(fh)
    marked = [k for k in keys if INPUT_DRIVE_KEY in group[k]]
    if not marked:
        return None
    key = marked[0]
    where = f"{path}: layer/{key}"
    if len(marked) > 1 or not weighted or key != weighted[0]:
        raise ExportError(f"{where} carries {INPUT_DRIVE_KEY}, which only the first weighted layer may")
    drive = _text(group[key][INPUT_DRIVE_KEY][()])
    if drive != BIAS_DRIVE:
        raise ExportError(f"{where} {INPUT_DRIVE_KEY} is {drive.decode(errors='replace')!r}; known: 'bias'")
    return _layer(group, keys, key, path)


def _layer(group: object, keys: list[str], key: str, path: Path) -> BiasDrivenLayer:
    where = f"{path}: layer/{key}"
    g = group[key]
    if _text(g["type"][()]) != b"conv":
        raise ExportError(f"{where} is bias-driven but not a conv layer; the host's bias maths is a convolution")
    inputs = [k for k in keys[: keys.index(key)] if _text(group[k]["type"][()]) == b"input"]
    if not inputs or any("neuron" in group[k] for k in inputs):
        raise ExportError(f"{where} is bias-driven but has no plain input layer (one without a neuron) before it")
    in_chw = tuple(int(v) for v in np.atleast_1d(group[inputs[-1]]["shape"][()]))
    i_decay = int(np.asarray(g["neuron/iDecay"][()]).reshape(-1)[0]) if "neuron/iDecay" in g else -1
    if i_decay != NO_CURRENT_MEMORY:
        raise ExportError(f"{where} is bias-driven but its current decay iDecay is {i_decay}, not "
                          f"{NO_CURRENT_MEMORY}: the current keeps memory, so a per-sample bias is not its input")
    weight = np.asarray(g["weight"][()], dtype=np.float64)
    weight = weight[..., 0] if weight.ndim == 5 else weight
    if weight.ndim != 4 or len(in_chw) != 3 or not np.array_equal(np.rint(weight), weight):
        raise ExportError(f"{where}: a bias-driven conv needs integer weights [O, C, kH, kW] and a [C, H, W] input")
    out_chw = tuple(int(v) for v in np.atleast_1d(g["shape"][()]))
    v_th = np.asarray(g["neuron/vThMant"][()]).reshape(-1) if "neuron/vThMant" in g else np.array([])
    if v_th.size != 1 or not np.isfinite(v_th[0]) or v_th[0] != np.rint(v_th[0]):
        raise ExportError(f"{where} is bias-driven but has no single integer threshold neuron/vThMant")
    bias = read_layer_bias(g["bias"][()], out_chw, where) if "bias" in g else np.zeros(out_chw, dtype=np.int64)
    return BiasDrivenLayer(
        weight_oihw=np.rint(weight).astype(np.int64), stride=as_pair(g["stride"][()]), padding=as_pair(g["padding"][()]),
        dilation=as_pair(g["dilation"][()]), groups=int(np.asarray(g["groups"][()]).reshape(-1)[0]), bias_chw=bias,
        in_shape_chw=in_chw, out_shape_chw=out_chw, v_th_mant=int(v_th[0]),
        graded_spikes=bool(np.asarray(g["neuron/gradedSpike"][()]).reshape(-1)[0]) if "neuron/gradedSpike" in g else False)
