"""Per-sample activation in Lava: the in-graph cascade decision equals torch's cascade (same
decisions, predictions, spikes and per-sample ops), on one compiled graph; per-sample gate
masks; the cascade head in the export manifest."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.errors import CheckpointError, ExportError, SimulationError

T, BITS, IN_CHW, SIZES, CLASSES = 3, 4, (1, 8, 8), (5, 4, 6), 3
ORDER = [1, 2, 0]


def _student(out_features: int, seed: int):  # noqa: ANN202
    from sne_loihi.students import StudentSpec, build_student
    from sne_loihi.students.spec import FLATTEN, conv, dense

    torch.manual_seed(seed)
    spec = StudentSpec(layers=(conv(4, stride=2), FLATTEN, dense(out_features)), in_shape=IN_CHW,
                       out_features=out_features, time_steps=T, input_bits=BITS)
    return build_student(spec)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A 3-student ensemble (untrained: only equality is tested), a cascade head with large
    weights (confidences spread over (1/3, 1)), an export carrying it, 8 images."""
    from sne_loihi.ensemble.model import Ensemble
    from sne_loihi.export import CascadeHead, export_model

    model = Ensemble([_student(f, seed) for seed, f in enumerate(SIZES)], CLASSES).eval()
    torch.manual_seed(5)
    head = torch.nn.Linear(sum(SIZES), CLASSES)
    with torch.no_grad():
        head.weight.mul_(8.0)
    out = tmp_path_factory.mktemp("cascade") / "export"
    x = torch.rand(8, *IN_CHW, generator=torch.Generator().manual_seed(0))
    export_model(model, out, partition={"sizes": list(SIZES)}, in_shape_chw=IN_CHW, class_names=["a", "b", "c"],
                 config={}, verify_samples=0,
                 cascade_head=CascadeHead.from_linear(head, ORDER, source="test"))
    return model, head, out, x, torch.arange(8) % CLASSES


@pytest.fixture(scope="module")
def sim(setup):  # noqa: ANN001, ANN201
    from sne_loihi.sim import Backend, EnsembleSimulator

    simulator = EnsembleSimulator(setup[2], backend=Backend.CPU, capacity=3)  # 8 samples: chunks of 3, 3, 2
    try:
        yield simulator
    finally:
        simulator.close()


def torch_reference(model, head, x, y):  # noqa: ANN001, ANN201
    """Student table, per-student ops ``[S, L]`` and spikes of the torch ensemble (all students)."""
    from sne_loihi.cost import count_student_ops
    from sne_loihi.ensemble.policies import student_table

    table = student_table(model, x, y)
    with torch.no_grad():
        out = model(x, None)
    ops = [count_student_ops(s, o).ops_nl.round().long().numpy() for s, o in zip(model.students, out.student_outputs)]
    spikes = [o.spikes_nft.numpy().astype(np.int8) for o in out.student_outputs]
    return table, ops, spikes


def spread_threshold(head, table) -> float:  # noqa: ANN001
    """A threshold between two torch confidences (never within 1e-4 of one) at which samples
    stop after 1, 2 and 3 students if such a threshold exists, else at the most stages."""
    from sne_loihi.ensemble.policies import cascade_mask, head_logits

    rank = torch.tensor([ORDER.index(i) for i in range(len(SIZES))])
    confs = []
    for k in (1, 2):
        prefix = (rank < k).expand(len(table.labels), len(SIZES))
        confs.append(torch.softmax(head_logits(head, table, prefix), -1).max(-1).values)
    c = torch.cat(confs).unique().sort().values.tolist()
    best, best_kinds = None, 0
    for lo, hi in zip(c, c[1:]):
        if hi - lo > 2e-4:
            kinds = len(set(cascade_mask(head, table, (lo + hi) / 2, ORDER).sum(1).tolist()))
            if kinds > best_kinds:
                best, best_kinds = (lo + hi) / 2, kinds
    assert best is not None
    return best


