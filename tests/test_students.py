"""Students: specs and architectures, input encoding, both backends' forward contract,
gradients, a short training run, checkpoint rebuild, and SLAYER == Lava spikes."""

from __future__ import annotations

import json

import pytest
import torch

from sne_loihi.config import NeuronConfig, NeuronLibrary, StudentConfig
from sne_loihi.errors import ConfigError
from sne_loihi.students import (
    STUDENT_ARCHS, LayerKind, LayerSpec, StudentOutput, StudentSpec, build_student, encode_input, student_spec,
)
from sne_loihi.students.spec import FLATTEN, conv, dense

DIGITS = (1, 8, 8)
CIFAR = (3, 32, 32)
ARCH_SHAPES = {"auto": CIFAR, "digits_tiny": DIGITS, "digits_small": DIGITS, "vgg5": CIFAR, "vgg5mini": CIFAR, "vgg11": CIFAR}


def _input_for(spec: StudentSpec, x_nchw: torch.Tensor) -> torch.Tensor:
    """SLAYER: graded integers; SpikingJelly: float pixels repeated (direct encoding)."""
    if spec.neuron_library is NeuronLibrary.SLAYER:
        return encode_input(x_nchw, spec.time_steps, spec.input_bits)
    return x_nchw.unsqueeze(-1).repeat(1, 1, 1, 1, spec.time_steps)


def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images[:n] / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(bunch.target[:n])


# ---- specs and architectures ------------------------------------------------------------
def test_every_arch_ends_in_dense_out_and_uses_only_netx_layers() -> None:
    assert set(ARCH_SHAPES) == set(STUDENT_ARCHS.names())
    for name, shape in ARCH_SHAPES.items():
        spec = student_spec(StudentConfig(arch=name), shape, 37)
        assert spec.layers[-1] == dense(37)
        assert {layer.kind for layer in spec.layers} <= {LayerKind.CONV, LayerKind.FLATTEN, LayerKind.DENSE}
        assert spec.layer_shapes()[-1][1] == (37,)


