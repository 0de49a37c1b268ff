"""The first layer driven by a per-sample neuron bias (``lava.first_layer``): export, Lava parity
(every layer, every step), ops charged once per sample on both sides, refusals, readiness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.config import FirstLayer, NeuronConfig, StudentConfig, StudentNorm
from sne_loihi.errors import ConfigError, ExportError, ParityError, SimulationError

DIGITS, T, BITS, CLASSES = (1, 8, 8), 4, 4, 3


def _digits(n: int, start: int = 0) -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().images[start:start + n] / 16.0, dtype=torch.float32).unsqueeze(1)


def _student(seed: int, current_decay: float = 1.0, norm: StudentNorm = StudentNorm.NONE) -> torch.nn.Module:
    from sne_loihi.students import build_student, student_spec

    cfg = StudentConfig(arch="digits_tiny", time_steps=T, input_bits=BITS, norm=norm,
                        neuron=NeuronConfig(current_decay=current_decay))
    torch.manual_seed(seed)
    return build_student(student_spec(cfg, DIGITS, 5))


def _folded(seed: int) -> torch.nn.Module:
    """A folded batch-norm student whose first conv has a neuron bias (+- a quarter threshold
    on channels 0 and 1), so the host's mantissas include the layer's own bias."""
    from sne_loihi.students import encode_input
    from sne_loihi.students.fold import fold_student, quantize_bias, recalibrate

    class Encoded(torch.nn.Module):
        def __init__(self, student: torch.nn.Module) -> None:
            super().__init__()
            self.student = student

        def forward(self, x_nchw: torch.Tensor, active: object = None) -> torch.Tensor:
            return self.student(encode_input(x_nchw, T, BITS)).spikes_nft

    student = _student(seed, norm=StudentNorm.BATCH)
    recalibrate(Encoded(student), iter([(_digits(64, 100), None)]))
    folded = fold_student(student)
    with torch.no_grad():
        block = folded.blocks[0]
        push = float(quantize_bias(torch.tensor(float(block.neuron.threshold) / 4)))
        block.synapse.bias[0], block.synapse.bias[1] = push, -push
    return folded


def _ensemble(students: list[torch.nn.Module]) -> torch.nn.Module:
    from sne_loihi.ensemble.model import Ensemble

    model = Ensemble(students, CLASSES)
    torch.manual_seed(7)
    with torch.no_grad():
        model.head.weight.normal_()
    return model.eval()


def _export(model: torch.nn.Module, out: Path, first_layer: FirstLayer, samples: int = 5):  # noqa: ANN202
    from sne_loihi.export import export_model

    return export_model(model, out, partition={"sizes": [5] * model.num_students}, in_shape_chw=DIGITS,
                        class_names=["a", "b", "c"], config={}, x_verify_nchw=_digits(samples), verify_samples=samples,
                        capacity=samples, first_layer=first_layer)


@pytest.fixture(scope="module")
def biased() -> torch.nn.Module:
    """Two students that allow the bias path, the first with a folded first-layer bias."""
    return _ensemble([_folded(0), _student(7)])  # seeds whose every layer spikes on these digits


@pytest.fixture(scope="module")
def bias_export(biased: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bias") / "export"
    _export(biased, out, FirstLayer.BIAS)
    return out


def test_mantissas_are_the_integer_conv_of_the_input(bias_export: Path, biased: torch.nn.Module) -> None:
    from sne_loihi.cost.ops import synapse_view
    from sne_loihi.layers import LayerKind
    from sne_loihi.netx_format.bias_layer import exponent_needed, read_bias_driven_layer

    layer = read_bias_driven_layer(bias_export / "student_0.net")
    assert layer is not None and layer.out_shape_chw == (4, 4, 4) and layer.neurons == 64
    view = synapse_view(biased.students[0].blocks[0], LayerKind.CONV)
    x = torch.round(_digits(6) * (2 ** BITS - 1))
    want = torch.nn.functional.conv2d(x.double(), view.weight.double() * 64, None, view.stride, view.padding)
    want = want + biased.students[0].blocks[0].synapse.bias.double().view(1, -1, 1, 1) * 64
    got = layer.mantissas_nchw(x.numpy().astype(np.int64))
    assert got.dtype == np.int64 and np.array_equal(got, want.detach().numpy())
    assert layer.bias_chw[0].min() > 0 and layer.bias_chw[1].max() < 0  # the folded bias is in
    xyz = x[0].numpy().transpose(2, 1, 0)
    np.testing.assert_array_equal(layer.mantissas_xyz(xyz), got[0].transpose(2, 1, 0))
    np.testing.assert_array_equal(layer.mantissas_xyz(xyz, with_bias=False), (got[0] - layer.bias_chw).transpose(2, 1, 0))
    assert exponent_needed(np.array([-4096, 4095])) == (6, True)
    assert exponent_needed(np.array([8190, -3])) == (7, False)
    assert exponent_needed(np.array([8190, -4])) == (7, True)
    assert read_bias_driven_layer(bias_export / "student_1.net").bias_chw.any() == False  # noqa: E712


def test_bias_export_says_so_and_lava_equals_torch_on_every_layer(bias_export: Path, biased: torch.nn.Module) -> None:
    import h5py

    from sne_loihi.netx_format import load_manifest

    manifest = load_manifest(bias_export)
    assert [s.first_layer for s in manifest.students] == ["bias", "bias"]
    assert manifest.parity is not None and manifest.parity.samples == 5 and manifest.parity.mismatches == 0
    with h5py.File(bias_export / "student_0.net") as fh:
        assert fh["layer/1/inputDrive"][()][0] == b"bias" and "inputDrive" not in fh["layer/3"]
    from sne_loihi.export import torch_layer_spikes
    from sne_loihi.students import encode_input

    for student in biased.students:  # parity was checked on layers that spike
        assert all(s.sum() > 0 for s in torch_layer_spikes(student, encode_input(_digits(5), T, BITS)))
    drives = manifest.loihi2["first_layer"]
    assert [d["exported"] for d in drives] == ["bias", "bias"]
    assert all(d["neurons"] == 64 and d["input_values"] == 64 * T and d["mant_values"] == 5 * 64 for d in drives)
    assert all(d["chip_ops"] == pytest.approx(T * d["host_macs"]) and d["host_macs"] > 0 for d in drives)
    text = (bias_export / "loihi2.md").read_text()
    assert "## First layer: per-sample bias or synaptic input" in text and "per-sample bias mantissas" in text


def test_the_bias_is_what_drives_the_first_layer(bias_export: Path, biased: torch.nn.Module,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: with the host's mantissas zeroed, Lava's first layer goes silent."""
    from sne_loihi.export import check_parity
    from sne_loihi.netx_format.bias_layer import BiasDrivenLayer
    from sne_loihi.students import encode_input

    paths = [bias_export / f"student_{i}.net" for i in range(2)]
    monkeypatch.setattr(BiasDrivenLayer, "mantissas_xyz", lambda self, x, with_bias=True: np.zeros(self.out_shape_xyz))
    with pytest.raises(ParityError, match="student 0 layer 0"):
        check_parity(list(biased.students), paths, encode_input(_digits(3), T, BITS), BITS, 3)


