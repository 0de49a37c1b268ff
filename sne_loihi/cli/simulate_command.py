"""``sne simulate``: run an export (or any netx network) in Lava: the simulation stage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from sne_loihi.cli.app import app, friendly
from sne_loihi.cli.flags import float_list
from sne_loihi.cli.options import (
    LAVA_PANEL, BackendOpt, CapacityOpt, DataDirOpt, EnergyOpt, LavaSamplesOpt, ProgressOpt, option_given,
)
from sne_loihi.config import DEFAULT_ENERGY_PROFILE, DEFAULT_LAVA_CAPACITY, DEFAULT_LAVA_SAMPLES, Backend
from sne_loihi.errors import SneError


@app.command()
@friendly
def simulate(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="Export folder (from 'sne export'), or a single netx .net/.h5 file.")],
    active: Annotated[Optional[list[str]], typer.Option(
        "--active", help="Students to switch on: all, indices like 0,2, or k=K (K drawn at random). "
        "Repeat the option to run several sets on the same compiled graph.")] = None,
    samples: LavaSamplesOpt = DEFAULT_LAVA_SAMPLES,
    backend: BackendOpt = Backend.AUTO,
    energy: EnergyOpt = DEFAULT_ENERGY_PROFILE,
    capacity: CapacityOpt = DEFAULT_LAVA_CAPACITY,
    seed: Annotated[int, typer.Option("--seed", help="Seed of k=K draws.")] = 0,
    data_dir: DataDirOpt = None,
    compare: Annotated[Optional[Path], typer.Option(
        "--compare", help="Ensemble checkpoint to compare spikes and ops with (default: ensemble.pt beside the export, if any).")] = None,
    input_file: Annotated[Optional[Path], typer.Option("--input", help="Your images. Export: .npy, an .npz holding one "
        "array or FILE.npz:KEY, [N, C, H, W] or [N, H, W, C], uint8 or float in [0, 1]; prints and writes (--json) the "
        "predicted classes. Single network: .npy of integers [N, ..., T] (real values for an input layer driven by "
        "its bias).")] = None,
    input_bits: Annotated[int, typer.Option("--input-bits", help="Single network: graded input bits (0 = binary spikes).")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON (a new file).")] = None,
    cascade: Annotated[Optional[str], typer.Option(
        "--cascade", help="Per-sample activation thresholds, e.g. 0,0.9,1.01: the export's cascade head decides "
        "after each student (on the host between the stage runs, as on Loihi 2) whether a sample goes on.")] = None,
    engine: Annotated[str, typer.Option(
        "--lava-engine", rich_help_panel=LAVA_PANEL,
        help="CPU process models: fast (vectorised, same spikes) or reference (Lava's own).")] = "fast",
    layers: Annotated[Optional[int], typer.Option(
        "--layers", help="Single network: run only its first K layer groups (as netx's num_layers), e.g. to "
        "leave out a readout layer netx cannot build.")] = None,
    reset_interval: Annotated[str, typer.Option(
        "--reset-interval", help="Single network: reset every neuron every T steps ('T', default: each sample "
        "starts from rest), every N steps (an integer), or never ('none': one plain netx run of the whole input).")] = "T",
    retime: Annotated[bool, typer.Option(
        "--retime/--no-retime", help="Single network: attribute output spikes and ops to samples by the number of "
        "synapses on the way (default), or keep Lava's raw steps (sample n's step t = Lava step n*T+t+1).")] = True,
    output: Annotated[Optional[Path], typer.Option(
        "--output", help="Single network: write the last layer's spikes [N, F, T], counts [N, F] and ops [N, L] "
        "to this .npz (a new file).")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Run an exported ensemble (or any netx network) as Lava processes: per-student input,
    students (spike counts in the neurons), readouts. Prints accuracy, ops per student and layer, energy, speed;
    for a single network also its output spike counts."""
    from sne_loihi.run_files import ENSEMBLE_FILE
    from sne_loihi.io import atomic_write_json
    from sne_loihi.sim.stage import LAVA_COLUMNS, simulate_export, simulate_netx_file
    from sne_loihi.report import print_table

    from sne_loihi.students.spec import MAX_INPUT_BITS

    if not 0 <= input_bits <= MAX_INPUT_BITS:
        raise SneError(f"--input-bits must be in 0..{MAX_INPUT_BITS} (0 = binary spikes), got {input_bits}")
    if active is not None and any(not a.strip() for a in active):
        raise SneError("--active must not be empty: give all, indices like 0,2, or k=K")
    repeated = sorted({a.strip() for a in active or [] if [b.strip() for b in active].count(a.strip()) > 1})
    if repeated:  # the same set twice runs (and reports) the same thing twice; k=K draws the same students
        raise SneError(f"--active {repeated[0]} is given twice")
    thresholds = float_list(cascade, "--cascade") if cascade else None
    bad = [t for t in thresholds or [] if not (math.isfinite(t) and t >= 0)]
    if bad:
        raise SneError(f"--cascade thresholds must be finite numbers >= 0, got {bad[0]}")
    if json_out is not None and json_out.exists():
        raise SneError(f"{json_out} exists; choose a new --json file")
    reset = _reset_interval(reset_interval)
    if output is not None and output.exists():
        raise SneError(f"{output} exists; choose a new --output file")
    if layers is not None and layers < 1:
        raise SneError(f"--layers must be >= 1, got {layers}")
    samples_given = option_given(ctx, "samples")
    if target.is_file():
        if input_file is None:
            raise SneError(f"{target} is a single network: give its input with --input FILE.npy")
        export_only = [name for name, used in (("--active", active is not None), ("--cascade", cascade is not None),
                                               ("--data-dir", data_dir is not None), ("--compare", compare is not None),
                                               ("--seed", option_given(ctx, "seed")), ("--lava-samples", samples_given)) if used]
        if export_only:
            raise SneError(f"{export_only[0]} applies to an export folder, not to a single netx network (it runs "
                           "every sample of --input)")
        rep = simulate_netx_file(target, input_file, input_bits=input_bits, backend=backend, energy=energy,
                                 capacity=capacity, engine=engine, num_layers=layers, reset_interval=reset,
                                 retime=retime, output=output)
    elif target.is_dir():
        single = [name for name, used in (("--layers", layers is not None), ("--output", output is not None),
                                          ("--reset-interval", reset != "T"), ("--no-retime", not retime),
                                          ("--input-bits", input_bits != 0)) if used]
        if single:
            raise SneError(f"{single[0]} applies to a single netx network, not to an export folder")
        beside = compare is None and (target.parent / ENSEMBLE_FILE).is_file()
        if beside:  # the default comparison: only with the ensemble the export was made from
            compare = target.parent / ENSEMBLE_FILE
        if input_file is not None and data_dir is not None:
            raise SneError("--data-dir names the test set to simulate; with --input your images are simulated instead")
        if input_file is not None and samples_given:
            raise SneError("--lava-samples counts test-set images; with --input every image of the file is simulated")
        rep = simulate_export(target, samples=samples, active=active, backend=backend, energy=energy,
                              capacity=capacity, seed=seed, data_dir=str(data_dir) if data_dir else None,
                              torch_checkpoint=compare, cascade=thresholds, check_source=beside,
                              engine=engine, inputs=input_file, progress=progress)
        if input_file is not None:
            _echo_predictions(rep, target)
        elif samples_given and rep.samples < samples:
            typer.echo(f"note: the test set holds {rep.samples:,} images; --lava-samples {samples:,} ran all of them",
                       err=True)
    else:
        raise SneError(f"{target} not found (expected an export folder or a netx file)")
    print_table(rep.rows(), f"Lava, backend {rep.backend}: {rep.samples} samples, energy profile {energy}", LAVA_COLUMNS)
    for r in rep.layer_rows():
        typer.echo(f"  [{r['active']}] student {r['student']}: ops/sample per layer {r['ops_per_layer']}")
    if backend is Backend.AUTO:
        typer.echo(f"--backend auto chose {rep.backend}" + (" (Intel's lava-loihi extension is not installed)"
                                                           if rep.backend == Backend.CPU.value else ""))
    typer.echo(f"backend used: {rep.backend}; engine: {rep.engine}; compilations: {rep.compilations} "
               f"({rep.compile_seconds:.1f} s, not in samples/s)"
               + ("" if compare or target.is_file() else "; no torch checkpoint to compare with (--compare)"))
    if rep.output is not None:
        out = rep.output
        for note in out.get("notes", []):
            typer.echo(f"warning: {note}", err=True)
        typer.echo(f"output layer {out['shape_xyz']} (Lava order), spike counts per neuron over all samples: "
                   f"{out['counts_per_neuron']}")
        for n, counts in enumerate(out["counts"][:10]):
            typer.echo(f"  sample {n}: {counts}")
        if len(out["counts"]) > 10:
            typer.echo(f"  ... {len(out['counts']) - 10} more samples (all in --output / --json)")
        if out["file"]:
            typer.echo(f"output spikes: {out['file']}")
    if json_out is not None:
        atomic_write_json(json_out, rep.to_dict())
        typer.echo(f"results: {json_out}")
    disagreements = rep.disagreements()
    if disagreements:  # the contract is 0 and 0: a difference is a failure, not a table entry
        raise SneError(f"Lava and torch disagree ({'; '.join(disagreements)}); the results above are not exact")


def _echo_predictions(rep: object, export_dir: Path) -> None:
    """Print the predicted class of every image (the first 20) per active set."""
    from sne_loihi.run import Run

    names = Run(export_dir.parent).manifest(export_dir).class_names
    for ev in rep.evaluations:
        preds = ev.predictions or []
        shown = ", ".join(f"{i}: {names[p] if 0 <= p < len(names) else p}" for i, p in enumerate(preds[:20]))
        more = f", ... ({len(preds) - 20} more in --json)" if len(preds) > 20 else ""
        typer.echo(f"predictions [{ev.label}] {shown}{more}")


def _reset_interval(text: str) -> int | str | None:
    """``--reset-interval``: ``T`` -> ``"T"``, ``none`` -> ``None``, an integer >= 1 -> itself."""
    value = text.strip()
    if value.upper() == "T":
        return "T"
    if value.lower() == "none":
        return None
    try:
        steps = int(value)
    except ValueError:
        raise SneError(f"--reset-interval must be T, none or an integer >= 1, got {text!r}") from None
    if steps < 1:
        raise SneError(f"--reset-interval must be T, none or an integer >= 1, got {text!r}")
    return steps

