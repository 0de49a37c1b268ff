"""The fast Lava engine (vectorised Conv process model) gives exactly the spikes and op counts
of Lava's own models, on a CIFAR-shape ensemble with strided convolutions (every layer, active
subsets, per-sample masks, the in-graph cascade) and on a digits export; its torch parity holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.errors import SimulationError

T, BITS, IN_CHW, SIZES, CLASSES = 3, 4, (3, 12, 12), (5, 4), 3


def _cifar_shape_student(out_features: int, seed: int):  # noqa: ANN202
    from sne_loihi.students import StudentSpec, build_student
    from sne_loihi.students.spec import FLATTEN, conv, dense

    torch.manual_seed(seed)
    spec = StudentSpec(layers=(conv(4), conv(6, stride=2), conv(6, stride=2), FLATTEN, dense(out_features)),
                       in_shape=IN_CHW, out_features=out_features, time_steps=T, input_bits=BITS)
    return _wake(build_student(spec))


def _wake(student: torch.nn.Module) -> torch.nn.Module:
    """Untrained deeper layers stay silent at init: scale their weights so every layer fires."""
    with torch.no_grad():
        for name, param in student.named_parameters():
            if name.endswith("synapse.weight") and not name.startswith("blocks.0."):
                param.mul_(3.0)
    return student


@pytest.fixture(scope="module")
def cifar_export(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Two untrained 3-channel students (conv, conv s2, conv s2, dense), exported with the
    torch <-> Lava parity check on 4 samples (default engine: fast) and a cascade head."""
    from sne_loihi.ensemble.model import Ensemble
    from sne_loihi.export import CascadeHead, export_model

    model = Ensemble([_cifar_shape_student(f, seed) for seed, f in enumerate(SIZES)], CLASSES).eval()
    torch.manual_seed(7)
    head = torch.nn.Linear(sum(SIZES), CLASSES)
    with torch.no_grad():
        head.weight.mul_(8.0)
    x = torch.rand(5, *IN_CHW, generator=torch.Generator().manual_seed(1))
    out = tmp_path_factory.mktemp("fast") / "export"
    manifest = export_model(model, out, partition={"sizes": list(SIZES)}, in_shape_chw=IN_CHW,
                            class_names=["a", "b", "c"], config={}, x_verify_nchw=x, verify_samples=4, capacity=2,
                            cascade_head=CascadeHead.from_linear(head, [1, 0], source="test"))
    return model, out, x.numpy(), manifest


def _probe_all_layers(net_paths: list[Path], x_nt: np.ndarray, engine: str, capacity: int):  # noqa: ANN202
    from sne_loihi.sim import Backend, LavaGraph, LavaSchedule

    with LavaGraph(net_paths, input_bits=BITS, schedule=LavaSchedule(T, capacity), backend=Backend.CPU,
                   probe_layers=True, engine=engine) as graph:
        return graph.run(x_nt)


def test_fast_equals_reference_on_every_layer_of_strided_conv_students(cifar_export) -> None:
    from sne_loihi.sim import encode_images

    _, out, x, manifest = cifar_export
    assert manifest.parity is not None and manifest.parity.mismatches == 0  # torch == Lava (fast) at export
    x_nt = encode_images(x, T, BITS)
    paths = [out / s.file for s in manifest.students]
    fast = _probe_all_layers(paths, x_nt, "fast", capacity=3)  # 5 samples: runs of 3 and 2
    ref = _probe_all_layers(paths, x_nt, "reference", capacity=3)
    for k in range(len(SIZES)):
        assert len(fast.layer_spikes[k]) == 4
        for layer_fast, layer_ref in zip(fast.layer_spikes[k], ref.layer_spikes[k]):
            assert layer_ref.sum() > 0  # every layer fires: the comparison means something
            np.testing.assert_array_equal(layer_fast, layer_ref)
        np.testing.assert_array_equal(fast.ops_nl[k], ref.ops_nl[k])
        assert (ref.ops_nl[k] > 0).all()
    assert fast.compile_seconds > 0 and ref.compile_seconds > 0 and fast.seconds > 0


def test_fast_equals_reference_with_active_sets_masks_and_cascade(cifar_export) -> None:
    from sne_loihi.sim import Backend, EnsembleSimulator
    from sne_loihi.sim.evaluate import compare_with_torch

    model, out, x, _ = cifar_export
    mask = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    results = {}
    for engine in ("fast", "reference"):
        with EnsembleSimulator(out, backend=Backend.CPU, capacity=2, engine=engine) as sim:
            first = sim.run(x)
            runs = [first, sim.run(x, active=[1]), sim.run(x, active=[0, 1], mask_nk=mask)]
            runs += [sim.run_cascade(x, thr) for thr in (0.0, 0.7, 2.0)]
            assert sim.compilations == 1 and first.compile_seconds > 0 and runs[1].compile_seconds == 0
            assert all(r.samples_per_second > 0 for r in runs)
            if engine == "fast":
                check = compare_with_torch(model, x, np.zeros(len(x), dtype=int), first)
                assert check.spike_mismatches == 0 and check.op_mismatches == 0
        results[engine] = runs
    for fast, ref in zip(results["fast"], results["reference"]):
        for k in range(len(SIZES)):
            np.testing.assert_array_equal(fast.spikes_nft[k], ref.spikes_nft[k])
            np.testing.assert_array_equal(fast.ops_nl[k], ref.ops_nl[k])
        np.testing.assert_array_equal(fast.rates_nd, ref.rates_nd)
    assert results["reference"][0].spikes_nft[0].sum() > 0 and results["reference"][1].spikes_nft[0].sum() == 0
    for fast, ref in zip(results["fast"][3:], results["reference"][3:]):
        np.testing.assert_array_equal(fast.ran_nk, ref.ran_nk)
        assert fast.stages == ref.stages
    ran = [r.ran_nk.sum() for r in results["reference"][3:]]
    assert ran[0] == len(x) and ran[2] == 2 * len(x)  # thr 0: one student each; thr 2: both


