"""Optional native (C) forward pass of the fast engine's CUBA layer, CPU only.

The pure-torch forward (:func:`sne_loihi.students.fast_cuba.cuba_forward_flat`) needs about a
dozen tensor passes per time step; this kernel does SLAYER's integer recursion in one pass
over each neuron (int64 state, ``right_shift_to_zero``, SLAYER's float32 round trips and
threshold comparisons, written out line by line below), so the layer is read and written
once. The arithmetic is integer plus exactly rounded float32 casts, so it is bit-identical to
SLAYER and to the torch path (tests compare all three).

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
#include <stdint.h>

#define BLOCK 256

/* slayer.utils.int_utils.right_shift_to_zero(x, 12) = sign(x) * (|x| >> 12): for x < 0 adding
   4095 before the arithmetic shift rounds toward zero instead of down (same result). */
static inline int64_t shift_to_zero(int64_t x) {
    return (x + ((x >> 63) & 4095)) >> 12;
}

/* z: [T, M] float32 with row stride z_stride (0: the same input at every step);
   voltage, spikes: [T, M] float32. keep_u = 4096 - current_decay, keep_v = 4096 - voltage_decay.
   Blocks of neurons advance step by step, so independent neurons fill the pipeline. */
void cuba_forward(const float *z, int64_t z_stride, float *voltage, float *spikes,
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
                u[j] = uj;
                v[j] = v_float >= reset_threshold ? 0 : vj;            /* reset: v >= theta * w_scale */
            }
        }
    }
}

/* Backward, first half: out = -|v - theta| / tau (slayer.spike._spike_backward's argument of exp,
   the same correctly rounded float32 operations in the same order). */
void surrogate_argument(const float *voltage, float *out, int64_t n, float threshold, float tau,
                        int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) {
        float d = voltage[i] - threshold;
        out[i] = -(d < 0 ? -d : d) / tau;
    }
}

/* Backward, second half, in place on g = exp(argument) [T, M]: g = (factor * g) * grad_spikes,
   then _li_dynamics_bwd for the voltage decay and for the current decay:
   g[n] = keep * g[n + 1] + g[n] (product first, then the sum; no fused multiply-add). */
void surrogate_finish(float *g, const float *grad_spikes, int64_t steps, int64_t m, float factor,
                      float keep_v, float keep_u, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t t = 0; t < steps; ++t) {
            float scaled = factor * g[t * m + i];
            g[t * m + i] = scaled * grad_spikes[t * m + i];
        }
        for (int64_t t = steps - 2; t >= 0; --t) {
            float carried = keep_v * g[(t + 1) * m + i];
            g[t * m + i] = carried + g[t * m + i];
        }
        for (int64_t t = steps - 2; t >= 0; --t) {
            float carried = keep_u * g[(t + 1) * m + i];
            g[t * m + i] = carried + g[t * m + i];
        }
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
        flags = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math"]
        result = subprocess.run([compiler, *flags, "-fopenmp", str(source), "-o", str(library)],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:  # a compiler without OpenMP still builds a serial kernel
            result = subprocess.run([compiler, *flags, str(source), "-o", str(library)],
                                    capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            return None, f"C build failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'}"
        lib = ctypes.CDLL(str(library))
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"C build failed: {exc}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lib.cuba_forward.restype = None
    lib.cuba_forward.argtypes = [
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_int,
    ]
    lib.surrogate_argument.restype = None
    lib.surrogate_argument.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float,
                                       ctypes.c_float, ctypes.c_int]
    lib.surrogate_finish.restype = None
    lib.surrogate_finish.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_int]
    return lib, f"native C kernel ({Path(compiler).name})"


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
                        reset_threshold: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the kernel on a CPU ``[T, M]`` float32 input (rows contiguous, or stride 0 over T).

    Returns:
        ``(spikes_tm, voltage_tm)`` as :func:`~sne_loihi.students.fast_cuba.cuba_forward_flat`.
    """
    steps, m = z_tm.shape
    if z_tm.stride(-1) != 1 or (steps > 1 and z_tm.stride(0) not in (0, m)):
        z_tm = z_tm.contiguous()
    z_stride = 0 if steps > 1 and z_tm.stride(0) == 0 else m
    voltage = torch.empty((steps, m), dtype=torch.float32)
    spikes = torch.empty((steps, m), dtype=torch.float32)
    if m:
        lib.cuba_forward(z_tm.data_ptr(), z_stride, voltage.data_ptr(), spikes.data_ptr(), steps, m,
                         keep_u, keep_v, ctypes.c_float(reset_threshold), ctypes.c_float(threshold),
                         max(1, torch.get_num_threads()))
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
    lib.surrogate_argument(voltage_tm.data_ptr(), grad.data_ptr(), steps * m, ctypes.c_float(float(threshold)),
                           ctypes.c_float(float(tau)), threads)
    for start in range(0, m, block):
        grad[:, start:start + block].exp_()
    lib.surrogate_finish(grad.data_ptr(), grad_spikes_tm.data_ptr(), steps, m, ctypes.c_float(float(factor)),
                         ctypes.c_float(float(keep_v)), ctypes.c_float(float(keep_u)), threads)
    return grad
