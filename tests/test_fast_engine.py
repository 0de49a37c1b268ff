"""The fast engine is SLAYER, faster: identical spikes in every layer and step, identical
gradients w.r.t. each layer's input current, weight gradients equal up to summation order,
the same training result, and a fast-trained student that Lava runs spike for spike."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sne_loihi.config import NeuronConfig, RunConfig, StudentConfig, StudentEngine
from sne_loihi.students import STUDENT_ARCHS, StudentSpec, build_student, encode_input, student_spec
from sne_loihi.students.fast_cuba import cuba_constants, cuba_forward_torch, cuba_layer_tm, run_fast
from sne_loihi.students.native_cuba import cuba_forward_native, native_kernel

DIGITS = (1, 8, 8)
SMALL_RGB = (3, 16, 16)  # four stride-2 convs of vgg11 still leave a 1x1 map
SEEDS = (0, 1, 2)


def _shape(arch: str) -> tuple[int, int, int]:
    return DIGITS if arch.startswith("digits") else SMALL_RGB


def _pair(arch: str, seed: int, width: float = 0.25, time_steps: int = 3,
          neuron: NeuronConfig | None = None) -> tuple[torch.nn.Module, torch.nn.Module, StudentSpec]:
    """The same student (same parameters) under both engines."""
    cfg = StudentConfig(arch=arch, width=width, time_steps=time_steps, input_bits=4, engine=StudentEngine.SLAYER,
                        neuron=neuron or NeuronConfig())
    spec = student_spec(cfg, _shape(arch), 12)
    torch.manual_seed(seed)
    slayer = build_student(spec)
    fast = build_student(dataclasses.replace(spec, engine=StudentEngine.FAST))
    fast.load_state_dict(slayer.state_dict())
    return slayer, fast, spec


def _input(spec: StudentSpec, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + seed)
    return encode_input(torch.rand(n, *spec.in_shape, generator=gen), spec.time_steps, spec.input_bits)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("arch", sorted(set(STUDENT_ARCHS.names()) - {"auto"}))  # auto: an alias of two of them
def test_every_layer_spikes_identically_at_every_step(arch: str, seed: int, cuba_path: str) -> None:
    slayer, fast, spec = _pair(arch, seed)
    x = _input(spec, 4, seed)
    with torch.no_grad():
        out = run_fast(fast.blocks, x)
        h, weighted = x, 0
        for layer, block in zip(spec.layers, slayer.blocks):
            h = block(h)
            if layer.weighted:
                assert out.layer_spikes[weighted].shape == h.shape
                assert torch.equal(out.layer_spikes[weighted], h), f"layer {weighted}"
                weighted += 1
        assert weighted == len(out.layer_spikes)
        assert out.layer_spikes[0].sum() > 0  # the comparison is not between silent layers
        assert torch.equal(fast(x).spikes_nft, slayer(x).spikes_nft)


def test_time_varying_input_spikes_identically() -> None:
    """The first layer's run-once shortcut only applies to a repeated image."""
    slayer, fast, spec = _pair("digits_small", 0, width=0.5, time_steps=4)
    x = _input(spec, 4, 0)
    x[..., 1] = x[..., 1].flip(0)
    with torch.no_grad():
        assert torch.equal(fast(x).spikes_nft, slayer(x).spikes_nft)
        assert [torch.equal(a, b) for a, b in zip(fast(x).layer_inputs, slayer(x).layer_inputs)] == [True] * 4


@pytest.fixture(params=["native", "torch", "native-float32-conv"])
def cuba_path(request, monkeypatch) -> str:
    """Run the test with the native kernel (where it builds), with the pure-torch path, and with
    the spike convolutions in float32 instead of int8 (where int8 runs, the other two use it)."""
    from sne_loihi.students import fast_cuba, spike_conv

    if request.param == "torch":
        monkeypatch.setattr(fast_cuba, "native_kernel", lambda: None)
    elif native_kernel() is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    if request.param == "native-float32-conv":
        monkeypatch.setattr(spike_conv, "_STATE", {"ok": False, "status": "float32 (test)"})
    return request.param


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_wrt_each_layer_input_current_is_identical(seed: int, cuba_path: str) -> None:
    """Same synaptic input and upstream gradient: SLAYER's neuron and the fused layer give the
    same spikes and the same gradient w.r.t. the input current, bit for bit (both paths)."""
    _check_input_current_gradients(seed, NeuronConfig())


@pytest.mark.parametrize("tau_grad, scale_grad", [(0.01, 3.0), (0.003, 1.0), (0.1, 0.5)])
def test_gradient_is_identical_at_other_surrogate_shapes(tau_grad: float, scale_grad: float, cuba_path: str) -> None:
    """The surrogate's width and height are training settings (the narrower 0.01 fits CIFAR-10
    students better): the fused layer follows SLAYER's surrogate at each of them."""
    _check_input_current_gradients(0, NeuronConfig(tau_grad=tau_grad, scale_grad=scale_grad))