def test_vgg_shapes_and_widths() -> None:
    vgg11 = student_spec(StudentConfig(arch="vgg11"), CIFAR, 512)
    convs = [layer for layer in vgg11.layers if layer.kind is LayerKind.CONV]
    assert [c.out_features for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert vgg11.layer_shapes()[8][0] == (512, 2, 2)  # four stride-2 convs: 32 -> 2
    vgg5 = [c.out_features for c in student_spec(StudentConfig(arch="vgg5"), CIFAR, 10).layers[:4]]
    mini = [c.out_features for c in student_spec(StudentConfig(arch="vgg5mini"), CIFAR, 10).layers[:4]]
    assert mini[:2] == vgg5[:2] and mini[2:] == [v // 2 for v in vgg5[2:]]
    half = student_spec(StudentConfig(arch="digits_small", width=0.5), DIGITS, 10)
    assert [layer.out_features for layer in half.layers] == [8, 16, 0, 64, 10]  # output never scaled
    thin = student_spec(StudentConfig(arch="digits_small", width=0.01), DIGITS, 10)
    assert [layer.out_features for layer in thin.layers] == [1, 1, 0, 1, 10]


def test_first_width_scales_the_first_layer_alone() -> None:
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.config import PartitionStrategy
    from sne_loihi.partition import Partition, group_widths

    spec = student_spec(StudentConfig(arch="vgg5mini", width=1.0, first_width=0.5), CIFAR, 16)
    assert [layer.out_features for layer in spec.layers] == [32, 128, 128, 128, 0, 16]
    same = student_spec(StudentConfig(arch="vgg5mini", width=0.5, first_width=0.5), CIFAR, 16)
    assert same == student_spec(StudentConfig(arch="vgg5mini", width=0.5), CIFAR, 16)
    # unequal groups: the capacity rule scales both widths alike (digits_small: conv 16, conv 32, ...)
    part = Partition(PartitionStrategy.KMEANS, groups=((*range(16),), (16, 17, 18, 19)), feature_dim=20)
    ens = build_ensemble(StudentConfig(arch="digits_small", width=1.0, first_width=0.5), part, DIGITS, 10)
    widths = group_widths([16, 4], 1.0)  # 1.26, 0.63
    assert [s.spec.layers[0].out_features for s in ens.students] == [round(16 * 0.5 * w) for w in widths] == [10, 5]
    assert [s.spec.layers[1].out_features for s in ens.students] == [round(32 * w) for w in widths] == [40, 20]
    with pytest.raises(ConfigError, match="first_width must be > 0"):
        student_spec(StudentConfig(arch="vgg5mini", first_width=0.0), CIFAR, 16)


def test_spec_round_trip_and_validation() -> None:
    spec = student_spec(StudentConfig(arch="digits_small", neuron_library=NeuronLibrary.SPIKINGJELLY, time_steps=3,
                                      input_bits=6, neuron=NeuronConfig(threshold=1.25)), DIGITS, 12)
    back = StudentSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.neuron_library is NeuronLibrary.SPIKINGJELLY and back.neuron.threshold == 1.25
    ok = dict(in_shape=DIGITS, out_features=4, time_steps=2, input_bits=4)
    bad_layers = [
        (conv(4), FLATTEN),                       # last layer not dense
        (conv(4), FLATTEN, dense(5)),             # last layer size != out_features
        (conv(4), dense(4)),                      # dense without flatten
        (FLATTEN, conv(4), FLATTEN, dense(4)),    # conv after flatten
    ]
    for layers in bad_layers:
        with pytest.raises(ConfigError):
            StudentSpec(layers=layers, **ok)
    with pytest.raises(ConfigError, match="leaves no pixels"):
        StudentSpec(layers=(LayerSpec(LayerKind.CONV, 4, kernel=11, padding=0), FLATTEN, dense(4)), **ok)
    with pytest.raises(ConfigError, match="input_bits"):
        StudentSpec(layers=(FLATTEN, dense(4)), **dict(ok, input_bits=9))
    with pytest.raises(ConfigError, match="layer kind"):
        StudentSpec.from_dict(dict(spec.to_dict(), layers=[{"kind": "pool"}]))
    with pytest.raises(ConfigError, match="unknown student"):
        student_spec(StudentConfig(arch="resnet999"), DIGITS, 4)


# ---- encoding ---------------------------------------------------------------------------
def test_encode_input_integers_range_and_time() -> None:
    x = torch.tensor([[[[-0.5, 0.0, 0.03, 0.5], [0.51, 0.97, 1.0, 2.0]]]])
    out = encode_input(x, time_steps=3, input_bits=4)
    assert out.shape == (1, 1, 2, 4, 3) and out.dtype == torch.float32
    expected = torch.tensor([[0.0, 0.0, 0.0, 8.0], [8.0, 15.0, 15.0, 15.0]])  # round(clamp(x) * 15)
    for t in range(3):
        assert torch.equal(out[0, 0, :, :, t], expected)
    many = encode_input(torch.rand(16, 3, 5, 5), 2, 8)
    assert torch.equal(many, many.round()) and many.min() >= 0 and many.max() <= 255
    with pytest.raises(ConfigError):
        encode_input(torch.rand(2, 8, 8), 2, 4)
    with pytest.raises(ConfigError):
        encode_input(x, 0, 4)


# ---- forward contract -------------------------------------------------------------------
@pytest.mark.parametrize("library", list(NeuronLibrary))
@pytest.mark.parametrize("arch", sorted(ARCH_SHAPES))
def test_forward_contract(arch: str, library: NeuronLibrary) -> None:
    small = ARCH_SHAPES[arch] == DIGITS
    steps, batch = (4, 3) if small else (2, 1)
    spec = student_spec(StudentConfig(arch=arch, neuron_library=library, time_steps=steps, width=1.0 if small else 0.25),
                        ARCH_SHAPES[arch], 6)
    torch.manual_seed(0)
    student = build_student(spec)
    x_nchwt = _input_for(spec, torch.rand(batch, *spec.in_shape))
    with torch.no_grad():
        out = student(x_nchwt)
    assert isinstance(out, StudentOutput)
    assert out.spikes_nft.shape == (batch, 6, steps)
    assert set(out.spikes_nft.unique().tolist()) <= {0.0, 1.0}
    rates = student.rates(out)
    assert rates.shape == (batch, 6) and rates.min() >= 0 and rates.max() <= 1
    assert torch.equal(rates, out.spikes_nft.mean(-1))
    weighted_shapes = [s for layer, s in zip(spec.layers, spec.layer_shapes()) if layer.weighted]
    assert [tuple(x.shape) for x in out.layer_inputs] == [(batch, *s[0], steps) for s in weighted_shapes]
    assert torch.equal(out.layer_inputs[0], x_nchwt)
    for hidden in out.layer_inputs[1:]:
        assert set(hidden.unique().tolist()) <= {0.0, 1.0}
    assert len(student.blocks) == len(spec.layers)
    with pytest.raises(ConfigError, match="student expects input"):
        student(x_nchwt[..., :1] if steps > 1 else x_nchwt[:, :, :4])


def test_slayer_blocks_thresholds_and_quantised_weights() -> None:
    spec = student_spec(StudentConfig(arch="digits_small", input_bits=4, neuron=NeuronConfig(threshold=1.25)), DIGITS, 5)
    student = build_student(spec)
    names = [type(b).__name__ for b in student.blocks]
    assert names == ["Conv", "Conv", "Flatten", "Dense", "Dense"]
    weighted = [b for b in student.blocks if type(b).__name__ != "Flatten"]
    assert weighted[0].neuron.threshold == pytest.approx(1.25 * 15)
    assert all(b.neuron.threshold == pytest.approx(1.25) for b in weighted[1:])
    for block in weighted:
        assert block.delay_shift is False and not block.synapse.weight_norm_enabled
        w_int = block.synapse.pre_hook_fx(block.synapse.weight, descale=True)  # what export_hdf5 writes
        assert torch.equal(w_int, w_int.round()) and torch.all(w_int.remainder(2) == 0)
        assert w_int.min() >= -256 and w_int.max() <= 254
    x_nchwt = encode_input(_digits(8)[0], spec.time_steps, spec.input_bits)
    assert student(x_nchwt).layer_inputs[1].mean() > 0  # the initialisation makes the first layer fire


@pytest.mark.parametrize("library", list(NeuronLibrary))
def test_gradients_reach_the_first_layer(library: NeuronLibrary) -> None:
    spec = student_spec(StudentConfig(arch="digits_small", neuron_library=library, time_steps=4), DIGITS, 10)
    torch.manual_seed(0)
    student = build_student(spec)
    x, y = _digits(16)
    loss = torch.nn.functional.cross_entropy(student.rates(student(_input_for(spec, x))) * 5, y)
    loss.backward()
    first = next(p for p in student.blocks[0].parameters() if p.requires_grad and p.dim() > 1)
    assert first.grad is not None and first.grad.abs().sum() > 0


def _train(student: torch.nn.Module, spec: StudentSpec, steps: int) -> list[float]:
    x, y = _digits(300)
    x_nchwt = _input_for(spec, x)
    head = torch.nn.Linear(spec.out_features, 10)
    params = [p for p in student.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head(student.rates(student(x_nchwt))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("library", list(NeuronLibrary))
def test_tiny_student_learns_digits(library: NeuronLibrary) -> None:
    spec = student_spec(StudentConfig(arch="digits_tiny", neuron_library=library, time_steps=4), DIGITS, 16)
    torch.manual_seed(0)
    losses = _train(build_student(spec), spec, steps=40)
    assert losses[-1] < 0.6 * losses[0], losses


def test_rebuilt_from_spec_and_state_dict_gives_the_same_spikes() -> None:
    spec = student_spec(StudentConfig(arch="digits_tiny", time_steps=3), DIGITS, 8)
    torch.manual_seed(1)
    a = build_student(spec)
    _train(a, spec, steps=2)
    b = build_student(StudentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))))
    b.load_state_dict(a.state_dict())
    x_nchwt = encode_input(_digits(20)[0], 3, spec.input_bits)
    with torch.no_grad():
        assert torch.equal(a(x_nchwt).spikes_nft, b(x_nchwt).spikes_nft)


@pytest.mark.parametrize("first_width", [None, 0.5])
def test_trained_slayer_student_spikes_equal_lava(tmp_path, first_width: float | None) -> None:
    """The torch student is the network Lava runs: every layer's spikes, bit for bit (also with
    a first layer narrower than the rest, ``student.first_width``)."""
    from sne_loihi.export.exporter import check_parity
    from sne_loihi.export.netx_write import write_student_hdf5

    spec = student_spec(StudentConfig(arch="digits_tiny", time_steps=4, input_bits=4, first_width=first_width),
                        DIGITS, 10)
    assert spec.layers[0].out_features == (2 if first_width else 4)
    torch.manual_seed(0)
    student = build_student(spec)
    _train(student, spec, steps=4)
    student.eval()
    path = write_student_hdf5(student, tmp_path / "student.net")
    x_nchwt = encode_input(_digits(6)[0], spec.time_steps, spec.input_bits)
    assert student(x_nchwt).spikes_nft.sum() > 0  # a non-trivial comparison
    record = check_parity([student], [path], x_nchwt, spec.input_bits, capacity=6)
    assert record.mismatches == 0 and record.samples == 6
