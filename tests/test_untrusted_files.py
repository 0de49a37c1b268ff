"""Every file a user hands over is untrusted: netx networks, manifests, input arrays (configs
and labels: ``test_untrusted_config.py``).

Each crafted file must give one ``error:`` line (exit code != 0 on the CLI, no traceback),
refused before anything large is allocated where the file declares more than it holds.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from cli_checks import one_error_line
from crafted_netx import replace_dataset, set_weight, write_net, write_neuron
from sne_loihi.cli import app
from sne_loihi.errors import ExportError
from sne_loihi.netx_format import read_netx_network

runner = CliRunner()

# ---- 1. declared sizes and values ------------------------------------------------------------
VALUE_CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "weight 0.4 (netx truncates to 0)": (set_weight("3", (0, 0), 0.4), "layer/3 weight holds 0.4, not an integer"),
    "weight NaN": (set_weight("1", (0, 0, 0, 0), np.nan), "layer/1 weight holds nan"),
    "weight inf": (set_weight("3", (1, 1), np.inf), "layer/3 weight holds inf"),
    "conv weight 1e9 (int32 overflow)": (set_weight("1", (1, 0, 1, 1), 1e9), "layer/1 weight holds 1e+09, outside"),
    "dense weight 255 beside negatives (netx clips)": (set_weight("3", (2, 3), 255), "netx clips a dense layer"),
    "dense weight -300": (set_weight("3", (2, 3), -300), "layer/3 weight holds -300, outside"),
    "vThMant above 17 bits": (replace_dataset("layer/1/neuron/vThMant", 2 ** 17), "layer/1 neuron/vThMant holds 131072"),
    "vThMant wraps int32": (replace_dataset("layer/3/neuron/vThMant", 2 ** 40), "layer/3 neuron/vThMant holds"),
    "vThMant negative": (replace_dataset("layer/3/neuron/vThMant", -5), "layer/3 neuron/vThMant holds -5, outside 0..131071"),
    "vThMant non-integer": (replace_dataset("layer/3/neuron/vThMant", 16.5), "neuron/vThMant holds 16.5, not an integer"),
    "vThMant NaN": (replace_dataset("layer/3/neuron/vThMant", np.nan), "neuron/vThMant holds NaN"),
    "iDecay 5000": (replace_dataset("layer/1/neuron/iDecay", 5000), "layer/1 neuron/iDecay holds 5000, outside 0..4096"),
    "vDecay -1": (replace_dataset("layer/3/neuron/vDecay", -1), "layer/3 neuron/vDecay holds -1, outside 0..4096"),
    "refDelay 100": (replace_dataset("layer/3/neuron/refDelay", 100), "layer/3 neuron/refDelay holds 100, outside 0..63"),
    "refDelay 5 (Lava's LIF has no refractory period)": (replace_dataset("layer/1/neuron/refDelay", 5),
                                                          "layer/1 neuron/refDelay holds 5: Loihi 2 would hold"),
    "missing vThMant": (lambda fh: fh.__delitem__("layer/3/neuron/vThMant"), "layer/3 CUBA neuron has no neuron/vThMant"),
    "stride 1.5": (replace_dataset("layer/1/stride", np.array([1.5, 1.5])), "layer/1 stride holds 1.5, not an integer"),
    "groups 2 for 1 input channel": (replace_dataset("layer/1/groups", 2), "layer/1 groups 2 with weight"),
    "conv output size wrong": (replace_dataset("layer/1/shape", np.array([2, 3, 3])), "is not what the convolution gives"),
    "zero-size shape": (replace_dataset("layer/3/shape", np.array([0])), "layer/3 shape holds 0, outside"),
    "shape of 10**12 neurons": (replace_dataset("layer/0/shape", np.array([10 ** 4, 10 ** 4, 10 ** 4])),
                                "layer/0 shape [10000, 10000, 10000] declares 1,000,000,000,000 neurons"),
    "input transform weight 64.5": (lambda fh: fh["layer/0"].create_dataset("weight", data=64.5),
                                    "layer/0 input weight holds 64.5, not an integer"),
    "compound dataset": (replace_dataset("layer/3/neuron/vDecay", np.zeros(1, dtype=[("a", "i4"), ("b", "f4")])),
                         "layer/3/neuron/vDecay has type"),
}


@pytest.mark.parametrize("case", sorted(VALUE_CASES))
def test_values_netx_or_lava_would_change_are_refused(tmp_path: Path, case: str) -> None:
    mutate, needle = VALUE_CASES[case]
    path = write_net(tmp_path / "bad.net", mutate)
    with pytest.raises(ExportError) as info:
        read_netx_network(path)
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_the_well_formed_file_reads(tmp_path: Path) -> None:
    """The crafted cases differ from a file the reader accepts only by what they break."""
    net = read_netx_network(write_net(tmp_path / "good.net"))
    assert [layer.out_shape_xyz for layer in net.layers] == [(2, 2, 2), (3,)]


def _bomb(fh: h5py.File) -> None:
    del fh["layer/3/weight"]
    fh["layer/3"].create_dataset("weight", shape=(10 ** 9,), dtype=np.int8, chunks=(2 ** 20,), compression="gzip")


def test_a_small_file_declaring_a_huge_dataset_is_refused_unread(tmp_path: Path) -> None:
    path = write_net(tmp_path / "bomb.net", _bomb)
    assert path.stat().st_size < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(ExportError, match=r"layer/3/weight declares shape \[1000000000\] .* refused before reading"):
            read_netx_network(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, peak


# ---- 2. no file outside the one named -------------------------------------------------------
def _external_link(fh: h5py.File) -> None:
    other = Path(fh.filename).with_name("other.h5")
    with h5py.File(other, "w") as oh:
        oh.create_dataset("w", data=np.zeros((3, 8), dtype=np.float32))
    del fh["layer/3/weight"]
    fh["layer/3/weight"] = h5py.ExternalLink(other.name, "/w")


def _external_raw(fh: h5py.File) -> None:
    raw = Path(fh.filename).with_name("raw.bin")
    raw.write_bytes(np.zeros((3, 8), dtype=np.float32).tobytes())
    del fh["layer/3/weight"]
    fh["layer/3"].create_dataset("weight", shape=(3, 8), dtype=np.float32, external=[(str(raw), 0, 3 * 8 * 4)])


def _virtual(fh: h5py.File) -> None:
    other = Path(fh.filename).with_name("source.h5")
    with h5py.File(other, "w") as oh:
        oh.create_dataset("w", data=np.zeros((3, 8), dtype=np.float32))
    layout = h5py.VirtualLayout(shape=(3, 8), dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(other), "w", shape=(3, 8))
    del fh["layer/3/weight"]
    fh["layer/3"].create_virtual_dataset("weight", layout)


OUTSIDE_CASES = {
    "external link": (_external_link, "layer/3/weight is a link to another file (other.h5:/w)"),
    "external raw storage": (_external_raw, "layer/3/weight stores its data in a raw file outside the netx file"),
    "virtual dataset": (_virtual, "layer/3/weight is a virtual dataset"),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE_CASES))
def test_data_outside_the_named_file_is_refused(tmp_path: Path, case: str) -> None:
    mutate, needle = OUTSIDE_CASES[case]
    path = write_net(tmp_path / "bad.net", mutate)
    with pytest.raises(ExportError) as info:
        read_netx_network(path)
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("case", ["external link", "weight 0.4 (netx truncates to 0)", "bomb"])
def test_sne_simulate_refuses_a_crafted_network_in_one_line(tmp_path: Path, case: str) -> None:
    mutate, needle = {**OUTSIDE_CASES, **VALUE_CASES, "bomb": (_bomb, "refused before reading")}[case]
    path = write_net(tmp_path / "bad.net", mutate)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 1, 4, 4, 3), dtype=np.int64))
    result = runner.invoke(app, ["simulate", str(path), "--input", str(x)])
    one_error_line(result, needle)


# ---- 4. input arrays ------------------------------------------------------------------------
def _lying_npy(path: Path, shape: tuple[int, ...] = (10 ** 11,)) -> Path:
    """An .npy whose header claims ``shape`` of float32 but holds 16 bytes of data."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": shape})
        fh.write(b"\0" * 16)
    return path


