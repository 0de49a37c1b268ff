"""Synaptic-op counter (hand-computed networks, quantised zeros, MAC vs AC, equality with the
netx fan-out and with Lava's counter) and energy profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sne_loihi.config import NeuronLibrary, StudentConfig
from sne_loihi.cost import (
    ENERGY_PROFILES, OpKind, count_student_ops, energy_pj, fanout_per_input, layer_op_kinds,
    load_energy_profile, neuron_updates_per_sample, student_fanouts, synapse_view,
)
from sne_loihi.errors import ConfigError
from sne_loihi.students import LayerKind, StudentOutput, StudentSpec, build_student, encode_input, student_spec
from sne_loihi.students.spec import FLATTEN, LayerSpec, dense

#: One real-weight quantisation step of SLAYER's 8-bit synapse (2 / w_scale, w_scale = 64).
STEP = 2 / 64


def _hand_student(stride: int = 1, library: NeuronLibrary = NeuronLibrary.SLAYER):
    """1x3x3 input -> conv 1->1 (3x3, padding 1) -> flatten -> dense -> 2 outputs."""
    layers = (LayerSpec(LayerKind.CONV, 1, kernel=3, stride=stride, padding=1), FLATTEN, dense(2))
    spec = StudentSpec(layers=layers, in_shape=(1, 3, 3), out_features=2, time_steps=2, input_bits=4,
                       neuron_library=library)
    return build_student(spec)


def _set_conv(student, kernel_hw: torch.Tensor) -> None:
    w = student.blocks[0].synapse.weight
    with torch.no_grad():
        w.copy_(kernel_hw.reshape(w.shape))


def _set_dense(student, weight_oi: torch.Tensor) -> None:
    w = student.blocks[2].synapse.weight
    with torch.no_grad():
        w.copy_(weight_oi.reshape(w.shape))


def test_hand_computed_conv_and_dense_counts() -> None:
    student = _hand_student()
    # Conv kernel (real weights): non-zero on the diagonal only. 0.01 is below half a
    # quantisation step (1/32) and rounds to 0: no synapse on Loihi, so it must not count;
    # 0.02 rounds to 1/32 and counts.
    kernel = torch.tensor([[0.5, 0.0, 0.01],
                           [0.0, -0.75, 0.0],
                           [0.0, 0.0, 0.02]])
    _set_conv(student, kernel)
    # Input pixel (i, j) reaches output (i - a + 1, j - b + 1) through kernel tap (a, b);
    # with taps (0,0), (1,1), (2,2) and a 3x3 output the fan-outs are:
    #   (0,0): outputs (1,1),(0,0)        -> 2     (0,1): (1,2),(0,1) -> 2   (0,2): (0,2) -> 1
    #   (1,0): (2,1),(1,0)                -> 2     (1,1): all three   -> 3   (1,2): (1,2),(0,1) -> 2
    #   (2,0): (2,0)                      -> 1     (2,1): (2,1),(1,0) -> 2   (2,2): (2,2),(1,1) -> 2
    expected_conv = torch.tensor([[[2.0, 2.0, 1.0], [2.0, 3.0, 2.0], [1.0, 2.0, 2.0]]], dtype=torch.float64)
    assert torch.equal(fanout_per_input(student.blocks[0], LayerKind.CONV, (1, 3, 3)), expected_conv)
    # Dense 9 -> 2: output 0 uses inputs 0, 4, 8; output 1 uses input 4 and input 6 with a
    # weight (0.01) that quantises to zero. Fan-out per input: [1, 0, 0, 0, 2, 0, 0, 0, 1].
    w = torch.zeros(2, 9)
    w[0, [0, 4, 8]] = torch.tensor([1.0, -0.5, 0.25])
    w[1, 4], w[1, 6] = 0.75, 0.01
    _set_dense(student, w)
    expected_dense = torch.tensor([1, 0, 0, 0, 2, 0, 0, 0, 1], dtype=torch.float64)
    assert torch.equal(fanout_per_input(student.blocks[2], LayerKind.DENSE, (9,)), expected_dense)

    # Graded input (values are irrelevant, only non-zero-ness), T = 2:
    #   t=0 non-zero at (0,1), (1,0), (2,2): 2 + 2 + 2 = 6;  t=1 at (1,1): 3.  Conv: 9 MACs.
    x = torch.zeros(1, 1, 3, 3, 2)
    x[0, 0, 0, 1, 0], x[0, 0, 1, 0, 0], x[0, 0, 2, 2, 0] = 3.0, 1.0, 7.0
    x[0, 0, 1, 1, 1] = 2.0
    # Spikes into the dense layer: t=0 inputs 0, 1, 4 -> 1 + 0 + 2 = 3; t=1 inputs 4, 8 -> 2 + 1 = 3.
    s = torch.zeros(1, 9, 2)
    s[0, [0, 1, 4], 0] = 1.0
    s[0, [4, 8], 1] = 1.0
    out = StudentOutput(spikes_nft=torch.zeros(1, 2, 2), layer_inputs=[x, s])
    ops = count_student_ops(student, out)
    assert ops.kinds == [OpKind.MAC, OpKind.AC]
    assert ops.ops_nl.tolist() == [[9.0, 6.0]]
    assert ops.macs_n.tolist() == [9.0] and ops.acs_n.tolist() == [6.0] and ops.total_n.tolist() == [15.0]


def test_strided_conv_fanout_by_hand() -> None:
    student = _hand_student(stride=2)
    kernel = torch.ones(3, 3) * 0.5
    kernel[1, 1] = 0.0
    _set_conv(student, kernel)
    # Stride 2, padding 1 on 3x3: output row p reads input rows 2p-1 .. 2p+1 (tap a = i - 2p + 1).
    #   input row 0 -> (p=0, a=1); row 1 -> (p=0, a=2), (p=1, a=0); row 2 -> (p=1, a=1). Same for
    #   columns. Fan-out = pairs of (row option, column option) minus the zero centre tap (a=b=1):
    #   corners: only (a=1, b=1) -> 0; edges: 1 x 2 pairs, none central -> 2; centre: 2 x 2 -> 4.
    expected = torch.tensor([[[0.0, 2.0, 0.0], [2.0, 4.0, 2.0], [0.0, 2.0, 0.0]]], dtype=torch.float64)
    assert torch.equal(fanout_per_input(student.blocks[0], LayerKind.CONV, (1, 3, 3)), expected)
    assert expected.sum() == 12  # 4 outputs x (4 in-bounds taps - the zero centre)


def test_op_kinds_follow_the_input_encoding() -> None:
    base = StudentConfig(arch="digits_tiny")
    assert layer_op_kinds(student_spec(base, (1, 8, 8), 4)) == [OpKind.MAC, OpKind.AC, OpKind.AC]
    binary = student_spec(StudentConfig(arch="digits_tiny", input_bits=1), (1, 8, 8), 4)
    assert layer_op_kinds(binary) == [OpKind.AC] * 3  # 1-bit input: binary spikes, accumulates only
    sj = student_spec(StudentConfig(arch="digits_tiny", input_bits=1, neuron_library=NeuronLibrary.SPIKINGJELLY), (1, 8, 8), 4)
    assert layer_op_kinds(sj)[0] is OpKind.MAC  # float pixels
    spec = student_spec(base, (1, 8, 8), 4)  # conv 4x4x4 (s2) + dense 32 + dense 4 neurons, T=4
    assert neuron_updates_per_sample(spec) == (4 * 4 * 4 + 32 + 4) * 4


def _trained_student(library: NeuronLibrary, arch: str = "digits_small"):
    from sklearn.datasets import load_digits

    spec = student_spec(StudentConfig(arch=arch, neuron_library=library, time_steps=3), (1, 8, 8), 10)
    torch.manual_seed(0)
    student = build_student(spec)
    bunch = load_digits()
    x = torch.tensor(bunch.images[:64] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(bunch.target[:64])
    x_nchwt = (encode_input(x, 3, spec.input_bits) if library is NeuronLibrary.SLAYER
               else x.unsqueeze(-1).repeat(1, 1, 1, 1, 3))
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = F.cross_entropy(student.rates(student(x_nchwt)) * 5, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student.eval(), x_nchwt


@pytest.mark.parametrize("library", list(NeuronLibrary))
def test_counter_equals_the_direct_convolution_formula(library: NeuronLibrary) -> None:
    """Per layer: conv2d((x != 0), (W_q != 0)) summed over outputs and steps; dense: matmul."""
    student, x_nchwt = _trained_student(library)
    with torch.no_grad():
        out = student(x_nchwt[:8])
    ops = count_student_ops(student, out)
    weighted = [(layer, block) for layer, block in zip(student.spec.layers, student.blocks) if layer.weighted]
    for l, ((layer, block), x) in enumerate(zip(weighted, out.layer_inputs)):
        view = synapse_view(block, layer.kind)
        nz, mask = (x != 0).double(), (view.weight != 0).double()
        if layer.kind is LayerKind.CONV:
            n, c, h, w, t = nz.shape
            per_step = F.conv2d(nz.movedim(-1, 1).reshape(n * t, c, h, w), mask, None, view.stride, view.padding)
            expected = per_step.reshape(n, -1).sum(1)
        else:
            expected = torch.einsum("nft,of->n", nz, mask)
        assert torch.equal(ops.ops_nl[:, l], expected), l
    assert ops.ops_nl.shape == (8, 4) and (ops.ops_nl > 0).all()


def test_counter_uses_quantised_slayer_weights() -> None:
    student, x_nchwt = _trained_student(NeuronLibrary.SLAYER)
    raw = student.blocks[0].synapse.weight
    quantised = student.blocks[0].synapse.pre_hook_fx(raw)
    assert ((raw != 0) & (quantised == 0)).any()  # some weights exist in float but not on Loihi
    fan = fanout_per_input(student.blocks[0], LayerKind.CONV, (1, 8, 8))
    raw_fan = F.conv_transpose2d(torch.ones(1, 16, 8, 8, dtype=torch.float64),
                                 (raw.squeeze(-1) != 0).double(), padding=1)[0]
    assert fan.sum() < raw_fan.sum()


def test_fanouts_equal_the_netx_file(tmp_path: Path) -> None:
    """Same numbers as the exporter's reader computes from the HDF5 weights (Lava order)."""
    from sne_loihi.export.netx_write import write_student_hdf5
    from sne_loihi.netx_format.netx_file import read_netx_layers

    student, _ = _trained_student(NeuronLibrary.SLAYER)
    layers = read_netx_layers(write_student_hdf5(student, tmp_path / "s.net"))
    shapes = [s for layer, s in zip(student.spec.layers, student.spec.layer_shapes()) if layer.weighted]
    for fan, netx_layer, (in_shape, _) in zip(student_fanouts(student), layers, shapes):
        lava_order = fan.numpy().reshape(netx_layer.fanout_xyz.shape[::-1]).transpose(
            tuple(range(netx_layer.fanout_xyz.ndim))[::-1])
        assert fan.shape == in_shape
        np.testing.assert_array_equal(lava_order, netx_layer.fanout_xyz)