def test_fast_equals_reference_on_a_digits_export(tmp_path: Path) -> None:
    from sne_loihi.config import StudentConfig
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.export import export_model
    from sne_loihi.partition import Partition
    from sne_loihi.sim import encode_images

    torch.manual_seed(0)
    partition = Partition.from_dict({"strategy": "fixed", "feature_dim": 8, "groups": [[0, 1, 2, 3], [4, 5, 6, 7]]})
    model = build_ensemble(StudentConfig(arch="digits_tiny", time_steps=T, input_bits=BITS), partition,
                           (1, 8, 8), 10).eval()
    for student in model.students:
        _wake(student)
    manifest = export_model(model, tmp_path / "export", partition=partition.to_dict(), in_shape_chw=(1, 8, 8),
                            class_names=[str(i) for i in range(10)], config={}, verify_samples=0)
    x_nt = encode_images(np.random.default_rng(2).random((4, 1, 8, 8)), T, BITS)
    paths = [tmp_path / "export" / s.file for s in manifest.students]
    fast = _probe_all_layers(paths, x_nt, "fast", capacity=4)
    ref = _probe_all_layers(paths, x_nt, "reference", capacity=4)
    for k in range(2):
        for layer_fast, layer_ref in zip(fast.layer_spikes[k], ref.layer_spikes[k]):
            np.testing.assert_array_equal(layer_fast, layer_ref)
        np.testing.assert_array_equal(fast.ops_nl[k], ref.ops_nl[k])
        assert fast.layer_spikes[k][0].sum() > 0 and fast.spikes_nft[k].sum() > 0


@pytest.mark.parametrize("case", [
    # X, Y, C, K, kernel, stride, padding, dilation, groups, message bits
    (8, 8, 1, 4, (3, 3), (2, 2), (1, 1), (1, 1), 1, 4),
    (9, 7, 4, 6, (3, 2), (2, 1), (1, 0), (2, 1), 2, 0),
    (6, 6, 3, 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, 8),
    (10, 10, 8, 8, (3, 3), (3, 2), (2, 1), (1, 2), 4, 0),
])
def test_conv_fixed_equals_lavas_reference_conv(case: tuple) -> None:
    """Shapes, strides, padding, dilation, groups; graded input and binary input given as
    values > 1 (Lava casts those to bool)."""
    from lava.proc.conv import utils

    from sne_loihi.sim.fast_models import conv_fixed

    x_, y_, c, k, kernel, stride, padding, dilation, groups, bits = case
    rng = np.random.default_rng(sum(case[:4]))
    w = (rng.integers(-128, 128, (k, *kernel, c // groups)) * 2).astype(np.int32)
    x = rng.integers(0, 2 ** bits if bits else 3, (x_, y_, c)).astype(np.int32)
    ref = utils.signed_clamp(utils.conv(x if bits else x.astype(bool), w, kernel, stride, padding, dilation, groups), 24)
    got = conv_fixed(x, w, np.array(stride), np.array(padding), np.array(dilation), groups, bits)
    assert got.dtype == np.int32 and np.abs(ref).max() > 0
    np.testing.assert_array_equal(got, ref)


def test_conv_fixed_wraps_at_24_bits_like_lava() -> None:
    from lava.proc.conv import utils

    from sne_loihi.sim.fast_models import conv_fixed

    w = np.full((2, 3, 3, 64), 255, np.int32)
    x = np.full((5, 5, 64), 200, np.int32)  # 255 * 200 * 576 > 2**23: wraps
    ref = utils.signed_clamp(utils.conv(x, w, (3, 3), (1, 1), (1, 1), (1, 1), 1), 24)
    got = conv_fixed(x, w, np.array((1, 1)), np.array((1, 1)), np.array((1, 1)), 1, 8)
    assert ref.min() < 0  # the wrap happened
    np.testing.assert_array_equal(got, ref)


def test_unknown_engine_is_a_one_line_error() -> None:
    from sne_loihi.sim import Backend, LavaGraph, LavaSchedule, resolve_engine

    assert resolve_engine("reference").value == "reference"
    with pytest.raises(SimulationError, match="unknown Lava engine 'gpu'; known: fast, reference") as exc:
        LavaGraph([Path("unused.net")], input_bits=0, schedule=LavaSchedule(1), backend=Backend.CPU, engine="gpu")
    assert "\n" not in str(exc.value)
