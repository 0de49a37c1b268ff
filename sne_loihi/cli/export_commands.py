"""``sne export`` (netx or NIR) and ``sne nir`` (read a NIR export back): the export stage."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sne_loihi.cli.app import app, friendly
from sne_loihi.cli.flags import EXPORT_FLAGS, config_flags
from sne_loihi.cli.options import (
    CapacityOpt, CheckSamplesOpt, DataDirOpt, ExistingRunDirOpt, ProgressOpt, RunArg, one_run_folder, option_given,
)
from sne_loihi.config import DEFAULT_LAVA_CAPACITY, DEFAULT_LAVA_SAMPLES
from sne_loihi.errors import SneError


class ExportFormat(str, Enum):
    """What ``sne export`` writes: netx HDF5 for Lava / Loihi 2 (default) or NIR graphs."""

    NETX = "netx"
    NIR = "nir"


@app.command()
@friendly
@config_flags(EXPORT_FLAGS)
def export(
    ctx: typer.Context,
    run: RunArg = None,
    run_dir: ExistingRunDirOpt = None,
    overrides: Any = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Export folder (default: RUN/export, RUN/nir for NIR).")] = None,
    samples: CheckSamplesOpt = DEFAULT_LAVA_SAMPLES,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Replace an existing export.")] = False,
    capacity: CapacityOpt = DEFAULT_LAVA_CAPACITY,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="netx (Lava / Loihi 2) or nir (one NIR graph per "
                                              "student + the head, re-imported in snnTorch).")] = ExportFormat.NETX,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,  # friendly switches every bar off with --no-progress
) -> None:
    """Write one netx HDF5 file per student and manifest.json, verified in Lava (fixed_pt)
    against torch spike for spike on the first test samples; or, with --format nir, one NIR
    graph per student plus the head, re-imported in snnTorch and compared spike for spike.
    --first-layer (else the run's lava.first_layer) says how each student's first layer is
    driven on the chip: through its synapses every step, or by a per-sample neuron bias.
    The check reads the data set the ensemble was trained on; --data-dir (or --set
    data.data_dir=...) says where it is when it has moved."""
    from sne_loihi.cli.options import stored_config
    from sne_loihi.export.stage import export_run

    run = one_run_folder(run, run_dir)
    first_layer = stored_config(run, overrides or {}).lava.first_layer
    if samples < 0:
        raise SneError(f"--check-samples must be >= 0, got {samples}")
    data_dir = _check_data_dir(data_dir, overrides or {}, samples)
    if fmt is ExportFormat.NIR:
        if (overrides or {}).get("lava.first_layer") is not None:
            raise SneError("--first-layer applies to netx exports (NIR graphs have no neuron-bias input)")
        if option_given(ctx, "capacity"):
            raise SneError("--capacity applies to netx exports (the NIR check runs snnTorch, not Lava)")
        _export_nir(run, out, samples, overwrite, data_dir)
        return
    if capacity < 1:
        raise SneError(f"--capacity must be >= 1 (samples per Lava run), got {capacity}")
    typer.echo(f"exporting {run} and checking Lava against torch on {samples} test samples ..." if samples else
               f"exporting {run} (no Lava check: --check-samples 0) ...")
    manifest = export_run(run, out, samples=samples, overwrite=overwrite, capacity=capacity, first_layer=first_layer,
                          data_dir=data_dir)
    check = (f"parity: {manifest.parity.samples} samples, {manifest.parity.mismatches} mismatches"
             if manifest.parity else "parity check skipped (--check-samples 0)")
    typer.echo(f"{len(manifest.students)} students -> {manifest.directory} ({check})")
    for i, s in enumerate(manifest.students):
        if s.first_layer == "bias" or s.first_layer_note:
            typer.echo(f"student {i} first layer: {s.first_layer}" + (f" ({s.first_layer_note})" if s.first_layer_note else
                                                                     " (a per-sample neuron bias, MACs once per sample)"))
    if manifest.loihi2:
        from sne_loihi.netx_format.manifest import LOIHI2_REPORT

        counts = manifest.loihi2["counts"]
        typer.echo(f"Loihi 2 readiness: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail "
                   f"-> {manifest.directory / LOIHI2_REPORT}")
    typer.echo("cascade head: included (sne simulate --cascade)" if manifest.cascade else
               f"cascade head: none current for this ensemble (run 'sne evaluate {run}' to train one)")


def _check_data_dir(data_dir: Path | None, overrides: dict[str, Any], samples: int) -> Path | None:
    """Where the export's check reads its test images: ``--data-dir``, else ``--set
    data.data_dir``, else ``None`` (the ensemble's own ``data.data_dir``).

    Raises:
        SneError: Another ``data.*`` key (the check reads the data exactly as the ensemble was
            trained on it), or a data folder with ``--check-samples 0`` (nothing would read it).
    """
    other = sorted(k for k, v in overrides.items() if k.startswith("data.") and k != "data.data_dir" and v is not None)
    if other:
        raise SneError(f"--set {other[0]}: the export's check reads the data set as the ensemble was trained on it; "
                       "only data.data_dir (--data-dir) may say where it is now")
    chosen = data_dir if data_dir is not None else overrides.get("data.data_dir")
    if chosen is not None and samples == 0:
        raise SneError("--data-dir names the check's test images; with --check-samples 0 nothing reads them")
    return Path(str(chosen)) if chosen is not None else None


def _export_nir(run: Path, out: Path | None, samples: int, overwrite: bool, data_dir: Path | None) -> None:
    from sne_loihi.export.stage import export_nir_run

    typer.echo(f"exporting {run} to NIR and re-importing it in snnTorch on {samples} test samples ..." if samples else
               f"exporting {run} to NIR (no re-import check: --check-samples 0) ...")
    exported = export_nir_run(run, out, samples=samples, overwrite=overwrite, data_dir=data_dir)
    typer.echo(f"{len(exported.students)} students + head -> {exported.directory}")
    _echo_nir_check(exported.manifest.get("check"))


def _echo_nir_check(check: dict[str, Any] | None) -> None:
    """The re-import check's totals, as the export and ``sne nir`` print them."""
    if check is None:
        typer.echo("re-import check skipped (--check-samples 0)")
        return
    n = check["neuron_steps"]
    typer.echo(f"{check['importer']}: {check['samples']} samples, {n:,} neuron-steps; spikes differing from the "
               f"CubaLIF dynamics: {check['mismatches_vs_float']}; from SLAYER's fixed point (NIR has no "
               f"truncation): {check['mismatches_vs_slayer']} ({check['mismatches_vs_slayer'] / max(n, 1):.2g})")
    if check.get("prediction_mismatches") is not None:
        acc = f", snnTorch accuracy {100 * check['accuracy']:.2f}%" if check.get("accuracy") is not None else ""
        typer.echo(f"ensemble predictions differing from torch: {check['prediction_mismatches']} of "
                   f"{check['samples']}{acc}")


@app.command("nir")
@friendly
def nir_read(
    target: Annotated[Path, typer.Argument(help="NIR export folder (from 'sne export --format nir') or one .nir file.")],
    samples: Annotated[int, typer.Option("--check-samples", help="Export folder: re-import it in snnTorch and compare "
                                         "on the first N test samples with the run's ensemble (0: only read it).")] = 0,
    compare: Annotated[Optional[Path], typer.Option(
        "--compare", help="Ensemble checkpoint to compare with (default: ensemble.pt beside the export).")] = None,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,  # friendly switches every bar off with --no-progress
) -> None:
    """Read a NIR export or graph back (nir.read): nodes, shapes, neuron parameters, dt; with
    --check-samples, run it in snnTorch and compare every layer's spikes with the torch students.
    The check reads the data set the ensemble was trained on; --data-dir says where it is when
    it has moved."""
    from sne_loihi.export.nir_export import describe_graph, read_nir_export, read_nir_graph
    from sne_loihi.report import print_table

    if samples < 0:
        raise SneError(f"--check-samples must be >= 0, got {samples}")
    if compare is not None and not samples:
        raise SneError("--compare names the checkpoint the re-import check compares with: give --check-samples N too")
    data_dir = _check_data_dir(data_dir, {}, samples)
    columns = (("node", "node", str), ("type", "type", str), ("shape", "output shape", str),
               ("parameters", "parameters", str))
    if target.is_file():
        if samples:
            raise SneError("--check-samples applies to an export folder (it needs the head and the input encoding)")
        graph = read_nir_graph(target)
        print_table(describe_graph(graph), f"{target} (dt {graph.metadata.get('dt', 'not recorded')})", columns)
        return
    if not target.is_dir():
        raise SneError(f"{target} not found (expected a NIR export folder or a .nir file)")
    exported = read_nir_export(target)
    for i, graph in enumerate(exported.students):
        print_table(describe_graph(graph), f"student {i} (dt {graph.metadata.get('dt')})", columns)
    print_table(describe_graph(exported.head), "head (applied to the concatenated rates)", columns)
    if samples:
        from sne_loihi.export.stage import check_nir_export

        from sne_loihi.run_files import ENSEMBLE_FILE

        compare = compare or target.parent / ENSEMBLE_FILE
        _echo_nir_check(check_nir_export(exported, compare, samples, data_dir).to_dict())