def test_counter_equals_lavas_op_counter(tmp_path: Path) -> None:
    """The torch count is exactly the synaptic events Lava's counter process records."""
    from sne_loihi.export.netx_write import write_student_hdf5
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.graph import LavaGraph, LavaSchedule

    student, x_nchwt = _trained_student(NeuronLibrary.SLAYER, arch="digits_tiny")
    x_nchwt = x_nchwt[:5]
    with torch.no_grad():
        ops = count_student_ops(student, student(x_nchwt))
    assert (ops.ops_nl > 0).all()
    path = write_student_hdf5(student, tmp_path / "s.net")
    with LavaGraph([path], input_bits=4, schedule=LavaSchedule(3, capacity=5), backend=Backend.CPU) as graph:
        run = graph.run(x_nchwt.numpy().round().astype(np.int32))
    np.testing.assert_array_equal(run.ops_nl[0], ops.ops_nl.numpy().astype(np.int64))


def test_spikingjelly_counts_only_nonzero_float_weights() -> None:
    student = _hand_student(library=NeuronLibrary.SPIKINGJELLY)
    conv_w = student.blocks[0][0].weight
    with torch.no_grad():
        conv_w.zero_()
        conv_w[0, 0, 1, 1] = 1e-6  # tiny but non-zero: a synapse in float
    fan = fanout_per_input(student.blocks[0], LayerKind.CONV, (1, 3, 3))
    assert torch.equal(fan, torch.ones(1, 3, 3, dtype=torch.float64))