def test_lava_cascade_equals_torch_decisions_predictions_and_per_sample_ops(setup, sim) -> None:  # noqa: ANN001
    from sne_loihi.ensemble.policies import cascade_mask, head_logits

    model, head, _, x, y = setup
    table, ops, spikes = torch_reference(model, head, x, y)
    assert all(r.sum() > 0 for r in table.rates)  # every student spikes: the comparison is not vacuous
    before = sim.run(x.numpy())
    threshold = spread_threshold(head, table)
    res = sim.run_cascade(x.numpy(), threshold)
    mask = cascade_mask(head, table, threshold, ORDER)
    assert set(mask.sum(1).tolist()) == {1, 2, 3}  # samples stop after 1, 2 and 3 students
    np.testing.assert_array_equal(res.ran_nk, mask.numpy())
    np.testing.assert_array_equal(res.students_run, mask.sum(1).numpy())
    logits = head_logits(head, table, mask)
    np.testing.assert_array_equal(res.predictions, logits.argmax(-1).numpy())
    np.testing.assert_allclose(res.logits_nc, logits.numpy(), rtol=1e-5, atol=1e-5)
    for k in range(len(SIZES)):
        on = mask[:, k].numpy()
        np.testing.assert_array_equal(res.ops_nl[k], ops[k] * on[:, None])  # exact, per sample and layer
        np.testing.assert_array_equal(res.spikes_nft[k], spikes[k] * on[:, None, None])
        assert (res.ops_nl[k][~on] == 0).all()  # a stopped sample's later students cost nothing
    assert res.stages == [int(mask[s:s + 3].sum(1).max()) for s in range(0, 8, 3)]
    # the same decisions replayed through the gate's per-sample mask Var give the same figures
    replay = sim.run(x.numpy(), mask_nk=mask.numpy().astype(np.int32))
    for k in range(len(SIZES)):
        np.testing.assert_array_equal(replay.ops_nl[k], res.ops_nl[k])
        np.testing.assert_array_equal(replay.spikes_nft[k], res.spikes_nft[k])
    # the cascade left nothing behind: a plain run afterwards equals the one before
    after = sim.run(x.numpy())
    for k in range(len(SIZES)):
        np.testing.assert_array_equal(after.ops_nl[k], before.ops_nl[k])
        np.testing.assert_array_equal(after.spikes_nft[k], before.spikes_nft[k])
    assert sim.compilations == 1


def test_cascade_extremes_and_summary(setup, sim) -> None:  # noqa: ANN001
    from sne_loihi.cost import ENERGY_PROFILES
    from sne_loihi.sim.evaluate import compare_cascade_with_torch, evaluate_cascade

    model, head, _, x, y = setup
    full = sim.run(x.numpy())
    everything = sim.run_cascade(x.numpy(), 1.01)
    assert everything.ran_nk.all() and everything.stages == [3, 3, 3]
    for k in range(len(SIZES)):
        np.testing.assert_array_equal(everything.ops_nl[k], full.ops_nl[k])
        np.testing.assert_array_equal(everything.spikes_nft[k], full.spikes_nft[k])
    np.testing.assert_allclose(everything.rates_nd, full.rates_nd)
    first = sim.run_cascade(x.numpy(), 0.0)
    assert first.stages == [1, 1, 1] and (first.ran_nk == np.eye(3, dtype=bool)[ORDER[0]]).all()
    assert first.ops_n().sum() < everything.ops_n().sum()

    profile = ENERGY_PROFILES.get("loihi")()
    evs = evaluate_cascade(sim, x.numpy(), y.numpy(), [0.0, 1.01], profile, model=model)
    assert [ev.mean_active for ev in evs] == [1.0, 3.0]
    for ev in evs:
        check = ev.torch
        assert (check.decision_mismatches, check.spike_mismatches, check.op_mismatches) == (0, 0, 0)
        assert check.prediction_agreement == 1.0
        assert ev.ops == pytest.approx(check.ops_per_sample)
    assert evs[1].ops == pytest.approx(full.total_ops_per_sample())
    # the comparison is not vacuous: a changed op count and a changed decision are found
    bad = dataclasses.replace(everything, ops_nl=[o.copy() for o in everything.ops_nl], ran_nk=everything.ran_nk.copy())
    bad.ops_nl[2][5, 1] += 1
    bad.ran_nk[4, 0] = False
    check = compare_cascade_with_torch(model, sim.manifest.cascade, x.numpy(), y.numpy(), bad)
    assert check.op_mismatches >= 2 and check.spike_mismatches > 0 and check.decision_mismatches == 1
    assert sim.compilations == 1


