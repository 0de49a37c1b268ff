"""NIR export: round trip through nir.write/nir.read, re-import in snnTorch, export folder, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sne_loihi.config import NeuronConfig
from sne_loihi.errors import ExportError, ParityError
from sne_loihi.students.spec import FLATTEN, StudentSpec, conv, dense

nir = pytest.importorskip("nir")
pytest.importorskip("snntorch")

IN_CHW, T, BITS = (1, 8, 8), 4, 4
#: Decays exact in binary: SLAYER's fixed-point truncation never rounds within T <= 7 steps,
#: so fixed point and NIR's real-valued CubaLIF give the same spikes by construction. A low
#: threshold makes every layer of the untrained student spike.
EXACT = NeuronConfig(threshold=0.25, current_decay=0.5, voltage_decay=0.5)
#: The digits decays (0.25 / 0.03), whose fixed-point truncation NIR cannot express.
DIGITS = NeuronConfig(threshold=0.25)


def tiny_student(seed: int, neuron: NeuronConfig = EXACT, out_features: int = 6):
    """conv 4 -> conv 6 (stride 2) -> flatten -> dense 12 -> dense out, SLAYER blocks."""
    from sne_loihi.students import build_student

    torch.manual_seed(seed)
    spec = StudentSpec(layers=(conv(4), conv(6, stride=2), FLATTEN, dense(12), dense(out_features)), in_shape=IN_CHW,
                       out_features=out_features, time_steps=T, input_bits=BITS, neuron=neuron)
    return build_student(spec).eval()


def encoded(n: int = 6, seed: int = 0) -> torch.Tensor:
    from sne_loihi.students import encode_input

    g = torch.Generator().manual_seed(seed)
    return encode_input(torch.rand(n, *IN_CHW, generator=g), T, BITS)


def test_graph_round_trip_arrays_parameters_and_importer_assumptions(tmp_path: Path) -> None:
    from sne_loihi.export.nir_export import NIR_DT, student_nir_graph

    student = tiny_student(0)
    graph = student_nir_graph(student)
    nir.write(tmp_path / "s.nir", graph)
    back = nir.read(tmp_path / "s.nir")
    assert set(back.nodes) == set(graph.nodes) and sorted(back.edges) == sorted(graph.edges)
    compared = 0
    for name, node in graph.nodes.items():
        other = back.nodes[name]
        assert type(other) is type(node)
        for key, value in node.to_dict().items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(np.asarray(other.to_dict()[key]), value, err_msg=f"{name}.{key}")
                compared += 1
    assert compared > 20
    assert float(back.metadata["dt"]) == NIR_DT
    lifs = [n for n in back.nodes.values() if isinstance(n, nir.CubaLIF)]
    assert len(lifs) == 4
    for lif in lifs:  # what snnTorch's importer asserts / assumes with its dt = 1e-4
        np.testing.assert_allclose(lif.r, lif.tau_mem / NIR_DT, rtol=1e-12)
        np.testing.assert_allclose(lif.w_in * NIR_DT / lif.tau_syn, 1.0, rtol=1e-12)
        assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    # the first layer is fed graded integers: its threshold is threshold * (2**bits - 1)
    assert float(np.unique(lifs[0].v_threshold)[0]) == pytest.approx((2**BITS - 1) * 0.25)
    # weights are the quantised ones (grid 1/32), never the raw float weights
    syn = back.nodes["synapse_0"].weight
    np.testing.assert_array_equal(syn * 32, np.round(syn * 32))
    assert not np.array_equal(syn, student.blocks[0].synapse.weight.detach().squeeze(-1).double().numpy())


def test_snntorch_reimport_equals_slayer_in_every_layer() -> None:
    from sne_loihi.export.exporter import torch_layer_spikes
    from sne_loihi.export.nir_check import snntorch_layer_spikes
    from sne_loihi.export.nir_export import student_nir_graph

    student = tiny_student(1)
    x = encoded(6)
    got = snntorch_layer_spikes(student_nir_graph(student), x)
    ref = torch_layer_spikes(student, x)
    assert len(got) == len(ref) == 4
    for j, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape, j
        assert b.sum() > 0, f"layer {j} never spikes: the comparison would be empty"
        np.testing.assert_array_equal(a, b, err_msg=f"layer {j}")


def test_default_decays_match_the_real_valued_reference_exactly() -> None:
    """With the digits decays (0.25 / 0.03) the re-import must equal the CubaLIF dynamics
    without truncation; differences from SLAYER's fixed point are only counted."""
    from sne_loihi.export.nir_check import check_nir, float_cuba_layer_spikes, snntorch_layer_spikes
    from sne_loihi.export.nir_export import student_nir_graph

    student = tiny_student(2, DIGITS)
    x = encoded(8, seed=1)
    graph = student_nir_graph(student)
    got, ref = snntorch_layer_spikes(graph, x), float_cuba_layer_spikes(student, x)
    for j, (a, b) in enumerate(zip(got, ref)):
        assert b.sum() > 0, j
        np.testing.assert_array_equal(a, b, err_msg=f"layer {j}")
    check = check_nir([student], [graph], x)
    assert check.mismatches_vs_float == 0 and check.neuron_steps == sum(a.size for a in got)
    assert check.mismatches_vs_slayer < 0.01 * check.neuron_steps


