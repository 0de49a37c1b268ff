"""Markdown of the Loihi 2 readiness report (``EXPORT/loihi2.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sne_loihi.sim.readiness import FirstLayerDrive, ReadinessReport, ReadinessRow

#: Loihi 1's energy per synaptic op (Davies et al. 2018), the one published per-op figure, to
#: put the bias path's extra input values into perspective (no per-value I/O energy is public).
LOIHI1_PJ_PER_SYNOP = 23.6

#: What this report cannot check without Loihi 2 hardware (or the non-public extension).
HARDWARE_ONLY: tuple[str, ...] = (
    "whether the extension's compiler accepts the netx blocks as written (conv weights at 8 bits, exponent 0; "
    "graded input spikes) and how it maps them to cores: the core figures here are estimates",
    "whether conv synapses share their kernels in synaptic memory (the two core estimates bracket it)",
    "the adapters' real latency (assumed one step each way) and so the reset offset and readout delay on the chip",
    "host<->chip bandwidth and the wall time per step; energy per synaptic op and per neuron update on Loihi 2 "
    "(see docs/energy.md)",
    "the chip's state at inputs other than the parity samples: a worst-case row above 2**23 marks a layer whose "
    "state could wrap (u) or saturate (v) on some input, which the CPU fixed-point model reproduces but torch does not",
)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _where(r: ReadinessRow) -> str:
    if r.student is None:
        return "ensemble"
    return f"student {r.student} layer {r.layer}"


def _num(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def first_layer_markdown(drives: Sequence[FirstLayerDrive], time_steps: int) -> list[str]:
    """The section comparing a first layer driven by a per-sample bias with the synaptic one."""
    if not drives:
        return []
    lines = ["", "## First layer: per-sample bias or synaptic input", "",
             f"Per sample. Synaptic path: the graded image (C*H*W values) is sent at each of the T = {time_steps} steps and "
             "the first layer's synapses work every step on the chip. Bias path (`lava.first_layer = \"bias\"`): "
             "the host computes the first layer's integer W * x + b once and writes one bias mantissa per "
             "first-layer neuron; the chip's first-layer synapses do nothing. Mantissas at netx's bias_exp 6 must "
             "fit the signed 13-bit register (-4096..4095). Where the layer's threshold mantissa is below 4095 the "
             "host writes them saturated there, which changes no spike: with no current memory a constant drive "
             "above the threshold fires at every step and a negative one never, whatever its size.", ""]
    lines += _table(
        ["student", "exported", "bias path exact", "values written (bias, once)", "input values (synaptic, T frames)",
         "first-layer ops on chip (synaptic)", "host MACs (bias)", "measured mantissas", "outside 13 bits",
         "bias_exp needed (measured / any input)", "threshold mantissa: saturating exact"],
        [[d.student, d.exported, "yes" if d.applies else "no (current keeps memory)", f"{d.neurons:,}",
          f"{d.input_values:,}", _num(d.chip_ops), _num(d.host_macs),
          "-" if d.mant_min is None else f"{d.mant_min:,}..{d.mant_max:,}",
          "-" if d.mant_over is None else f"{d.mant_over:,} of {d.mant_values:,}",
          (("-" if d.exp_measured is None else f"{d.exp_measured} ({'exact' if d.exact_measured else 'not exact'})")
           + f" / {d.exp_worst} ({'exact' if d.exact_worst else 'not exact'})") if d.applies else "-",
          "-" if d.v_th_mant is None else f"{d.v_th_mant:,}: {'yes' if d.saturates else 'no'}"]
         for d in drives])
    if any(d.exported == "bias" for d in drives):
        lines += ["", "(The host <-> chip table above counts every student's image per step, the synaptic path's "
                  "input; the bias path's writes are these.)"]
    ok = [d for d in drives if d.applies]
    if not ok:
        return lines + ["", "No student's first layer allows the bias path (its current keeps memory)."]
    bias_values = sum(d.neurons for d in ok)
    syn_values = sum(d.input_values for d in ok)
    lines += ["", f"Ensemble ({len(ok)} student(s) whose first layer allows it): the bias path writes "
              f"{bias_values:,} values per sample, the synaptic path sends {syn_values:,} "
              f"({bias_values / max(syn_values, 1):.2f}x)."]
    if any(d.chip_ops is None for d in ok):
        return lines + ["First-layer ops not measured (export without parity samples)."]
    saved = sum(d.chip_ops for d in ok)
    host = sum(d.host_macs for d in ok)
    lines.append(f"On the chip the bias path saves {saved:,.0f} first-layer synaptic ops per sample (the host does "
                 f"{host:,.0f} MACs instead, once).")
    extra = bias_values - syn_values
    if extra <= 0:
        lines.append("The bias path wins on both counts: fewer values into the chip and no first-layer synaptic ops.")
    else:
        per_value = saved / extra
        lines.append(f"Which wins depends on the cost of a value into the chip: the bias path moves {extra:,} more "
                     f"values to save {saved:,.0f} ops, so it wins while one value costs less than {per_value:,.1f} "
                     f"synaptic ops (at Loihi 1's {LOIHI1_PJ_PER_SYNOP} pJ per op: {per_value * LOIHI1_PJ_PER_SYNOP:,.0f} "
                     "pJ per value). No per-value host-to-chip energy of Loihi 2 is published; measure it (docs/energy.md).")
    return lines


def readiness_markdown(report: ReadinessReport, title: str = "Loihi 2 readiness") -> str:
    """The report as Markdown: summary, limits, layers, checks, cores, traffic, placement."""
    counts = report.counts()
    lines = [f"# {title}", "",
             f"Checked rows: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail. "
             f"Input: {report.input_bits}-bit graded spikes, T = {report.time_steps}. "
             + (f"State measured on {report.measured_samples} parity samples." if report.measured_samples
                else "State not measured (export without parity samples)."),
             "",
             "*verified*: the limit is enforced by code installed here (Lava's bit-accurate models, netx, Lava's "
             "weight utilities); *assumed*: from Intel's public brief or Loihi 1 documents, checkable only on "
             "hardware.", "", "## Limits", ""]
    lines += _table(["limit", "value", "basis", "source"],
                    [[x["name"], f"{x['value']:,}", x["basis"], x["source"]] for x in report.limits])
    lines += ["", "## Layers", ""]
    lines += _table(
        ["student", "layer", "kind", "neurons", "fan-in max", "fan-out max", "synapses", "unique weights",
         "weight bits / exp", "vth", "du / dv", "worst |u| / |v|", "measured |u| / |v|", "cores dense / shared"],
        [[f.student, f.layer, f.kind, f"{f.neurons:,}", f.fan_in_max, f.fan_out_max, f"{f.synapses:,}",
          f"{f.unique_weights:,}", f"{f.weight_bits} / {f.weight_exponent}", f.vth, f"{f.du} / {f.dv}",
          f"{f.worst_u:,} / {f.worst_v:,}",
          "-" if f.measured_u is None else f"{f.measured_u:,} / {f.measured_v:,}",
          f"{f.cores_dense} / {f.cores_shared}"] for f in report.layers])
    lines += ["", f"State limit: |u|, |v| <= 2**23 - 1 = {2 ** 23 - 1:,}.", "", "## Checks", ""]
    order = {"fail": 0, "warn": 1, "pass": 2}
    rows = sorted(report.rows, key=lambda r: order[r.status.value])
    lines += _table(["status", "where", "check", "value", "limit", "basis", "source"],
                    [[r.status.value.upper(), _where(r), r.check, r.value, r.limit, r.basis, r.source] for r in rows])
    t = report.totals
    lines += ["", "## Core estimate", "",
              f"Ensemble: {t['neurons']:,} neurons, {t['synapses']:,} dense-equivalent synapses "
              f"({t['unique_weights']:,} weights with shared conv kernels); {t['cores_dense']} neuro-cores "
              f"dense-equivalent, {t['cores_shared']} with shared kernels (a chip has 128).", "", "Assumptions:", ""]
    lines += [f"- {a}" for a in report.assumptions]
    lines += ["", "## Host <-> chip values per step", ""]
    tapped, hardware = report.plans["tapped"], report.plans["hardware"]
    lines += _table(["graph", "input adapters", "output adapters", "values to chip / step", "values to host / step"],
                    [["tapped graph (CPU reference: gate, op-counter taps on every hidden layer)", tapped["input_adapters"],
                      tapped["output_adapters"], f"{tapped['values_to_chip_per_step']:,}",
                      f"{tapped['values_to_host_per_step']:,}"],
                     ["hardware-shaped (the graph every backend runs: per-student injection, last layer only)", hardware["input_adapters"],
                      hardware["output_adapters"], f"{hardware['values_to_chip_per_step']:,}",
                      f"{hardware['values_to_host_per_step']:,}"]])
    lat = hardware["latency"]
    lines += ["", f"Adapter latency assumed: {lat['input_steps']} step(s) in, {lat['output_steps']} out; reset "
              f"offsets {hardware['reset_offsets']}, readout delays {hardware['readout_delays']} (on the CPU: offsets 1, "
              "delays = depth).", "", "## Placement (the hardware-shaped graph on Loihi 2)", ""]
    lines += _table(["where", "processes"], [[k, ", ".join(v)] for k, v in hardware["placement"].items()])
    lines += first_layer_markdown(report.first_layer, report.time_steps)
    lines += ["", "## Only hardware can check", ""] + [f"- {x}" for x in HARDWARE_ONLY] + [""]
    return "\n".join(lines)
