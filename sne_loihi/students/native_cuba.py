"""Optional native (C) forward pass of the fast engine's CUBA layer, CPU only.

The pure-torch forward (:func:`sne_loihi.students.fast_cuba.cuba_forward_flat`) needs about a
dozen tensor passes per time step; this kernel does SLAYER's integer recursion in one pass
over each neuron (``right_shift_to_zero``, SLAYER's float32 round trips and threshold
comparisons, written out line by line below), so the layer is read and written once. Its
integers live in float64 lanes, exact below 2**53, so that the loop vectorises on AVX2 too;
a call whose states reach 2**52 reruns in SLAYER's own int64 arithmetic. The arithmetic is
integer plus exactly rounded float32 casts, so it is bit-identical to SLAYER and to the torch
path (tests compare all of them).

Built at first use, never at import: the C source below is compiled with the system C
compiler into a fresh private temporary folder of this process and loaded with ``ctypes``;
nothing is cached on disk between processes, so no file another process could replace is
ever loaded. Without a compiler (or if the build fails) :func:`native_kernel` returns
``None`` with the reason in :func:`native_status`, and the engine uses the torch path.
Set ``SNE_NATIVE=0`` to disable the kernel.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

#define BLOCK 256

/* slayer.utils.int_utils.right_shift_to_zero(x, 12) = sign(x) * (|x| >> 12): for x < 0 adding
   4095 before the arithmetic shift rounds toward zero instead of down (same result). */
static inline int64_t shift_to_zero(int64_t x) {
    return (x + ((x >> 63) & 4095)) >> 12;
}

/* z: [T, M] float32 with row stride z_stride (0: the same input at every step);
   voltage, spikes: [T, M] float32; spikes_u8: the spikes again as bytes (for an int8 convolution of
   the next layer), or NULL. keep_u = 4096 - current_decay, keep_v = 4096 - voltage_decay.
   Blocks of neurons advance step by step, so independent neurons fill the pipeline.
   SLAYER's int64 arithmetic as it is: exact for every state, but no AVX2 instruction
   converts or multiplies int64 lanes, so there it runs one neuron at a time. */
void cuba_forward_int64(const float *restrict z, int64_t z_stride, float *restrict voltage, float *restrict spikes,
                  unsigned char *restrict spikes_u8,
                  int64_t steps, int64_t m, int64_t keep_u, int64_t keep_v,
                  float reset_threshold, float threshold, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t start = 0; start < m; start += BLOCK) {
        int64_t u[BLOCK], v[BLOCK];
        int64_t n = m - start < BLOCK ? m - start : BLOCK;
        for (int64_t j = 0; j < n; ++j) { u[j] = 0; v[j] = 0; }
        for (int64_t t = 0; t < steps; ++t) {
            const float *zt = z + t * z_stride + start;
            float *vt = voltage + t * m + start;
            float *st = spikes + t * m + start;
            for (int64_t j = 0; j < n; ++j) {
                int64_t u_in = (int64_t)(zt[j] * 4096.0f);          /* (w_scale * input).to(int64) */
                int64_t uj = shift_to_zero(u[j] * keep_u) + u_in;
                float current = (float)uj / 4096.0f;                  /* output[..., n] = u / w_scale */
                int64_t v_in = (int64_t)(current * 4096.0f);
                int64_t vj = shift_to_zero(v[j] * keep_v) + v_in;
                float v_float = (float)vj;
                float volt = v_float / 4096.0f;
                vt[j] = volt;
                st[j] = volt >= threshold ? 1.0f : 0.0f;               /* Spike: voltage >= theta */
                if (spikes_u8) spikes_u8[t * m + start + j] = volt >= threshold;
                u[j] = uj;
                v[j] = v_float >= reset_threshold ? 0 : vj;            /* reset: v >= theta * w_scale */
            }
        }
    }
}

/* The same recursion with every integer held in a float64 lane: float64 represents each
   integer below 2**53 exactly, and the shift is a multiplication by 2**-12 (exact) and a
   truncation, so while every product and input stays below 2**52 each value equals the int64
   kernel's; both the conversions and the arithmetic vectorise on AVX2 (measured 8.5x the int64
   kernel on a Zen 3 core pair). Returns 1 when a value reached 2**52 (the caller reruns the
   call with cuba_forward_int64), else 0. */
static inline double shift_to_zero_f64(double x) {
    return trunc(x * (1.0 / 4096.0));
}

int cuba_forward(const float *restrict z, int64_t z_stride, float *restrict voltage, float *restrict spikes,
                 unsigned char *restrict spikes_u8,
                 int64_t steps, int64_t m, int64_t keep_u_int, int64_t keep_v_int,
                 float reset_threshold, float threshold, int threads) {
    const double keep_u = (double)keep_u_int, keep_v = (double)keep_v_int, limit = 4503599627370496.0;  /* 2**52 */
    int outside = 0;
    #pragma omp parallel for schedule(static) num_threads(threads) reduction(|:outside)
    for (int64_t start = 0; start < m; start += BLOCK) {
        double u[BLOCK], v[BLOCK];
        int64_t n = m - start < BLOCK ? m - start : BLOCK;
        int block_outside = 0;
        for (int64_t j = 0; j < n; ++j) { u[j] = 0; v[j] = 0; }
        for (int64_t t = 0; t < steps; ++t) {
            const float *zt = z + t * z_stride + start;
            float *vt = voltage + t * m + start;
            float *st = spikes + t * m + start;
            for (int64_t j = 0; j < n; ++j) {
                double u_in = trunc((double)(zt[j] * 4096.0f));     /* (w_scale * input).to(int64) */
                double u_kept = u[j] * keep_u;
                double uj = shift_to_zero_f64(u_kept) + u_in;
                float current = (float)uj / 4096.0f;                  /* output[..., n] = u / w_scale */
                double v_in = trunc((double)(current * 4096.0f));
                double v_kept = v[j] * keep_v;
                double vj = shift_to_zero_f64(v_kept) + v_in;
                float v_float = (float)vj;
                float volt = v_float / 4096.0f;
                block_outside |= (fabs(u_in) >= limit) | (fabs(u_kept) >= limit)
                                 | (fabs(v_in) >= limit) | (fabs(v_kept) >= limit);
                vt[j] = volt;
                st[j] = volt >= threshold ? 1.0f : 0.0f;               /* Spike: voltage >= theta */
                u[j] = uj;
                v[j] = v_float >= reset_threshold ? 0.0 : vj;          /* reset: v >= theta * w_scale */
            }
            if (spikes_u8) {
                for (int64_t j = 0; j < n; ++j) spikes_u8[t * m + start + j] = st[j] != 0.0f;
            }
        }
        outside |= block_outside;
    }
    return outside;
}

/* The backward runs on a block of columns [start, start + n) of the [T, M] tensors, all steps,
   so the three passes below and torch's exp between them touch the block while it is in cache.
   Rows of the block are split between the threads in chunks of BLOCK columns. */

/* Backward, first half: out = -|v - theta| / tau (slayer.spike._spike_backward's argument of exp,
   the same correctly rounded float32 operations in the same order). */
void surrogate_argument(const float *restrict voltage, float *restrict out, int64_t steps, int64_t m,
                        int64_t start, int64_t n, float threshold, float tau, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t chunk = 0; chunk < n; chunk += BLOCK) {
        int64_t width = n - chunk < BLOCK ? n - chunk : BLOCK;
        for (int64_t t = 0; t < steps; ++t) {
            const float *vt = voltage + t * m + start + chunk;
            float *ot = out + t * m + start + chunk;
            for (int64_t j = 0; j < width; ++j) {
                float d = vt[j] - threshold;
                ot[j] = -(d < 0 ? -d : d) / tau;
            }
        }
    }
}

/* One leaky integrator's backward on n columns: g[t] = keep * g[t + 1] + g[t]
   for t = steps - 2 .. 0 (product first, then the sum; no fused multiply-add). */
static inline void carry_back(float *restrict g, int64_t steps, int64_t m, int64_t n, float keep) {
    for (int64_t t = steps - 2; t >= 0; --t) {
        float *gt = g + t * m;
        const float *gn = gt + m;
        for (int64_t j = 0; j < n; ++j) {
            float carried = keep * gn[j];
            gt[j] = carried + gt[j];
        }
    }
}

/* Backward, second half, in place on g = exp(argument): g = (factor * g) * grad_spikes, then
   _li_dynamics_bwd for the voltage decay and for the current decay:
   g[n] = keep * g[n + 1] + g[n] (product first, then the sum; no fused multiply-add). */
void surrogate_finish(float *restrict g, const float *restrict grad_spikes, int64_t steps, int64_t m,
                      int64_t start, int64_t n, float factor, float keep_v, float keep_u, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t chunk = 0; chunk < n; chunk += BLOCK) {
        int64_t width = n - chunk < BLOCK ? n - chunk : BLOCK;
        int64_t first = start + chunk;
        for (int64_t t = 0; t < steps; ++t) {
            float *gt = g + t * m + first;
            const float *st = grad_spikes + t * m + first;
            for (int64_t j = 0; j < width; ++j) {
                float scaled = factor * gt[j];
                gt[j] = scaled * st[j];
            }
        }
        carry_back(g + first, steps, m, width, keep_v);  /* voltage decay, then current decay */
        carry_back(g + first, steps, m, width, keep_u);
    }
}
"""

