"""Public simulation API: an exported ensemble (or any netx file) in one Lava graph."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.export.manifest import Manifest, load_manifest
from sne_loihi.sim.backend import Backend
from sne_loihi.sim.graph import LavaGraph


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
        samples_per_second: Samples / wall time of the Lava runs (compilation excluded).
        backend_used: The backend that ran.
    """

    spikes_nft: list[np.ndarray]
    rates_nd: np.ndarray
    logits_nc: np.ndarray | None
    predictions: np.ndarray | None
    ops_nl: list[np.ndarray]
    active: tuple[int, ...]
    samples_per_second: float
    backend_used: Backend

    def ops_per_student(self) -> np.ndarray:
        """Mean synaptic events per sample of every student ``[K]``."""
        return np.array([o.sum(axis=1).mean() if len(o) else 0.0 for o in self.ops_nl])

    def total_ops_per_sample(self) -> float:
        """Mean synaptic events per sample over the whole ensemble."""
        return float(self.ops_per_student().sum())


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


def _check_active(active: Sequence[int], num: int) -> tuple[int, ...]:
    idx = tuple(int(i) for i in active)
    bad = [i for i in idx if not 0 <= i < num]
    if bad:
        raise SimulationError(f"active student index {bad[0]} out of range 0..{num - 1}")
    if len(set(idx)) != len(idx):
        raise SimulationError(f"active student indices repeat: {list(idx)}")
    return idx


class EnsembleSimulator:
    """An exported ensemble compiled once into a Lava graph; run batches, switch students.

    Use as a context manager (or call :meth:`close`) so Lava's OS processes are stopped.

    Args:
        manifest: A loaded :class:`Manifest` or the export folder.
        backend: AUTO (hardware if lava-loihi is installed, else CPU), CPU or LOIHI2.
        capacity: Samples per Lava run (the graph's fixed batch; longer inputs loop).

    Raises:
        ExportError: Invalid export. SimulationError: Unavailable backend.
    """

    def __init__(self, manifest: Manifest | Path | str, backend: Backend | str = Backend.AUTO, capacity: int = 16) -> None:
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(Path(manifest))
        enc = self.manifest.input
        self.graph = LavaGraph(self.manifest.net_paths(), input_bits=enc.bits, time_steps=enc.time_steps,
                               capacity=capacity, backend=backend)
        self.head_w, self.head_b = self.manifest.head_arrays()
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

    def run(self, x_nchw: np.ndarray, active: Sequence[int] | None = None) -> SimResult:
        """Simulate images ``x_nchw`` in [0, 1] and apply the head to the spike rates.

        Args:
            x_nchw: ``[N, C, H, W]`` images.
            active: Students to switch on (``None``: keep the current set, initially all).
        """
        if active is not None:
            self.set_active(active)
        enc = self.manifest.input
        x_nchwt = encode_images(x_nchw, enc.time_steps, enc.bits)
        if list(x_nchwt.shape[1:4]) != list(enc.shape_chw):
            raise SimulationError(f"images are {list(x_nchwt.shape[1:4])}, the ensemble expects {enc.shape_chw}")
        return self.run_encoded(x_nchwt)

    def run_encoded(self, x_nchwt: np.ndarray) -> SimResult:
        """Like :meth:`run` for already encoded integer input ``[N, C, H, W, T]``."""
        self.graph.set_active(self.active)
        t0 = time.perf_counter()
        raw = self.graph.run(x_nchwt)
        wall = raw.seconds if raw.seconds > 0 else time.perf_counter() - t0
        t = self.manifest.input.time_steps
        rates = np.concatenate([s.sum(axis=-1) / t for s in raw.spikes_nft], axis=1)
        logits = rates @ self.head_w.T + self.head_b
        return SimResult(spikes_nft=raw.spikes_nft, rates_nd=rates, logits_nc=logits, predictions=logits.argmax(axis=1),
                         ops_nl=raw.ops_nl, active=self.active, samples_per_second=len(x_nchwt) / wall,
                         backend_used=self.backend_used)

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
                     backend: Backend | str = Backend.AUTO, capacity: int = 16) -> SimResult:
    """Simulate any netx HDF5 network as a one-member ensemble without a head.

    Args:
        net_path: The netx file (it needs an ``input`` layer with a ``shape`` if its first
            layer is a convolution).
        x_input: Its input in torch layout ``[N, *in_shape, T]`` (``[N, C, H, W, T]`` for a
            conv network), integers: binary spikes (``input_bits=0``) or graded values in
            ``0 .. 2**input_bits - 1``.
        input_bits: Graded input bits (0 = binary spikes).

    Raises:
        ExportError: Unreadable or unsupported network file. SimulationError: Input that
            does not fit, or an unavailable backend.
    """
    x = np.asarray(x_input)
    if x.ndim < 3:
        raise SimulationError(f"input must be [N, ..., T], got shape {list(x.shape)}")
    with LavaGraph([Path(net_path)], input_bits=input_bits, time_steps=int(x.shape[-1]), capacity=capacity,
                   backend=backend) as graph:
        t0 = time.perf_counter()
        raw = graph.run(x)
        wall = raw.seconds if raw.seconds > 0 else time.perf_counter() - t0
    t = x.shape[-1]
    rates = raw.spikes_nft[0].reshape(len(x), -1, t).sum(axis=-1) / t
    return SimResult(spikes_nft=raw.spikes_nft, rates_nd=rates, logits_nc=None, predictions=None, ops_nl=raw.ops_nl,
                     active=(0,), samples_per_second=len(x) / wall, backend_used=graph.backend_used)