@pytest.mark.parametrize("layout", ["hardware", "tapped"])
def test_lava_ops_once_per_sample_equal_torch_and_switch_off(bias_export: Path, biased: torch.nn.Module,
                                                              layout: str) -> None:
    from sne_loihi.cost import count_student_ops
    from sne_loihi.cost.energy import resolve_profile
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.sim import Backend, EnsembleSimulator
    from sne_loihi.sim.evaluate import compare_with_torch, summarise
    from sne_loihi.students import encode_input

    x = _digits(5, 20)
    sim = EnsembleSimulator(bias_export, backend=Backend.CPU, capacity=5, layout=layout, cascade=False)
    try:
        result = sim.run(x.numpy(), active=[0, 1])
        assert result.first_layer == ("bias", "bias")
        check = compare_with_torch(biased, x.numpy(), None, result)
        assert (check.spike_mismatches, check.op_mismatches, check.prediction_agreement) == (0, 0, 1.0)
        enc = encode_input(x, T, BITS)
        for k, student in enumerate(biased.students):
            every_step = count_student_ops(student, student(enc)).ops_nl.numpy()
            assert np.array_equal(result.ops_nl[k][:, 0] * T, every_step[:, 0])  # first layer: once, not T times
            assert np.array_equal(result.ops_nl[k][:, 1:], every_step[:, 1:])
        ev = summarise(result, sim.graph.layers, T, BITS, resolve_profile("cmos45nm"), None, "all")
        torch_eval = evaluate_ensemble(biased, x, torch.zeros(5, dtype=torch.long), first_layer=FirstLayer.BIAS)
        assert ev.macs == pytest.approx(torch_eval.macs_per_sample) and ev.acs == pytest.approx(torch_eval.acs_per_sample)
        assert ev.first_layer == ["bias", "bias"]
        off = sim.run(x.numpy(), active=[1])  # student 0 (first-layer bias b != 0) switched off: silent, 0 ops
        assert off.spikes_nft[0].sum() == 0 and off.ops_nl[0].sum() == 0
        assert np.array_equal(off.spikes_nft[1], result.spikes_nft[1])
        back = sim.run(x.numpy(), active=[0, 1])
        assert all(np.array_equal(a, b) for a, b in zip(back.spikes_nft, result.spikes_nft))
        with pytest.raises(SimulationError, match="same input at every time step"):
            steps = encode_input(x, T, BITS).numpy().astype(np.int32)
            steps[..., 1] = 0
            sim.graph.run(steps)
    finally:
        sim.close()


