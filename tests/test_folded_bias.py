"""A folded batch norm's neuron bias through netx export, Lava (fixed_pt), the Loihi 2 report and NIR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.config import NeuronConfig, StudentConfig, StudentNorm
from sne_loihi.errors import ExportError, ParityError

DIGITS, T, BITS = (1, 8, 8), 4, 4


class _Encoded(torch.nn.Module):
    """``model(x_nchw, active)`` as :func:`~sne_loihi.students.fold.recalibrate` calls it."""

    def __init__(self, student: torch.nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x_nchw: torch.Tensor, active: object = None) -> torch.Tensor:
        from sne_loihi.students import encode_input

        return self.student(encode_input(x_nchw, T, BITS)).spikes_nft


def _digits(n: int, start: int = 0) -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().images[start:start + n] / 16.0, dtype=torch.float32).unsqueeze(1)


def _batch_student(seed: int = 0) -> torch.nn.Module:
    from sne_loihi.students import build_student, student_spec

    cfg = StudentConfig(arch="digits_tiny", time_steps=T, input_bits=BITS, norm=StudentNorm.BATCH,
                        neuron=NeuronConfig(current_decay=1.0))
    torch.manual_seed(seed)
    return build_student(student_spec(cfg, DIGITS, 10))


def _folded(seed: int = 0) -> torch.nn.Module:
    """digits_tiny trained with batch norm (no steps: the init), recalibrated on 64 digits and
    folded; then every layer's first two channels get a large positive / negative bias (a
    quarter of the layer's threshold, on the 1/64 grid) so biases change spikes on both layers."""
    from sne_loihi.students.fold import fold_student, norm_layers, quantize_bias, recalibrate

    student = _batch_student(seed)
    recalibrate(_Encoded(student), iter([(_digits(64, 100), None)]))
    folded = fold_student(student)
    with torch.no_grad():
        for index in norm_layers(folded.spec):
            block = folded.blocks[index]
            push = float(quantize_bias(torch.tensor(float(block.neuron.threshold) / 4)))
            block.synapse.bias[0] = push
            block.synapse.bias[1] = -push
    return folded


def _without_bias(student: torch.nn.Module) -> torch.nn.Module:
    import copy

    other = copy.deepcopy(student)
    with torch.no_grad():
        for block in other.blocks:
            bias = getattr(getattr(block, "synapse", None), "bias", None)
            if bias is not None:
                bias.zero_()
    return other


@pytest.fixture(scope="module")
def folded() -> torch.nn.Module:
    return _folded()


def _x() -> torch.Tensor:
    from sne_loihi.students import encode_input

    return encode_input(_digits(6), T, BITS)


def test_folded_bias_is_exported_and_lava_spikes_equal_torch(folded: torch.nn.Module, tmp_path: Path) -> None:
    import h5py

    from sne_loihi.export import check_parity, torch_layer_spikes, write_student_hdf5
    from sne_loihi.netx_format import read_netx_layers
    from sne_loihi.students.fold import norm_layers

    biased = [folded.blocks[i].synapse.bias.detach().double().numpy() for i in norm_layers(folded.spec)]
    assert all((b > 0).any() and (b < 0).any() for b in biased)
    path = write_student_hdf5(folded, tmp_path / "s.net")
    with h5py.File(path, "r") as fh:  # layer/1 conv, layer/2 flatten, layer/3 dense, layer/4 output dense
        stored = [np.asarray(fh[f"layer/{k}/bias"][()]) for k in ("1", "3")]
        assert "bias" not in fh["layer/4"]
    for s, b in zip(stored, biased):
        np.testing.assert_array_equal(s, b * 64)  # netx's bias_mant at exponent 6: 64 * real bias
    layers = read_netx_layers(path)
    assert layers[0].bias_xyz.shape == (4, 4, 4) and layers[2].bias_xyz is None
    x = _x()
    ref = torch_layer_spikes(folded, x)
    assert all(a.sum() > 0 for a in ref)  # every layer spikes: a non-trivial comparison
    with torch.no_grad():  # the fast engine (the student's forward) runs the same bias
        np.testing.assert_array_equal(folded(x).spikes_nft.numpy(), ref[-1])
    record = check_parity([folded], [path], x, BITS, capacity=6)
    assert record.mismatches == 0 and record.samples == 6


def test_parity_catches_a_missing_bias(folded: torch.nn.Module, tmp_path: Path) -> None:
    from sne_loihi.export import check_parity, torch_layer_spikes, write_student_hdf5

    plain = _without_bias(folded)
    x = _x()
    assert not np.array_equal(torch_layer_spikes(plain, x)[0], torch_layer_spikes(folded, x)[0])  # first layer too
    path = write_student_hdf5(plain, tmp_path / "plain.net")
    with pytest.raises(ParityError, match=r"student 0 layer 0: .* first at step \d"):
        check_parity([folded], [path], x, BITS, capacity=6)


def test_unfolded_batch_norm_student_is_refused(tmp_path: Path) -> None:
    from sne_loihi.export import write_student_hdf5

    with pytest.raises(ExportError, match=r"batch norm that was not folded; finish \(resume\) its training"):
        write_student_hdf5(_batch_student(), tmp_path / "s.net")
    assert not (tmp_path / "s.net").exists()


