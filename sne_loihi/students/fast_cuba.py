"""The fast engine: SLAYER's CUBA-LIF students run time-major, one fused autograd op per layer.

Pure functions over explicit tensors (norse style); no SLAYER import here. The SLAYER blocks
stay the parameter holders and the source of the netx export: :func:`run_fast` reads their
quantised weights (through the block's own ``pre_hook_fx``, so the straight-through
quantisation gradient is SLAYER's) and their neuron constants (:func:`cuba_constants`), and
computes what ``block(x)`` computes with the same arithmetic:

* Synapse: SLAYER runs ``conv3d`` with a ``(k, k, 1)`` kernel on ``[N, C, H, W, T]``; here
  ``conv2d`` / ``linear`` on time folded into the batch (``[T*N, C, H, W]``, time-major).
  Pre-activations are sums of 8-bit-grid weights (multiples of 1/32) times integers, exact
  in float32, so both give bit-identical values in any summation order. When a layer's
  input is the same at every step (the first layer's repeated image) its synapse runs once.
* Neuron (:class:`CubaFunction`): SLAYER's CPU path is a Python loop over T on int64 slices
  of a time-last tensor (``leaky_integrator._li_dynamics_fwd``). Here each step is a
  contiguous slice of a block of neurons that stays in cache, and
  ``trunc(u * (1 - d/4096))`` (the product exact in float64) is exactly SLAYER's
  ``right_shift_to_zero(u * (4096 - d), 12)``. The state is int32 when a bound computed from
  the layer's input proves every state below 2**24, float64 otherwise, where SLAYER's float32
  round trips (the current handed to the voltage integrator, the voltage compared with the
  threshold) are reproduced. Spikes are identical, not just close.
* Backward: SLAYER's surrogate ``scale/2/tau * exp(-|v - theta|/tau)`` and the two
  linear leaky-integrator recursions (reset ignored, as in SLAYER), as the same float32
  operations in the same order, so the gradient w.r.t. each layer's input current is
  identical. The decay gradients SLAYER also computes are skipped (decays are not learnt).

Nothing is compiled: the path is plain torch and runs wherever torch runs (CPU, CUDA without
a CUDA toolkit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sne_loihi.students.native_cuba import (
    cuba_backward_native, cuba_forward_native, native_kernel, native_status,
)
from sne_loihi.students.spike_conv import int8_spike_conv, spike_conv2d, spike_conv_status

#: SLAYER's CUBA constants: state scale (``s_scale = 64 * 64``), decay scale (``p_scale``),
#: and the spike-gradient multipliers of ``slayer.neuron.cuba``.
STATE_SCALE = 1 << 12
DECAY_SCALE = 1 << 12
TAU_RHO_MULT = 100.0
SCALE_RHO_MULT = 0.1


@dataclass(frozen=True)
class CubaConstants:
    """Everything the fused CUBA layer needs, as SLAYER's neuron holds it.

    Attributes:
        current_decay: Quantised current decay ``d_u`` (integer 0..4096, float).
        voltage_decay: Quantised voltage decay ``d_v``.
        threshold: SLAYER's spike threshold ``theta + eps`` (real units).
        tau_rho: Surrogate width ``tau_grad * theta * 100``.
        scale_rho: Surrogate scale ``scale_grad * 0.1``.
    """

    current_decay: float
    voltage_decay: float
    threshold: float
    tau_rho: float
    scale_rho: float

    @property
    def reset_threshold(self) -> float:
        """The threshold the voltage integrator compares its integer state with."""
        return self.threshold * STATE_SCALE


def cuba_constants(neuron: torch.nn.Module) -> CubaConstants:
    """Read a ``slayer.neuron.cuba.Neuron``'s constants exactly as its forward uses them.

    Raises:
        ValueError: A neuron this engine does not emulate (graded spikes, persistent state,
            norm, dropout, per-channel decays, learnt decays, other scales).
    """
    unsupported = {
        "graded spikes": bool(getattr(neuron, "graded_spike", False)),
        "persistent state": bool(getattr(neuron, "persistent_state", False)),
        "norm": getattr(neuron, "norm", None) is not None,
        "dropout": getattr(neuron, "drop", None) is not None,
        "per-channel decays": not getattr(neuron, "shared_param", True),
        "learnt decays": bool(neuron.current_decay.requires_grad or neuron.voltage_decay.requires_grad),
        "state scale": int(neuron.s_scale) != STATE_SCALE,
    }
    bad = [name for name, flag in unsupported.items() if flag]
    if bad:
        raise ValueError(f"the fast engine does not emulate a CUBA neuron with {', '.join(bad)}")
    return CubaConstants(
        current_decay=float(torch.round(neuron.current_decay.detach()).item()),
        voltage_decay=float(torch.round(neuron.voltage_decay.detach()).item()),
        threshold=neuron.threshold + neuron.threshold_eps,
        tau_rho=neuron.tau_rho * TAU_RHO_MULT,
        scale_rho=neuron.scale_rho * SCALE_RHO_MULT,
    )


#: Neurons per block of the dynamics on a CPU: every time step of a block runs while its
#: state and slices stay in cache; the whole layer would stream the state through memory once
#: per operation (measured: the dynamics were memory-bound). On a GPU a layer is one block
#: (many small kernel launches would cost more than the memory traffic).
BLOCK = 1 << 15


def block_size(m: int, device: torch.device) -> int:
    """Neurons per block for ``m`` neurons on ``device``."""
    return max(1, min(m, BLOCK if device.type == "cpu" else m))


def _blocks(m: int, block: int) -> list[slice]:
    return [slice(s, min(s + block, m)) for s in range(0, m, block)]


#: ``float64 -> int32 -> float64`` truncates exactly while ``|x| < 2**31``; torch's
#: ``trunc`` has no vectorised CPU kernel here (measured 7x slower than ``floor``).
INT32_SAFE = float(2**31 - 1)


def _trunc_(x: torch.Tensor, ints: torch.Tensor | None, sign: torch.Tensor) -> torch.Tensor:
    """Round ``x`` toward zero in place (what SLAYER's ``right_shift_to_zero`` does).

    ``ints`` (an int32 buffer) is given when ``|x| < 2**31`` is guaranteed; otherwise
    ``sign(x) * floor(|x|)`` is used, exact for any float64.
    """
    if ints is not None:
        return x.copy_(ints.copy_(x))
    torch.sign(x, out=sign)
    return x.abs_().floor_().mul_(sign)


#: While every state stays below 2**24 in magnitude, float32 holds it exactly: SLAYER's
#: float32 round trips are then identities and the integer state fits int32.
SMALL_STATE = float(2**24)


def _state_bound(z_tm: torch.Tensor, constant: bool) -> float:
    """An upper bound of ``|u|`` and ``|v|`` (integer units) over the whole run.

    ``|u_t| <= sum_s |u_in_s| <= T * 4096 * max|z|`` (truncation never grows a state) and
    ``|v_t| <= sum_s |u_s| <= T * max|u|``.
    """
    steps = z_tm.shape[0]
    if z_tm.numel() == 0:
        return 0.0
    z_max = float((z_tm[:1] if constant else z_tm).abs().max())
    return steps * steps * (z_max * STATE_SCALE + 1)


def _forward_block_int32(z_tm: torch.Tensor, cols: slice, constant: bool, c: CubaConstants,
                         voltage: torch.Tensor, bufs: dict[str, torch.Tensor]) -> None:
    """One block of neurons, all steps, in int32 (valid while every state is below 2**24)."""
    n = cols.stop - cols.start
    u, v, u_in, fired = (bufs[k][:n] for k in ("u", "v", "u_in", "fired"))
    product, scaled = bufs["product"][:n], bufs["scaled"][:n]
    u.zero_()
    v.zero_()
    for t in range(z_tm.shape[0]):
        if t == 0 or not constant:
            torch.mul(z_tm[t, cols], float(STATE_SCALE), out=scaled)
            u_in.copy_(scaled)  # float32 -> int32 truncates, as SLAYER's .to(int64)
        u.copy_(torch.mul(u, bufs["keep_u"], out=product)).add_(u_in)  # int32 <- float64 truncates
        v.copy_(torch.mul(v, bufs["keep_v"], out=product)).add_(u)
        v_t = voltage[t, cols]
        v_t.copy_(v)
        torch.lt(v_t, c.reset_threshold, out=fired)  # 1 where the neuron did not fire
        v.mul_(fired)


def _forward_block_float64(z_tm: torch.Tensor, cols: slice, constant: bool, c: CubaConstants,
                           voltage: torch.Tensor, bufs: dict[str, torch.Tensor], int32_ok: bool) -> None:
    """One block of neurons, all steps, float64 state with SLAYER's float32 round trips."""
    n = cols.stop - cols.start
    u, v, u_in, cur, keep, sign = (bufs[k][:n] for k in ("u64", "v64", "u_in64", "cur64", "keep64", "sign64"))
    scaled = bufs["scaled"][:n]
    ints = bufs["ints"][:n] if int32_ok else None
    u.zero_()
    v.zero_()
    for t in range(z_tm.shape[0]):
        if t == 0 or not constant:
            # SLAYER: (w_scale * input[..., n]).to(int64): a float32 product, truncated.
            torch.mul(z_tm[t, cols], float(STATE_SCALE), out=scaled)
            _trunc_(u_in.copy_(scaled), ints, sign)
        _trunc_(u.mul_((DECAY_SCALE - c.current_decay) / DECAY_SCALE), ints, sign).add_(u_in)
        # SLAYER hands the voltage integrator float32(u) / 4096 and truncates it x 4096.
        cur.copy_(scaled.copy_(u))
        _trunc_(v.mul_((DECAY_SCALE - c.voltage_decay) / DECAY_SCALE), ints, sign).add_(cur)
        v_t = voltage[t, cols]
        v_t.copy_(v)  # float32(v): what SLAYER compares with the threshold and stores
        torch.lt(v_t, c.reset_threshold, out=keep)  # 1 where the neuron did not fire
        v.mul_(keep)


def cuba_forward_flat(z_tm: torch.Tensor, c: CubaConstants,
                      spikes_u8: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CUBA dynamics and spikes of one layer; neurons flattened, time-major.

    On a CPU with a C compiler the native kernel (:mod:`sne_loihi.students.native_cuba`) runs
    SLAYER's integer recursion in one pass (float64 lanes; int64 where a state reaches 2**52);
    otherwise :func:`cuba_forward_torch`. Integer
    states are exact in every path: int32 while :func:`_state_bound` is below 2**24
    (then float32 holds every state, so SLAYER's float32 round trips change nothing), float64
    otherwise (integers up to 2**53, SLAYER's float32 round trips reproduced).

    Args:
        z_tm: ``[T, M]`` synaptic input (float32, real units) of ``M`` neurons; a view with
            stride 0 over T when the input is the same at every step.
        c: The neuron's constants.
        spikes_u8: Optional ``[T, M]`` uint8 buffer that also receives the spikes (filled by
            the native kernel in the same pass, otherwise by a cast).

    Returns:
        ``(spikes_tm, voltage_tm)``: float32 0/1 spikes and SLAYER's voltage trace
        (pre-reset, real units), both contiguous ``[T, M]``.
    """
    if z_tm.device.type == "cpu" and z_tm.dtype == torch.float32:
        lib = native_kernel()
        if lib is not None:
            return cuba_forward_native(
                lib, z_tm, int(DECAY_SCALE - c.current_decay), int(DECAY_SCALE - c.voltage_decay),
                c.reset_threshold, c.threshold, spikes_u8,
            )
    spikes, voltage = cuba_forward_torch(z_tm, c)
    if spikes_u8 is not None:
        spikes_u8.copy_(spikes)
    return spikes, voltage


def cuba_forward_torch(z_tm: torch.Tensor, c: CubaConstants) -> tuple[torch.Tensor, torch.Tensor]:
    """The pure-torch forward of :func:`cuba_forward_flat` (any device)."""
    steps, m = z_tm.shape
    constant = steps > 1 and z_tm.stride(0) == 0
    dev = z_tm.device
    bound = _state_bound(z_tm, constant)
    small = bound < SMALL_STATE
    voltage = torch.empty((steps, m), dtype=torch.float32, device=dev)
    spikes = torch.empty((steps, m), dtype=torch.float32, device=dev)
    width = block_size(m, dev)
    bufs = {"scaled": torch.empty(width, dtype=torch.float32, device=dev)}
    if small:
        for name in ("u", "v", "u_in", "fired"):
            bufs[name] = torch.empty(width, dtype=torch.int32, device=dev)
        bufs["product"] = torch.empty(width, dtype=torch.float64, device=dev)
        for name, decay in (("keep_u", c.current_decay), ("keep_v", c.voltage_decay)):
            bufs[name] = torch.tensor((DECAY_SCALE - decay) / DECAY_SCALE, dtype=torch.float64, device=dev)
    else:
        for name in ("u64", "v64", "u_in64", "cur64", "keep64", "sign64"):
            bufs[name] = torch.empty(width, dtype=torch.float64, device=dev)
        bufs["ints"] = torch.empty(width, dtype=torch.int32, device=dev)
    for cols in _blocks(m, width):
        if small:
            _forward_block_int32(z_tm, cols, constant, c, voltage, bufs)
        else:
            _forward_block_float64(z_tm, cols, constant, c, voltage, bufs, bound < INT32_SAFE)
        v_block = voltage[:, cols]
        v_block.div_(float(STATE_SCALE))
        torch.ge(v_block, c.threshold, out=spikes[:, cols])
    return spikes, voltage


def forward_path(device: torch.device | str = "cpu") -> str:
    """Which CUBA forward runs on ``device``: the native kernel or pure torch, and why."""
    if torch.device(device).type != "cpu":
        return f"pure torch on {torch.device(device).type}"
    status = native_status()
    return status if native_kernel() is not None else f"pure torch ({status})"


def engine_paths(device: torch.device | str = "cpu") -> str:
    """What the fast engine runs on ``device``: its CUBA forward and its spike convolution."""
    return f"CUBA forward: {forward_path(device)}; spike conv: {spike_conv_status(device)}"


def cuba_backward_flat(grad_spikes_tm: torch.Tensor, voltage_tm: torch.Tensor, c: CubaConstants) -> torch.Tensor:
    """Gradient of the loss w.r.t. the layer's synaptic input, SLAYER's operations in order.

    ``Spike.backward``: ``scale_rho / 2 / tau_rho * exp(-|v - theta| / tau_rho) * grad``, then
    ``_li_dynamics_bwd`` twice (voltage decay, then current decay):
    ``g[n] = (1 - d/4096) * g[n + 1] + grad[n]``. Blocked over neurons like the forward.
    """
    device, dtype = voltage_tm.device, torch.float32
    steps, m = voltage_tm.shape
    threshold = torch.tensor(c.threshold, device=device, dtype=dtype)
    tau = torch.tensor(c.tau_rho, device=device, dtype=dtype)
    scale = torch.tensor(c.scale_rho, device=device, dtype=dtype)
    factor = scale / 2 / tau
    keeps = [1 - torch.tensor([d], device=device, dtype=dtype) / DECAY_SCALE
             for d in (c.voltage_decay, c.current_decay)]
    if device.type == "cpu" and grad_spikes_tm.dtype == dtype:
        lib = native_kernel()
        if lib is not None:
            return cuba_backward_native(lib, grad_spikes_tm, voltage_tm, threshold, tau, factor, keeps[0],
                                        keeps[1], block_size(m, device))
    grad = torch.empty((steps, m), dtype=dtype, device=device)
    width = block_size(m, device)
    tmp = torch.empty(width, dtype=dtype, device=device)
    for cols in _blocks(m, width):
        g = grad[:, cols]
        torch.sub(voltage_tm[:, cols], threshold, out=g)
        g.abs_().neg_().div_(tau).exp_()
        torch.mul(factor, g, out=g)
        g.mul_(grad_spikes_tm[:, cols])
        scratch = tmp[: cols.stop - cols.start]
        for keep in keeps:
            for n in range(steps - 2, -1, -1):
                torch.mul(keep, g[n + 1], out=scratch)
                g[n].add_(scratch)
    return grad


class CubaFunction(torch.autograd.Function):
    """One SLAYER CUBA layer (dynamics + spike) as a single autograd node, time-major.

    Returns the float32 spikes and, when asked for (``bytes_out``), the same spikes as a
    uint8 tensor for an int8 convolution of the next layer (not differentiable; empty
    otherwise).
    """

    @staticmethod
    def forward(ctx, z_tm: torch.Tensor, c: CubaConstants,  # type: ignore[override]
                bytes_out: bool) -> tuple[torch.Tensor, torch.Tensor]:
        spikes_u8 = torch.empty(z_tm.shape if bytes_out else (0,), dtype=torch.uint8, device=z_tm.device)
        spikes, voltage = cuba_forward_flat(z_tm.detach(), c, spikes_u8 if bytes_out else None)
        ctx.save_for_backward(voltage)
        ctx.constants = c
        ctx.mark_non_differentiable(spikes_u8)
        return spikes, spikes_u8

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor, _grad_bytes: torch.Tensor | None):  # type: ignore[override]
        (voltage,) = ctx.saved_tensors
        return cuba_backward_flat(grad_spikes, voltage, ctx.constants), None, None


def cuba_layer_tm(z_tm: torch.Tensor, c: CubaConstants) -> torch.Tensor:
    """Spikes ``[T, M]`` of a CUBA layer of ``M`` neurons fed ``z_tm``; differentiable."""
    return CubaFunction.apply(z_tm, c, False)[0]


def _constant_over_time(x_nchwt: torch.Tensor) -> bool:
    """Whether every time step of ``x_nchwt`` equals the first (a repeated image)."""
    return x_nchwt.shape[-1] == 1 or x_nchwt.stride(-1) == 0 or bool((x_nchwt == x_nchwt[..., :1]).all())


@dataclass
class FastOutput:
    """What :func:`run_fast` returns, in SLAYER's time-last layouts (views, not copies).

    Attributes:
        spikes_nft: Last layer's spikes ``[N, F, T]``.
        layer_inputs: Per weighted layer its input (``[N, C, H, W, T]`` or ``[N, F, T]``).
        layer_spikes: Per weighted layer its output spikes, same layouts.
    """

    spikes_nft: torch.Tensor
    layer_inputs: list[torch.Tensor]
    layer_spikes: list[torch.Tensor]


def _time_last(x_tn: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T*N, ...]`` -> a ``[N, ..., T]`` view."""
    x = x_tn.reshape(steps, -1, *x_tn.shape[1:])
    return x.permute(*range(1, x.dim()), 0)


def _channels_last(z: torch.Tensor) -> bool:
    """Whether a synapse output is a channels-last map (not also plain contiguous)."""
    return z.dim() == 4 and not z.is_contiguous() and z.is_contiguous(memory_format=torch.channels_last)


def _flat_tm(z: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
    """A synapse output ``[T*N, ...]`` (or ``[N, ...]`` when constant over time) as a
    ``[T, M]`` view in its memory order (channels-last maps stay channels-last)."""
    if _channels_last(z):
        z = z.permute(0, 2, 3, 1)
    z = z.contiguous()
    return z.reshape(1, -1).expand(steps, -1) if constant else z.reshape(steps, -1)


def _maps_like(spikes_tm: torch.Tensor, z: torch.Tensor, rows: int) -> torch.Tensor:
    """Spikes ``[T, M]`` back in the synapse output's shape and memory order ``[T*N, ...]``."""
    if _channels_last(z):
        _, c, h, w = z.shape
        return spikes_tm.reshape(rows, h, w, c).permute(0, 3, 1, 2)
    return spikes_tm.reshape(rows, *z.shape[1:])


def run_fast(blocks: torch.nn.ModuleList, x_nchwt: torch.Tensor, channels_last: bool = True) -> FastOutput:
    """Run SLAYER ``cuba`` Conv/Flatten/Dense blocks with the fast engine.

    Args:
        blocks: The student's blocks (``slayer.block.cuba.Conv``, ``Flatten``, ``Dense``
            without delays or weight normalisation; a synapse bias is added to the synaptic
            input, a ``batch_norm`` attribute applied to it, see :mod:`~sne_loihi.students.fold`).
        x_nchwt: Encoded input ``[N, C, H, W, T]``.
        channels_last: Run the convolutions on channels-last maps (same values; measured
            1.2-1.7x faster per conv layer on this CPU with oneDNN).

    Returns:
        The output spikes and each weighted layer's input and spikes, time-last views.

    Raises:
        ValueError: A block this engine does not emulate.
    """
    steps, batch = x_nchwt.shape[-1], x_nchwt.shape[0]
    constant = _constant_over_time(x_nchwt)
    if constant:
        x_tn = x_nchwt[..., 0]
    else:
        x_tn = x_nchwt.permute(4, 0, 1, 2, 3).reshape(steps * batch, *x_nchwt.shape[1:4])
    if channels_last:
        x_tn = x_tn.contiguous(memory_format=torch.channels_last)
    layer_inputs: list[torch.Tensor] = []
    layer_spikes: list[torch.Tensor] = []
    x_u8: torch.Tensor | None = None
    for block in blocks:
        kind = type(block).__name__
        if kind == "Flatten":
            x_tn = x_tn.reshape(x_tn.shape[0], -1)
            continue
        synapse = block.synapse
        if getattr(block, "delay", None) is not None or synapse.groups != 1 or getattr(block, "delay_shift", False):
            raise ValueError(f"the fast engine does not emulate a {kind} block with delay or groups")
        layer_inputs.append(x_tn.unsqueeze(-1).expand(*x_tn.shape, steps) if constant else _time_last(x_tn, steps))
        weight = synapse.pre_hook_fx(synapse.weight) if synapse.pre_hook_fx is not None else synapse.weight
        if kind == "Conv":
            if tuple(synapse.dilation[:2]) != (1, 1):
                raise ValueError("the fast engine does not emulate dilated convolutions")
            w = weight[..., 0]
            if channels_last:
                w = w.contiguous(memory_format=torch.channels_last)
            stride, padding = tuple(synapse.stride[:2]), tuple(synapse.padding[:2])
            # the first layer reads the encoded (graded) input, later ones 0/1 spikes
            z = (spike_conv2d(x_tn, w, stride, padding, x_u8) if layer_spikes
                 else F.conv2d(x_tn, w, None, stride, padding))
        elif kind == "Dense":
            z = F.linear(x_tn.reshape(x_tn.shape[0], -1), weight.reshape(weight.shape[0], -1))
        else:
            raise ValueError(f"the fast engine does not run {kind} blocks")
        if synapse.bias is not None:  # a folded norm's neuron bias (exact: both on binary grids)
            z = z + synapse.bias.view(1, -1, *[1] * (z.dim() - 2))
        norm = getattr(block, "batch_norm", None)
        if norm is not None:  # training form of student.norm = "batch"
            z = norm(z)
        spikes_tm, spikes_u8_tm = CubaFunction.apply(_flat_tm(z, steps, constant), cuba_constants(block.neuron),
                                                     int8_spike_conv(z.device))
        x_tn = _maps_like(spikes_tm, z, steps * batch)
        x_u8 = _maps_like(spikes_u8_tm, z, steps * batch) if spikes_u8_tm.numel() else None
        layer_spikes.append(_time_last(x_tn, steps))
        constant = False
    return FastOutput(spikes_nft=_time_last(x_tn, steps), layer_inputs=layer_inputs, layer_spikes=layer_spikes)
