"""What the Lava graph takes and returns: run records, the reset rule, the input layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sne_loihi.errors import SimulationError


@dataclass
class GraphRun:
    """Raw figures of one batch through the graph.

    Attributes:
        spikes_nft: Per network its output spikes ``[N, F, T]`` (int8; int32 graded
            messages for a sigma-delta output layer).
        ops_nl: Per network synaptic events ``[N, L]`` per sample and weighted layer.
        seconds: Wall time of the Lava runs (every chunk; compilation excluded).
        compile_seconds: Time this call spent compiling the graph and starting Lava's
            processes (0 once the graph is running).
        layer_spikes: With ``probe_layers``: per network, per weighted layer its spikes
            ``[N, *shape_xyz, T]`` in Lava order (the last one is ``spikes_nft``).
    """

    spikes_nft: list[np.ndarray]
    ops_nl: list[np.ndarray]
    seconds: float
    layer_spikes: list[list[np.ndarray]] | None = None
    compile_seconds: float = 0.0


@dataclass
class CascadeRun:
    """Raw figures of a batch through the graph's in-graph cascade (one Lava run per stage).

    Attributes:
        spikes_nft: Per network its output spikes ``[N, F, T]`` summed over the stages
            (every network runs in at most one stage per sample; zeros where it did not run).
        ops_nl: Per network synaptic events ``[N, L]`` summed over the stages.
        ran_nk: ``[N, K]`` bool, which networks ran for which sample (the decision's record).
        stages: Lava runs (stages) per chunk of ``capacity`` samples, in chunk order.
        seconds: Wall time of the Lava runs (compilation excluded).
        compile_seconds: Time this call spent compiling and starting the graph.
    """

    spikes_nft: list[np.ndarray]
    ops_nl: list[np.ndarray]
    ran_nk: np.ndarray
    stages: list[int]
    seconds: float
    compile_seconds: float = 0.0


#: ``reset_interval`` value that resets every sample (every T steps).
RESET_PER_SAMPLE = "T"


def resolve_reset(reset_interval: int | str | None, time_steps: int) -> int | None:
    """``"T"`` -> ``time_steps``; an integer >= 1 -> itself; ``None`` -> ``None`` (no reset).

    Raises:
        SimulationError: Anything else.
    """
    if reset_interval is None:
        return None
    if reset_interval == RESET_PER_SAMPLE:
        return int(time_steps)
    if isinstance(reset_interval, (int, np.integer)) and not isinstance(reset_interval, bool) and reset_interval >= 1:
        return int(reset_interval)
    raise SimulationError(f"reset interval must be 'T', an integer >= 1 or None, got {reset_interval!r}")


def to_lava_input(x_n_in_t: np.ndarray, port_shape: tuple[int, ...]) -> np.ndarray:
    """Torch-layout samples ``x_n_in_t`` = ``[N, *in_shape, T]`` -> one stream ``[*port_shape, N * T]``.

    ``[N, C, H, W, T]`` becomes ``(W, H, C)`` per step (netx's x, y, f order); a flat port
    takes the torch flatten order.
    """
    n, t = x_n_in_t.shape[0], x_n_in_t.shape[-1]
    if len(port_shape) == 3:
        if x_n_in_t.ndim != 5:
            raise SimulationError(f"input must be [N, C, H, W, T] for this network, got shape {list(x_n_in_t.shape)}")
        per = x_n_in_t.transpose(0, 3, 2, 1, 4)  # N, W, H, C, T
    else:
        per = x_n_in_t.reshape(n, -1, t)
    if tuple(per.shape[1:-1]) != tuple(port_shape):
        torch_shape = [port_shape[2], port_shape[1], port_shape[0]] if len(port_shape) == 3 else [int(np.prod(port_shape))]
        raise SimulationError(f"input of shape {list(x_n_in_t.shape)} does not fit the network: it takes "
                              f"[N, {', '.join(map(str, torch_shape))}, T] (torch order; {list(port_shape)} in Lava's "
                              "x, y, f order)")
    return np.moveaxis(per, 0, -2).reshape(*port_shape, n * t)


def check_switched_off(names: list[str], spikes_nft: list[np.ndarray], ops_nl: list[np.ndarray], active_k: np.ndarray,
                       mask_nk: np.ndarray | None) -> None:
    """Refuse a run in which a network the gate switched off still fired or counted ops.

    The gate switches a network off by feeding it zeros; a neuron bias (a folded student's)
    keeps driving its neurons, so a positive bias can make it fire with no input, and its
    records would then not be those of a network that did not run (torch runs nothing). An
    active set also writes the biases of the networks it leaves out 0
    (:mod:`~sne_loihi.sim.bias_gate`); a per-sample mask cannot.

    Args:
        names: Per network, its file (for the message).
        spikes_nft, ops_nl: The run's records per network (``[N, ...]``).
        active_k: 0/1 per network: switched on for the whole run.
        mask_nk: Per-sample gate ``[N, K]`` or ``None`` (all ones).

    Raises:
        SimulationError: Naming the network and the first such sample.
    """
    for k, (spikes, ops) in enumerate(zip(spikes_nft, ops_nl)):
        on_n = np.full(len(spikes), bool(active_k[k]))
        if mask_nk is not None:
            on_n &= np.asarray(mask_nk)[:, k] != 0
        fired = ~on_n & ((spikes.reshape(len(spikes), -1) != 0).any(axis=1) | (ops.reshape(len(ops), -1) != 0).any(axis=1))
        if fired.any():
            raise SimulationError(f"{names[k]}: the network fires while the gate switches it off (sample "
                                  f"{int(np.argmax(fired))}): its neurons' bias drives them without input, so gating "
                                  "cannot switch it off within a run; switch students off with an active set, not a "
                                  "per-sample mask (the hardware-shaped graph runs a cascade stage by stage)")
