"""Export to netx HDF5: round trip, Lava parity, immutability, refusals, corrupt files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.errors import ExportError, ParityError

T, BITS, IN_CHW = 3, 4, (1, 8, 8)


@dataclass
class TinySpec:
    """The fields of a StudentSpec the exporter reads."""

    out_features: int
    neuron_library: str = "slayer"
    time_steps: int = T
    input_bits: int = BITS
    in_shape: tuple[int, int, int] = IN_CHW

    def to_dict(self) -> dict:
        return asdict(self)


class TinyStudent(torch.nn.Module):
    """conv(stride 2) -> flatten -> dense, SLAYER CUBA blocks, weight norm on (export must copy)."""

    def __init__(self, out_features: int, seed: int) -> None:
        import lava.lib.dl.slayer as slayer

        super().__init__()
        torch.manual_seed(seed)
        neuron = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
        first = dict(neuron, threshold=(2**BITS - 1) / 4)  # graded 4-bit input
        self.spec = TinySpec(out_features)
        self.blocks = torch.nn.ModuleList([
            slayer.block.cuba.Conv(first, 1, 4, 3, stride=2, padding=1, weight_scale=2, weight_norm=True, delay_shift=False),
            slayer.block.cuba.Flatten(),
            slayer.block.cuba.Dense(neuron, 64, out_features, weight_scale=2, weight_norm=True, delay_shift=False),
        ])

    def forward(self, x_nchwt: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x_nchwt = block(x_nchwt)
        return x_nchwt

    def rates(self, spikes_nft: torch.Tensor) -> torch.Tensor:
        return spikes_nft.mean(dim=-1)


def encode(x_nchw: torch.Tensor) -> torch.Tensor:
    """The documented student encoding (architecture.md): 4-bit integers repeated T times."""
    return torch.round(x_nchw * (2**BITS - 1)).unsqueeze(-1).repeat(1, 1, 1, 1, T)


class TinyEnsemble(torch.nn.Module):
    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.students = torch.nn.ModuleList([TinyStudent(f, seed=i) for i, f in enumerate(sizes)])
        self.head = torch.nn.Linear(sum(sizes), 3)


def tiny_images(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *IN_CHW, generator=g)


def train_few_steps(model: TinyEnsemble, steps: int = 3) -> None:
    """A few SGD steps so the weights are not the initialisation."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = encode(tiny_images(8, seed=7)), torch.arange(8) % 3
    for _ in range(steps):
        rates = torch.cat([s.rates(s(x)) for s in model.students], dim=1)
        loss = torch.nn.functional.cross_entropy(model.head(rates), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(autouse=True)
def _graded_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """TinySpec students are encoded like SLAYER students (the exporter calls encode_for)."""
    from sne_loihi.config import NeuronLibrary
    from sne_loihi.students import base as student_base

    monkeypatch.setitem(student_base.ENCODERS, NeuronLibrary.SLAYER, lambda x, spec: encode(x))


def export_tiny(model: TinyEnsemble, out: Path, **kw: object):
    from sne_loihi.export import export_model

    sizes = [s.spec.out_features for s in model.students]
    kw.setdefault("verify_samples", 5)
    return export_model(model, out, partition={"sizes": sizes}, in_shape_chw=IN_CHW, class_names=["a", "b", "c"],
                        config={"note": "test"}, x_verify_nchw=tiny_images(5), capacity=4, **kw)


@pytest.fixture(scope="module")
def trained() -> TinyEnsemble:
    model = TinyEnsemble([6, 5])
    train_few_steps(model)
    return model


def test_export_round_trip_parity_and_no_mutation(trained: TinyEnsemble, tmp_path: Path) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    manifest = export_tiny(trained, tmp_path / "export")
    after = trained.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert manifest.parity is not None and manifest.parity.samples == 5 and manifest.parity.mismatches == 0
    from sne_loihi.export import torch_layer_spikes

    for student in trained.students:  # parity was checked on layers that actually spike
        assert all(a.sum() > 0 for a in torch_layer_spikes(student, encode(tiny_images(5))))
    assert [s.file for s in manifest.students] == ["student_0.net", "student_1.net"]
    assert [s.num_layers for s in manifest.students] == [2, 2]
    w, b = manifest.head_arrays()
    np.testing.assert_allclose(w, trained.head.weight.detach().double().numpy())
    np.testing.assert_allclose(b, trained.head.bias.detach().double().numpy())
    assert manifest.input.bits == BITS and manifest.input.time_steps == T
    from sne_loihi.export import load_manifest

    assert load_manifest(tmp_path / "export").to_dict() == manifest.to_dict()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_parity_check_catches_a_changed_network(trained: TinyEnsemble, tmp_path: Path) -> None:
    """The check is not vacuous: a torch model that differs from the file fails it."""
    import copy

    from sne_loihi.export import check_parity, write_student_hdf5

    path = write_student_hdf5(trained.students[0], tmp_path / "s.net")
    changed = copy.deepcopy(trained.students[0])
    with torch.no_grad():
        changed.blocks[2].synapse.weight_g.mul_(3.0)  # only the dense (second weighted) layer
    with pytest.raises(ParityError, match=r"student 0 layer 1: .* first at step \d"):
        check_parity([changed], [path], encode(tiny_images(4)), BITS, capacity=4)


def test_refuses_to_overwrite_and_keeps_old_export(trained: TinyEnsemble, tmp_path: Path) -> None:
    out = tmp_path / "export"
    first = export_tiny(trained, out, verify_samples=0)
    assert first.parity is None
    with pytest.raises(ExportError, match="already holds an export"):
        export_tiny(trained, out, verify_samples=0)
    assert (out / "manifest.json").is_file()
    again = export_tiny(trained, out, verify_samples=0, overwrite=True)
    assert again.students[0].sha256 == first.students[0].sha256


def test_refuses_spikingjelly_and_missing_verification_data(trained: TinyEnsemble, tmp_path: Path) -> None:
    from sne_loihi.export import export_model, write_student_hdf5

    sj = TinyStudent(4, seed=0)
    sj.spec.neuron_library = "spikingjelly"
    with pytest.raises(ExportError, match="only SLAYER students"):
        write_student_hdf5(sj, tmp_path / "x.net")
    with pytest.raises(ExportError, match="needs samples"):
        export_model(trained, tmp_path / "e", partition={}, in_shape_chw=IN_CHW, class_names=[], config={},
                     verify_samples=3)
    assert not (tmp_path / "e").exists()


@pytest.fixture()
def export_dir(trained: TinyEnsemble, tmp_path: Path) -> Path:
    export_tiny(trained, tmp_path / "export", verify_samples=0)
    return tmp_path / "export"


def _rewrite_manifest(directory: Path, **changes: object) -> None:
    d = json.loads((directory / "manifest.json").read_text())
    d.update(changes)
    (directory / "manifest.json").write_text(json.dumps(d))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_network_file_is_a_one_line_export_error(export_dir: Path, damage: str) -> None:
    from sne_loihi.export import load_manifest, read_netx_layers, sha256_file

    net = export_dir / "student_1.net"
    data = net.read_bytes()
    if damage == "missing":
        net.unlink()
    else:
        net.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not hdf5" * 100)
        with pytest.raises(ExportError, match="not a readable netx HDF5 file") as exc:
            read_netx_layers(net)
        assert "\n" not in str(exc.value)
        # also with a manifest whose hash matches the damaged file: the HDF5 check must catch it
        d = json.loads((export_dir / "manifest.json").read_text())
        d["students"][1]["sha256"] = sha256_file(net)
        (export_dir / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ExportError) as exc:
        load_manifest(export_dir)
    assert "\n" not in str(exc.value)
    assert ("missing" in str(exc.value)) if damage == "missing" else ("not a readable" in str(exc.value))


def test_changed_file_and_inconsistent_manifest_are_rejected(export_dir: Path) -> None:
    import h5py

    from sne_loihi.export import load_manifest

    original = (export_dir / "manifest.json").read_text()
    _rewrite_manifest(export_dir, head_weight=[[0.0] * 4] * 3)
    with pytest.raises(ExportError, match="head weight"):
        load_manifest(export_dir)
    (export_dir / "manifest.json").write_text(original)
    _rewrite_manifest(export_dir, partition={"sizes": [5, 6]})
    with pytest.raises(ExportError, match="partition sizes"):
        load_manifest(export_dir)
    (export_dir / "manifest.json").write_text(original)
    with h5py.File(export_dir / "student_0.net", "a") as fh:  # a valid HDF5 file, edited after export
        fh["layer/3/weight"][0, 0] = 2.0
    with pytest.raises(ExportError, match="sha256"):
        load_manifest(export_dir)
    (export_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ExportError, match="not valid JSON"):
        load_manifest(export_dir)