def _object_npy(path: Path) -> Path:
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _lying_npz(path: Path) -> Path:
    """An .npz whose only member's header claims 10**11 elements."""
    import zipfile

    inner = _lying_npy(path.with_suffix(".tmp"))
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(inner, "x.npy")
    inner.unlink()
    return path


INPUT_CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "header of 10**11 elements": (_lying_npy, "x.npy", "declares shape [100000000000] of float32 (400,000,000,000 "
                                                       "bytes), which its 144-byte file does not hold"),
    "object dtype": (_object_npy, "x.npy", "holds object values; only numbers are read"),
    "empty .npy": (_empty, "x.npy", "is empty (0 bytes), not an .npy array"),
    "empty .npz": (_empty, "x.npz", "is empty (0 bytes), not an .npz archive"),
    "npz member header of 10**11 elements": (_lying_npz, "x.npz", "array 'x' declares shape [100000000000]"),
    "npz without the named key": (lambda p: np.savez(p, a=np.zeros(3)) or p, "x.npz", "has no array 'images' (it holds a)"),
    "not an array": (lambda p: p.write_bytes(b"PK\x03\x04 not a zip") and p, "x.npz", "is not a readable .npz archive"),
}


@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_crafted_input_arrays_are_one_line_before_any_allocation(tmp_path: Path, case: str) -> None:
    from sne_loihi.errors import SimulationError
    from sne_loihi.sim.stage import load_user_images

    make, name, needle = INPUT_CASES[case]
    path = make(tmp_path / name)
    given = Path(f"{path}:images") if "named key" in case else path
    tracemalloc.start()
    try:
        with pytest.raises(SimulationError) as info:
            load_user_images(given, (1, 8, 8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert peak < 16 * 2 ** 20, peak


@pytest.mark.parametrize("case", ["header of 10**11 elements", "object dtype", "empty .npy"])
def test_sne_simulate_single_network_refuses_crafted_input_in_one_line(tmp_path: Path, case: str) -> None:
    make, name, needle = INPUT_CASES[case]
    path = make(tmp_path / name)
    result = runner.invoke(app, ["simulate", str(write_net(tmp_path / "good.net")), "--input", str(path)])
    one_error_line(result, needle.split(" (")[0] if case.startswith("header") else needle)


def test_a_single_network_refuses_an_npz_input_in_one_line(tmp_path: Path) -> None:
    x = tmp_path / "x.npz"
    np.savez(x, x=np.zeros((2, 1, 4, 4, 3), dtype=np.int64))
    result = runner.invoke(app, ["simulate", str(write_net(tmp_path / "good.net")), "--input", str(x)])
    one_error_line(result, "expected an .npy array, got an .npz archive")


def test_an_npz_input_is_read_as_its_only_array_or_a_named_key(tmp_path: Path) -> None:
    from sne_loihi.sim.stage import load_user_images

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    np.savez(tmp_path / "one.npz", anything=images)
    np.savez_compressed(tmp_path / "two.npz", images=images, labels=np.arange(3))
    want = load_user_images(tmp_path / "x.npy", (1, 8, 8))
    assert want.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(load_user_images(tmp_path / "one.npz", (1, 8, 8)), want)
    np.testing.assert_array_equal(load_user_images(Path(f"{tmp_path / 'two.npz'}:images"), (1, 8, 8)), want)


def test_sne_simulate_export_runs_an_npz_key_and_refuses_a_lying_npy(tiny_run: Path, tmp_path: Path) -> None:
    import json

    from sne_loihi.run import Run

    x_nchw = Run(tiny_run).data().x_test_nchw[:3].numpy()
    np.savez_compressed(tmp_path / "mine.npz", images=(x_nchw * 255).round().astype(np.uint8), labels=np.arange(3))
    out = tmp_path / "pred.json"
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--input", f"{tmp_path / 'mine.npz'}:images",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.stderr + result.stdout
    (ev,) = json.loads(out.read_text())["evaluations"]
    assert ev["samples"] == 3 and len(ev["predictions"]) == 3
    assert ev["torch"]["spike_mismatches"] == 0 and ev["torch"]["op_mismatches"] == 0
    shape = tuple(json.loads((tiny_run / "export" / "manifest.json").read_text())["input"]["shape_chw"])
    lying = _lying_npy(tmp_path / "lying.npy", (10 ** 11, *shape))
    one_error_line(runner.invoke(app, ["simulate", str(tiny_run / "export"), "--input", str(lying)]),
                   "which its 144-byte file does not hold")


# ---- 3. manifests, partition.json, lava.json --------------------------------------------------
@pytest.fixture()
def export_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny run's export folder."""
    import shutil

    return Path(shutil.copytree(tiny_run / "export", tmp_path / "export"))


def _edit(export: Path, change: Callable[[dict[str, Any]], None]) -> None:
    import json

    d = json.loads((export / "manifest.json").read_text())
    change(d)
    (export / "manifest.json").write_text(json.dumps(d))


def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


def _spec_without_in_shape(d: dict[str, Any]) -> None:
    for s in d["students"]:
        del s["spec"]["in_shape"]
    d["input"]["shape_chw"] = [8, 8, 1]


MANIFEST_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "format_version a string": (_set("format_version", value="1"), "manifest format_version must be a JSON int"),
    "format_version huge": (_set("format_version", value=10 ** 30), "format_version must be an integer in 1..1000"),
    "time_steps 10**9": (_set("input", "time_steps", value=10 ** 9), "input.time_steps must be an integer in 1..1024"),
    "input bits 99": (_set("input", "bits", value=99), "input.bits must be an integer in 1..8"),
    "shape_chw of 2": (_set("input", "shape_chw", value=[1, 8]), "input.shape_chw must be a list of 3 positive integers"),
    "shape_chw negative": (_set("input", "shape_chw", value=[1, -8, 8]), "input.shape_chw must be a list of 3 positive"),
    "sha256 short": (_set("students", 0, "sha256", value="abc"), "student 0 sha256 must be 64 lowercase hex digits"),
    "student file twice": (lambda d: d["students"].__setitem__(1, dict(d["students"][0])),
                           "student 1 file 'student_0.net' is listed twice"),
    "no students": (_set("students", value=[]), "manifest must list 1..1024 students"),
    "head NaN": (lambda d: d["head_weight"][0].__setitem__(0, float("nan")), "head weight row 0 holds the non-finite value nan"),
    "out_features a float": (_set("students", 0, "out_features", value=16.0), "student 0 out_features must be an integer"),
    "time steps the specs contradict": (_set("input", "time_steps", value=5),
                                        "spec time_steps 2 contradicts the manifest's input.time_steps 5"),
    "input bits the specs contradict": (_set("input", "bits", value=8),
                                        "spec input_bits 4 contradicts the manifest's input.bits 8"),
    "input shape the specs contradict": (_set("input", "shape_chw", value=[8, 8, 1]),
                                         "spec in_shape [1, 8, 8] contradicts the manifest's input.shape_chw [8, 8, 1]"),
    "input shape the netx file contradicts": (_spec_without_in_shape, "its first (conv) layer takes [8, 8, 1] (x, y, f), "
                                                                      "the manifest's input.shape_chw [8, 8, 1] is"),
    "partition groups a number": (_set("partition", "groups", value=5),
                                  "manifest partition groups must be a list of lists of feature indices, got 5"),
    "partition sizes of null": (_set("partition", "sizes", value=[None, None]),
                                "manifest partition sizes must be a list of integers, got [None, None]"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_schema_and_claims_are_checked_before_use(export_copy: Path, case: str) -> None:
    from sne_loihi.netx_format import load_manifest

    change, needle = MANIFEST_CASES[case]
    _edit(export_copy, change)
    with pytest.raises(ExportError) as info:
        load_manifest(export_copy)
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_the_untouched_export_loads(export_copy: Path) -> None:
    from sne_loihi.netx_format import load_manifest

    import json

    want = json.loads((export_copy / "manifest.json").read_text())
    m = load_manifest(export_copy)
    assert [s.file for s in m.students] == [s["file"] for s in want["students"]]
    assert m.input.time_steps == want["input"]["time_steps"] == 2


def _deep(path: Path) -> None:
    path.write_text("[" * 200_000 + "]" * 200_000)


@pytest.mark.parametrize("damage", ["deep", "not utf-8", "huge"])
def test_sne_simulate_refuses_a_damaged_manifest_in_one_line(export_copy: Path, damage: str) -> None:
    path = export_copy / "manifest.json"
    if damage == "deep":
        _deep(path)
        needle = "it nests 200,000 levels deep, more than the 64 accepted"
    elif damage == "not utf-8":
        path.write_bytes(b'{"students": "\xff\xfe"}')
        needle = "not UTF-8 text (byte 14)"
    else:
        with open(path, "wb") as fh:  # sparse: 65 MiB on paper, nothing read
            fh.truncate(65 * 2 ** 20)
        needle = "68,157,440 bytes, more than the 67,108,864 read"
    result = runner.invoke(app, ["simulate", str(export_copy)])
    one_error_line(result, f"cannot read manifest {path}: {needle}")


def test_sne_simulate_refuses_a_schema_violation_in_one_line(export_copy: Path) -> None:
    _edit(export_copy, _set("input", "time_steps", value=10 ** 9))
    result = runner.invoke(app, ["simulate", str(export_copy)])
    one_error_line(result, "input.time_steps must be an integer in 1..1024, got 1000000000")


def test_deep_partition_and_lava_files_are_one_line(tmp_path: Path) -> None:
    from sne_loihi.errors import CheckpointError
    from sne_loihi.partition.base import Partition
    from sne_loihi.sim.stage import load_lava_section

    _deep(tmp_path / "partition.json")
    with pytest.raises(CheckpointError, match="cannot read partition file .* it nests 200,000 levels deep") as info:
        Partition.load(tmp_path / "partition.json")
    assert "\n" not in str(info.value)
    _deep(tmp_path / "lava.json")
    section, data = load_lava_section(tmp_path)
    assert "it nests 200,000 levels deep" in section and data == {}


def test_a_json_integer_beyond_the_digit_limit_is_one_line(tmp_path: Path) -> None:
    """Python refuses to parse an integer of more than 4,300 digits with a plain ValueError
    (not a JSONDecodeError); it once escaped the bounded reader as a traceback."""
    from sne_loihi.errors import CheckpointError
    from sne_loihi.partition.base import Partition

    path = tmp_path / "partition.json"
    path.write_text('{"feature_dim": ' + "9" * 5000 + "}")
    with pytest.raises(CheckpointError, match=r"cannot read partition file .*: not valid JSON \(") as info:
        Partition.load(path)
    assert "\n" not in str(info.value)


# ---- 6. the Lava graph: its size before it is built, a failing process ------------------------
def test_the_graph_estimate_counts_what_lava_stores(tmp_path: Path) -> None:
    from sne_loihi.sim.graph_size import BYTES_PER_NEURON, estimate_graph

    net = read_netx_network(write_net(tmp_path / "good.net"))
    one, four = estimate_graph([net], 1, 3), estimate_graph([net], 4, 3)
    assert one.neurons == 8 + 3  # conv [2, 2, 2] + dense [3]; a plain input layer has no neurons
    with h5py.File(tmp_path / "good.net") as fh:
        kernel = fh["layer/1/weight"][()]
    assert one.synapses == kernel.size + 8 * 3  # Lava stores the whole kernel, zeros included

    def one_weight(fh: h5py.File) -> None:  # a kernel of zeros but one: stored and gathered whole all the same
        w = np.zeros_like(fh["layer/1/weight"][()])
        w[0, 0, 0, 0] = 2
        fh["layer/1/weight"][...] = w

    sparse = read_netx_network(write_net(tmp_path / "sparse.net", one_weight))
    assert (sparse.layers[0].num_weights, sparse.layers[0].stored_weights) == (1, kernel.size)
    assert estimate_graph([sparse], 1, 3).synapses == one.synapses
    assert (one.steps, four.steps) == (3 + 3, 12 + 3)  # capacity * T plus a flush of T (depth 3)
    assert four.bytes > one.bytes > BYTES_PER_NEURON * one.neurons


def test_sne_simulate_refuses_a_graph_larger_than_the_memory_available(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sne_loihi.sim import graph_size

    monkeypatch.setattr(graph_size, "available_memory", lambda: 1024)  # this graph needs a few KB
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 1, 4, 4, 3), dtype=np.int64))
    result = runner.invoke(app, ["simulate", str(write_net(tmp_path / "good.net")), "--input", str(x)])
    one_error_line(result, "the Lava graph (11 neurons, ")
    assert "more than the 0.0 GiB available; use a smaller --capacity" in result.stderr


def test_sne_simulate_export_checks_the_graph_size_first(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sne_loihi.sim import graph_size

    monkeypatch.setattr(graph_size, "available_memory", lambda: 2 ** 16)
    result = runner.invoke(app, ["simulate", str(tiny_run / "export")])
    one_error_line(result, f"{tiny_run / 'export'}: the Lava graph (")


def test_a_lava_process_that_raises_ends_the_run_in_one_line(tmp_path: Path) -> None:
    """A conv layer whose sums leave int32 (4096 channels x 3x3 kernel of 254 x 8-bit input 255):
    the fast Conv model raises inside its Lava process. Lava's own stop() would then wait
    forever on the failed processes; the run must end with one line, in seconds."""
    import subprocess
    import sys
    import time

    channels = 4096
    path = tmp_path / "wide.net"
    with h5py.File(path, "w") as fh:
        layer = fh.create_group("layer")
        g = layer.create_group("0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array([channels, 3, 3]))
        g = layer.create_group("1")
        g.create_dataset("type", (1,), "S10", [b"conv"])
        g.create_dataset("shape", data=np.array([1, 1, 1]))
        g.create_dataset("weight", data=np.full((1, channels, 3, 3), 254.0, np.float32))
        for name, value in (("stride", [1, 1]), ("padding", [0, 0]), ("dilation", [1, 1]), ("groups", 1)):
            g.create_dataset(name, data=np.array(value))
        write_neuron(g)
    x = tmp_path / "x.npy"
    np.save(x, np.full((1, channels, 3, 3, 2), 255, dtype=np.int64))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sne_loihi", "simulate", str(path), "--input", str(x), "--input-bits",
                           "8"], capture_output=True, text=True, timeout=240)
    assert time.monotonic() - t0 < 240
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Lava stopped while running"), proc.stderr
    assert "a Conv synapse sum left the int32 range" in lines[0] and "Traceback" not in proc.stderr
