"""The simulation stage behind ``sne simulate`` and the pipeline's Lava step: simulate an
export (or one netx network) and report it (:class:`SimulationReport`, ``RUN/lava.json`` and
its report section).

Lava is imported only inside these functions, so importing this module stays light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.config import DEFAULT_ENERGY_PROFILE, DEFAULT_LAVA_CAPACITY, DEFAULT_LAVA_SAMPLES, Backend, RunConfig
from sne_loihi.errors import ConfigError, ExportError, SimulationError
from sne_loihi.cost.energy import resolve_profile
from sne_loihi.io import same_content
from sne_loihi.run import ENSEMBLE_FILE, LAVA_FILE, Run, first_test_samples
from sne_loihi.report import percent, two_decimals, whole

LAVA_SECTION = "Lava simulation (netx export, fixed point)"

#: Columns of the Lava table (terminal and report.md).
LAVA_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("label", "active", str),
    ("mean_active", "students/sample", lambda v: f"{v:.2f}"),
    ("accuracy", "Lava acc. (%)", percent),
    ("torch_accuracy", "torch acc. (%)", percent),
    ("ops", "synaptic ops/sample", whole),
    ("torch_ops", "torch ops/sample", whole),
    ("neuron_updates", "neuron updates", whole),
    ("energy_nj", "energy (nJ)", two_decimals),
    ("mismatches", "spike / op mismatches", str),
    ("samples_per_second", "samples/s", lambda v: f"{v:,.1f}" if v >= 1 else f"{v:.2g}"),
)


@dataclass
class SimulationReport:
    """What a Lava simulation of an export produced (JSON-ready via :meth:`to_dict`).

    Attributes:
        export_dir: The simulated export.
        backend: The backend that ran.
        samples: Simulated samples (the first test samples).
        compilations: How often the graph was compiled (1: every active set reused it).
        energy_profile: Name and source of the profile.
        evaluations: One per active set.
        parity: The export's own parity record (Lava vs torch per layer at export).
        engine: CPU process models that ran (``fast`` or ``reference``).
        compile_seconds: Graph compilation and start of Lava's processes (not in samples/s).
        output: Single netx networks only: the last layer's output (see
            :func:`simulate_netx_file`); ``None`` for an export.
    """

    export_dir: str
    backend: str
    samples: int
    compilations: int
    energy_profile: dict[str, Any]
    evaluations: list[Any] = field(default_factory=list)
    parity: dict[str, Any] | None = None
    engine: str = "fast"
    compile_seconds: float = 0.0
    output: dict[str, Any] | None = None

    def rows(self) -> list[dict[str, Any]]:
        """Table rows, one per active set (see :data:`LAVA_COLUMNS`)."""
        out = []
        for ev in self.evaluations:
            check = ev.torch
            out.append({
                "label": ev.label, "mean_active": ev.mean_active, "accuracy": ev.accuracy, "ops": ev.ops, "neuron_updates": ev.neuron_updates,
                "energy_nj": ev.energy_pj / 1000.0, "samples_per_second": ev.samples_per_second,
                "torch_accuracy": check.accuracy if check else None,
                "torch_ops": check.ops_per_sample if check else None,
                "mismatches": (f"{check.spike_mismatches} / {check.op_mismatches}"
                               + (f" / {check.decision_mismatches} decisions" if ev.label.startswith("per-sample")
                                  else "")) if check else None,
            })
        return out

    def disagreements(self) -> list[str]:
        """Active sets where Lava and torch differ (spikes, ops or cascade decisions); empty
        when they agree or when there was nothing to compare with."""
        bad = []
        for ev in self.evaluations:
            check = ev.torch
            if check and (check.spike_mismatches or check.op_mismatches or check.decision_mismatches):
                bad.append(f"{ev.label}: {check.spike_mismatches} spike, {check.op_mismatches} op, "
                           f"{check.decision_mismatches} decision mismatches")
        return bad

    def layer_rows(self) -> list[dict[str, Any]]:
        """Synaptic ops per sample of every student and layer, per active set."""
        return [{"active": ev.label, "student": k, "ops_per_layer": [round(v, 2) for v in per],
                 "first_layer": ev.first_layer[k] if k < len(ev.first_layer) else "synaptic"}
                for ev in self.evaluations for k, per in enumerate(ev.ops_per_student_layer)]

    #: Size and modification time of the ensemble checkpoint the run compared with, so a
    #: report can tell when the Lava figures predate a retrained ensemble.
    checkpoint_key: str | None = None
    #: Its SHA-256: a copy (a git clone, ``cp -r``) changes the modification time, not the
    #: content, so a differing key is stale only if the content differs too.
    checkpoint_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = self.rows()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimulationReport":
        """Inverse of :meth:`to_dict` (raises KeyError/TypeError on a malformed dict)."""
        from sne_loihi.sim.evaluate import LavaEvaluation, TorchCheck

        evs = []
        for e in d["evaluations"]:
            e = dict(e)
            e["torch"] = TorchCheck(**e["torch"]) if e.get("torch") else None
            evs.append(LavaEvaluation(**e))
        keep = {k: d[k] for k in ("export_dir", "backend", "samples", "compilations", "energy_profile", "parity",
                                  "checkpoint_key", "checkpoint_sha256", "engine", "compile_seconds", "output") if k in d}
        return cls(evaluations=evs, **keep)

    def markdown(self) -> str:
        """The Lava section of a report."""
        from sne_loihi.report import markdown_table

        per_layer = "\n".join(
            f"| {r['active']} | {r['student']} | {r['first_layer']} | " + ", ".join(f"{v:,.1f}" for v in r["ops_per_layer"])
            + " |" for r in self.layer_rows()
        )
        parity = (f"Export parity check: {self.parity['samples']} samples, {self.parity['compared']}, "
                  f"{self.parity['mismatches']} mismatches." if self.parity else "Export parity check: not run.")
        return (
            f"{self.samples} test samples simulated in Lava on backend `{self.backend}` "
            f"(one compiled graph, {self.compilations} compilation(s); the host-side gate mask "
            f"switched the active set between runs). Energy profile `{self.energy_profile['name']}`: "
            f"{self.energy_profile['source']}.\n\n" + markdown_table(self.rows(), LAVA_COLUMNS)
            + "\n\nMismatches: output spikes (student, sample, neuron, step) and per-sample, per-layer "
            "op counts where Lava and the torch model differ on the same samples and active set "
            "(an inactive student must count 0)."
            + (" Per-sample rows: the export's cascade head decides after each student (on the host "
               "between the stage runs, as on Loihi 2) whether a sample goes on; decisions counts samples whose set of students "
               "differs from torch's cascade." if any(e.label.startswith("per-sample") for e in self.evaluations) else "")
            + "\n\n" + parity
            + "\n\n| active | student | first layer | synaptic ops per sample, per layer |\n|---|---|---|---|\n"
            + per_layer + ("\n\nFirst layer `bias`: driven by a per-sample neuron bias (the host computes W * x + b "
                           "once per sample), its ops counted once per sample, not T times."
                           if any(r["first_layer"] == "bias" for r in self.layer_rows()) else "")
        )


def _check_source(manifest: Any, checkpoint: Path) -> None:
    """Refuse to compare an export with a torch checkpoint it was not made from (the manifest's
    ``ensemble_sha256``; exports made before it have none and are compared as before).

    Raises:
        SimulationError: The checkpoint's SHA-256 differs from the one the export records.
    """
    from sne_loihi.io import sha256_file

    want = getattr(manifest, "ensemble_sha256", None)
    if want is None or not Path(checkpoint).is_file():
        return
    got = sha256_file(Path(checkpoint))
    if got != want:
        raise SimulationError(f"{checkpoint} is not the ensemble this export was made from (sha256 {got[:12]}..., "
                              f"the export records {want[:12]}...): export it again, or name a checkpoint with --compare")


def simulate_export(export_dir: Path, *, samples: int = DEFAULT_LAVA_SAMPLES, active: list[str] | None = None,
                    backend: Backend | str = Backend.AUTO, energy: str = DEFAULT_ENERGY_PROFILE, capacity: int = DEFAULT_LAVA_CAPACITY,
                    seed: int = 0, data_dir: str | None = None, torch_checkpoint: Path | None = None,
                    cascade: list[float] | None = None, progress: bool = True, engine: str = "fast",
                    inputs: Path | None = None, check_source: bool = False) -> SimulationReport:
    """Simulate an export on the first test samples of its data set (or on the user's
    ``inputs``), for every active set on one compiled graph; compare with the torch ensemble
    in ``torch_checkpoint`` if given (with ``check_source``, only if it is the checkpoint the
    export records it was made from: a stale ``ensemble.pt`` beside an export is refused).

    ``inputs``: an ``.npy`` (or an ``.npz`` holding one array, or ``FILE.npz:KEY``) of images
    ``[N, C, H, W]`` or ``[N, H, W, C]`` in the export's
    shape, uint8 (0..255) or float in [0, 1]; there are no labels, so no accuracy, and every
    evaluation keeps Lava's predicted class per image (``LavaEvaluation.predictions``).
    ``cascade`` thresholds add per-sample activation runs (the export's cascade head decides
    after each student which samples go on). ``engine``: ``fast`` or ``reference``
    CPU process models (same spikes).

    Raises:
        ExportError: Invalid export. SimulationError: Bad active set, unavailable backend.
        ConfigError: Bad options. DataError: The data set cannot be read.
    """
    from sne_loihi.sim import EnsembleSimulator, resolve_engine
    from sne_loihi.sim.evaluate import evaluate_active_sets, evaluate_cascade, parse_active

    resolve_engine(engine)
    if capacity < 1:
        raise ConfigError(f"capacity must be >= 1, got {capacity}")
    manifest = Run(Path(export_dir).parent).manifest(Path(export_dir))
    if not manifest.config:
        raise ExportError(f"{export_dir}: the manifest holds no run config, so its data set is unknown; "
                          "simulate its networks one by one with an input file instead")
    cfg = RunConfig.from_dict(manifest.config)
    if data_dir is not None:
        if cfg.data.name == "digits":
            raise ConfigError(f"--data-dir {data_dir}: this export's data set (digits) is embedded and reads no folder")
        cfg.data.data_dir = str(data_dir)
    n = len(manifest.students)
    choices = [parse_active(a, n, seed) for a in (active or ["all"])]
    if cascade and manifest.cascade is None:  # before any Lava run
        raise SimulationError("this export carries no cascade head (export with the run's cascade_head.pt)")
    profile = resolve_profile(energy)
    if inputs is not None:
        x, y = load_user_images(Path(inputs), tuple(manifest.input.shape_chw)), None
    else:
        x, y, _ = first_test_samples(cfg, samples)
    if list(x.shape[1:]) != list(manifest.input.shape_chw):
        raise SimulationError(f"data set images are {list(x.shape[1:])}, the export expects {manifest.input.shape_chw}")
    model = None
    if torch_checkpoint is not None:
        if check_source:
            _check_source(manifest, Path(torch_checkpoint))
        model = Run(Path(torch_checkpoint).parent).ensemble(Path(torch_checkpoint)).model
        if model.num_students != n:
            raise SimulationError(f"{torch_checkpoint} has {model.num_students} students, the export {n}")
        _check_head(manifest, model, Path(torch_checkpoint))
    with EnsembleSimulator(manifest, backend=Backend(backend), capacity=min(capacity, len(x)), engine=engine) as sim:
        evaluations = evaluate_active_sets(sim, x, y, choices, profile, model=model, progress=progress)
        if cascade:
            evaluations += evaluate_cascade(sim, x, y, cascade, profile, model=model, progress=progress)
        return SimulationReport(
            export_dir=str(export_dir), backend=sim.backend_used.value, samples=len(x),
            compilations=sim.compilations, energy_profile={"name": profile.name, "source": profile.source},
            evaluations=evaluations, parity=asdict(manifest.parity) if manifest.parity else None,
            engine=sim.graph.engine.value, compile_seconds=round(sim.graph.compile_seconds, 3),
        )


def _check_head(manifest: Any, model: Any, checkpoint: Path) -> None:
    """The manifest's head must be the torch ensemble's (float32 values as exported): the
    students' spikes are compared with torch, the head that turns them into classes is not run
    twice, so an edited head would go unnoticed.

    Raises:
        SimulationError: The heads differ.
    """
    w, b = manifest.head_arrays()
    tw = model.head.weight.detach().cpu().double().numpy()
    tb = model.head.bias.detach().cpu().double().numpy()
    if w.shape != tw.shape or not (np.array_equal(w.astype(np.float32), tw.astype(np.float32))
                                   and np.array_equal(b.astype(np.float32), tb.astype(np.float32))):
        raise SimulationError(f"the export's head (manifest.json) is not the head of {checkpoint}: the manifest was "
                              "edited or comes from another ensemble; export again")


#: Most images ``--input`` may hold for an export (a Lava run of more is for the test set).
MAX_USER_IMAGES = 100_000
#: Largest input array ``--input`` may hold for a single netx network (bytes, as stored).
MAX_INPUT_BYTES = 4 * 2 ** 30


def load_user_images(path: Path, shape_chw: tuple[int, int, int]) -> np.ndarray:
    """A user's images for an export: float32 ``[N, C, H, W]`` in [0, 1].

    ``path``: an ``.npy``, an ``.npz`` holding one array, or ``FILE.npz:KEY``
    (:func:`sne_loihi.user_arrays.load_user_array`). The header is read first and checked
    against the bytes stored before anything is allocated (an ``.npy`` is memory-mapped), and
    the shape checked before anything is copied; pickles are never loaded.

    Raises:
        SimulationError: Not an ``.npy`` / ``.npz``, an empty file, a header the file does not
            hold, a shape that is not the export's, a dtype other than uint8 or float, NaN or
            values outside [0, 1].
    """
    from sne_loihi.user_arrays import load_user_array

    c, h, w = shape_chw
    arr = load_user_array(path, f"--input {path}", MAX_USER_IMAGES * c * h * w * 8, error=SimulationError)
    if arr.ndim == 3 and c == 1 and tuple(arr.shape[1:]) == (h, w):
        arr = arr[:, None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) not in ((c, h, w), (h, w, c)) or not 1 <= len(arr) <= MAX_USER_IMAGES:
        raise SimulationError(f"--input {path} holds shape {tuple(arr.shape)}; the export takes [N, {c}, {h}, {w}] "
                              f"or [N, {h}, {w}, {c}] with 1 <= N <= {MAX_USER_IMAGES}")
    nhwc = tuple(arr.shape[1:]) != (c, h, w)
    if arr.dtype == np.uint8:
        x = np.asarray(arr, dtype=np.float32) / 255.0
    elif arr.dtype.kind == "f":
        x = np.asarray(arr, dtype=np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise SimulationError(f"--input {path}: float images must be finite and in [0, 1]")
    else:
        raise SimulationError(f"--input {path}: images must be uint8 (0..255) or float in [0, 1], got {arr.dtype}")
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if nhwc else x)


def simulate_netx_file(net_path: Path, input_path: Path, *, input_bits: int = 0,
                       backend: Backend | str = Backend.AUTO, energy: str = DEFAULT_ENERGY_PROFILE,
                       capacity: int = DEFAULT_LAVA_CAPACITY, engine: str = "fast", num_layers: int | None = None,
                       reset_interval: int | str | None = "T", retime: bool = True,
                       output: Path | None = None) -> SimulationReport:
    """Simulate a user's own netx HDF5 network (a one-member ensemble without a head) on an
    input file (``.npy``, integers ``[N, *in_shape, T]``; ``[N, C, H, W, T]`` for a conv
    network; real values where the input layer is driven by its neurons' bias) and count its
    synaptic ops. Notes on what netx builds differently from the file are in the report's
    ``output["notes"]`` (the CLI prints them as ``warning:`` lines).

    Args:
        num_layers: Run only the first ``num_layers`` layer groups (``None``: all).
        reset_interval: ``"T"`` (reset every sample, the default), an integer, or ``None``
            (no reset: one netx run of the whole input stream).
        retime: Attribute outputs and ops to samples by the synaptic depth (default);
            ``False``: sample ``n``'s step ``t`` is Lava step ``n * T + t + 1``, raw.
        output: Also write ``.npz`` with ``spikes`` ``[N, F, T]`` (the last layer's spikes in
            Lava's flat order, int8; a sigma-delta layer's graded messages, int32),
            ``counts`` ``[N, F]`` (spikes, or non-zero messages, per sample and neuron) and
            ``ops`` ``[N, L]`` (synaptic ops per sample and weighted layer).

    The report's ``output`` holds the output's shape, the counts per sample and neuron and
    their totals per neuron.

    Raises:
        ExportError: Unreadable network or layers netx cannot build. SimulationError: Input
            that does not fit. ConfigError: ``output`` exists.
    """
    from sne_loihi.netx_format import read_netx_network
    from sne_loihi.sim import simulate_network
    from sne_loihi.sim.evaluate import summarise

    net_path, input_path = Path(net_path), Path(input_path)
    if not net_path.is_file():
        raise ExportError(f"network file not found: {net_path}")
    from sne_loihi.user_arrays import load_user_array

    x = np.array(load_user_array(input_path, f"--input {input_path}", MAX_INPUT_BYTES, allow_npz=False,
                                 error=SimulationError))
    if not np.issubdtype(x.dtype, np.number) or x.ndim < 3:
        raise SimulationError(f"input {input_path} must be a numeric array [N, ..., T], got {x.dtype} {list(x.shape)}")
    if len(x) == 0:
        raise SimulationError(f"input {input_path} holds no samples (shape {list(x.shape)})")
    if output is not None and Path(output).exists():
        raise ConfigError(f"{output} exists; choose a new output file")
    profile = resolve_profile(energy)
    network = read_netx_network(net_path, num_layers)
    result = simulate_network(net_path, x, input_bits=input_bits, backend=Backend(backend), capacity=min(capacity, len(x)),
                              engine=engine, num_layers=num_layers, reset_interval=reset_interval, retime=retime)
    # behind an input neuron block the first synapse sees binary spikes (ACs), not the graded input
    ev = summarise(result, [network.layers], int(x.shape[-1]), 0 if network.input_neuron else input_bits, profile,
                   None, "all", neurons=[network.num_neurons])
    spikes = result.spikes_nft[0].reshape(len(x), -1, int(x.shape[-1]))
    counts = (spikes != 0).astype(np.int64).sum(axis=-1)  # spikes, or non-zero graded messages
    out_record = {"shape_xyz": list(network.layers[-1].out_shape_xyz), "file": str(output) if output else None,
                  "graded": bool(network.graded_output),
                  "reset_interval": reset_interval, "retime": bool(retime), "layers_run": network.num_groups,
                  "input_drive": "bias" if network.bias_input else "a_in" if network.input_neuron else "synapse",
                  "notes": list(network.notes),
                  "counts": counts.tolist(), "counts_per_neuron": counts.sum(axis=0).tolist()}
    if output is not None:
        import io

        from sne_loihi.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, spikes=spikes.astype(np.int32 if network.graded_output else np.int8), counts=counts,
                 ops=result.ops_nl[0].astype(np.int64))
        atomic_write_bytes(Path(output), buf.getvalue())
    return SimulationReport(export_dir=str(net_path), backend=result.backend_used.value, samples=len(x),
                            compilations=1, energy_profile={"name": profile.name, "source": profile.source},
                            evaluations=[ev], engine=str(engine), compile_seconds=round(result.compile_seconds, 3),
                            output=out_record)


def load_lava_section(run_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """The report section and JSON of ``RUN/lava.json``, or ``None`` if the stage never ran.

    The section says so when the ensemble checkpoint changed after the simulation.
    """
    path = Path(run_dir) / LAVA_FILE
    if not path.is_file():
        return None
    from sne_loihi.json_files import read_json_file

    try:
        rep = SimulationReport.from_dict(read_json_file(path, "Lava results", SimulationError))
    except SimulationError as exc:
        return (f"{exc}; rerun the pipeline's Lava stage", {})
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return (f"{path} is unreadable ({type(exc).__name__}); rerun the pipeline's Lava stage", {})
    body = rep.markdown()
    ckpt = Path(run_dir) / ENSEMBLE_FILE
    if ckpt.is_file() and not same_content(ckpt, rep.checkpoint_key, rep.checkpoint_sha256):
        body = ("**Stale:** these Lava figures were measured before `ensemble.pt` last changed; "
                "rerun `sne export --overwrite` and `sne simulate`.\n\n" + body)
    return body, rep.to_dict()
