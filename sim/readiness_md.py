"""Markdown of the Loihi 2 readiness report (``EXPORT/loihi2.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sne_loihi.sim.readiness import ReadinessReport, ReadinessRow

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
    lines += ["", "## Only hardware can check", ""] + [f"- {x}" for x in HARDWARE_ONLY] + [""]
    return "\n".join(lines)
