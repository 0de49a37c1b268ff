"""Evaluate an exported ensemble in Lava, price its synaptic ops, and check it against torch.

What ``sne simulate`` and the pipeline's Lava stage report for every active set:
accuracy on the simulated samples, synaptic events per student and layer (counted by the
Lava op-counter processes), MACs (events on graded input: the first layer when the input
has more than one bit) and ACs (events on binary spikes), neuron updates, the energy
estimate of a named profile, and samples per second. With the torch model at hand
:func:`compare_with_torch` counts every output-spike and op-count difference (the contract
is zero of each).

This module imports no Lava itself; the simulator it drives does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sne_loihi.errors import SimulationError
from sne_loihi.indices import ALL, ActiveSet, check_student_indices, parse_active  # noqa: F401 (re-exported)



@dataclass
class TorchCheck:
    """Lava against the torch model for the same samples and active set.

    Attributes:
        accuracy: Torch accuracy on the same samples (``None`` without labels).
        spike_mismatches: Output (student, sample, neuron, step) entries that differ.
        op_mismatches: (student, sample, layer) op counts that differ (inactive students
            must count 0 in Lava).
        ops_per_sample: Torch counter's synaptic ops per sample (active students).
        prediction_agreement: Fraction of samples where Lava and torch predict the same class.
        decision_mismatches: Per-sample activation only: samples whose set of students
            run differs between Lava's in-graph decision and torch's cascade.
    """

    accuracy: float | None
    spike_mismatches: int
    op_mismatches: int
    ops_per_sample: float
    prediction_agreement: float
    decision_mismatches: int = 0


@dataclass
class LavaEvaluation:
    """One active set run in Lava (per-sample figures are means over the samples).

    Attributes:
        active: Active student indices; ``label`` how they were chosen.
        samples: Simulated samples.
        accuracy: Lava accuracy (``None`` without labels or head).
        ops_per_student_layer: Synaptic events per sample, per student and weighted layer
            (zeros for inactive students).
        macs, acs: Events on graded input / on binary spikes, per sample.
        neuron_updates: Neuron updates per sample (active students' neurons x T).
        energy_profile, energy_pj: The profile's name and its estimate per sample.
        samples_per_second: Lava wall-clock throughput (compilation excluded).
        backend: The backend that ran.
        torch: The comparison with torch, when it was made.
        mean_active: Students run per sample, averaged (per-sample activation varies it).
        predictions: Lava's class per sample, kept for a user's own inputs (no labels).
        first_layer: Per student ``bias`` (first layer driven by a per-sample neuron bias,
            its MACs counted once per sample) or ``synaptic`` (every step).
    """

    active: list[int]
    label: str
    samples: int
    accuracy: float | None
    ops_per_student_layer: list[list[float]]
    macs: float
    acs: float
    neuron_updates: float
    energy_profile: str
    energy_pj: float
    samples_per_second: float
    backend: str
    torch: TorchCheck | None = field(default=None)
    mean_active: float | None = None
    predictions: list[int] | None = None
    first_layer: list[str] = field(default_factory=list)

    @property
    def ops(self) -> float:
        """All synaptic events per sample."""
        return self.macs + self.acs


def layer_neurons(layers: Sequence[Any]) -> int:
    """Neurons of a network's weighted layers (netx ``NetxLayer`` list)."""
    return int(sum(int(np.prod(layer.out_shape_xyz)) for layer in layers))


def summarise(result: Any, layers: Sequence[Sequence[Any]], time_steps: int, input_bits: int,
              profile: Any, labels: np.ndarray | None, label: str,
              neurons: Sequence[int] | None = None) -> LavaEvaluation:
    """Turn a :class:`~sne_loihi.sim.simulator.SimResult` into a :class:`LavaEvaluation`.

    Args:
        result: The simulator's result.
        layers: Per student its netx layers (for neuron counts).
        time_steps: T.
        input_bits: Input bits (more than one bit makes the first layer's events MACs).
        profile: An :class:`~sne_loihi.cost.energy.EnergyProfile`.
        labels: ``[N]`` labels of the samples, or ``None``.
        label: How the active set was chosen.
        neurons: Per student the neurons it updates every step; default: its weighted
            layers' (a netx file's ``Input`` block adds its own, ``NetxNetwork.num_neurons``).
    """
    from sne_loihi.cost.energy import energy_pj

    per = [o.mean(axis=0).astype(float).tolist() if len(o) else [] for o in result.ops_nl]
    first = sum(p[0] for p in per if p)
    rest = sum(sum(p[1:]) for p in per)
    macs, acs = (first, rest) if input_bits > 1 else (0.0, first + rest)
    ran_nk = ran_mask(result, len(layers))
    counts = [layer_neurons(layers[k]) for k in range(len(layers))] if neurons is None else list(neurons)
    per_student = np.array([c * time_steps for c in counts], dtype=np.float64)
    neurons = float((ran_nk @ per_student).mean()) if len(ran_nk) else 0.0
    accuracy = None
    if labels is not None and result.predictions is not None:
        accuracy = float((result.predictions == np.asarray(labels)).mean())
    return LavaEvaluation(
        active=list(_students_allowed(result)), label=label, samples=int(len(result.rates_nd)), accuracy=accuracy,
        ops_per_student_layer=per, macs=macs, acs=acs, neuron_updates=float(neurons),
        energy_profile=profile.name, energy_pj=energy_pj(profile, macs=macs, acs=acs, neuron_updates=neurons),
        samples_per_second=float(result.samples_per_second), backend=result.backend_used.value,
        mean_active=float(ran_nk.sum(axis=1).mean()) if len(ran_nk) else 0.0,
        first_layer=list(getattr(result, "first_layer", ()) or ["synaptic"] * len(layers)),
    )


def _students_allowed(result: Any) -> tuple[int, ...]:
    """The students a result let run: a cascade's ``order``, else the run's active set."""
    order = getattr(result, "order", None)  # CascadeResult
    return tuple(order) if order is not None else tuple(result.active)


def ran_mask(result: Any, num_students: int) -> np.ndarray:
    """``[N, K]`` bool: which students ran for which sample in a Lava result (a cascade's
    record, a per-sample mask within the active set, or the active set for every sample)."""
    ran = getattr(result, "ran_nk", None)
    if ran is not None:
        return np.asarray(ran, dtype=bool)
    active = np.zeros(num_students, dtype=bool)
    active[list(result.active)] = True
    n = len(result.rates_nd)
    mask = getattr(result, "mask_nk", None)
    return (np.asarray(mask, dtype=bool) & active) if mask is not None else np.broadcast_to(active, (n, num_students))


def _accuracy(pred: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None else float((pred == np.asarray(labels)).mean())


def _keep_predictions(ev: LavaEvaluation, result: Any, labels: np.ndarray | None) -> LavaEvaluation:
    """A user's own inputs (no labels): the evaluation keeps Lava's class per sample."""
    if labels is None and result.predictions is not None:
        ev.predictions = [int(p) for p in np.asarray(result.predictions)]
    return ev


def compare_with_torch(model: Any, x_nchw: np.ndarray, labels: np.ndarray | None, result: Any) -> TorchCheck:
    """Run the torch ensemble on the same samples and active set (or per-sample mask) and
    count every difference.

    Args:
        model: The trained :class:`~sne_loihi.ensemble.Ensemble` the export came from.
        x_nchw: The simulated images in [0, 1].
        labels: Their labels (``None``: a user's own inputs; no accuracy).
        result: The Lava :class:`~sne_loihi.sim.simulator.SimResult`.
    """
    import torch

    model.eval()
    x = torch.tensor(np.asarray(x_nchw, dtype=np.float32))  # a copy: the images may be a read-only memmap
    with torch.no_grad():
        out = model(x, None)
        ran = ran_mask(result, model.num_students)
        keep = torch.tensor(np.asarray(ran), dtype=torch.float32)  # a copy: ran may be a read-only view
        logits = model.head(torch.cat([r * keep[:, k : k + 1] for k, r in enumerate(out.rates)], dim=1))
    spikes_bad, ops_bad, ops_total = _mismatches(model, out, ran, result, _modes(result, model))
    pred = logits.argmax(dim=1).cpu().numpy()
    agree = float((pred == result.predictions).mean()) if result.predictions is not None else float("nan")
    return TorchCheck(accuracy=_accuracy(pred, labels), spike_mismatches=spikes_bad,
                      op_mismatches=ops_bad, ops_per_sample=ops_total / max(len(x), 1), prediction_agreement=agree)


def _modes(result: Any, model: Any) -> list[Any]:
    """Per student how Lava drove its first layer (the result's ``first_layer``), as torch's
    op counter takes it."""
    from sne_loihi.config import FirstLayer

    given = tuple(getattr(result, "first_layer", ()) or ())
    return [FirstLayer(m) for m in given] if given else [FirstLayer.SYNAPTIC] * model.num_students


def _mismatches(model: Any, out: Any, ran_nk: np.ndarray, result: Any | None,
                modes: Sequence[Any]) -> tuple[int, int, float]:
    """Spike and op differences of every (student, sample) between Lava's ``result`` and
    torch's all-students run ``out`` masked by ``ran_nk`` (students that did not run must
    show zero spikes and ops in Lava), and torch's total ops under ``ran_nk``; torch counts
    each first layer as Lava drove it (``modes``: a bias-driven one once per sample).
    ``result=None`` only totals the ops."""
    from sne_loihi.cost import count_student_ops

    spikes_bad = ops_bad = 0
    ops_total = 0.0
    for k, student in enumerate(model.students):
        on = ran_nk[:, k]
        ops = count_student_ops(student, out.student_outputs[k], modes[k])
        ref_ops = ops.ops_nl.cpu().numpy().round().astype(np.int64)
        ref_ops = ref_ops * on[:, None]
        ops_total += float(ref_ops.sum())
        if result is None:
            continue
        ref_spikes = out.student_outputs[k].spikes_nft.detach().cpu().numpy().astype(np.int8) * on[:, None, None]
        lava_spikes, lava_ops = result.spikes_nft[k], result.ops_nl[k]
        if ref_spikes.shape != lava_spikes.shape or ref_ops.shape != lava_ops.shape:
            raise SimulationError(f"student {k}: Lava output {list(lava_spikes.shape)} / ops {list(lava_ops.shape)} "
                                  f"!= torch {list(ref_spikes.shape)} / {list(ref_ops.shape)}")
        spikes_bad += int(np.count_nonzero(ref_spikes != lava_spikes))
        ops_bad += int(np.count_nonzero(ref_ops != lava_ops))
    return spikes_bad, ops_bad, ops_total


def compare_cascade_with_torch(model: Any, head: Any, x_nchw: np.ndarray, labels: np.ndarray | None,
                               result: Any) -> TorchCheck:
    """Torch's per-sample activation (:func:`~sne_loihi.ensemble.policies.cascade_mask` with
    the same head, order and threshold) against a Lava :class:`~sne_loihi.sim.simulator.
    CascadeResult`: samples decided differently, and every spike and op-count difference
    given Lava's decisions (students a sample did not run must count 0 in Lava).

    Args:
        model: The torch :class:`~sne_loihi.ensemble.Ensemble` the export came from.
        head: The :class:`~sne_loihi.export.CascadeHead` Lava ran with.
        x_nchw: The simulated images in [0, 1]; ``labels``: their labels (``None``: no accuracy).
        result: The Lava cascade result.
    """
    import torch

    from sne_loihi.ensemble.policies import StudentTable, cascade_mask, head_logits

    w, b = head.arrays()
    linear = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(w))
        linear.bias.copy_(torch.as_tensor(b))
    model.eval()
    x = torch.tensor(np.asarray(x_nchw, dtype=np.float32))  # a copy: the images may be a read-only memmap
    with torch.no_grad():
        out = model(x, None)
    empty = torch.zeros(len(x), model.num_students, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels)) if labels is not None else torch.zeros(len(x), dtype=torch.int64)
    table = StudentTable([r.float().cpu() for r in out.rates], empty, empty, y)
    mask = cascade_mask(linear, table, result.threshold, result.order).numpy()
    pred = head_logits(linear, table, torch.as_tensor(mask)).argmax(-1).numpy()
    modes = _modes(result, model)
    spikes_bad, ops_bad, _ = _mismatches(model, out, np.asarray(result.ran_nk, dtype=bool), result, modes)
    _, _, torch_ops = _mismatches(model, out, mask, None, modes)
    return TorchCheck(accuracy=_accuracy(pred, labels), spike_mismatches=spikes_bad,
                      op_mismatches=ops_bad, ops_per_sample=torch_ops / max(len(x), 1),
                      prediction_agreement=float((pred == result.predictions).mean()),
                      decision_mismatches=int(np.count_nonzero((mask != result.ran_nk).any(axis=1))))


