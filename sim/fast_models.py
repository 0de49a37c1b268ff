"""Vectorised, spike-exact process models for Lava's own processes (the ``fast`` engine).

netx builds every convolution as :class:`lava.proc.conv.process.Conv`. With
``Loihi2SimCfg(select_tag='fixed_pt')`` Lava picks ``PyConvModelFixed``, whose ``run_spk``
calls ``lava.proc.conv.utils.conv``: with torch disabled there, a Python loop over groups x
out x in channels of float64 ``scipy.signal.convolve2d`` at stride 1, subsampled afterwards
(about 0.75 s per step of one CIFAR-size student on this CPU).

:class:`PyConvModelFixedFast` is a process model for the *same* ``Conv`` process (same Vars,
ports and types: it subclasses ``PyConvModelFixed``) that computes the same integers with
one im2col gather and one BLAS matrix product per group:

* Lava's reference: ``a = signed_clamp(int32(sum_{c,i,j} s[x*sx + i*dx, y*sy + j*dy, c]
  * w[k, kx-1-i, ky-1-j, c]), 24)`` (``convolve2d`` flips the kernel; padding with zeros;
  ``weight_exp`` is not applied by the model; input cast to bool when
  ``num_message_bits == 0``); the result is sent one step later (``a_buf``).
* Here: the same sum over the same integer products. Products and partial sums are
  integers, so the float matrix product is exact whenever every partial sum stays below
  the float's integer range: float32 is used when ``max|s| * max_k sum|w[k]| < 2**24``,
  float64 below ``2**53``, integer arithmetic above. The result is then taken to int64
  and wrapped to 24 signed bits like the reference. A sum outside the int32 range (where
  the reference's float -> int32 cast is undefined) raises instead of guessing.

It is registered the Lava way, through the run configuration's
``exception_proc_model_map`` (:func:`fast_model_map`), so the graph still consists of
netx networks and Lava processes, and ``engine='reference'`` keeps Lava's own models. For
Loihi 2 hardware nothing changes (the map is only used for the CPU simulation).

Dense synapses (``PyDenseModelBitAcc``: one ``weights.dot``) and the CUBA neuron
(``PyLifModelBitAcc``: elementwise numpy) are already vectorised in Lava and are kept.
"""

from __future__ import annotations

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.sim.lava_import import prepare_lava_import

prepare_lava_import()  # before any Lava import: see its docstring

from lava.magma.core.decorator import tag  # noqa: E402
from lava.proc.conv.models import PyConvModelFixed  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402

__all__ = ["PyConvModelFixedFast", "conv_fixed", "fast_model_map"]


_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53
_INT32_MAX = 2 ** 31 - 1