def _check_input_current_gradients(seed: int, neuron: NeuronConfig) -> None:
    slayer, _, spec = _pair("vgg5mini", seed, neuron=neuron)
    gen = torch.Generator().manual_seed(seed)
    h = _input(spec, 3, seed)
    for layer, block in zip(spec.layers, slayer.blocks):
        if not layer.weighted:
            h = block(h)
            continue
        with torch.no_grad():
            z = block.synapse(h)  # [N, ..., T]
        grad = torch.randn(z.shape, generator=gen)
        z_ref = z.clone().requires_grad_()
        spikes_ref = block.neuron(z_ref)
        (spikes_ref * grad).sum().backward()

        def time_major(t: torch.Tensor) -> torch.Tensor:
            return t.permute(t.dim() - 1, *range(t.dim() - 1)).reshape(t.shape[-1], -1)

        z_fast = time_major(z).clone().requires_grad_()
        spikes_fast = cuba_layer_tm(z_fast, cuba_constants(block.neuron))
        (spikes_fast * time_major(grad)).sum().backward()
        assert torch.equal(spikes_fast, time_major(spikes_ref.detach()))
        assert torch.equal(z_fast.grad, time_major(z_ref.grad))
        h = spikes_ref.detach()


@pytest.mark.parametrize("arch", ["digits_small", "vgg5mini"])
def test_weight_gradients_agree_to_summation_order(arch: str, cuba_path: str) -> None:
    slayer, fast, spec = _pair(arch, 0)
    x = _input(spec, 6, 0)
    gen = torch.Generator().manual_seed(7)
    target = torch.rand(6, spec.out_features, generator=gen)
    for model in (slayer, fast):
        torch.nn.functional.mse_loss(model.rates(model(x)), target).backward()
    compared = 0
    for (name, a), (_, b) in zip(slayer.named_parameters(), fast.named_parameters()):
        if a.grad is None:
            continue
        assert b.grad is not None, name
        rel = float((a.grad - b.grad).norm() / a.grad.norm().clamp_min(1e-30))
        assert rel <= 1e-4, (name, rel)
        compared += 1
    assert compared == len(spec.weighted_layers())


def test_engine_is_stored_in_spec_and_config() -> None:
    cfg = RunConfig()
    assert cfg.student.engine is StudentEngine.FAST
    assert RunConfig.from_dict(cfg.to_dict()).student.engine is StudentEngine.FAST
    spec = student_spec(StudentConfig(engine=StudentEngine.SLAYER), DIGITS, 10)
    assert StudentSpec.from_dict(spec.to_dict()).engine is StudentEngine.SLAYER
    old = spec.to_dict()
    del old["engine"]  # a checkpoint written before engines existed
    assert StudentSpec.from_dict(old).engine is StudentEngine.FAST


def test_unsupported_neuron_is_refused_in_one_line() -> None:
    _, fast, _ = _pair("digits_tiny", 0)
    fast.blocks[0].neuron.persistent_state = True
    with pytest.raises(ValueError, match="persistent state"):
        cuba_constants(fast.blocks[0].neuron)


def test_a_short_digits_run_trains_to_the_same_accuracy_with_both_engines(tmp_path) -> None:
    from sne_loihi.data import load_dataset
    from sne_loihi.partition.base import fixed_partition
    from sne_loihi.train.students import train_students

    accuracy = {}
    for engine in StudentEngine:
        cfg = RunConfig()
        cfg.data.max_train, cfg.data.max_test = 400, 200
        cfg.student.arch, cfg.student.engine, cfg.student.time_steps = "digits_tiny", engine, 3
        cfg.ensemble.num_students, cfg.ensemble.alpha = 2, 0.0
        cfg.train.epochs, cfg.train.threads, cfg.train.device, cfg.train.lr = 3, 1, "cpu", 1e-2
        data = load_dataset(cfg.data)
        run_dir = tmp_path / engine.value
        run_dir.mkdir()
        result = train_students(cfg, data, None, fixed_partition(16, 2, seed=0), torch.ones(16), run_dir,
                                progress=False)
        accuracy[engine] = result.history[-1]["test_accuracy"]
    assert accuracy[StudentEngine.FAST] > 0.5  # it learned
    assert abs(accuracy[StudentEngine.FAST] - accuracy[StudentEngine.SLAYER]) <= 0.01, accuracy