_STATE: dict[str, object] = {}


def _build() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("SNE_NATIVE", "1") == "0":
        return None, "disabled by SNE_NATIVE=0"
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler found"
    folder = Path(tempfile.mkdtemp(prefix="sne-native-"))
    try:
        source, library = folder / "cuba.c", folder / "cuba.so"
        source.write_text(C_SOURCE)
        flags = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math"]
        # Built for this CPU (its vector units; the library never leaves this process), with
        # OpenMP; each option dropped in turn where the compiler refuses it. Vector lanes do
        # the same integer and correctly rounded float32 operations, so results do not change.
        # -fno-trapping-math lets GCC vectorise the float64 kernel's conversions; it changes
        # no rounding, only what the floating-point exception flags (never read here) may say.
        attempts = [
            ("this CPU, OpenMP", [*flags, "-march=native", "-mprefer-vector-width=512", "-fopenmp"]),
            ("OpenMP", [*flags, "-fopenmp"]),
            ("serial", flags),
        ]
        result, target = None, ""
        for target, options in attempts:
            result = subprocess.run([compiler, *options, str(source), "-o", str(library), "-lm"],
                                    capture_output=True, text=True, timeout=120)
            if result.returncode == 0:
                break
        if result is None or result.returncode != 0:
            return None, f"C build failed: {result.stderr.strip().splitlines()[-1] if result and result.stderr else '?'}"
        lib = ctypes.CDLL(str(library))
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"C build failed: {exc}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    forward_args = [
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_int,
    ]
    lib.cuba_forward.restype, lib.cuba_forward.argtypes = ctypes.c_int, forward_args
    lib.cuba_forward_int64.restype, lib.cuba_forward_int64.argtypes = None, forward_args
    lib.surrogate_argument.restype = None
    lib.surrogate_argument.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                       ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_int]
    lib.surrogate_finish.restype = None
    lib.surrogate_finish.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                                     ctypes.c_int]
    return lib, f"native C kernel ({Path(compiler).name}, {target})"


