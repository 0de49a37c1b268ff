"""The Loihi 2 readiness report of an export: every student's layers against the chip's limits.

Written by ``sne export`` as ``EXPORT/loihi2.md`` and stored in the manifest (``loihi2``).
Per student and weighted layer: the weight bits and exponent as netx passes them to Lava,
whether every weight survives Lava's weight clipping and truncation at those bits, the
threshold and decay registers, the worst-case state at full input activity and the state
measured on the parity samples (both against the 24-bit state), neurons, fan-in, fan-out,
synapses and a core estimate; per ensemble the chip totals, the host<->chip values per step
and the placement of every process (from :mod:`sne_loihi.sim.graph_plan`). Every row names its
limit, the limit's source, whether the limit is verified (enforced by code installed here)
or assumed (:mod:`sne_loihi.sim.loihi2_limits`), and pass / warn / fail.

First layer (per student): what driving it by a per-sample neuron bias moves and saves against
the synaptic path, and whether its mantissas fit the chip's bias register
(:mod:`sne_loihi.sim.readiness_first_layer`). Rows: :mod:`sne_loihi.sim.readiness_rows`.

Measured state: the synaptic input of every layer is the student's own (quantised) synapse
applied to the layer's input on the parity samples; the CUBA recursion then runs in
integers as Lava's bit-accurate LIF does (``PyLifModelBitAcc``: decays with 12-bit
truncation toward zero, input left-shifted by 6, spike when ``v > vth << 6``, reset to 0),
from rest for every sample. Its spikes must equal the student's, or the export fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.errors import ExportError
from sne_loihi.netx_format.netx_file import NetxNetwork, read_netx_network
from sne_loihi.sim import loihi2_limits as lim
from sne_loihi.sim.graph_plan import LOIHI2_ASSUMED_LATENCY, Layout, plan_graph
from sne_loihi.sim.loihi2_limits import Status
from sne_loihi.sim.readiness_first_layer import FirstLayerDrive, first_layer_drive, first_layer_rows
from sne_loihi.sim.readiness_rows import ReadinessRow, make_row as _row

__all__ = ["FirstLayerDrive", "LayerFacts", "ReadinessReport", "ReadinessRow", "analyse_network", "build_report",
           "ensemble_rows", "first_layer_drive", "first_layer_rows", "layer_rows", "lif_run", "lif_state_bound",
           "measure_states", "weight_encoding"]

#: Lava's LIF: decays are fractions of 2**12; synaptic input and threshold are shifted by 6.
DECAY_UNITY = 1 << 12
ACT_SHIFT = 6


@dataclass
class LayerFacts:
    """One weighted layer of one student as Loihi 2 would hold it.

    Attributes:
        student, layer: Indices (layer: weighted layers, 0-based).
        kind: ``conv`` / ``dense``.
        neurons: Output neurons.
        fan_in_max: Most non-zero synapses into one neuron.
        fan_out_max: Most non-zero synapses out of one input neuron.
        synapses: Non-zero connections (dense-equivalent: a conv kernel counted per output).
        unique_weights: Non-zero weights stored once (a conv kernel once).
        weight_min, weight_max: The integer weights as the file holds them (8-bit grid).
        weight_bits, weight_exponent: What netx passes to Lava for this layer.
        weights_fit: Every weight survives Lava's clipping and truncation at those bits.
        vth, du, dv: Threshold mantissa and the current / voltage decay constants.
        max_delay: Largest axonal delay (steps).
        bias_min, bias_max: The neurons' bias mantissas (``bias_mant`` at exponent 6; 0 without a bias).
        worst_u, worst_v: Largest ``|u|``, ``|v|`` from rest over T steps with every input
            at its maximum every step (no reset).
        measured_u, measured_v: Largest ``|u|``, ``|v|`` on the parity samples (``None``
            without samples).
        cores_dense, cores_shared: Core estimate, dense-equivalent and with shared kernels.
    """

    student: int
    layer: int
    kind: str
    neurons: int
    fan_in_max: int
    fan_out_max: int
    synapses: int
    unique_weights: int
    weight_min: int
    weight_max: int
    weight_bits: int
    weight_exponent: int
    weights_fit: bool
    vth: int
    du: int
    dv: int
    max_delay: int
    worst_u: int
    worst_v: int
    measured_u: int | None = None
    measured_v: int | None = None
    cores_dense: int = 0
    cores_shared: int = 0
    bias_min: int = 0
    bias_max: int = 0


@dataclass
class ReadinessReport:
    """The whole report (JSON via :meth:`to_dict`, Markdown via
    :func:`~sne_loihi.sim.readiness_md.readiness_markdown`)."""

    layers: list[LayerFacts]
    rows: list[ReadinessRow]
    totals: dict[str, int]
    plans: dict[str, dict[str, Any]]
    measured_samples: int
    input_bits: int
    time_steps: int
    first_layer: list[FirstLayerDrive] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=lambda: list(lim.CORE_ASSUMPTIONS))
    limits: list[dict[str, Any]] = field(default_factory=lambda: [
        {**asdict(x), "basis": x.basis} for x in lim.ALL_LIMITS])

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        return {s.value: sum(1 for r in self.rows if r.status is s) for s in Status}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["rows"] = [{**asdict(r), "status": r.status.value} for r in self.rows]
        d["counts"] = self.counts()
        return d


def weight_encoding(kind: str, weight: np.ndarray) -> tuple[int, int, bool]:
    """``(bits, exponent, fits)``: what netx passes to Lava for a layer's integer weights and
    whether Lava's ``clip_weights`` / ``truncate_weights`` at those bits keep every weight.

    Dense: netx's own ``optimize_weight_bits``. Conv: netx passes the weights unchanged with
    8 bits and exponent 0.
    """
    from sne_loihi.sim.lava_import import prepare_lava_import
    from sne_loihi.students.slayer_student import import_slayer

    import_slayer()  # netx imports SLAYER: quietly first (no CUDA / Prophesee chatter on stdout)
    prepare_lava_import()  # netx imports Lava's runtime (an export without a Lava check gets here first)
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    w = np.asarray(weight).astype(np.int64)
    if kind == "dense":
        mantissa, bits, exponent, _ = optimize_weight_bits(w.reshape(w.shape[0], -1))
        mantissa = np.asarray(mantissa)
    else:
        mantissa, bits, exponent = w, lim.WEIGHT_BITS.value, 0
    # as Lava's fixed-point Dense model applies them (clip at 8 bits, truncate to ``bits``)
    mode = determine_sign_mode(mantissa)
    kept = truncate_weights(clip_weights(mantissa, mode, num_bits=lim.WEIGHT_BITS.value), mode, int(bits))
    return int(bits), int(exponent), bool(np.array_equal(np.asarray(kept), mantissa))


def lif_state_bound(drive: int, du: int, dv: int, steps: int) -> tuple[int, int]:
    """Largest ``|u|``, ``|v|`` of Lava's LIF from rest over ``steps`` steps when the
    synaptic input is ``drive`` every step (no spike, no reset: the worst case)."""
    u = v = 0
    top_u = top_v = 0
    add = int(drive) << ACT_SHIFT
    for _ in range(steps):
        u = (u * (DECAY_UNITY - du)) // DECAY_UNITY + add
        v = (v * (DECAY_UNITY - dv)) // DECAY_UNITY + u
        top_u, top_v = max(top_u, u), max(top_v, v)
    return top_u, top_v


def _decay(x: np.ndarray, decay: int) -> np.ndarray:
    """``sign(x) * (|x * (4096 - d)| >> 12)``, Lava's truncation toward zero."""
    prod = x * (DECAY_UNITY - decay)
    return np.sign(prod) * (np.abs(prod) >> 12)