def _signed_wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """``lava.proc.conv.utils.signed_clamp`` on int64 (wrap to ``bits`` signed bits)."""
    base = 1 << bits
    return (x + base // 2) % base - base // 2


class _ConvPlan:
    """Precomputed gather indices and flipped weight matrices of one Conv process."""

    def __init__(self, in_shape: tuple[int, int, int], weight: np.ndarray, stride: np.ndarray, padding: np.ndarray,
                 dilation: np.ndarray, groups: int) -> None:
        x_in, y_in, c_in = (int(v) for v in in_shape)
        k_out, kx, ky, c_grp = weight.shape
        sx, sy = (int(v) for v in stride)
        px, py = (int(v) for v in padding)
        dx, dy = (int(v) for v in dilation)
        self.groups = int(groups)
        if c_in != c_grp * self.groups or k_out % self.groups:
            raise SimulationError(f"conv weight {list(weight.shape)} does not fit input {list(in_shape)} "
                                  f"with {self.groups} groups")
        self.pad = ((px, px), (py, py), (0, 0))
        x_out = (x_in + 2 * px - dx * (kx - 1) - 1) // sx + 1
        y_out = (y_in + 2 * py - dy * (ky - 1) - 1) // sy + 1
        self.out_shape = (x_out, y_out, k_out)
        # patch[x, y, i, j] reads padded[x*sx + i*dx, y*sy + j*dy] (correlation with the
        # flipped kernel == scipy's convolution).
        ix = (np.arange(x_out) * sx)[:, None] + (np.arange(kx) * dx)[None, :]  # [Xo, kx]
        iy = (np.arange(y_out) * sy)[:, None] + (np.arange(ky) * dy)[None, :]  # [Yo, ky]
        self.ix = ix[:, None, :, None]  # [Xo, 1, kx, 1]
        self.iy = iy[None, :, None, :]  # [1, Yo, 1, ky]
        flipped = np.asarray(weight, dtype=np.int64)[:, ::-1, ::-1, :]  # [K, kx, ky, Cg]
        k_grp = k_out // self.groups
        self.w_int = [flipped[g * k_grp:(g + 1) * k_grp].reshape(k_grp, -1).T.copy() for g in range(self.groups)]
        self.w_f32 = [w.astype(np.float32) for w in self.w_int]
        self.w_f64 = [w.astype(np.float64) for w in self.w_int]
        #: max over output channels of sum |w|: a bound on |sum| per unit of max|input|.
        self.w_abs_sum = int(np.abs(flipped).reshape(k_out, -1).sum(axis=1).max()) if flipped.size else 0
        self.c_grp = c_grp

    def __call__(self, s_in: np.ndarray) -> np.ndarray:
        """Exact integer convolution of ``s_in`` ``[X, Y, C]``; returns int64 ``[Xo, Yo, K]``."""
        bound = int(np.abs(s_in).max(initial=0)) * self.w_abs_sum
        if bound < _F32_EXACT:
            dtype, weights = np.float32, self.w_f32
        elif bound < _F64_EXACT:
            dtype, weights = np.float64, self.w_f64
        else:
            dtype, weights = np.int64, self.w_int
        padded = np.pad(s_in.astype(dtype, copy=False), self.pad)
        x_out, y_out, k_out = self.out_shape
        outs = []
        for g in range(self.groups):
            chans = padded[..., g * self.c_grp:(g + 1) * self.c_grp]
            patches = chans[self.ix, self.iy]  # [Xo, Yo, kx, ky, Cg]
            outs.append(patches.reshape(x_out * y_out, -1) @ weights[g])
        out = outs[0] if self.groups == 1 else np.concatenate(outs, axis=1)
        return out.reshape(x_out, y_out, k_out).astype(np.int64)


def conv_fixed(s_in: np.ndarray, weight: np.ndarray, stride: np.ndarray, padding: np.ndarray, dilation: np.ndarray,
               groups: int, num_message_bits: int) -> np.ndarray:
    """One step of Lava's fixed-point Conv synapse, vectorised: the int32 ``a_out`` that
    ``PyConvModelFixed`` computes from ``s_in`` (before its one-step delay).

    Args:
        s_in: Input ``[X, Y, C]`` (Lava order), integers.
        weight: ``[K, kx, ky, C / groups]`` integer weights.
        stride, padding, dilation: ``(x, y)`` pairs.
        groups: Convolution groups.
        num_message_bits: 0: the input is cast to bool (binary spikes), as Lava does.

    Raises:
        SimulationError: A sum outside the int32 range (Lava's float -> int32 cast is
            undefined there).
    """
    plan = _ConvPlan(tuple(s_in.shape), np.asarray(weight), stride, padding, dilation, int(groups))
    return _finish(plan(_message(s_in, num_message_bits)))


def _message(s_in: np.ndarray, num_message_bits: int) -> np.ndarray:
    return s_in.astype(bool).astype(np.int32) if num_message_bits <= 0 else s_in


def _finish(acc: np.ndarray) -> np.ndarray:
    if acc.size and int(np.abs(acc).max()) > _INT32_MAX:
        raise SimulationError("a Conv synapse sum left the int32 range, where Lava's reference model is undefined")
    return _signed_wrap(acc, 24).astype(np.int32)


@tag("fast")
class PyConvModelFixedFast(PyConvModelFixed):
    """``PyConvModelFixed`` with the convolution as im2col + one matrix product per group
    (same Vars, ports, types, one-step delay and 24-bit wrap; see the module docstring).

    Inherits ``@implements(proc=Conv)`` and the ``fixed_pt`` tag; it is not found by Lava's
    model search (it lives outside ``lava.proc.conv``), only through :func:`fast_model_map`.
    """

    _plan: _ConvPlan | None = None
    _plan_weight: np.ndarray | None = None

    def run_spk(self) -> None:
        """Send last step's activation, receive spikes, convolve exactly, keep for next step."""
        self.a_out.send(self.a_buf)
        s_in = _message(self.s_in.recv(), int(self.num_message_bits.item()))
        if self._plan is None or not np.array_equal(self._plan_weight, self.weight):  # weight.set() between runs
            self._plan = _ConvPlan(tuple(s_in.shape), self.weight, self.stride, self.padding, self.dilation,
                                   int(self.groups[0]))
            self._plan_weight = np.array(self.weight, copy=True)
        self.a_buf = _finish(self._plan(s_in))


def fast_model_map() -> dict[type, type]:
    """``{Lava process class: fast process model}`` for a run configuration's
    ``exception_proc_model_map``."""
    return {Conv: PyConvModelFixedFast}