def test_fast_trained_student_exports_and_runs_in_lava_exactly(tmp_path) -> None:
    from sne_loihi.export.exporter import check_parity
    from sne_loihi.export.netx_write import write_student_hdf5

    _, fast, spec = _pair("digits_tiny", 0, width=1.0, time_steps=4)
    x = _input(spec, 6, 0)
    head = torch.nn.Linear(spec.out_features, 3)
    opt = torch.optim.Adam(list(fast.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(3):
        loss = head(fast.rates(fast(x))).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    fast.eval()
    path = write_student_hdf5(fast, tmp_path / "student.net")
    with torch.no_grad():
        assert fast(x).spikes_nft.sum() > 0
    record = check_parity([fast], [path], x, spec.input_bits, capacity=6)
    assert record.mismatches == 0 and record.samples == 6


@pytest.mark.parametrize("scale", [1.0, 300.0, 40000.0])
def test_every_state_range_matches_slayer(scale: float) -> None:
    """Small states take the int32 path; states past 2**24 (float32 rounding of the current
    matters) and past 2**31 take the float64 paths. All equal SLAYER's neuron bit for bit."""
    from sne_loihi.students.fast_cuba import SMALL_STATE, _state_bound

    slayer, _, spec = _pair("digits_tiny", 0, time_steps=5)
    neuron = slayer.blocks[2].neuron
    gen = torch.Generator().manual_seed(3)
    z = torch.round(torch.randn(7, 11, 5, generator=gen) * 32 * scale) / 32  # [N, F, T], on the weight grid
    z_tm = z.permute(2, 0, 1).reshape(5, -1).contiguous()
    bound = _state_bound(z_tm, constant=False)
    assert (bound < SMALL_STATE) == (scale == 1.0)
    constants = cuba_constants(neuron)
    with torch.no_grad():
        reference = neuron(z)
        voltage_ref = neuron.dynamics(z)[1]
    spikes_ref = reference.permute(2, 0, 1).reshape(5, -1)
    voltage_ref = voltage_ref.permute(2, 0, 1).reshape(5, -1)
    paths = {"torch": cuba_forward_torch(z_tm, constants)}
    lib = native_kernel()
    if lib is not None:
        paths["native"] = cuba_forward_native(lib, z_tm, int(4096 - constants.current_decay),
                                              int(4096 - constants.voltage_decay), constants.reset_threshold,
                                              constants.threshold)
    for name, (spikes, voltage) in paths.items():
        assert torch.equal(spikes, spikes_ref), name
        assert torch.equal(voltage, voltage_ref), name
    assert 0 < spikes_ref.mean() < 1


@pytest.mark.parametrize("scale", [1.0, 40000.0, 2.0 ** 38])
def test_the_float64_lane_kernel_equals_the_int64_kernel(scale: float) -> None:
    """The native forward holds SLAYER's integers in float64 lanes (vectorised on AVX2): equal
    to the int64 kernel bit for bit, and where a state reaches 2**52 (scale 2**38: inputs of
    2**40 * 4096) it says so and the call reruns in int64, so the result is still equal."""
    import ctypes

    lib = native_kernel()
    if lib is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    gen = torch.Generator().manual_seed(5)
    z_tm = torch.round(torch.randn(5, 3001, generator=gen) * 32 * scale) / 32
    for keep_u, keep_v in ((0, 3973), (3000, 3973), (4096, 4096)):
        u8 = [torch.empty(z_tm.shape, dtype=torch.uint8) for _ in range(2)]
        spikes, voltage = cuba_forward_native(lib, z_tm, keep_u, keep_v, 4096.0, 1.0, spikes_u8=u8[0])
        spikes64, voltage64 = cuba_forward_native(lib, z_tm, keep_u, keep_v, 4096.0, 1.0, spikes_u8=u8[1], int64=True)
        assert torch.equal(spikes, spikes64) and torch.equal(voltage, voltage64) and torch.equal(*u8)
        assert torch.equal(u8[0].float(), spikes) and 0 < spikes.mean() < 1
        out = [torch.empty_like(z_tm) for _ in range(2)]
        outside = lib.cuba_forward(z_tm.data_ptr(), z_tm.shape[1], out[0].data_ptr(), out[1].data_ptr(), None,
                                   z_tm.shape[0], z_tm.shape[1], keep_u, keep_v, ctypes.c_float(4096.0),
                                   ctypes.c_float(1.0), 1)
        assert outside == (scale > 2 ** 30)


def test_the_native_kernel_is_used_where_a_compiler_exists() -> None:
    """CI machines have a C compiler: the fast path must not silently fall back there."""
    import shutil

    from sne_loihi.students.fast_cuba import forward_path

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine")
    assert forward_path("cpu").startswith("native C kernel"), forward_path("cpu")
    assert forward_path("meta").startswith("pure torch")


def test_cli_engine_flag_reaches_the_config_and_is_printed(tmp_path, tiny_pipeline_args) -> None:
    import tomli
    from typer.testing import CliRunner

    from sne_loihi.cli import app

    run_dir = tmp_path / "run"
    args = [a for a in tiny_pipeline_args]
    args[args.index("--lava-samples") + 1] = "0"
    result = CliRunner().invoke(app, ["pipeline", "--run-dir", str(run_dir), *args, "--no-lava", "--no-activation",
                                      "--student-engine", "slayer"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "student engine: slayer" in result.stdout
    assert "teacher targets: frozen TorchScript graph" in result.stdout
    with open(run_dir / "config.toml", "rb") as fh:
        assert tomli.load(fh)["student"]["engine"] == "slayer"
    bad = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "--student-engine", "warp"])
    assert bad.exit_code != 0