@pytest.mark.parametrize(("value", "message"), [(64.0, r"outside Loihi's 13-bit bias_mant"),
                                                (1 / 128, r"not on the 1/64 grid")])
def test_a_bias_loihi_cannot_store_is_refused(folded: torch.nn.Module, tmp_path: Path, value: float,
                                              message: str) -> None:
    import copy

    from sne_loihi.export import write_student_hdf5

    bad = copy.deepcopy(folded)
    with torch.no_grad():
        bad.blocks[0].synapse.bias[2] = value
    with pytest.raises(ExportError, match=message):
        write_student_hdf5(bad, tmp_path / "s.net")
    edge = copy.deepcopy(folded)
    with torch.no_grad():  # the range's ends are stored
        edge.blocks[0].synapse.bias[2] = -64.0
        edge.blocks[0].synapse.bias[3] = 4095 / 64
    write_student_hdf5(edge, tmp_path / "edge.net")


def test_reader_refuses_a_bias_netx_would_truncate(folded: torch.nn.Module, tmp_path: Path) -> None:
    import h5py

    from sne_loihi.export import write_student_hdf5
    from sne_loihi.netx_format import read_netx_layers

    path = write_student_hdf5(folded, tmp_path / "s.net")
    with h5py.File(path, "r+") as fh:
        data = np.asarray(fh["layer/1/bias"][()], dtype=np.float64)
        del fh["layer/1/bias"]
        fh["layer/1/bias"] = data + 0.5
    with pytest.raises(ExportError, match=r"layer/1: neuron bias must hold integers"):
        read_netx_layers(path)
    with h5py.File(path, "r+") as fh:
        del fh["layer/1/bias"]
        fh["layer/1/bias"] = data[:3]
    with pytest.raises(ExportError, match=r"layer/1: neuron bias of shape \[3\] fits neither"):
        read_netx_layers(path)


def test_readiness_report_checks_the_bias_and_models_it(folded: torch.nn.Module, tmp_path: Path) -> None:
    from sne_loihi.export import write_student_hdf5
    from sne_loihi.sim.readiness import build_report

    path = write_student_hdf5(folded, tmp_path / "s.net")
    report = build_report([path], BITS, T, students=[folded], x_nchwt=_x())  # its LIF recursion must match
    rows = [r for r in report.rows if r.check == "neuron bias mantissa"]
    assert [r.status.value for r in rows] == ["pass"] * 3
    first = folded.blocks[0].synapse.bias.detach() * 64
    assert rows[0].value == f"{int(first.min())}..{int(first.max())}" and rows[2].value == "0..0"


def test_nir_export_maps_the_bias_exactly(folded: torch.nn.Module) -> None:
    pytest.importorskip("nir")
    pytest.importorskip("snntorch")
    import nir

    from sne_loihi.export.nir_check import check_nir
    from sne_loihi.export.nir_export import student_nir_graph

    graph = student_nir_graph(folded)
    np.testing.assert_array_equal(graph.nodes["synapse_0"].bias, folded.blocks[0].synapse.bias.double().numpy())
    assert isinstance(graph.nodes["synapse_2"], nir.Affine) and isinstance(graph.nodes["synapse_3"], nir.Linear)
    check = check_nir([folded], [graph], _x())
    assert check.mismatches_vs_float == 0 and sum(c.spikes for c in check.layers) > 0
    plain = student_nir_graph(_without_bias(folded))
    with pytest.raises(ParityError, match="differs from the CubaLIF reference"):  # the check sees a dropped bias
        check_nir([folded], [plain], _x())
    with pytest.raises(ExportError, match="batch norm that was not folded"):
        student_nir_graph(_batch_student())


def test_gating_refuses_a_biased_network_that_fires_switched_off(folded: torch.nn.Module, tmp_path: Path) -> None:
    """The gate feeds a switched-off network zeros; a positive bias above threshold still fires it."""
    import copy

    from sne_loihi.errors import SimulationError
    from sne_loihi.export import write_student_hdf5
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.graph import LavaGraph, LavaSchedule

    hot = copy.deepcopy(folded)
    with torch.no_grad():
        hot.blocks[2].synapse.bias.fill_(2 * float(hot.blocks[2].neuron.threshold))
    path = write_student_hdf5(hot, tmp_path / "hot.net")
    x = _x()[:2].numpy().round().astype(np.int32)
    with LavaGraph([path], BITS, LavaSchedule(T, capacity=2), backend=Backend.CPU) as graph:
        with pytest.raises(SimulationError, match=r"hot.net: the network fires while the gate switches it off \(sample 1\)"):
            graph.run(x, mask_nk=np.array([[1], [0]]))