# ---- energy -----------------------------------------------------------------------------
def test_energy_arithmetic() -> None:
    cmos = ENERGY_PROFILES.get("cmos45nm")()
    assert energy_pj(cmos, macs=1000, acs=2000) == pytest.approx(1000 * 4.6 + 2000 * 0.9)
    assert energy_pj(cmos, macs=10, acs=0, neuron_updates=99) == pytest.approx(46.0)  # not charged
    loihi = ENERGY_PROFILES.get("loihi")()
    assert energy_pj(loihi, macs=10, acs=30, neuron_updates=5) == pytest.approx(40 * 23.6 + 5 * 81.0)
    assert "Davies" in loihi.source and "Horowitz" in cmos.source
    with pytest.raises(ConfigError):
        energy_pj(cmos, macs=-1, acs=0)
    with pytest.raises(ConfigError, match="unknown energy profile"):
        ENERGY_PROFILES.get("tpu")


def test_energy_profile_toml(tmp_path: Path) -> None:
    good = tmp_path / "chip.toml"
    good.write_text('pj_per_mac = 2.0\npj_per_ac = 0.5\npj_per_neuron_update = 1\nsource = "datasheet"\n')
    profile = load_energy_profile(good)
    assert (profile.name, profile.pj_per_synop, profile.source) == ("chip", None, "datasheet")
    assert energy_pj(profile, macs=3, acs=4, neuron_updates=2) == pytest.approx(3 * 2.0 + 4 * 0.5 + 2 * 1.0)
    cases = {
        "broken.toml": ("pj_per_mac = \n", "cannot read"),
        "missing.toml": ("pj_per_mac = 1.0\n", "needs pj_per_ac"),
        "negative.toml": ("pj_per_mac = 1.0\npj_per_ac = -0.1\n", r"number of pJ in 0\.\.1e\+09, got -0.1"),
        "huge.toml": ("pj_per_mac = 1e308\npj_per_ac = 1e308\n", r"pj_per_mac must be a number of pJ in 0\.\.1e\+09"),
        "typo.toml": ("pj_per_mac = 1.0\npj_per_ac = 0.1\npj_per_mak = 3\n", "unknown energy profile key"),
        "text.toml": ('pj_per_mac = "4.6"\npj_per_ac = 0.9\n', "number of pJ"),
        "impostor.toml": ('name = "cmos45nm"\npj_per_mac = 1.0\npj_per_ac = 0.1\n', "built-in energy profile's"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_energy_profile(tmp_path / name)
    with pytest.raises(ConfigError, match="energy profile not found"):
        load_energy_profile(tmp_path / "absent.toml")
    (tmp_path / "loihi.toml").write_text("pj_per_mac = 1.0\npj_per_ac = 0.1\n")  # a file named like a built-in
    assert load_energy_profile(tmp_path / "loihi.toml").name == "loihi.toml"


def test_profiles_are_named_by_a_string_or_a_path_wherever_one_is_taken(tmp_path: Path) -> None:
    """``resolve_profile`` takes a ``Path`` as well as a string; ``energy_pj`` takes a name or
    a file as well as a profile; a count or a profile of the wrong type is a ``ConfigError``."""
    from sne_loihi.cost.energy import resolve_profile

    chip = tmp_path / "chip.toml"
    chip.write_text("pj_per_mac = 2.0\npj_per_ac = 0.5\n")
    assert resolve_profile(chip) == resolve_profile(str(chip)) == load_energy_profile(chip)
    assert energy_pj(chip, macs=3, acs=4) == energy_pj(str(chip), macs=3, acs=4) == pytest.approx(8.0)
    assert energy_pj("loihi", macs=10, acs=30, neuron_updates=5) == energy_pj(resolve_profile("loihi"), 10, 30, 5)
    loihi = resolve_profile("loihi")
    for bad in ("abc", None, torch.tensor([1.0, 2.0]), True, float("inf")):
        with pytest.raises(ConfigError, match="macs must be a non-negative number"):
            energy_pj(loihi, macs=bad, acs=1)
    with pytest.raises(ConfigError, match="energy profile"):
        resolve_profile(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown energy profile 'nope'"):
        energy_pj("nope", macs=1, acs=1)


def test_a_profile_name_is_the_registered_profile_and_a_profile_file_is_stored_absolute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sne_loihi.cli.flags import energy_profile_value
    from sne_loihi.cost.energy import ENERGY_PROFILES, resolve_profile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "loihi").write_text("not a profile")  # a file that happens to carry a profile's name
    assert resolve_profile("loihi") == ENERGY_PROFILES.get("loihi")()
    assert energy_profile_value("loihi") == "loihi" and energy_profile_value("nosuch") == "nosuch"
    assert energy_profile_value("prof/chip.toml") == str(tmp_path / "prof" / "chip.toml")  # config.toml names it anywhere


def test_one_rule_tells_a_profile_name_from_a_profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``resolve_profile`` and the CLI's ``--energy`` share one rule: a registered name wins over a
    file of that name in the working folder; a .toml name, a path with a folder, or an existing
    file is a file (a missing one says so, not "unknown profile")."""
    from sne_loihi.cli.flags import energy_profile_value
    from sne_loihi.cost.energy import is_profile_file, resolve_profile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "loihi").write_text("pj_per_mac = 2.0\npj_per_ac = 0.5\n")  # a file named like a profile
    (tmp_path / "mine").write_text("pj_per_mac = 2.0\npj_per_ac = 0.5\n")
    assert not is_profile_file("loihi") and energy_profile_value("loihi") == "loihi"
    assert resolve_profile("loihi") == ENERGY_PROFILES.get("loihi")()
    assert is_profile_file("mine") and energy_profile_value("mine") == str(tmp_path / "mine")
    assert resolve_profile("mine").pj_per_mac == 2.0
    assert not is_profile_file("nope")
    with pytest.raises(ConfigError, match="unknown energy profile 'nope'"):
        resolve_profile("nope")
    for missing in ("absent.toml", "sub/absent"):
        assert is_profile_file(missing)
        with pytest.raises(ConfigError, match="energy profile not found"):
            resolve_profile(missing)
