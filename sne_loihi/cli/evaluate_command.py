"""``sne evaluate``: the run's report (cost table, activation policies, noise, Lava section)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import typer

from sne_loihi.cli.app import app, friendly
from sne_loihi.cli.options import REPORT_DEFAULTS, RunArg, TrustFactoryOpt, report_flags
from sne_loihi.run_files import REPORT_FILE


@app.command()
@friendly
@report_flags
def evaluate(
    run: RunArg,
    report: Any = None,
    trust_factory: TrustFactoryOpt = False,
    neurobench: Annotated[bool, typer.Option(
        "--neurobench/--no-neurobench", help="Also count synaptic ops, activation sparsity and footprint with "
        "NeuroBench and put them next to ours in the report (needs the 'interop' extra).")] = False,
    neurobench_samples: Annotated[int, typer.Option(
        "--neurobench-samples", help="Test samples for --neurobench (0 = all).")] = REPORT_DEFAULTS.neurobench_samples,
) -> None:
    """Accuracy and per-sample cost of teacher, students and ensemble; activation policies,
    noise robustness; rewrites the run's report.md/report.json and plots."""
    from sne_loihi.pipeline import report_run
    from sne_loihi.report import print_table

    options = replace(report, neurobench=neurobench, neurobench_samples=neurobench_samples)  # checks them
    if neurobench:
        from sne_loihi.cost.neurobench_check import import_neurobench

        import_neurobench()  # missing neurobench fails before the evaluation
    out = report_run(run, f"sne-loihi evaluation: {run}", options)
    print_table(out["rows"], f"{run} (energy profile {options.energy_profile})")
    for r in out.get("neurobench", []):
        typer.echo(f"NeuroBench vs ours, {r['model']}: MACs {r['nb_macs']:,.2f} vs {r['our_macs']:,.2f} "
                   f"(diff {r['diff_macs']:+g}), ACs {r['nb_acs']:,.2f} vs {r['our_acs']:,.2f} (diff {r['diff_acs']:+g})")
    typer.echo(f"report: {run / REPORT_FILE}")