def test_auto_falls_back_and_says_so_bias_is_refused(tmp_path: Path) -> None:
    import h5py

    from sne_loihi.checks import check_config
    from sne_loihi.config import RunConfig
    from sne_loihi.netx_format import load_manifest

    mixed = _ensemble([_student(2), _student(3, current_decay=0.25)])
    with pytest.raises(ExportError, match=r"student 1 .*current_decay is 0.25, not 1") as exc:
        _export(mixed, tmp_path / "refused", FirstLayer.BIAS)
    assert "\n" not in str(exc.value) and not (tmp_path / "refused").exists()
    manifest = _export(mixed, tmp_path / "auto", FirstLayer.AUTO, samples=3)
    assert [s.first_layer for s in manifest.students] == ["bias", "synaptic"]
    assert manifest.students[0].first_layer_note == "" and "current_decay is 0.25" in manifest.students[1].first_layer_note
    assert manifest.parity.mismatches == 0
    drives = manifest.loihi2["first_layer"]
    assert [d["exported"] for d in drives] == ["bias", "synaptic"] and [d["applies"] for d in drives] == [True, False]
    cfg = RunConfig()
    cfg.lava.first_layer = FirstLayer.BIAS
    cfg.student.neuron.current_decay = 0.25
    with pytest.raises(ConfigError, match="lava.first_layer 'bias'.*current_decay"):
        check_config(cfg)
    # one rule: the config's refusal (before training) is the exported student's (after)
    from sne_loihi.checks import first_layer_refusal
    from sne_loihi.cost.first_layer import student_bias_refusal

    assert first_layer_refusal(cfg.student) == student_bias_refusal(mixed.students[1]) is not None
    assert student_bias_refusal(mixed.students[0]) is None
    cfg.student.neuron.current_decay, cfg.student.input_bits = 1.0, 1
    with pytest.raises(ConfigError, match="binary spikes"):
        check_config(cfg)
    # the manifest must name the file's drive
    raw = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    raw["students"][0]["first_layer"] = "synaptic"
    (tmp_path / "auto" / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ExportError, match="first layer says otherwise"):
        load_manifest(tmp_path / "auto")
    with h5py.File(tmp_path / "auto" / "student_1.net", "r") as fh:
        assert "inputDrive" not in fh["layer/1"]


