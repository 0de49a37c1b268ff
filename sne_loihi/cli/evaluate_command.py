"""``sne evaluate``: the run's report (cost table, activation policies, noise, Lava section)."""

from __future__ import annotations

from typing import Any

import typer

from sne_loihi.cli.app import app, friendly
from sne_loihi.cli.flags import EVALUATE_FLAGS, REPORT_FLAGS, config_flags
from sne_loihi.cli.options import ExistingRunDirOpt, ProgressOpt, RunArg, TrustFactoryOpt, one_run_folder, stored_config
from sne_loihi.errors import SneError
from sne_loihi.run_files import ENSEMBLE_FILE, REPORT_FILE, TEACHER_FILE


@app.command()
@friendly
@config_flags(REPORT_FLAGS, EVALUATE_FLAGS)
def evaluate(
    run: RunArg = None,
    run_dir: ExistingRunDirOpt = None,
    overrides: Any = None,
    trust_factory: TrustFactoryOpt = False,
    progress: ProgressOpt = True,  # friendly switches every bar off with --no-progress
) -> None:
    """Accuracy and per-sample cost of teacher, students and ensemble; activation policies,
    noise robustness; rewrites the run's report.md/report.json and plots. Report settings
    not given as flags come from the run's config.toml (its ``report`` section)."""
    from sne_loihi.analysis.options import ReportOptions
    from sne_loihi.pipeline import report_run
    from sne_loihi.report import print_table

    run = one_run_folder(run, run_dir)
    if run.is_dir() and not (run / ENSEMBLE_FILE).exists() and (run / TEACHER_FILE).is_file():
        raise SneError(f"{run} holds a teacher but no students yet: train them first with 'sne train {run}'")
    ignored = sorted(k for k in (overrides or {}) if not k.startswith("report."))
    if ignored:  # the evaluation reads the ensemble's own config; only the report settings are the command's
        raise SneError(f"sne evaluate takes only report settings (report.*); --set {ignored[0]} would change "
                       "nothing (the ensemble was trained with its own config)")
    options = ReportOptions.from_config(stored_config(run, overrides).report)  # checks them
    if options.neurobench:
        from sne_loihi.config import NeuronLibrary
        from sne_loihi.cost.neurobench_check import import_neurobench

        library = stored_config(run, {}).student.neuron_library
        if library is not NeuronLibrary.SLAYER:
            raise SneError("--neurobench counts the ops of SLAYER students; this run's students are "
                           f"{library.value} (the paper's float reference)")

        import_neurobench()  # missing neurobench fails before the evaluation
    out = report_run(run, f"sne-loihi evaluation: {run}", options)
    print_table(out["rows"], f"{run} (energy profile {options.energy_profile})")
    for r in out.get("neurobench", []):
        typer.echo(f"NeuroBench vs ours, {r['model']}: MACs {r['nb_macs']:,.2f} vs {r['our_macs']:,.2f} "
                   f"(diff {r['diff_macs']:+g}), ACs {r['nb_acs']:,.2f} vs {r['our_acs']:,.2f} (diff {r['diff_acs']:+g})")
    typer.echo(f"report: {run / REPORT_FILE}")

