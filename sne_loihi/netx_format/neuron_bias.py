"""The per-channel neuron bias of a weighted netx layer: units, grid and Loihi's range.

A folded student (``student.norm = "batch"``, :mod:`sne_loihi.students.fold`) adds a bias
``b`` (real units: those of the synaptic input ``z``) to ``z`` before its CUBA neuron. netx
reads a conv or dense layer group's ``bias`` dataset (``hdf5.Network.create_conv`` /
``create_dense``) into the LIF neuron's ``bias_mant`` (``int32`` cast, per output channel,
broadcast over x and y) with ``bias_exp = 6`` (``get_neuron_params``). Lava's bit-accurate LIF
then adds ``bias_mant << 6`` to the voltage every step, in the state units where the synaptic
input enters as ``a_in << 6`` and ``a_in`` is the sum of the stored integer weights
(``64 * w``). So, as for the weights::

    stored bias = bias_mant = 64 * b        (BIAS_SCALE, the weights' scale)
    Lava's effective bias = bias_mant << 6 = 4096 * b = SLAYER's state units of b

and ``b`` must lie on multiples of ``1/64`` (:data:`~sne_loihi.students.fold.BIAS_STEP`) for
the mantissa to be an integer. With ``current_decay = 1`` Lava's current holds only this
step's input, so the voltage gets ``4096 * (z + b)`` exactly as SLAYER's neuron does.

Range: ``bias_mant`` is a signed 13-bit integer (Lava's ``PyLifModelBitAcc``: ``precision=13``,
-4096..4095) and netx fixes the exponent at 6, so ``-64 <= b <= 4095 / 64`` (about 63.98).
A larger bias would need a larger exponent (Lava allows 0..7; 7 would double the range but
lose the last bit of the 1/64 grid) and netx has no way to store one, so it is refused.

No Lava import: read by the exporter, the netx reader and the readiness report.
"""

from __future__ import annotations

import numpy as np

from sne_loihi.errors import ExportError

#: Stored ``bias`` (= Lava's ``bias_mant``) per unit of real bias: the weights' scale.
BIAS_SCALE = 64
#: The ``bias_exp`` netx gives every CUBA neuron (``hdf5.Network.get_neuron_params``).
NETX_BIAS_EXP = 6
#: Lava's LIF ``bias_mant``: signed 13 bits (``PyLifModelBitAcc``, ``precision=13``).
BIAS_MANT_MIN, BIAS_MANT_MAX = -(2 ** 12), 2 ** 12 - 1


def bias_mantissas(bias_c: np.ndarray, where: str) -> np.ndarray:
    """The ``bias`` dataset netx reads for a real-unit per-channel bias: ``64 * bias`` (int64).

    Args:
        bias_c: Real-unit bias, one value per output channel.
        where: What the bias belongs to, for the error message (e.g. ``"layer 0"``).

    Raises:
        ExportError: A bias off the 1/64 grid (netx would truncate it) or outside Lava's
            13-bit ``bias_mant`` at netx's exponent 6.
    """
    scaled = np.asarray(bias_c, dtype=np.float64).reshape(-1) * BIAS_SCALE
    if not np.all(np.isfinite(scaled)):
        raise ExportError(f"{where}: the neuron bias holds non-finite values")
    mant = np.rint(scaled)
    if not np.array_equal(mant, scaled):
        worst = float(np.abs(mant - scaled).max()) / BIAS_SCALE
        raise ExportError(f"{where}: the neuron bias is not on the 1/{BIAS_SCALE} grid Loihi stores "
                          f"(off by up to {worst:g}); fold it with sne_loihi.students.fold.quantize_bias")
    check_mantissa_range(mant, where)
    return mant.astype(np.int64)


def check_mantissa_range(mant: np.ndarray, where: str) -> None:
    """Refuse bias mantissas outside Lava's signed 13-bit ``bias_mant``.

    Raises:
        ExportError: Naming the largest offending value and the real-unit range.
    """
    mant = np.asarray(mant)
    if mant.size and (mant.min() < BIAS_MANT_MIN or mant.max() > BIAS_MANT_MAX):
        worst = float(mant.min() if -mant.min() > mant.max() else mant.max())
        raise ExportError(f"{where}: neuron bias {worst / BIAS_SCALE:g} (mantissa {worst:g}) is outside Loihi's "
                          f"13-bit bias_mant at netx's exponent {NETX_BIAS_EXP} ({BIAS_MANT_MIN / BIAS_SCALE:g}.."
                          f"{BIAS_MANT_MAX / BIAS_SCALE:g} in real units)")


def read_layer_bias(values: object, out_shape_chw: tuple[int, ...], where: str) -> np.ndarray:
    """A weighted layer group's stored ``bias``, checked as netx builds it, as per-neuron
    mantissas in torch order (``out_shape_chw``).

    netx accepts one value per output channel (broadcast over x, y) or one per neuron (Lava
    order), and casts to ``int32``; here both are accepted, a non-integer value (netx would
    truncate it) or one outside the 13-bit range is refused.

    Raises:
        ExportError: A shape netx cannot broadcast, non-integer, non-finite or out-of-range values.
    """
    a = np.asarray(values, dtype=np.float64)
    channels = int(out_shape_chw[0])
    if a.ndim == 1 and a.size == channels:
        full = np.broadcast_to(a.reshape(channels, *[1] * (len(out_shape_chw) - 1)), out_shape_chw)
    elif a.shape == tuple(reversed(out_shape_chw)):  # one per neuron, Lava (x, y, f) order
        full = a.transpose(*reversed(range(a.ndim)))
    else:
        raise ExportError(f"{where}: neuron bias of shape {list(a.shape)} fits neither its {channels} channels nor "
                          f"its neurons {list(reversed(out_shape_chw))}")
    if not np.all(np.isfinite(full)) or not np.array_equal(np.rint(full), full):
        raise ExportError(f"{where}: neuron bias must hold integers (Lava's bias_mant; netx would truncate others)")
    check_mantissa_range(full, where)
    return np.ascontiguousarray(full).astype(np.int64)
