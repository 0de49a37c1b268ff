"""Lava simulation: spikes and op counts equal torch's, gate switching without rebuild, backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.errors import SimulationError

T, BITS, IN_CHW = 3, 4, (1, 8, 8)
NEURON = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}


class Spec:
    backend, time_steps, input_bits, in_shape = "slayer", T, BITS, IN_CHW

    def __init__(self, out_features: int) -> None:
        self.out_features = out_features

    def to_dict(self) -> dict:
        return {"out_features": self.out_features, "time_steps": T, "input_bits": BITS}


class TinyStudent(torch.nn.Module):
    """conv(stride 2) -> flatten -> dense SLAYER CUBA student with graded 4-bit input."""

    def __init__(self, out_features: int, seed: int) -> None:
        import lava.lib.dl.slayer as slayer

        super().__init__()
        torch.manual_seed(seed)
        self.spec = Spec(out_features)
        self.blocks = torch.nn.ModuleList([
            slayer.block.cuba.Conv(dict(NEURON, threshold=(2**BITS - 1) / 4), 1, 4, 3, stride=2, padding=1,
                                   weight_scale=2, delay_shift=False),
            slayer.block.cuba.Flatten(),
            slayer.block.cuba.Dense(NEURON, 64, out_features, weight_scale=2, delay_shift=False),
        ])

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        with torch.no_grad():
            for block in self.blocks:
                x = block(x)
                outs.append(x)
        return outs


def quantised_weight(block: torch.nn.Module) -> torch.Tensor:
    return block.synapse.pre_hook_fx(block.synapse.weight, descale=True)


def torch_ops(student: TinyStudent, x_nchwt: torch.Tensor) -> np.ndarray:
    """Per sample and weighted layer: sum over steps of non-zero inputs x non-zero fan-out."""
    conv, _, dense = student.blocks
    hidden = student.layer_outputs(x_nchwt)[0]
    wc = (quantised_weight(conv)[..., 0] != 0).float()
    xs = (x_nchwt != 0).float().permute(0, 4, 1, 2, 3).flatten(0, 1)  # N*T, C, H, W
    ops0 = torch.nn.functional.conv2d(xs, wc, stride=2, padding=1).reshape(len(x_nchwt), -1).sum(1)
    wd = (quantised_weight(dense).reshape(dense.synapse.weight.shape[0], -1) != 0).float()
    s = (hidden != 0).float().reshape(len(x_nchwt), -1, T)  # N, 64, T (torch flatten order)
    ops1 = torch.einsum("nit,oi->n", s, wd)
    return torch.stack([ops0, ops1], dim=1).round().long().numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[TinyStudent], torch.nn.Linear, Path]:
    from sne_loihi.io import sha256_file
    from sne_loihi.netx_format.manifest import MANIFEST_FILE, InputEncoding, Manifest, StudentEntry
    from sne_loihi.export.netx_write import write_student_hdf5
    from sne_loihi.io import atomic_write_json

    out = tmp_path_factory.mktemp("export")
    students = [TinyStudent(6, seed=0), TinyStudent(5, seed=1)]
    torch.manual_seed(3)
    head = torch.nn.Linear(11, 3)
    entries = []
    for i, s in enumerate(students):
        path = write_student_hdf5(s, out / f"student_{i}.net")
        entries.append(StudentEntry(path.name, sha256_file(path), s.spec.to_dict(), s.spec.out_features, 2))
    manifest = Manifest(entries, {"sizes": [6, 5]}, head.weight.double().tolist(), head.bias.double().tolist(),
                        InputEncoding(BITS, T, list(IN_CHW)), ["a", "b", "c"], {}, None)
    atomic_write_json(out / MANIFEST_FILE, manifest.to_dict())
    return students, head, out


@pytest.fixture(scope="module")
def simulator(exported):  # noqa: ANN001, ANN201
    from sne_loihi.sim import Backend, EnsembleSimulator

    sim = EnsembleSimulator(exported[2], backend=Backend.CPU, capacity=3)
    try:
        yield sim
    finally:
        sim.close()


def test_lava_spikes_ops_and_head_match_torch_then_gate_switches_without_rebuild(exported, simulator) -> None:
    from sne_loihi.sim import encode_images

    students, head, _ = exported
    x_nchw = torch.rand(5, *IN_CHW, generator=torch.Generator().manual_seed(5)).numpy()  # 5 samples, 2 runs of 3
    x_nchwt = torch.as_tensor(encode_images(x_nchw, T, BITS), dtype=torch.float32)
    res = simulator.run(x_nchw)
    runtime = simulator.graph.runtime
    assert res.active == (0, 1) and res.backend_used.value == "cpu" and res.samples_per_second > 0
    rates = []
    for i, s in enumerate(students):
        ref = s.layer_outputs(x_nchwt)[-1].numpy()
        assert ref.sum() > 0
        np.testing.assert_array_equal(res.spikes_nft[i], ref)
        np.testing.assert_array_equal(res.ops_nl[i], torch_ops(s, x_nchwt))
        rates.append(ref.mean(-1))
    logits = head(torch.as_tensor(np.concatenate(rates, 1), dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(res.logits_nc, logits, rtol=1e-5, atol=1e-5)

    only_1 = simulator.run(x_nchw, active=[1])
    assert only_1.ops_nl[0].sum() == 0 and only_1.spikes_nft[0].sum() == 0
    np.testing.assert_array_equal(only_1.ops_nl[1], res.ops_nl[1])
    assert only_1.total_ops_per_sample() < res.total_ops_per_sample()
    assert simulator.graph.runtime is runtime and simulator.compilations == 1

    with pytest.raises(SimulationError, match="out of range"):
        simulator.set_active([0, 2])
    with pytest.raises(SimulationError, match="out of range"):
        simulator.run(x_nchw, active=[-1])
    with pytest.raises(SimulationError, match="names no student"):
        simulator.run(x_nchw, active=[])


def test_simulate_standalone_netx_file_with_binary_input(tmp_path: Path) -> None:
    """A user's netx file (dense 20 -> 7, binary spikes) as a one-member ensemble."""
    import h5py
    import lava.lib.dl.slayer as slayer

    from sne_loihi.sim import Backend, simulate_network

    torch.manual_seed(0)
    dense = slayer.block.cuba.Dense(NEURON, 20, 7, weight_scale=4, delay_shift=False)
    spikes_in = (torch.rand(4, 20, 5) < 0.4).float()
    with torch.no_grad():
        ref = dense(spikes_in).numpy()
    path = tmp_path / "user.net"
    with h5py.File(path, "w") as fh:
        inp = fh.create_group("layer/0")
        inp.create_dataset("type", (1,), "S10", [b"input"])
        inp.create_dataset("shape", data=np.array([20]))
        dense.export_hdf5(fh.create_group("layer/1"))
    res = simulate_network(path, spikes_in.numpy().astype(np.int32), backend=Backend.CPU, capacity=4)
    assert ref.sum() > 0 and res.predictions is None
    np.testing.assert_array_equal(res.spikes_nft[0], ref)
    w = (quantised_weight(dense).reshape(7, 20) != 0).float()
    np.testing.assert_array_equal(res.ops_nl[0][:, 0], torch.einsum("nit,oi->n", spikes_in, w).long().numpy())


@pytest.mark.parametrize("installed", [False, True])
def test_backend_detection_and_loihi2_refusal(monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    from lava.utils import loihi

    from sne_loihi.sim import Backend, resolve_backend

    monkeypatch.setattr(loihi, "is_installed", lambda: installed)
    assert resolve_backend("auto") is (Backend.LOIHI2 if installed else Backend.CPU)
    assert resolve_backend(Backend.CPU) is Backend.CPU
    if installed:
        assert resolve_backend("loihi2") is Backend.LOIHI2
    else:
        with pytest.raises(SimulationError, match="lava-loihi") as exc:
            resolve_backend("loihi2")
        assert "\n" not in str(exc.value)
    with pytest.raises(SimulationError, match="unknown backend"):
        resolve_backend("gpu")
