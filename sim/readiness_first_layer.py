"""The readiness report's first-layer section: what driving a student's first layer by a
per-sample neuron bias (``lava.first_layer = "bias"``, :mod:`sne_loihi.netx_format.bias_layer`)
moves and saves against the synaptic path: values written per sample (one mantissa per
first-layer neuron, once) against the T graded input frames (``C*H*W*T`` values), the first
layer's synaptic ops on the chip (``T`` x the sample's non-zero inputs x fan-out) against the
host's MACs (once), and whether the per-sample mantissas, measured on the parity samples and
bounded over any input, fit the chip's signed 13-bit ``bias_mant`` at netx's exponent 6:
saturated there where that changes no spike (the layer's threshold mantissa below 4095), else
which ``bias_exp`` would hold them and whether they are still exact there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.netx_format.bias_layer import (
    BiasDrivenLayer, exponent_needed, read_bias_driven_layer, read_first_conv_layer,
)
from sne_loihi.netx_format.netx_file import read_netx_network
from sne_loihi.netx_format.neuron_bias import BIAS_MANT_MAX, BIAS_MANT_MIN
from sne_loihi.sim import loihi2_limits as lim
from sne_loihi.sim.loihi2_limits import Status
from sne_loihi.sim.readiness_rows import ReadinessRow, make_row as _row


@dataclass
class FirstLayerDrive:
    """One student's first layer: the per-sample bias path against the synaptic path.

    Attributes:
        student: Index.
        exported: ``bias`` or ``synaptic`` (what the file says).
        applies: The bias path is exact for this layer (a conv whose current keeps no memory).
        neurons: Values the host writes per sample on the bias path (first-layer neurons, once).
        input_values: Values sent per sample on the synaptic path: ``C*H*W`` per step x T.
        host_macs: Mean first-layer MACs per sample on the bias path (the host, once per
            sample); ``chip_ops``: on the synaptic path (the chip's synapses, every step, so
            T x ``host_macs``). ``None`` without parity samples.
        mant_min, mant_max, mant_values, mant_over: The measured per-sample mantissas (exponent
            6) on the parity samples: range, how many (neurons x samples), how many outside
            the signed 13-bit register. ``None`` without samples.
        exp_measured, exact_measured: Smallest ``bias_exp`` that holds the measured ones, and
            whether the shift loses nothing on them.
        worst_mant: Largest ``|mantissa|`` any input can give (``sum|w| x (2**bits - 1) + |b|``).
        exp_worst, exact_worst: The exponent that holds it, and whether every weight and bias
            mantissa is a multiple of ``2**(exp - 6)`` (exact for every input).
        v_th_mant: The first layer's threshold mantissa (``None`` where the bias path does not
            apply); ``saturates``: the host writes the mantissas saturated to 13 bits, which
            changes no spike because that threshold is below 4095
            (:attr:`~sne_loihi.netx_format.bias_layer.BiasDrivenLayer.saturates_exactly`).
    """

    student: int
    exported: str
    applies: bool
    neurons: int
    input_values: int
    host_macs: float | None = None
    chip_ops: float | None = None
    mant_min: int | None = None
    mant_max: int | None = None
    mant_values: int | None = None
    mant_over: int | None = None
    exp_measured: int | None = None
    exact_measured: bool | None = None
    worst_mant: int = 0
    exp_worst: int = 0
    exact_worst: bool = True
    v_th_mant: int | None = None
    saturates: bool = False


def first_layer_drive(path: Path, student: int, input_bits: int, time_steps: int, x_nchwt: Any = None) -> FirstLayerDrive | None:
    """The :class:`FirstLayerDrive` of one netx file, measured on ``x_nchwt`` when given;
    ``None`` when the first weighted layer is not a conv fed by a plain input layer.

    Raises:
        ExportError: An unreadable file or an invalid bias marker.
    """
    marked = read_bias_driven_layer(path)
    layer: BiasDrivenLayer | None = marked or read_first_conv_layer(path)
    net = read_netx_network(path)
    c, h, w = (int(v) for v in reversed(net.layers[0].in_shape_xyz)) if len(net.layers[0].in_shape_xyz) == 3 else (0, 0, 0)
    if not c or net.input_neuron or net.layers[0].kind.value != "conv":
        return None
    out = FirstLayerDrive(student=student, exported="bias" if marked is not None else "synaptic",
                          applies=layer is not None, neurons=int(np.prod(net.layers[0].out_shape_xyz)),
                          input_values=c * h * w * int(time_steps))
    fan_chw = net.layers[0].fanout_xyz.transpose(2, 1, 0).astype(np.int64)
    if x_nchwt is not None and len(x_nchwt):
        x0 = np.asarray(x_nchwt[..., 0].detach().cpu().numpy() if hasattr(x_nchwt, "detach") else x_nchwt[..., 0])
        x0 = np.rint(x0).astype(np.int64)
        macs = ((x0 != 0) * fan_chw[None]).reshape(len(x0), -1).sum(axis=1)
        out.host_macs, out.chip_ops = float(macs.mean()), float(macs.mean()) * int(time_steps)
    if layer is None:
        return out
    out.v_th_mant, out.saturates = layer.v_th_mant, layer.saturates_exactly
    w_abs = np.abs(layer.weight_oihw).reshape(layer.weight_oihw.shape[0], -1).sum(axis=1)
    s_max = 2 ** input_bits - 1 if input_bits > 0 else 1
    worst = w_abs[:, None, None] * s_max + np.abs(layer.bias_chw)
    out.worst_mant = int(worst.max(initial=0))
    out.exp_worst, _ = exponent_needed(np.array([out.worst_mant, -out.worst_mant]))
    grid = 1 << (out.exp_worst - 6)
    out.exact_worst = bool(not np.any(layer.weight_oihw % grid) and not np.any(layer.bias_chw % grid))
    if x_nchwt is not None and len(x_nchwt):
        mant = layer.mantissas_nchw(x0)
        out.mant_min, out.mant_max, out.mant_values = int(mant.min()), int(mant.max()), int(mant.size)
        out.mant_over = int(np.count_nonzero((mant < BIAS_MANT_MIN) | (mant > BIAS_MANT_MAX)))
        out.exp_measured, out.exact_measured = exponent_needed(mant)
    return out


def first_layer_rows(d: FirstLayerDrive) -> list[ReadinessRow]:
    """The checked rows of a bias-driven first layer (none for a synaptic one)."""
    if d.exported != "bias":
        return []
    reg = lim.BIAS_MANT_RANGE
    limit_text = (f"{reg[0]} <= bias_mant <= {reg[1]} at bias_exp 6 (netx), saturated there where that changes no "
                  f"spike, else bias_exp <= {lim.BIAS_EXP_MAX.value} exactly")

    def status(exp: int, exact: bool, worst_case: bool) -> Status:
        if exp == 6:
            return Status.PASS
        if exp <= lim.BIAS_EXP_MAX.value and exact:
            return Status.WARN  # a deployment would set bias_exp itself; netx writes 6
        return Status.WARN if worst_case else Status.FAIL

    if d.saturates:  # every mantissa fits once saturated, and saturating changes no spike
        measured = ("not measured (no parity samples)" if d.mant_values is None else
                    f"{d.mant_min:,}..{d.mant_max:,}; {d.mant_over:,} of {d.mant_values:,} outside 13 bits")
        why = (f"written saturated to -4096..4095 at bias_exp 6: exact, as the threshold mantissa {d.v_th_mant:,} "
               "< 4095 (a drive above it fires at every step, a negative one never)")
        return [_row("per-sample bias mantissas on the parity samples (bias-driven first layer)", f"{measured}; {why}",
                     lim.BIAS_MANT, Status.PASS, d.student, 0, limit_text),
                _row("per-sample bias mantissas, any input (bias-driven first layer)",
                     f"|mantissa| <= {d.worst_mant:,}; {why}", lim.BIAS_MANT, Status.PASS, d.student, 0, limit_text)]
    rows = []
    if d.mant_values is None:
        rows.append(_row("per-sample bias mantissas (bias-driven first layer)", "not measured (no parity samples)",
                         lim.BIAS_MANT, Status.WARN, d.student, 0, limit_text))
    else:
        rows.append(_row(
            "per-sample bias mantissas on the parity samples (bias-driven first layer)",
            f"{d.mant_min:,}..{d.mant_max:,}; {d.mant_over:,} of {d.mant_values:,} outside 13 bits; needs bias_exp "
            f"{d.exp_measured} ({'exact' if d.exact_measured else 'NOT exact'} there)", lim.BIAS_MANT,
            status(d.exp_measured, bool(d.exact_measured), False), d.student, 0, limit_text))
    rows.append(_row(
        "per-sample bias mantissas, any input (bias-driven first layer)",
        f"|mantissa| <= {d.worst_mant:,}; needs bias_exp {d.exp_worst} "
        f"({'exact for every input' if d.exact_worst else 'exact only where the low bits are 0'})", lim.BIAS_MANT,
        status(d.exp_worst, d.exact_worst, True), d.student, 0, limit_text))
    return rows
