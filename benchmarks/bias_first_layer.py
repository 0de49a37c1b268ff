"""The first layer driven by a per-sample neuron bias against the synaptic path, on a trained run.

Usage::

    python benchmarks/bias_first_layer.py RUN [--samples 50] [--out benchmarks/results/bias_first_layer_digits]

``RUN`` must have been trained with ``student.neuron.current_decay = 1`` (e.g. ``sne pipeline
--set student.neuron.current_decay=1.0 ...``). For ``lava.first_layer`` = ``synaptic`` and
``bias`` it prices the test set in torch (``evaluate_run``: energy per sample, MACs, ACs, ops
per layer), exports the run (``RUN/export_synaptic``, ``RUN/export_bias``; Lava parity on
``--samples`` test samples, every layer and step) and simulates the export in Lava on the same
samples (spikes, ops and predictions against torch). Writes ``OUT.md`` and ``OUT.json`` with the
readiness report's first-layer section of the bias export.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(run_dir: Path, samples: int) -> dict:
    """Both first-layer drives on ``run_dir``: torch cost table, export parity, Lava run."""
    from sne_loihi.config import FirstLayer
    from sne_loihi.analysis.evaluation import evaluate_run
    from sne_loihi.export.stage import export_run
    from sne_loihi.run import Run
    from sne_loihi.sim.stage import simulate_export

    run = Run(run_dir)
    out: dict = {"run": str(run_dir), "samples": samples, "time_steps": run.config.student.time_steps}
    for mode in (FirstLayer.SYNAPTIC, FirstLayer.BIAS):
        ev = evaluate_run(run, energy_profile="cmos45nm", first_layer=mode)
        ens = ev.rows[-1]
        t0 = time.perf_counter()
        manifest = export_run(run, run_dir / f"export_{mode.value}", samples=samples, overwrite=True, first_layer=mode)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = simulate_export(run_dir / f"export_{mode.value}", samples=samples, active=["all"], backend="cpu",
                              energy="cmos45nm", torch_checkpoint=run_dir / "ensemble.pt", progress=False)
        sim_s = time.perf_counter() - t0
        lava = rep.evaluations[0]
        out[mode.value] = {
            "torch": {"test_samples": ev.meta["test_samples"], "accuracy": ens["accuracy"], "macs": ens["macs"],
                      "acs": ens["acs"], "energy_pj": ens["energy_pj"], "student_ops": ev.meta["student_ops"],
                      "first_layer": ev.meta["first_layer"]},
            "parity": {"samples": manifest.parity.samples, "mismatches": manifest.parity.mismatches},
            "lava": {"samples": lava.samples, "accuracy": lava.accuracy, "macs": lava.macs, "acs": lava.acs,
                     "energy_pj": lava.energy_pj, "ops_per_student_layer": lava.ops_per_student_layer,
                     "spike_mismatches": lava.torch.spike_mismatches, "op_mismatches": lava.torch.op_mismatches,
                     "prediction_agreement": lava.torch.prediction_agreement, "first_layer": lava.first_layer},
            "seconds": {"export_with_parity": round(export_s, 1), "simulate": round(sim_s, 1)},
            "readiness_counts": manifest.loihi2["counts"], "first_layer_drive": manifest.loihi2["first_layer"],
        }
    return out


def markdown(r: dict, cpu: str) -> str:
    """The result as Markdown."""
    syn, bias = r["synaptic"], r["bias"]
    lines = [f"# First layer as a per-sample bias: {Path(r['run']).name}", "",
             f"Digits run trained with `student.neuron.current_decay = 1` (tiny budget; accuracy is not the point). "
             f"Measured on {cpu} (2 cores). Energy profile `cmos45nm` (MAC 4.6 pJ, AC 0.9 pJ)."
             + (f" Run made by `{r['note']}`." if r.get("note") else ""), "",
             "## Ensemble, per sample", "",
             "| first layer | torch: MACs | ACs | energy (nJ) | Lava (" + str(r["samples"]) + " samples): MACs | ACs | "
             "energy (nJ) | spike / op mismatches | predictions agree | export parity mismatches |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in (("synaptic", syn), ("bias", bias)):
        t, lv = m["torch"], m["lava"]
        lines.append(f"| {name} | {t['macs']:,.0f} | {t['acs']:,.0f} | {t['energy_pj'] / 1000:,.2f} | {lv['macs']:,.0f} | "
                     f"{lv['acs']:,.0f} | {lv['energy_pj'] / 1000:,.2f} | {lv['spike_mismatches']} / {lv['op_mismatches']} | "
                     f"{100 * lv['prediction_agreement']:.0f}% | {m['parity']['mismatches']} of {m['parity']['samples']} samples |")
    saving = 1 - bias["torch"]["energy_pj"] / syn["torch"]["energy_pj"]
    lines += ["", f"Torch columns: the whole test set ({syn['torch']['test_samples']} samples), test accuracy "
              f"{100 * syn['torch']['accuracy']:.2f}% (synaptic) / {100 * bias['torch']['accuracy']:.2f}% (bias): the "
              "spikes are the same, only the first layer's count changes. The bias-driven first layer "
              f"cuts the ensemble's energy estimate by {100 * saving:.1f}%: its MACs are charged once per sample "
              "instead of T times; the ACs do not change.", "", "## Ops per student and layer (torch, test set mean)", "",
              "| student | synaptic path | bias path |", "|---|---|---|"]
    for k, (a, b) in enumerate(zip(syn["torch"]["student_ops"], bias["torch"]["student_ops"])):
        lines.append(f"| {k} | " + ", ".join(f"{v:,.0f}" for v in a) + " | " + ", ".join(f"{v:,.0f}" for v in b) + " |")
    lines += ["", "## What the bias path moves (readiness report of the bias export, its parity samples)", "",
              "| student | values written per sample (bias) | input values per sample (synaptic, T frames) | first-layer "
              "chip ops (synaptic) | host MACs (bias) | measured mantissas | outside 13 bits | bias_exp needed "
              "(measured / any input) |", "|---|---|---|---|---|---|---|---|"]
    for d in bias["first_layer_drive"]:
        lines.append(f"| {d['student']} | {d['neurons']:,} | {d['input_values']:,} | {d['chip_ops']:,.0f} | "
                     f"{d['host_macs']:,.0f} | {d['mant_min']:,}..{d['mant_max']:,} | {d['mant_over']} of {d['mant_values']:,} | "
                     f"{d['exp_measured']} ({'exact' if d['exact_measured'] else 'not exact'}) / {d['exp_worst']} "
                     f"({'exact' if d['exact_worst'] else 'not exact'}) |")
    drives = bias["first_layer_drive"]
    written, sent = sum(d["neurons"] for d in drives), sum(d["input_values"] for d in drives)
    saved = sum(d["chip_ops"] for d in drives)
    lines += ["", f"Ensemble: the bias path writes {written:,} values per sample against {sent:,} graded input values "
              f"({written / sent:.2f}x) and saves {saved:,.0f} first-layer synaptic ops on the chip per sample."]
    if written > sent:
        lines.append(f"It moves {written - sent:,} more values to save those ops: it wins on the chip while one value into "
                     f"the chip costs less than {saved / (written - sent):,.1f} synaptic ops (no Loihi 2 figure for either "
                     "is published). The first layer has more neurons per student "
                     f"({drives[0]['neurons']:,}) than the image has values ({drives[0]['input_values'] // r['time_steps']:,}), "
                     f"more than the T = {r['time_steps']} frames make up for, so the bias path moves more values than the "
                     "images; it pays for itself only if input bandwidth is cheap relative to synaptic ops.")
    else:
        lines.append("It moves fewer values and saves the ops: it wins on both counts.")
    lines += ["", "Wall time on this CPU: export with Lava parity "
              f"{syn['seconds']['export_with_parity']} s (synaptic) / {bias['seconds']['export_with_parity']} s (bias); "
              f"Lava simulation {syn['seconds']['simulate']} s / {bias['seconds']['simulate']} s.", ""]
    return "\n".join(lines)


def main() -> None:
    """CLI."""
    from machine import cpu_name

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bias_first_layer_digits"))
    ap.add_argument("--note", default="", help="How RUN was made (the command), for the result file.")
    args = ap.parse_args()
    r = measure(args.run, args.samples)
    r["cpu"], r["note"] = cpu_name(), args.note
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(r, indent=1, default=str))
    args.out.with_suffix(".md").write_text(markdown(r, r["cpu"]))
    print(args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