def lif_run(a_in_mt: np.ndarray, vth: int, du: int, dv: int,
            bias_m: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """Lava's bit-accurate LIF over ``a_in_mt`` (``[M, T]`` integer synaptic input) from rest,
    with the neurons' ``bias_mant`` ``bias_m`` (``[M]``, added to the voltage as ``bias << 6``).

    Returns:
        ``(spikes_mt, max|u|, max|v|)``; the maxima are taken before any wrap or
        saturation, so a value beyond 2**23 shows an overflow.
    """
    a = np.asarray(a_in_mt, dtype=np.int64)
    u = np.zeros(a.shape[0], dtype=np.int64)
    v = np.zeros(a.shape[0], dtype=np.int64)
    spikes = np.zeros(a.shape, dtype=np.int8)
    top_u = top_v = 0
    th = int(vth) << ACT_SHIFT
    bias = 0 if bias_m is None else np.asarray(bias_m, dtype=np.int64) << ACT_SHIFT
    for t in range(a.shape[1]):
        u = _decay(u, du) + (a[:, t] << ACT_SHIFT)
        v = _decay(v, dv) + u + bias
        top_u = max(top_u, int(np.abs(u).max(initial=0)))
        top_v = max(top_v, int(np.abs(v).max(initial=0)))
        fired = v > th
        spikes[:, t] = fired
        v[fired] = 0
    return spikes, top_u, top_v


def _file_layers(path: Path) -> list[dict[str, Any]]:
    """Per weighted layer group: kind, integer weights and neuron registers."""
    import h5py

    out = []
    with h5py.File(path, "r") as fh:
        group = fh["layer"]
        for key in sorted(group.keys(), key=int):
            g = group[key]
            kind = g["type"][()][0].decode() if np.ndim(g["type"][()]) else g["type"][()].decode()
            if kind not in ("conv", "dense"):
                continue
            w = np.asarray(g["weight"][()])
            w = w[..., 0] if kind == "conv" and w.ndim == 5 else w
            n = g["neuron"]
            out.append({"kind": kind, "weight": np.rint(w).astype(np.int64),
                        "vth": int(n["vThMant"][()]), "du": int(n["iDecay"][()]), "dv": int(n["vDecay"][()])})
    return out


def _cores(neurons: int, stored: int) -> int:
    return max(math.ceil(neurons / lim.NEURONS_PER_CORE.value), math.ceil(stored / lim.SYNAPSES_PER_CORE.value))


def analyse_network(path: Path, student: int, input_bits: int, time_steps: int) -> list[LayerFacts]:
    """The :class:`LayerFacts` of one netx file written by the toolkit (no measurement).

    Raises:
        ExportError: A file netx could not build (see ``read_netx_network``).
    """
    net: NetxNetwork = read_netx_network(path)
    file_layers = _file_layers(path)
    out = []
    for j, (layer, f) in enumerate(zip(net.layers, file_layers)):
        w = f["weight"]
        rows = w.reshape(w.shape[0], -1)
        neurons = int(np.prod(layer.out_shape_xyz))
        per_row = (rows != 0).sum(axis=1)
        # a conv neuron of channel c gets at most the non-zero weights of kernel c
        synapses = int(layer.fanout_xyz.sum())
        s_max = (2 ** input_bits - 1 if input_bits > 0 else 1) if j == 0 else 1
        bias_c = np.zeros((rows.shape[0],), dtype=np.int64) if layer.bias_xyz is None else \
            layer.bias_xyz.reshape(-1, rows.shape[0])  # Lava order: channels last
        up = np.clip(rows, 0, None).sum(axis=1) * s_max + np.clip(bias_c, 0, None).max(axis=0, initial=0)
        down = np.clip(-rows, 0, None).sum(axis=1) * s_max + np.clip(-bias_c, 0, None).max(axis=0, initial=0)
        drive = int(max(up.max(initial=0), down.max(initial=0)))  # a bias counts as input (du = 4096 for folded layers)
        worst_u, worst_v = lif_state_bound(drive, f["du"], f["dv"], time_steps)
        bits, exponent, fits = weight_encoding(f["kind"], w)
        unique = int((w != 0).sum())
        out.append(LayerFacts(
            student=student, layer=j, kind=f["kind"], neurons=neurons, fan_in_max=int(per_row.max(initial=0)),
            fan_out_max=int(layer.fanout_xyz.max(initial=0)), synapses=synapses, unique_weights=unique,
            weight_min=int(w.min(initial=0)), weight_max=int(w.max(initial=0)), weight_bits=bits,
            weight_exponent=exponent, weights_fit=fits, vth=f["vth"], du=f["du"], dv=f["dv"],
            max_delay=layer.max_delay, worst_u=worst_u, worst_v=worst_v,
            cores_dense=_cores(neurons, synapses), cores_shared=_cores(neurons, unique),
            bias_min=int(bias_c.min(initial=0)), bias_max=int(bias_c.max(initial=0)),
        ))
    return out


def measure_states(student: Any, x_nchwt: Any, facts: Sequence[LayerFacts], chunk: int = 16) -> None:
    """Fill ``measured_u`` / ``measured_v`` of ``facts`` from the student's layers on
    ``x_nchwt`` (see the module docstring).

    Raises:
        ExportError: The integer recursion's spikes differ from the student's (an internal
            inconsistency: the report would not describe what Lava runs).
    """
    import torch

    tops = [[0, 0] for _ in facts]
    with torch.no_grad():
        for start in range(0, x_nchwt.shape[0], chunk):
            x = x_nchwt[start:start + chunk]
            j = 0
            for block in student.blocks:
                if type(block).__name__ == "Flatten":
                    x = block(x)
                    continue
                z = block.synapse(x).double() * (1 << ACT_SHIFT)
                bias = getattr(block.synapse, "bias", None)  # Lava adds it to v, not to u
                bias_c = None if bias is None else torch.round(bias.double() * (1 << ACT_SHIFT)).to(torch.int64)
                if bias_c is not None:
                    z = z - bias_c.double().view(1, -1, *[1] * (z.dim() - 2))
                a_in = torch.round(z).to(torch.int64)
                if not torch.equal(a_in.double(), z):
                    raise ExportError(f"student {facts[j].student} layer {j}: synaptic input is not an integer "
                                      "multiple of the 8-bit weight grid; the report cannot model it")
                x = block(x)
                f = facts[j]
                a_mt = a_in.reshape(a_in.shape[0], -1, a_in.shape[-1]).cpu().numpy()
                n, m, t = a_mt.shape
                bias_m = None if bias_c is None else np.tile(np.repeat(bias_c.cpu().numpy(), m // len(bias_c)), n)
                spikes, top_u, top_v = lif_run(a_mt.reshape(n * m, t), f.vth, f.du, f.dv, bias_m)
                within = max(top_u, top_v) <= lim.STATE_MAX.value
                if within and not np.array_equal(spikes.reshape(n, m, t), x.reshape(n, m, t).cpu().numpy()):
                    raise ExportError(f"student {f.student} layer {j}: the readiness report's LIF recursion does not "
                                      "reproduce the student's spikes (internal error)")
                tops[j] = [max(tops[j][0], top_u), max(tops[j][1], top_v)]
                j += 1
    for f, (u, v) in zip(facts, tops):
        f.measured_u, f.measured_v = int(u), int(v)


def layer_rows(f: LayerFacts, input_bits: int) -> list[ReadinessRow]:
    """The checked rows of one layer."""
    s, j = f.student, f.layer
    ok = Status.PASS
    rows = [
        _row("weights on Lava's grid at netx's bits/exponent",
             f"{f.weight_bits} bits, exp {f.weight_exponent}, weights {f.weight_min}..{f.weight_max}", lim.WEIGHT_BITS,
             ok if f.weights_fit and f.weight_bits <= lim.WEIGHT_BITS.value else Status.FAIL, s, j,
             "every weight kept by clip_weights/truncate_weights, bits <= 8"),
        _row("weight exponent", f.weight_exponent, lim.WEIGHT_EXP_MAX,
             ok if lim.WEIGHT_EXP_MIN.value <= f.weight_exponent <= lim.WEIGHT_EXP_MAX.value else Status.FAIL, s, j,
             f"{lim.WEIGHT_EXP_MIN.value} <= exponent <= {lim.WEIGHT_EXP_MAX.value}"),
        _row("threshold mantissa", f.vth, lim.THRESHOLD_MAX, ok if 0 <= f.vth <= lim.THRESHOLD_MAX.value else Status.FAIL,
             s, j),
        _row("neuron bias mantissa", f"{f.bias_min}..{f.bias_max}", lim.BIAS_MANT,
             ok if lim.BIAS_MANT_RANGE[0] <= f.bias_min and f.bias_max <= lim.BIAS_MANT_RANGE[1] else Status.FAIL, s, j,
             f"{lim.BIAS_MANT_RANGE[0]} <= bias_mant <= {lim.BIAS_MANT_RANGE[1]}"),
        # netx hands Lava du = iDecay - 1 (Lava adds its 1-bit offset back): a current decay of
        # 4096 (no current memory) is register 4095, and 0 would be -1
        _row("decays du / dv", f"{f.du} / {f.dv} (registers {f.du - 1} / {f.dv})", lim.DECAY_MAX,
             ok if all(0 <= d <= lim.DECAY_MAX.value for d in (f.du - 1, f.dv)) else Status.FAIL, s, j),
        _row("worst-case |u| / |v| (every input at max, every step)", f"{f.worst_u:,} / {f.worst_v:,}", lim.STATE_MAX,
             ok if max(f.worst_u, f.worst_v) <= lim.STATE_MAX.value else Status.WARN, s, j),
    ]
    if f.measured_u is None:
        rows.append(_row("measured |u| / |v|", "not measured (no parity samples)", lim.STATE_MAX, Status.WARN, s, j))
    else:
        rows.append(_row("measured |u| / |v| (parity samples)", f"{f.measured_u:,} / {f.measured_v:,}", lim.STATE_MAX,
                         ok if max(f.measured_u, f.measured_v) <= lim.STATE_MAX.value else Status.FAIL, s, j))
    rows.append(_row("axonal delay", f.max_delay, lim.DELAY_MAX, ok if f.max_delay <= lim.DELAY_MAX.value else Status.FAIL,
                     s, j))
    if j == 0:
        rows.append(_row("graded input message bits", input_bits, lim.MESSAGE_BITS,
                         ok if input_bits <= lim.MESSAGE_BITS.value else Status.FAIL, s, j))
    rows.append(_row("neurons in one core", f"{f.neurons:,} neurons -> {math.ceil(f.neurons / lim.NEURONS_PER_CORE.value)}"
                     " core(s)", lim.NEURONS_PER_CORE, ok, s, j, f"{lim.NEURONS_PER_CORE.value:,} neurons per core"))
    return rows


def ensemble_rows(layers: Sequence[LayerFacts], totals: dict[str, int], tapped: dict[str, Any],
                  hardware: dict[str, Any]) -> list[ReadinessRow]:
    """Chip totals and host traffic."""
    neurons, synapses = totals["neurons"], totals["synapses"]
    cores_dense, cores_shared = totals["cores_dense"], totals["cores_shared"]
    chip = lim.CORES_PER_CHIP.value
    cores_status = Status.PASS if cores_dense <= chip else (Status.WARN if cores_shared <= chip else Status.FAIL)
    outputs = sum(max((f for f in layers if f.student == i), key=lambda f: f.layer).neurons
                  for i in {f.student for f in layers})
    hidden_hw = hardware["values_to_host_per_step"] - outputs
    hidden_tapped = tapped["values_to_host_per_step"] - outputs
    return [
        _row("neurons (ensemble)", f"{neurons:,}", lim.NEURONS_PER_CHIP,
             Status.PASS if neurons <= lim.NEURONS_PER_CHIP.value else Status.FAIL),
        _row("synapses, dense-equivalent (ensemble)", f"{synapses:,} ({totals['unique_weights']:,} with shared kernels)",
             lim.SYNAPSES_PER_CHIP,
             Status.PASS if synapses <= lim.SYNAPSES_PER_CHIP.value else
             (Status.WARN if totals["unique_weights"] <= lim.SYNAPSES_PER_CHIP.value else Status.FAIL)),
        _row("neuro-cores (ensemble)", f"{cores_dense} dense-equivalent / {cores_shared} shared kernels",
             lim.CORES_PER_CHIP, cores_status),
        ReadinessRow(check="hidden-layer values leaving the chip per step (hardware-shaped graph, run on every backend)",
                     value=f"{hidden_hw:,} (the tapped reference graph: {hidden_tapped:,})",
                     limit="0 (outputs are read from the last layer only)",
                     source="lava-dl benchmarks: host I/O is the bottleneck even for input only", basis="assumed",
                     status=Status.PASS if hidden_hw == 0 else Status.WARN),
    ]


def build_report(net_paths: Sequence[Path], input_bits: int, time_steps: int, students: Sequence[Any] | None = None,
                 x_nchwt: Any = None, decision: bool = True) -> ReadinessReport:
    """Analyse an export's networks (and measure states when ``students`` and samples are given).

    Args:
        net_paths: The students' netx files.
        input_bits, time_steps: The input encoding.
        students: The SLAYER students the files were written from (for the measurement).
        x_nchwt: Encoded parity samples ``[N, C, H, W, T]`` (torch tensor).
        decision: The graph holds the cascade decision (placement and traffic).
    """
    layers: list[LayerFacts] = []
    per_student = []
    for i, path in enumerate(net_paths):
        facts = analyse_network(Path(path), i, input_bits, time_steps)
        if students is not None and x_nchwt is not None and len(x_nchwt):
            measure_states(students[i], x_nchwt, facts)
        per_student.append(facts)
        layers.extend(facts)
    networks = [read_netx_network(Path(p)) for p in net_paths]
    tapped = plan_graph(networks, layout=Layout.TAPPED, adapters=True, latency=LOIHI2_ASSUMED_LATENCY,
                        reset_interval=time_steps, decision=decision).to_dict()
    hardware = plan_graph(networks, layout=Layout.HARDWARE, adapters=True, latency=LOIHI2_ASSUMED_LATENCY,
                          reset_interval=time_steps).to_dict()
    totals = {key: int(sum(getattr(f, key) for f in layers))
              for key in ("neurons", "synapses", "unique_weights", "cores_dense", "cores_shared")}
    drives = [d for i, p in enumerate(net_paths)
              if (d := first_layer_drive(Path(p), i, input_bits, time_steps, x_nchwt)) is not None]
    rows = [r for f in layers for r in layer_rows(f, input_bits)] + [r for d in drives for r in first_layer_rows(d)]
    rows += ensemble_rows(layers, totals, tapped, hardware)
    samples = int(len(x_nchwt)) if students is not None and x_nchwt is not None else 0
    return ReadinessReport(layers=layers, rows=rows, totals=totals, plans={"tapped": tapped, "hardware": hardware},
                           measured_samples=samples, input_bits=int(input_bits), time_steps=int(time_steps),
                           first_layer=drives)