@pytest.mark.parametrize("graph_name", ["tapped", "hardware"])
def test_an_active_set_switches_a_biased_network_off_and_on(folded: torch.nn.Module, tmp_path: Path,
                                                            graph_name: str) -> None:
    """A network outside the active set gets bias 0 (it fires nothing, as torch runs nothing);
    switched on again it gets its biases back, on the same compiled graph."""
    import copy

    from sne_loihi.export import torch_layer_spikes, write_student_hdf5
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.graph import LavaGraph, LavaSchedule
    from sne_loihi.sim.hw_graph import HardwareGraph

    hot = copy.deepcopy(folded)
    with torch.no_grad():  # fires with no input at all
        hot.blocks[2].synapse.bias.fill_(2 * float(hot.blocks[2].neuron.threshold))
    paths = [write_student_hdf5(s, tmp_path / f"{n}.net") for s, n in ((folded, "cool"), (hot, "hot"))]
    x = _x()[:3]
    want = [torch_layer_spikes(s, x)[-1] for s in (folded, hot)]
    assert want[1].sum() > 0
    graph_cls = {"tapped": LavaGraph, "hardware": HardwareGraph}[graph_name]
    x_lava = x.numpy().round().astype(np.int32)
    with graph_cls(paths, BITS, LavaSchedule(T, capacity=3), backend=Backend.CPU) as graph:
        off = graph.run(x_lava, active=[0])  # set before the first run: the biases' initial values
        assert not off.spikes_nft[1].any() and not off.ops_nl[1].any()
        np.testing.assert_array_equal(off.spikes_nft[0], want[0])
        both = graph.run(x_lava, active=[0, 1])  # after it: Var.set
        for k in range(2):
            np.testing.assert_array_equal(both.spikes_nft[k], want[k])
        alone = graph.run(x_lava, active=[1])
        assert not alone.spikes_nft[0].any() and not alone.ops_nl[0].any()
        np.testing.assert_array_equal(alone.spikes_nft[1], want[1])


def test_hardware_cascade_runs_biased_networks_stage_by_stage(folded: torch.nn.Module, tmp_path: Path) -> None:
    """Per-sample activation of biased networks: each stage runs one student on the samples
    that go on, so a network that fires with no input adds nothing to the samples that
    stopped before it (torch's cascade runs nothing for them)."""
    import copy

    from sne_loihi.export import torch_layer_spikes, write_student_hdf5
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.graph import LavaSchedule
    from sne_loihi.sim.hw_graph import HardwareGraph
    from sne_loihi.sim.lava_processes.ensemble import top_probability

    hot = copy.deepcopy(folded)
    with torch.no_grad():  # fires with no input at all
        hot.blocks[2].synapse.bias.fill_(2 * float(hot.blocks[2].neuron.threshold))
    paths = [write_student_hdf5(s, tmp_path / f"{n}.net") for s, n in ((folded, "cool"), (hot, "hot"))]
    x = _x()
    want = [torch_layer_spikes(s, x)[-1] for s in (folded, hot)]  # [N, F, T] each
    f0, f1 = (w.shape[1] for w in want)
    head_w = np.random.default_rng(0).normal(size=(10, f0 + f1))
    head_b = np.zeros(10)
    first = (want[0] != 0).sum(axis=-1) / T  # the rates the head reads after student 0
    confidence = top_probability(first @ head_w[:, :f0].T + head_b)
    threshold = float(np.sort(confidence)[3])  # the three most confident samples stop after student 0
    go_on = confidence < threshold
    assert 0 < go_on.sum() < len(x)
    x_lava = x.numpy().round().astype(np.int32)
    with HardwareGraph(paths, BITS, LavaSchedule(T, capacity=6), backend=Backend.CPU, decision_classes=10) as graph:
        run = graph.run_cascade(x_lava, head_w, head_b, order=[0, 1], threshold=threshold)
        np.testing.assert_array_equal(run.ran_nk, np.stack([np.ones(len(x), bool), go_on], axis=1))
        np.testing.assert_array_equal(run.spikes_nft[0], want[0])
        np.testing.assert_array_equal(run.spikes_nft[1][go_on], want[1][go_on])
        assert not run.spikes_nft[1][~go_on].any() and not run.ops_nl[1][~go_on].any()
        after = graph.run(x_lava)  # every member back on, with its biases
        np.testing.assert_array_equal(after.spikes_nft[1], want[1])
        np.testing.assert_array_equal(run.ops_nl[0], after.ops_nl[0])  # the same ops as a plain run where it ran
        np.testing.assert_array_equal(run.ops_nl[1][go_on], after.ops_nl[1][go_on])
        assert run.ops_nl[1][go_on].sum() > 0


def test_tapped_in_graph_cascade_refuses_biased_networks(folded: torch.nn.Module, tmp_path: Path) -> None:
    from sne_loihi.errors import SimulationError
    from sne_loihi.export import write_student_hdf5
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.graph import LavaGraph, LavaSchedule

    path = write_student_hdf5(folded, tmp_path / "s.net")
    with LavaGraph([path], BITS, LavaSchedule(T, capacity=2), backend=Backend.CPU, decision_classes=10) as graph:
        with pytest.raises(SimulationError, match=r"in-graph cascade .* cannot switch off neuron biases"):
            graph.run_cascade(_x()[:2].numpy().round().astype(np.int32), np.zeros((10, 10)), np.zeros(10), [0], 0.5)