def native_kernel() -> ctypes.CDLL | None:
    """The compiled kernel, built on first call; ``None`` where it cannot be built."""
    if "lib" not in _STATE:
        _STATE["lib"], _STATE["status"] = _build()
    return _STATE["lib"]  # type: ignore[return-value]


def native_status() -> str:
    """Which forward path CPU layers take, and why (builds the kernel if not yet tried)."""
    native_kernel()
    return str(_STATE["status"])


def cuba_forward_native(lib: ctypes.CDLL, z_tm: torch.Tensor, keep_u: int, keep_v: int,
                        reset_threshold: float, threshold: float,
                        spikes_u8: torch.Tensor | None = None, int64: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the kernel on a CPU ``[T, M]`` float32 input (rows contiguous, or stride 0 over T):
    the float64-lane kernel, or the int64 one where a state leaves float64's exact integers.

    Args:
        spikes_u8: An optional contiguous ``[T, M]`` uint8 tensor the kernel also writes the
            spikes into (the input of an int8 convolution), in the same pass.
        int64: Run the int64 kernel alone (to compare the two).

    Returns:
        ``(spikes_tm, voltage_tm)`` as :func:`~sne_loihi.students.fast_cuba.cuba_forward_flat`.
    """
    steps, m = z_tm.shape
    if z_tm.stride(-1) != 1 or (steps > 1 and z_tm.stride(0) not in (0, m)):
        z_tm = z_tm.contiguous()
    z_stride = 0 if steps > 1 and z_tm.stride(0) == 0 else m
    voltage = torch.empty((steps, m), dtype=torch.float32)
    spikes = torch.empty((steps, m), dtype=torch.float32)
    if spikes_u8 is not None and (spikes_u8.shape != (steps, m) or spikes_u8.dtype != torch.uint8
                                  or not spikes_u8.is_contiguous()):
        raise ValueError("spikes_u8 must be a contiguous uint8 tensor shaped like the input")
    if m:
        args = (z_tm.data_ptr(), z_stride, voltage.data_ptr(), spikes.data_ptr(),
                None if spikes_u8 is None else spikes_u8.data_ptr(), steps, m,
                keep_u, keep_v, ctypes.c_float(reset_threshold), ctypes.c_float(threshold),
                max(1, torch.get_num_threads()))
        if int64 or lib.cuba_forward(*args):  # a state reached 2**52: the float64 lanes may round it
            lib.cuba_forward_int64(*args)
    return spikes, voltage


def cuba_backward_native(lib: ctypes.CDLL, grad_spikes_tm: torch.Tensor, voltage_tm: torch.Tensor,
                         threshold: torch.Tensor, tau: torch.Tensor, factor: torch.Tensor,
                         keep_v: torch.Tensor, keep_u: torch.Tensor, block: int) -> torch.Tensor:
    """SLAYER's CUBA backward on CPU ``[T, M]`` tensors: the exponential stays torch's own
    (``exp_`` on blocks, as the torch path computes it), everything around it runs in C.

    The float32 scalars (``threshold``, ``tau``, ``factor = scale / 2 / tau``, ``keep = 1 - d /
    4096``) are passed as the float32 values torch computed, so every operation sees the same
    operands as in :func:`~sne_loihi.students.fast_cuba.cuba_backward_flat`.
    """
    steps, m = voltage_tm.shape
    grad_spikes_tm = grad_spikes_tm.contiguous()
    voltage_tm = voltage_tm.contiguous()
    grad = torch.empty((steps, m), dtype=torch.float32)
    threads = max(1, torch.get_num_threads())
    if m == 0:
        return grad
    threshold_f, tau_f, factor_f = (ctypes.c_float(float(x)) for x in (threshold, tau, factor))
    keep_v_f, keep_u_f = ctypes.c_float(float(keep_v)), ctypes.c_float(float(keep_u))
    for start in range(0, m, block):
        n = min(block, m - start)
        lib.surrogate_argument(voltage_tm.data_ptr(), grad.data_ptr(), steps, m, start, n, threshold_f, tau_f,
                               threads)
        grad[:, start:start + n].exp_()
        lib.surrogate_finish(grad.data_ptr(), grad_spikes_tm.data_ptr(), steps, m, start, n, factor_f, keep_v_f,
                             keep_u_f, threads)
    return grad
