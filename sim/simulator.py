"""Public simulation API: an exported ensemble (or any netx file) in one Lava graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sne_loihi.config import DEFAULT_LAVA_CAPACITY
from sne_loihi.errors import SimulationError
from sne_loihi.netx_format.manifest import CascadeHead, Manifest, load_manifest
from sne_loihi.indices import check_student_indices
from sne_loihi.sim.backend import Backend, Engine
from sne_loihi.sim.graph import RESET_PER_SAMPLE, LavaGraph, LavaSchedule
from sne_loihi.sim.graph_plan import Layout
from sne_loihi.sim.hw_graph import HardwareGraph


@dataclass
class SimResult:
    """What a Lava run of the ensemble produced.

    Attributes:
        spikes_nft: Per student its output spikes ``[N, F_i, T]`` (zeros when inactive).
        rates_nd: Concatenated firing rates ``[N, sum F_i]`` (spike count / T).
        logits_nc: Head output ``[N, classes]`` (``None`` without a head).
        predictions: ``argmax`` of the logits ``[N]`` (``None`` without a head).
        ops_nl: Per student synaptic events ``[N, L_i]`` per sample and weighted layer
            (non-zero inputs x fan-out, counted by the Lava op-counter processes).
        active: The student indices that were switched on.
        mask_nk: The per-sample gate ``[N, K]`` of the run, if one was given.
        samples_per_second: Samples / wall time of the Lava runs (steady state: the
            compilation is excluded and reported in ``compile_seconds``).
        backend_used: The backend that ran.
        compile_seconds: Time this call spent compiling the graph and starting Lava's
            processes (0 when the graph was already running).
        first_layer: Per student ``"bias"`` (its first layer driven by a per-sample neuron
            bias: its ops in ``ops_nl`` are one step's) or ``"synaptic"``.
    """

    spikes_nft: list[np.ndarray]
    rates_nd: np.ndarray
    logits_nc: np.ndarray | None
    predictions: np.ndarray | None
    ops_nl: list[np.ndarray]
    active: tuple[int, ...]
    samples_per_second: float
    backend_used: Backend
    mask_nk: np.ndarray | None = None
    compile_seconds: float = 0.0
    first_layer: tuple[str, ...] = ()

    def ops_per_student(self) -> np.ndarray:
        """Mean synaptic events per sample of every student ``[K]``."""
        return np.array([o.sum(axis=1).mean() if len(o) else 0.0 for o in self.ops_nl])

    def total_ops_per_sample(self) -> float:
        """Mean synaptic events per sample over the whole ensemble."""
        return float(self.ops_per_student().sum())


@dataclass
class CascadeResult:
    """Per-sample activation run in Lava (the decision taken inside the graph).

    Attributes:
        threshold: The confidence threshold; ``order``: the students in cascade order.
        ran_nk: ``[N, K]`` bool, which students ran for which sample.
        spikes_nft: Per student its output spikes ``[N, F_i, T]`` (zeros where it did not run).
        rates_nd: Concatenated rates ``[N, sum F]`` (zeros for the students not run).
        logits_nc: The cascade head on ``rates_nd``; ``predictions``: their argmax.
        confidence_n: Top softmax probability of every sample at the point it stopped.
        ops_nl: Per student synaptic events ``[N, L_i]`` (0 where it did not run).
        stages: Lava runs per chunk of ``capacity`` samples.
        samples_per_second: Samples / wall time of all stages (compilation excluded).
        backend_used: The backend that ran.
        compile_seconds: Time this call spent compiling and starting the graph.
        first_layer: Per student ``"bias"`` or ``"synaptic"`` (see :class:`SimResult`).
    """

    threshold: float
    order: tuple[int, ...]
    ran_nk: np.ndarray
    spikes_nft: list[np.ndarray]
    rates_nd: np.ndarray
    logits_nc: np.ndarray
    predictions: np.ndarray
    confidence_n: np.ndarray
    ops_nl: list[np.ndarray]
    stages: list[int]
    samples_per_second: float
    backend_used: Backend
    compile_seconds: float = 0.0
    first_layer: tuple[str, ...] = ()

    @property
    def students_run(self) -> np.ndarray:
        """``[N]`` how many students each sample ran."""
        return self.ran_nk.sum(axis=1)

    def ops_n(self) -> np.ndarray:
        """``[N]`` synaptic events per sample over all students."""
        return np.sum([o.sum(axis=1) for o in self.ops_nl], axis=0)

    def ops_per_student(self) -> np.ndarray:
        """Mean synaptic events per sample of every student ``[K]`` (over all samples)."""
        return np.array([o.sum(axis=1).mean() if len(o) else 0.0 for o in self.ops_nl])


def encode_images(x_nchw: np.ndarray, time_steps: int, input_bits: int) -> np.ndarray:
    """Images in [0, 1] -> graded integer input ``[N, C, H, W, T]`` (the students' encoding).

    ``round(x * (2**bits - 1))`` (round half to even, as torch), repeated for T steps.
    """
    x = np.asarray(x_nchw, dtype=np.float64)
    if x.ndim != 4:
        raise SimulationError(f"images must be [N, C, H, W], got shape {list(x.shape)}")
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise SimulationError("images must hold pixel values in [0, 1]")
    levels = 2 ** input_bits - 1 if input_bits > 0 else 1
    x_int = np.round(x * levels).astype(np.int32)
    return np.repeat(x_int[..., None], time_steps, axis=-1)


def _rate(samples: int, seconds: float) -> float:
    """Samples per second of the Lava runs (0 when nothing ran)."""
    return samples / seconds if samples and seconds > 0 else 0.0


def _check_active(active: Sequence[int], num: int) -> tuple[int, ...]:
    return tuple(check_student_indices(active, num, "active student", SimulationError, nonempty=True))


class EnsembleSimulator:
    """An exported ensemble compiled once into a Lava graph; run batches, switch students.

    Use as a context manager (or call :meth:`close`) so Lava's OS processes are stopped.

    Args:
        manifest: A loaded :class:`Manifest` or the export folder.
        backend: AUTO (hardware if lava-loihi is installed, else CPU), CPU or LOIHI2.
        capacity: Samples per Lava run (the graph's fixed batch; longer inputs loop).
        cascade: Allow :meth:`run_cascade` on the same compiled graph (the tapped layout
            builds its in-graph decision process for it, one more Lava process).
        engine: CPU process models: ``fast`` (vectorised, same spikes) or ``reference``
            (Lava's own); see :class:`~sne_loihi.sim.backend.Engine`.
        layout: ``HARDWARE`` (default; :class:`~sne_loihi.sim.hw_graph.HardwareGraph`, the
            graph that runs on Loihi 2) or ``TAPPED`` (:class:`~sne_loihi.sim.graph.LavaGraph`:
            host gate, op counters tapping every layer, in-graph cascade decision; the
            reference the hardware-shaped graph is tested against).

    Raises:
        ExportError: Invalid export. SimulationError: Unavailable backend.
    """

    def __init__(self, manifest: Manifest | Path | str, backend: Backend | str = Backend.AUTO,
                 capacity: int = DEFAULT_LAVA_CAPACITY, cascade: bool = True, engine: Engine | str = Engine.FAST,
                 layout: Layout | str = Layout.HARDWARE) -> None:
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(Path(manifest))
        enc = self.manifest.input
        self.head_w, self.head_b = self.manifest.head_arrays()
        graph_cls = HardwareGraph if Layout(layout) is Layout.HARDWARE else LavaGraph
        self.graph = graph_cls(self.manifest.net_paths(), input_bits=enc.bits,
                               schedule=LavaSchedule(enc.time_steps, capacity), backend=backend,
                               decision_classes=self.head_w.shape[0] if cascade else 0, engine=engine)
        self.active: tuple[int, ...] = tuple(range(self.num_students))

    @property
    def num_students(self) -> int:
        """N."""
        return len(self.manifest.students)

    @property
    def backend_used(self) -> Backend:
        """The backend the graph runs on."""
        return self.graph.backend_used

    def set_active(self, active: Sequence[int]) -> None:
        """Switch the gate to ``active`` for the next runs (no rebuild, no recompilation).

        Raises:
            SimulationError: Out-of-range or repeated index.
        """
        self.active = _check_active(active, self.num_students)
        self.graph.set_active(self.active)

    def run(self, x_nchw: np.ndarray, active: Sequence[int] | None = None, mask_nk: np.ndarray | None = None) -> SimResult:
        """Simulate images ``x_nchw`` in [0, 1] and apply the head to the spike rates.

        Args:
            x_nchw: ``[N, C, H, W]`` images.
            active: Students to switch on (``None``: keep the current set, initially all).
            mask_nk: Optional per-sample gate ``[N, K]`` (0/1, e.g. a torch policy's
                decisions): student k runs for sample n only where it is 1 and active.

        Returns:
            The spikes, rates, logits, predictions and op counts of the ``N`` samples.

        Raises:
            SimulationError: Images that are empty, of the wrong shape or outside [0, 1]; an
                invalid active set or mask.
        """
        if active is not None:
            self.set_active(active)
        return self.run_encoded(self._encode(x_nchw), mask_nk)

    def _encode(self, x_nchw: np.ndarray) -> np.ndarray:
        enc = self.manifest.input
        if np.ndim(x_nchw) == 4 and len(x_nchw) == 0:
            raise SimulationError("images must be a non-empty [N, C, H, W] array, got none")
        x_nchwt = encode_images(x_nchw, enc.time_steps, enc.bits)
        if list(x_nchwt.shape[1:4]) != list(enc.shape_chw):
            raise SimulationError(f"images are {list(x_nchwt.shape[1:4])}, the ensemble expects {enc.shape_chw}")
        return x_nchwt

    def _rates(self, spikes_nft: Sequence[np.ndarray]) -> np.ndarray:
        t = self.manifest.input.time_steps
        return np.concatenate([s.sum(axis=-1) / t for s in spikes_nft], axis=1)

    def run_encoded(self, x_nchwt: np.ndarray, mask_nk: np.ndarray | None = None) -> SimResult:
        """Like :meth:`run` for already encoded integer input ``[N, C, H, W, T]``."""
        self.graph.set_active(self.active)
        raw = self.graph.run(x_nchwt, mask_nk=mask_nk)
        rates = self._rates(raw.spikes_nft)
        logits = rates @ self.head_w.T + self.head_b
        return SimResult(spikes_nft=raw.spikes_nft, rates_nd=rates, logits_nc=logits, predictions=logits.argmax(axis=1),
                         ops_nl=raw.ops_nl, active=self.active, samples_per_second=_rate(len(x_nchwt), raw.seconds),
                         backend_used=self.backend_used, mask_nk=None if mask_nk is None else np.asarray(mask_nk),
                         compile_seconds=raw.compile_seconds, first_layer=self.graph.first_layer)

    def run_cascade(self, x_nchw: np.ndarray, threshold: float, head: CascadeHead | None = None,
                    on_host: bool = False) -> CascadeResult:
        """Per-sample activation in Lava: students run in the head's order; after each one
        the cascade head is applied to the rates so far (zeros for the rest) and the samples
        whose top softmax probability reaches ``threshold`` stop; the gate then feeds the next
        student only to the samples still running. One Lava run per stage on the one compiled
        graph (no recompilation). The hardware-shaped graph decides on the host between the
        stage runs; the tapped graph in its
        :class:`~sne_loihi.sim.lava_processes.ensemble.CascadeDecision` process (or on the host with
        ``on_host``); both with the same function and the same results.

        The decision computes in float64 from the exact spike counts; torch's
        :func:`~sne_loihi.ensemble.policies.cascade_mask` in float32. Both decide the same
        unless a confidence lies within float rounding of the threshold.

        Args:
            x_nchw: ``[N, C, H, W]`` images in [0, 1].
            threshold: Confidence at which a sample stops (> 1: every sample runs every
                student of the order; 0: only the first).
            head: Cascade head and order (default: the one in the export's manifest).
            on_host: Decide on the host between stage runs with the same function
                (:mod:`~sne_loihi.sim.host_cascade`, the hardware-shaped way) instead of in
                the graph's decision process; the same results.

        Raises:
            SimulationError: No cascade head given or exported, a simulator built with
                ``cascade=False``, a threshold that is not a finite number >= 0, or bad input.
        """
        try:
            value = float(threshold) if not isinstance(threshold, (str, bytes, bool)) else float("nan")
        except (TypeError, ValueError):
            value = float("nan")
        if not (np.isfinite(value) and value >= 0):
            raise SimulationError(f"cascade threshold must be a finite number >= 0, got {threshold!r}")
        threshold = value
        head = head if head is not None else self.manifest.cascade
        if head is None:
            raise SimulationError("this export carries no cascade head (export with the run's cascade_head.pt) "
                                  "and none was given")
        head_w, head_b = head.arrays()
        if on_host:
            from sne_loihi.sim.host_cascade import run_host_cascade

            raw = run_host_cascade(self.graph, self._encode(x_nchw), head_w, head_b, head.order, threshold)
        else:
            raw = self.graph.run_cascade(self._encode(x_nchw), head_w, head_b, head.order, threshold)  # on the host
            # in the hardware-shaped graph, in the decision process in the tapped one
        rates = self._rates(raw.spikes_nft)
        logits = rates @ head_w.T + head_b
        from sne_loihi.sim.lava_processes.ensemble import top_probability

        return CascadeResult(
            threshold=float(threshold), order=tuple(head.order), ran_nk=raw.ran_nk, spikes_nft=raw.spikes_nft,
            rates_nd=rates, logits_nc=logits, predictions=logits.argmax(axis=1), confidence_n=top_probability(logits),
            ops_nl=raw.ops_nl, stages=raw.stages, samples_per_second=_rate(len(rates), raw.seconds),
            backend_used=self.backend_used, compile_seconds=raw.compile_seconds, first_layer=self.graph.first_layer,
        )

    @property
    def compilations(self) -> int:
        """How many times the graph was compiled (1 after the first run, never more)."""
        return self.graph.compilations

    def close(self) -> None:
        """Stop the Lava runtime."""
        self.graph.stop()

    def __enter__(self) -> "EnsembleSimulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def simulate_network(net_path: Path | str, x_input: np.ndarray, *, input_bits: int = 0,
                     backend: Backend | str = Backend.AUTO, capacity: int = DEFAULT_LAVA_CAPACITY,
                     engine: Engine | str = Engine.FAST, num_layers: int | None = None,
                     reset_interval: int | str | None = RESET_PER_SAMPLE, retime: bool = True) -> SimResult:
    """Simulate any netx HDF5 network as a one-member ensemble without a head.

    With the defaults (reset every sample, outputs re-timed) samples run in chunks of
    ``capacity`` as the toolkit's own exports do. Any other reset or timing runs all samples
    in one Lava run, one after the other, so the result is what one netx run of the whole
    input stream gives (a chunked run would put flush steps between chunks).

    Args:
        net_path: The netx file (it needs an ``input`` layer with a ``shape`` if its first
            layer is a convolution).
        x_input: Its input in torch layout ``[N, *in_shape, T]`` (``[N, C, H, W, T]`` for a
            conv network), integers: binary spikes (``input_bits=0``) or graded values in
            ``0 .. 2**input_bits - 1``.
        input_bits: Graded input bits (0 = binary spikes).
        engine: CPU process models (``fast`` or ``reference``).
        num_layers: Run only the first ``num_layers`` layer groups of the file.
        reset_interval: ``"T"`` (reset every sample), an integer, or ``None`` (no reset).
        retime: Attribute outputs and ops to samples by the synaptic depth; ``False``: the
            output of Lava step ``n * T + t + 1`` is sample ``n``'s step ``t``.

    Raises:
        ExportError: Unreadable or unsupported network file. SimulationError: Input that
            does not fit, or an unavailable backend.
    """
    x = np.asarray(x_input)
    if x.ndim < 3:
        raise SimulationError(f"input must be [N, ..., T], got shape {list(x.shape)}")
    if reset_interval != RESET_PER_SAMPLE or not retime:
        capacity = max(len(x), 1)
    schedule = LavaSchedule(int(x.shape[-1]), capacity, reset_interval, retime)
    with LavaGraph([Path(net_path)], input_bits=input_bits, schedule=schedule, backend=backend, engine=engine,
                   num_layers=num_layers) as graph:
        raw = graph.run(x)
    t = x.shape[-1]
    rates = raw.spikes_nft[0].reshape(len(x), -1, t).sum(axis=-1) / t
    return SimResult(spikes_nft=raw.spikes_nft, rates_nd=rates, logits_nc=None, predictions=None, ops_nl=raw.ops_nl,
                     active=(0,), samples_per_second=_rate(len(x), raw.seconds), backend_used=graph.backend_used,
                     compile_seconds=raw.compile_seconds, first_layer=graph.first_layer)