def test_cascade_refusals(setup, sim) -> None:  # noqa: ANN001
    from sne_loihi.export import CascadeHead

    x = setup[3].numpy()
    sim.run(x[:1])  # compiled here if this test runs first (xdist may give it a worker of its own)
    wrong = CascadeHead(weight=[[0.0] * 4] * CLASSES, bias=[0.0] * CLASSES, order=ORDER)
    with pytest.raises(SimulationError, match="cascade head must be"):
        sim.run_cascade(x, 0.5, wrong)
    good_w = sim.manifest.cascade.weight
    for order in ([0, 0], [3], []):
        with pytest.raises(SimulationError, match="cascade order"):
            sim.run_cascade(x, 0.5, CascadeHead(good_w, [0.0] * CLASSES, order))
    with pytest.raises(SimulationError, match="finite"):
        sim.run_cascade(x, float("nan"))
    with pytest.raises(SimulationError, match="per-sample mask"):
        sim.run(x, mask_nk=np.ones((len(x), 2), dtype=np.int32))
    assert sim.compilations == 1


def test_manifest_cascade_head_round_trip_and_validation(setup, tmp_path: Path) -> None:
    from sne_loihi.export import load_manifest

    model, head, out, _, _ = setup
    manifest = load_manifest(out)
    assert manifest.cascade.order == ORDER and manifest.cascade.source == "test"
    w, b = manifest.cascade.arrays()
    np.testing.assert_array_equal(w, head.weight.detach().double().numpy())
    np.testing.assert_array_equal(b, head.bias.detach().double().numpy())
    original = (out / "manifest.json").read_text()
    try:
        for change, match in (({"weight": [[0.0] * 3] * CLASSES}, "do not match the ensemble head"),
                              ({"order": [0, 3]}, "cascade order index 3 out of range 0..2"),
                              ({"order": [1, 1]}, "names student 1 more than once"),
                              ({"order": []}, "cascade order names no student"),
                              ({"bias": ["x"] * CLASSES}, "not numeric"),
                              ({"extra": 1}, "malformed")):
            d = json.loads(original)
            d["cascade"].update(change)
            (out / "manifest.json").write_text(json.dumps(d))
            with pytest.raises(ExportError, match=match):
                load_manifest(out)
        d = json.loads(original)
        d.pop("cascade")  # optional: an export without it still loads
        (out / "manifest.json").write_text(json.dumps(d))
        assert load_manifest(out).cascade is None
    finally:
        (out / "manifest.json").write_text(original)


def test_cascade_head_file_round_trip_and_errors(tmp_path: Path) -> None:
    from sne_loihi.ensemble.cascade import load_cascade_head, save_cascade_head
    from sne_loihi.io import save_checkpoint

    head = torch.nn.Linear(6, 3)
    save_cascade_head(tmp_path / "cascade_head.pt", head, [2, 0, 1], {"note": 1})
    loaded, order = load_cascade_head(tmp_path, 3)
    assert order == [2, 0, 1] and torch.equal(loaded.weight, head.weight) and torch.equal(loaded.bias, head.bias)
    save_checkpoint(tmp_path / "old.pt", {"config": {}, "head": head.state_dict()})  # before 'order' was stored
    assert load_cascade_head(tmp_path / "old.pt", 3)[1] == [0, 1, 2]
    with pytest.raises(CheckpointError, match="out of range"):
        load_cascade_head(tmp_path / "cascade_head.pt", 2)
    save_checkpoint(tmp_path / "bad.pt", {"head": {"weight": torch.zeros(3)}})
    with pytest.raises(CheckpointError, match="not a cascade head"):
        load_cascade_head(tmp_path / "bad.pt", 3)
    with pytest.raises(CheckpointError, match="not found"):
        load_cascade_head(tmp_path / "missing.pt", 3)