def test_torch_counts_refuse_a_changing_input_and_auto(biased: torch.nn.Module) -> None:
    from sne_loihi.cost import count_student_ops
    from sne_loihi.students import encode_input

    student = biased.students[1]
    x = encode_input(_digits(2), T, BITS)
    x[..., 2] = 0
    out = student(x)
    with pytest.raises(ConfigError, match="same input at every time step"):
        count_student_ops(student, out, FirstLayer.BIAS)
    with pytest.raises(ConfigError, match="not 'auto'"):
        count_student_ops(student, out, FirstLayer.AUTO)


def test_loihi2_backend_refuses_a_bias_driven_first_layer(bias_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lava.utils import loihi

    from sne_loihi.sim import Backend
    from sne_loihi.sim.graph import LavaGraph, LavaSchedule

    monkeypatch.setattr(loihi, "is_installed", lambda: True)
    with pytest.raises(SimulationError, match="per-sample neuron bias, which only the CPU backend") as exc:
        LavaGraph([bias_export / "student_0.net"], BITS, LavaSchedule(T, 2), backend=Backend.LOIHI2)
    assert "\n" not in str(exc.value)


def test_sne_export_takes_first_layer_from_the_flag_else_the_run_config(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import sne_loihi.export.stage as stage
    from sne_loihi.cli import app

    seen: list[object] = []
    manifest = SimpleNamespace(parity=None, students=[], directory=tmp_path / "export", loihi2=None, cascade=None)
    monkeypatch.setattr(stage, "export_run", lambda run, out, **kw: seen.append(kw["first_layer"]) or manifest)
    (tmp_path / "config.toml").write_text('[lava]\nfirst_layer = "auto"\n')
    for extra, want in (([], FirstLayer.AUTO), (["--first-layer", "bias"], FirstLayer.BIAS)):
        result = CliRunner().invoke(app, ["export", str(tmp_path), *extra])
        assert result.exit_code == 0, result.output
        assert seen[-1] is want
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--first-layer", "sideways"])
    assert result.exit_code != 0 and "sideways" in result.output


def test_sne_export_first_layer_is_recorded_so_evaluate_counts_the_same(tmp_path: Path) -> None:
    """`sne export --first-layer bias` on a run configured `synaptic`: the run's config.toml then
    says `bias` (when the export is the run's own, RUN/export), and `sne evaluate` counts the
    first layers once per sample, as the export does."""
    import json

    from typer.testing import CliRunner

    from sne_loihi.cli import app
    from sne_loihi.config import resolve

    run = tmp_path / "run"
    runner = CliRunner()
    common = ["--no-progress", "--threads", "2"]
    ok = runner.invoke(app, ["teacher", "--run-dir", str(run), "--dataset", "digits", "--teacher-epochs", "1",
                             "--max-train", "200", "--max-test", "40", "--set", "student.neuron.current_decay=1.0",
                             *common])
    assert ok.exit_code == 0, ok.output
    ok = runner.invoke(app, ["train", str(run), "--student-epochs", "1", "--student-arch", "digits_tiny",
                             "--time-steps", "2", *common])
    assert ok.exit_code == 0, ok.output
    assert resolve(None, run / "config.toml").lava.first_layer is FirstLayer.SYNAPTIC
    # an export written elsewhere is a variant: the run's config stays as it was
    before = (run / "config.toml").read_bytes()
    ok = runner.invoke(app, ["export", str(run), "--first-layer", "bias", "--check-samples", "0",
                             "--out", str(tmp_path / "variant")])
    assert ok.exit_code == 0, ok.output
    assert (run / "config.toml").read_bytes() == before
    ok = runner.invoke(app, ["export", str(run), "--first-layer", "bias", "--check-samples", "2"])
    assert ok.exit_code == 0, ok.output
    assert resolve(None, run / "config.toml").lava.first_layer is FirstLayer.BIAS
    ok = runner.invoke(app, ["evaluate", str(run), "--no-activation"])
    assert ok.exit_code == 0, ok.output
    rows = json.loads((run / "report.json").read_text())["evaluation"]["rows"]
    ensemble = next(r for r in rows if r["model"].startswith("ensemble"))
    assert ensemble["first_layer"] == "bias", ensemble


def _loud(seed: int, threshold: float) -> torch.nn.Module:
    """A student whose first-layer weights are pushed to 8 bits' edge, so the per-sample
    mantissas leave the 13-bit register on these digits."""
    from sne_loihi.students import build_student, student_spec

    cfg = StudentConfig(arch="digits_tiny", time_steps=T, input_bits=BITS,
                        neuron=NeuronConfig(current_decay=1.0, threshold=threshold))
    torch.manual_seed(seed)
    student = build_student(student_spec(cfg, DIGITS, 5))
    with torch.no_grad():
        w = student.blocks[0].synapse.weight
        w.copy_(torch.sign(w) * 3.9 * (torch.rand_like(w) > 0.3))
    return student


@pytest.mark.parametrize("threshold,exact", [(1.0, True), (5.0, False)])
def test_saturated_mantissas_change_no_spike_below_the_threshold_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: float, exact: bool) -> None:
    """The host writes the mantissas saturated to 13 bits when the first layer's threshold
    mantissa is below 4095, and Lava still equals torch on every layer; with a threshold above
    it saturation would change spikes (forced here: a parity failure), so it is not done."""
    from sne_loihi.export import check_parity
    from sne_loihi.netx_format.bias_layer import BIAS_MANT_MAX, BIAS_MANT_MIN, BiasDrivenLayer, read_bias_driven_layer
    from sne_loihi.sim.readiness import Status, first_layer_drive, first_layer_rows
    from sne_loihi.students import encode_input

    students = [_loud(3, threshold)]
    manifest = _export(_ensemble(students), tmp_path / "export", FirstLayer.BIAS, samples=6)
    path = tmp_path / "export" / "student_0.net"
    layer = read_bias_driven_layer(path)
    x = encode_input(_digits(6), T, BITS)
    mant = layer.mantissas_nchw(np.rint(x[..., 0].numpy()).astype(np.int64))
    assert mant.max() > BIAS_MANT_MAX and mant.min() < BIAS_MANT_MIN  # the register overflows both ways
    assert layer.v_th_mant == round(threshold * (2 ** BITS - 1) * 64) and layer.saturates_exactly is exact
    written = layer.register(mant)
    assert (written.min() >= BIAS_MANT_MIN and written.max() <= BIAS_MANT_MAX) if exact else np.array_equal(written, mant)
    assert manifest.parity is not None and manifest.parity.mismatches == 0  # exact either way
    drive = first_layer_drive(path, 0, BITS, T, x)
    rows = first_layer_rows(drive)
    assert drive.saturates is exact and len(rows) == 2
    if exact:
        assert {r.status for r in rows} == {Status.PASS} and all("written saturated" in r.value for r in rows)
    else:
        assert rows[0].status is Status.FAIL and "NOT exact" in rows[0].value
    if not exact:  # forcing the saturation past the bound changes the first layer's spikes
        monkeypatch.setattr(BiasDrivenLayer, "saturates_exactly", property(lambda self: True))
        with pytest.raises(ParityError, match="student 0 layer 0"):
            check_parity(students, [path], x, BITS, 6)
