"""The hardware-shaped graph (per-student input, no hidden-layer taps, spike counts in the
neuron, host-side cascade) equals today's tapped graph spike for spike, op for op and
decision for decision on the tiny trained digits ensemble: every active set, a per-sample
mask, and cascade thresholds that stop after one, some and all students."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from sne_loihi.errors import SimulationError

SAMPLES, CAPACITY = 5, 3  # chunks of 3 and 2


@pytest.fixture(scope="module")
def sims(tiny_run: Path):  # noqa: ANN201
    from sklearn.datasets import load_digits

    from sne_loihi.sim import Backend, EnsembleSimulator

    x_nchw = (load_digits().images[:SAMPLES, None] / 16.0).astype(np.float32)
    tapped = EnsembleSimulator(tiny_run / "export", backend=Backend.CPU, capacity=CAPACITY, layout="tapped")
    hardware = EnsembleSimulator(tiny_run / "export", backend=Backend.CPU, capacity=CAPACITY, layout="hardware")
    try:
        yield tapped, hardware, x_nchw
    finally:
        tapped.close()
        hardware.close()


def _same(a, b) -> None:  # noqa: ANN001
    for k, (sa, sb) in enumerate(zip(a.spikes_nft, b.spikes_nft)):
        np.testing.assert_array_equal(sa, sb, err_msg=f"spikes of student {k}")
    for k, (oa, ob) in enumerate(zip(a.ops_nl, b.ops_nl)):
        np.testing.assert_array_equal(oa, ob, err_msg=f"ops of student {k}")
    np.testing.assert_array_equal(a.logits_nc, b.logits_nc)


def test_hardware_graph_is_the_default_and_has_no_taps(sims) -> None:  # noqa: ANN001
    from sne_loihi.sim.hw_graph import HardwareGraph

    tapped, hardware, _ = sims
    assert isinstance(hardware.graph, HardwareGraph) and not isinstance(tapped.graph, HardwareGraph)
    plan = hardware.graph.plan
    assert plan.count("OpCounter") == plan.count("Gate") == plan.count("CascadeDecision") == 0
    assert plan.count("Readout") == hardware.num_students and plan.latency.input_steps == 0


def test_every_active_set_and_a_mask_give_the_same_spikes_and_ops(sims) -> None:  # noqa: ANN001
    tapped, hardware, x = sims
    k = tapped.num_students
    sets = [s for r in range(1, k + 1) for s in itertools.combinations(range(k), r)]
    for active in sets:
        a, b = tapped.run(x, active=active), hardware.run(x, active=active)
        _same(a, b)
        assert all(b.ops_nl[i].sum() == 0 for i in range(k) if i not in active)
        assert all(b.ops_nl[i][:, 1:].sum() > 0 for i in active)  # hidden layers spiked: counts were read
    mask = (np.arange(SAMPLES * k).reshape(SAMPLES, k) % 3 != 0).astype(np.int32)
    _same(tapped.run(x, active=range(k), mask_nk=mask), hardware.run(x, active=range(k), mask_nk=mask))
    assert tapped.compilations == hardware.compilations == 1


def _middle_threshold(tapped, x) -> float:  # noqa: ANN001
    """A threshold halfway between two first-stage confidences (some samples stop, some go on)."""
    first = tapped.run_cascade(x, 0.0)
    conf = np.unique(first.confidence_n)
    return float((conf[len(conf) // 2 - 1] + conf[len(conf) // 2]) / 2) if len(conf) > 1 else 0.5


def test_cascade_decisions_equal_the_in_graph_decision(sims) -> None:  # noqa: ANN001
    tapped, hardware, x = sims
    middle = _middle_threshold(tapped, x)
    counts = set()
    for threshold in (0.0, middle, 1.01):
        a, b = tapped.run_cascade(x, threshold), hardware.run_cascade(x, threshold)
        np.testing.assert_array_equal(a.ran_nk, b.ran_nk)
        assert a.stages == b.stages
        np.testing.assert_array_equal(a.predictions, b.predictions)
        _same(a, b)
        counts |= set(b.students_run.tolist())
    assert {1, tapped.num_students} <= counts  # stops after the first student and runs them all
    assert tapped.compilations == hardware.compilations == 1


def test_hardware_graph_refuses_what_it_does_not_run(tiny_run: Path) -> None:
    from sne_loihi.export import load_manifest
    from sne_loihi.sim.hw_graph import HardwareGraph
    from sne_loihi.sim.schedule import LavaSchedule

    manifest = load_manifest(tiny_run / "export")
    with pytest.raises(SimulationError, match="reads no hidden layer"):
        HardwareGraph(manifest.net_paths(), input_bits=manifest.input.bits, schedule=LavaSchedule(2), backend="cpu",
                      probe_layers=True)
    with pytest.raises(SimulationError, match="resets every sample"):
        HardwareGraph(manifest.net_paths(), input_bits=manifest.input.bits,
                      schedule=LavaSchedule(2, reset_interval=None), backend="cpu")