def evaluate_active_sets(sim: Any, x_nchw: np.ndarray, labels: np.ndarray | None, active_sets: Sequence[ActiveSet],
                         profile: Any, model: Any = None, progress: bool = False) -> list[LavaEvaluation]:
    """Run every active set on the simulator's one compiled graph (the gate switches between
    runs, nothing is rebuilt) and summarise each; compare with ``model`` when given.

    Args:
        sim: An :class:`~sne_loihi.sim.simulator.EnsembleSimulator`.
        x_nchw: Images in [0, 1].
        labels: Their labels (or ``None``).
        active_sets: The sets to run, in order.
        profile: Energy profile.
        model: The torch ensemble for :func:`compare_with_torch` (optional).
        progress: Show a progress bar over the active sets.
    """
    from tqdm import tqdm

    enc = sim.manifest.input
    out = []
    for choice in tqdm(active_sets, desc="lava", unit="set", disable=not progress):
        result = sim.run(x_nchw, active=choice.indices)
        ev = summarise(result, sim.graph.layers, enc.time_steps, enc.bits, profile, labels, choice.label)
        if model is not None:
            ev.torch = compare_with_torch(model, x_nchw, labels, result)
        out.append(_keep_predictions(ev, result, labels))
    return out


def evaluate_cascade(sim: Any, x_nchw: np.ndarray, labels: np.ndarray | None, thresholds: Sequence[float],
                     profile: Any, model: Any = None, head: Any = None, progress: bool = False) -> list[LavaEvaluation]:
    """Per-sample activation in Lava for every threshold, on the simulator's one compiled
    graph, summarised like :func:`evaluate_active_sets` (``mean_active`` varies per sample);
    compared with torch's cascade when ``model`` is given.

    Args:
        sim: An :class:`~sne_loihi.sim.simulator.EnsembleSimulator`.
        x_nchw: Images in [0, 1]; ``labels``: their labels (or ``None``).
        thresholds: Confidence thresholds (> 1: every student; 0: the first only).
        profile: Energy profile.
        model: The torch ensemble for :func:`compare_cascade_with_torch` (optional).
        head: A :class:`~sne_loihi.export.CascadeHead` (default: the export's).
        progress: Show a progress bar over the thresholds.

    Raises:
        SimulationError: No cascade head given or exported.
    """
    from tqdm import tqdm

    head = head if head is not None else sim.manifest.cascade
    if head is None:
        raise SimulationError("this export carries no cascade head (export with the run's cascade_head.pt)")
    enc = sim.manifest.input
    out = []
    for threshold in tqdm(thresholds, desc="lava cascade", unit="threshold", disable=not progress):
        result = sim.run_cascade(x_nchw, threshold, head)
        ev = summarise(result, sim.graph.layers, enc.time_steps, enc.bits, profile, labels,
                       f"per-sample thr={threshold:g}")
        if model is not None:
            ev.torch = compare_cascade_with_torch(model, head, x_nchw, labels, result)
        out.append(_keep_predictions(ev, result, labels))
    return out