def test_check_catches_a_wrong_mapping() -> None:
    from sne_loihi.export.nir_check import check_nir
    from sne_loihi.export.nir_export import student_nir_graph

    student = tiny_student(3)
    graph = student_nir_graph(student)
    syn = graph.nodes["synapse_1"]
    syn.weight = -syn.weight  # a wrong sign
    with pytest.raises(ParityError, match="student 0 layer 1"):
        check_nir([student], [graph], encoded(4))


def _loaded(students: list, classes: int = 3) -> SimpleNamespace:
    from sne_loihi.ensemble.model import Ensemble

    model = Ensemble(students, classes)
    return SimpleNamespace(model=model, class_names=[f"c{i}" for i in range(classes)], in_shape=IN_CHW,
                           partition=SimpleNamespace(to_dict=lambda: {"groups": [[0]] * len(students)}))


def test_export_folder_reads_back_refuses_overwrite_and_corruption(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sne_loihi.cli import app
    from sne_loihi.export.nir_export import NIR_MANIFEST_FILE, export_nir, read_nir_export

    loaded = _loaded([tiny_student(4), tiny_student(5, out_features=4)])
    x_nchw = torch.rand(5, *IN_CHW, generator=torch.Generator().manual_seed(3))
    out = tmp_path / "nir"
    exported = export_nir(loaded, out, x_verify_nchw=x_nchw, verify_samples=5)
    check = exported.manifest["check"]
    assert check["samples"] == 5 and check["mismatches_vs_float"] == 0 and check["mismatches_vs_slayer"] == 0
    assert check["prediction_mismatches"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["head.nir", NIR_MANIFEST_FILE, "student_0.nir", "student_1.nir"]
    back = read_nir_export(out)
    head = back.head.nodes["head"]
    np.testing.assert_array_equal(head.weight, loaded.model.head.weight.detach().double().numpy())
    np.testing.assert_array_equal(head.bias, loaded.model.head.bias.detach().double().numpy())
    assert head.weight.shape == (3, 10)
    with pytest.raises(ExportError, match="overwrite"):
        export_nir(loaded, out, verify_samples=0)
    export_nir(loaded, out, verify_samples=0, overwrite=True)
    assert json.loads((out / NIR_MANIFEST_FILE).read_text())["check"] is None

    result = CliRunner().invoke(app, ["nir", str(out / "student_1.nir")])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert "CubaLIF" in result.stdout and "Conv2d" in result.stdout and "tau_syn" in result.stdout
    data = bytearray((out / "student_0.nir").read_bytes())  # damage a file
    data[200:264] = bytes(b ^ 0xFF for b in data[200:264])
    (out / "student_0.nir").write_bytes(bytes(data))
    with pytest.raises(ExportError, match="SHA-256"):
        read_nir_export(out)
    result = CliRunner().invoke(app, ["nir", str(out)])
    assert result.exit_code == 1 and "SHA-256" in result.stderr and result.stderr.count("\n") == 1
    (out / "student_0.nir").write_bytes(b"not hdf5")
    result = CliRunner().invoke(app, ["nir", str(out / "student_0.nir")])
    assert result.exit_code == 1 and "not a readable NIR graph" in result.stderr and result.stderr.count("\n") == 1


def test_a_nir_export_checked_against_a_changed_ensemble_says_so(run_copy: Path) -> None:
    """nir_manifest.json records the ensemble's SHA-256: a check against a checkpoint trained on
    since reported a mapping error (the spikes differ at step 0), now it says to export again."""
    from typer.testing import CliRunner

    from cli_checks import one_error_line
    from sne_loihi.cli import app
    from sne_loihi.io import load_checkpoint, save_checkpoint

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(run_copy), "--format", "nir", "--check-samples", "0"])
    assert result.exit_code == 0, result.stderr
    assert "no re-import check" in result.stdout
    one_error_line(runner.invoke(app, ["nir", str(run_copy / "nir"), "--compare", str(run_copy / "ensemble.pt")]),
                   "--compare names the checkpoint the re-import check compares with: give --check-samples N too")
    ckpt = load_checkpoint(run_copy / "ensemble.pt")
    ckpt["epoch"] = int(ckpt.get("epoch", 0)) + 1  # as a resumed training rewrites it
    save_checkpoint(run_copy / "ensemble.pt", ckpt)
    one_error_line(runner.invoke(app, ["nir", str(run_copy / "nir"), "--check-samples", "2"]),
                   f"{run_copy / 'nir'} was not exported from {run_copy / 'ensemble.pt'} (the checkpoint changed since")


def test_lava_options_are_refused_on_a_nir_export(run_copy: Path) -> None:
    """--capacity (samples per Lava run) and --first-layer mean nothing to a NIR export: given,
    they are one error line and nothing is written (a negative --capacity used to pass)."""
    from typer.testing import CliRunner

    from cli_checks import one_error_line
    from sne_loihi.cli import app

    runner = CliRunner()
    base = ["export", str(run_copy), "--format", "nir", "--check-samples", "0"]
    for extra, message in ((["--capacity", "-3"], "--capacity applies to netx exports"),
                           (["--capacity", "25"], "--capacity applies to netx exports"),
                           (["--first-layer", "bias"], "--first-layer applies to netx exports")):
        one_error_line(runner.invoke(app, [*base, *extra]), message)
        assert not (run_copy / "nir").exists()