def test_export_without_cascade_head_refuses_run_cascade(setup, tmp_path: Path) -> None:  # noqa: ANN001
    from sne_loihi.export import export_model
    from sne_loihi.sim import Backend, EnsembleSimulator

    model, _, _, x, _ = setup
    manifest = export_model(model, tmp_path / "plain", partition={"sizes": list(SIZES)}, in_shape_chw=IN_CHW,
                            class_names=["a", "b", "c"], config={}, verify_samples=0)
    assert manifest.cascade is None
    with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=2) as plain:
        with pytest.raises(SimulationError, match="carries no cascade head"):
            plain.run_cascade(x.numpy(), 0.5)
        assert plain.compilations == 0
    with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=2, cascade=False) as no_decision:
        with pytest.raises(SimulationError, match="no cascade decision process"):
            no_decision.run_cascade(x.numpy(), 0.5, load_head_of(setup))


def load_head_of(setup) -> object:  # noqa: ANN001
    from sne_loihi.export import CascadeHead

    return CascadeHead.from_linear(setup[1], ORDER)


def test_cascade_from_a_pipeline_run_export(tiny_run: Path, tmp_path: Path) -> None:
    """A trained digits run: its cascade_head.pt goes into the export, and the Lava cascade
    run from the export alone matches torch (decisions, spikes, ops) at a middle threshold."""
    from sne_loihi.cost import ENERGY_PROFILES
    from sne_loihi.data import load_dataset
    from sne_loihi.ensemble.checkpoint import load_ensemble
    from sne_loihi.export import export_ensemble
    from sne_loihi.sim import Backend, EnsembleSimulator
    from sne_loihi.sim.evaluate import evaluate_cascade

    loaded = load_ensemble(tiny_run)
    manifest = export_ensemble(tiny_run, tmp_path / "export", verify_samples=0,
                               cascade_head=tiny_run / "cascade_head.pt")
    n = loaded.model.num_students
    assert manifest.cascade is not None and manifest.cascade.order == list(range(n))
    data = load_dataset(loaded.config.data, loaded.config.train.seed)
    x, y = data.x_test_nchw[:6].numpy(), data.y_test[:6].numpy()
    with EnsembleSimulator(manifest, backend=Backend.CPU, capacity=6) as sim:
        evs = evaluate_cascade(sim, x, y, [0.0, 0.9], ENERGY_PROFILES.get("cmos45nm")(), model=loaded.model)
        assert sim.compilations == 1
    assert evs[0].mean_active == 1.0 and 1.0 <= evs[1].mean_active <= n
    for ev in evs:
        assert (ev.torch.decision_mismatches, ev.torch.spike_mismatches, ev.torch.op_mismatches) == (0, 0, 0)
        assert ev.ops == pytest.approx(ev.torch.ops_per_sample) and ev.ops > 0


@pytest.fixture(scope="module")
def tapped_sim(setup):  # noqa: ANN001, ANN201
    from sne_loihi.sim import Backend, EnsembleSimulator

    simulator = EnsembleSimulator(setup[2], backend=Backend.CPU, capacity=3, layout="tapped")
    try:
        yield simulator
    finally:
        simulator.close()


@pytest.mark.parametrize("which", ["spread", 0.0, 1.01])
def test_host_decision_between_stages_equals_the_in_graph_decision(setup, sim, tapped_sim, which) -> None:  # noqa: ANN001
    """The hardware-shaped cascade (decided on the host between stage runs with the same
    function, in the default graph) gives the tapped graph's in-graph decision process's
    decisions, spikes, ops and stage counts."""
    model, head, _, x, y = setup
    threshold = spread_threshold(head, torch_reference(model, head, x, y)[0]) if which == "spread" else which
    in_graph = tapped_sim.run_cascade(x.numpy(), threshold)
    on_host = sim.run_cascade(x.numpy(), threshold)
    np.testing.assert_array_equal(on_host.ran_nk, in_graph.ran_nk)
    assert on_host.stages == in_graph.stages
    np.testing.assert_array_equal(on_host.predictions, in_graph.predictions)
    np.testing.assert_array_equal(on_host.logits_nc, in_graph.logits_nc)
    for k in range(len(SIZES)):
        np.testing.assert_array_equal(on_host.spikes_nft[k], in_graph.spikes_nft[k])
        np.testing.assert_array_equal(on_host.ops_nl[k], in_graph.ops_nl[k])
    if which == "spread":
        assert set(in_graph.students_run.tolist()) == {1, 2, 3}  # all three decisions occur
    assert sim.compilations == tapped_sim.compilations == 1
