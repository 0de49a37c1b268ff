"""Loihi 2 readiness: the export's report, the graph plan (adapters, latency), the loihi2 run config."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sne_loihi.errors import ExportError, SimulationError


@pytest.fixture(scope="module")
def export_dir(tiny_run: Path) -> Path:
    return tiny_run / "export"


@pytest.fixture(scope="module")
def networks(export_dir: Path) -> list:
    from sne_loihi.export import load_manifest, read_netx_network

    return [read_netx_network(p) for p in load_manifest(export_dir).net_paths()]


def test_export_writes_the_readiness_report(export_dir: Path) -> None:
    from sne_loihi.export import load_manifest

    manifest = load_manifest(export_dir)
    report = manifest.loihi2
    assert report is not None and (export_dir / "loihi2.md").is_file()
    layers = report["layers"]
    assert [(f["student"], f["layer"]) for f in layers] == [
        (i, j) for i, s in enumerate(manifest.students) for j in range(s.num_layers)]
    assert report["measured_samples"] == manifest.parity.samples > 0
    for f in layers:  # the worst case bounds what the parity samples reached
        assert 0 <= f["measured_u"] <= f["worst_u"] and 0 <= f["measured_v"] <= f["worst_v"]
        assert f["layer"] > 0 or f["measured_u"] > 0  # the graded input drives every first layer
        assert f["weights_fit"] and f["neurons"] > 0 and f["synapses"] >= f["unique_weights"] > 0
        assert f["fan_in_max"] > 0 and f["fan_out_max"] > 0 and f["cores_dense"] >= f["cores_shared"] >= 1
    statuses = {r["status"] for r in report["rows"]}
    assert statuses <= {"pass", "warn", "fail"}
    assert all(r["basis"] in ("verified", "assumed") and r["source"] and r["limit"] for r in report["rows"])
    assert sum(report["counts"].values()) == len(report["rows"])
    tapped, hardware = report["plans"]["tapped"], report["plans"]["hardware"]
    assert tapped["input_adapters"] == hardware["input_adapters"] == len(manifest.students)
    # the tapped reference graph sends every hidden layer to the host; the hardware-shaped one only the outputs
    assert hardware["values_to_host_per_step"] == sum(s.out_features for s in manifest.students)
    hidden = sum(f["neurons"] for f in layers if f["layer"] < manifest.students[f["student"]].num_layers - 1)
    assert tapped["values_to_host_per_step"] == hardware["values_to_host_per_step"] + hidden
    hidden_row = [r for r in report["rows"] if r["check"].startswith("hidden-layer values")]
    assert [r["status"] for r in hidden_row] == ["pass"] and hidden_row[0]["value"].startswith("0 ")
    text = (export_dir / "loihi2.md").read_text()
    for section in ("## Limits", "## Layers", "## Checks", "## Core estimate", "## Host <-> chip", "## Placement",
                    "## Only hardware can check"):
        assert section in text
    assert "gate" in json.dumps(tapped["placement"]) and "net0.layer0" in tapped["placement"][
        "Loihi 2 neuro-cores (netx block)"]


def test_lif_recursion_reaches_its_worst_case_bound() -> None:
    """The bound is the recursion itself at constant maximal drive (no spike), and a spike resets v."""
    from sne_loihi.sim.readiness import lif_run, lif_state_bound

    drive, du, dv, steps = 37, 1024, 123, 5
    spikes, top_u, top_v = lif_run(np.full((3, steps), drive), vth=2**17 - 1, du=du, dv=dv)
    assert not spikes.any() and (top_u, top_v) == lif_state_bound(drive, du, dv, steps)
    spikes, _, top_v_low = lif_run(np.full((1, steps), drive), vth=drive, du=du, dv=dv)
    assert spikes.any() and top_v_low < top_v


def test_weight_encoding_is_checked_against_lavas_weight_utils() -> None:
    from sne_loihi.sim.readiness import weight_encoding

    even = np.array([[-256, -6, 0, 4], [2, 254, -2, 0]])
    assert weight_encoding("conv", even) == (8, 0, True)
    bits, exponent, fits = weight_encoding("dense", even // 32 * 2)  # small weights: fewer bits, negative exponent
    assert fits and bits < 8 and exponent < 0
    assert weight_encoding("conv", np.array([[3, -5, 255]]))[2] is False  # odd: MIXED 8 bits drops the last bit


def test_rows_flag_state_and_weight_problems(export_dir: Path) -> None:
    from sne_loihi.export import load_manifest
    from sne_loihi.sim.loihi2_limits import Status
    from sne_loihi.sim.readiness import LayerFacts, layer_rows

    facts = LayerFacts(**load_manifest(export_dir).loihi2["layers"][0])
    by = {r.check.split(" (")[0]: r.status for r in layer_rows(facts, 8)}
    assert set(by.values()) == {Status.PASS}
    big = 2**23
    bad = {r.check.split(" (")[0]: r.status for r in layer_rows(
        replace(facts, worst_u=big, measured_v=big, weights_fit=False, du=0), 8)}
    assert bad["worst-case |u| / |v|"] is Status.WARN and bad["measured |u| / |v|"] is Status.FAIL
    assert bad["weights on Lava's grid at netx's bits/exponent"] is Status.FAIL and bad["decays du / dv"] is Status.FAIL
    no_memory = {r.check.split(" (")[0]: r.status for r in layer_rows(replace(facts, du=4096), 8)}
    assert no_memory["decays du / dv"] is Status.PASS  # netx's register du = iDecay - 1 = 4095
    unmeasured = {r.check: r.status for r in layer_rows(replace(facts, measured_u=None, measured_v=None), 8)}
    assert unmeasured["measured |u| / |v|"] is Status.WARN


def test_graph_plan_inserts_adapters_and_shifts_the_timing(networks: list) -> None:
    from sne_loihi.sim.graph_plan import AdapterLatency, Layout, Placement, plan_graph

    k, depths = len(networks), [len(n.layers) for n in networks]
    cpu = plan_graph(networks, reset_interval=2, decision=True)
    assert not cpu.adapters and cpu.count("PyToNxAdapter") == cpu.count("NxToPyAdapter") == 0
    assert cpu.reset_offsets == [1] * k and cpu.readout_delays == depths
    assert cpu.tap_delays == [list(range(d)) for d in depths]
    hw = plan_graph(networks, adapters=True, latency=AdapterLatency(2, 3), reset_interval=2, decision=True)
    assert hw.count("PyToNxAdapter") == k
    assert hw.count("NxToPyAdapter") == sum(depths)  # every hidden layer + the output (shared by readout, decision)
    assert hw.reset_offsets == [1 + 2] * k and hw.readout_delays == [d + 5 for d in depths]
    assert hw.tap_delays == [[0] + [j + 5 for j in range(1, d)] for d in depths]
    place = {n.name: n.placement for n in hw.nodes}
    for e in hw.edges:  # every host<->chip connection runs through an adapter
        assert {place[e.src], place[e.dst]} != {Placement.HOST, Placement.CHIP}
    target = plan_graph(networks, layout=Layout.HARDWARE, adapters=True, reset_interval=2)
    assert target.count("NxToPyAdapter") == k and target.count("OpCounter") == 0 and target.count("Gate") == 0
    assert target.values_per_step("to_chip") == sum(int(np.prod(n.input_shape_xyz)) for n in networks)


def test_loihi2_run_config_pins_the_fixed_point_ring_buffers() -> None:
    from lava.magma.core.run_configs import Loihi2HwCfg
    from lava.proc.io import sink, source

    from sne_loihi.sim.backend import Backend, run_config

    cfg = run_config(Backend.LOIHI2)
    assert isinstance(cfg, Loihi2HwCfg)
    assert cfg.exception_proc_model_map == {source.RingBuffer: source.PySendModelFixed,
                                            sink.RingBuffer: sink.PyReceiveModelFixed}


def test_loihi2_graph_is_built_up_to_the_extension(export_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the extension reported present, the graph plans adapters and stops, in one line, at the
    first adapter (``lava.proc.embedded_io`` is not installed here)."""
    from lava.utils import loihi

    from sne_loihi.export import load_manifest
    from sne_loihi.sim import LavaGraph, LavaSchedule

    manifest = load_manifest(export_dir)
    monkeypatch.setattr(loihi, "is_installed", lambda: True)
    with pytest.raises(SimulationError, match="embedded_io") as exc:
        LavaGraph(manifest.net_paths(), input_bits=manifest.input.bits,
                  schedule=LavaSchedule(manifest.input.time_steps, capacity=2), backend="loihi2", decision_classes=3)
    assert "\n" not in str(exc.value)


def test_manifest_with_a_malformed_readiness_report_is_refused(export_dir: Path, tmp_path: Path) -> None:
    import shutil

    from sne_loihi.export import load_manifest

    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["loihi2"] = [1, 2]
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ExportError, match="loihi2 must be a JSON object"):
        load_manifest(copy)


def test_hardware_graph_on_loihi2_wires_one_adapter_per_crossing(export_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the extension reported present: the hardware-shaped graph stops at the first adapter
    in one line; with the adapter call recorded instead, it builds with exactly the plan's
    adapters (one in, one out per student), counters without the CPU's pipe, and the Loihi 2
    run configuration (fixed-point RingBuffers pinned, no CPU counting models)."""
    from lava.magma.core.run_configs import Loihi2HwCfg
    from lava.utils import loihi

    from sne_loihi.export import load_manifest
    from sne_loihi.sim import adapters
    from sne_loihi.sim.hw_graph import HardwareGraph
    from sne_loihi.sim.schedule import LavaSchedule
    from sne_loihi.sim.lava_processes.hardware import COUNTS_PORT, COUNTS_VAR

    manifest = load_manifest(export_dir)
    args = dict(input_bits=manifest.input.bits, schedule=LavaSchedule(manifest.input.time_steps, capacity=2),
                backend="loihi2", decision_classes=3)
    monkeypatch.setattr(loihi, "is_installed", lambda: True)
    with pytest.raises(SimulationError, match="embedded_io") as exc:
        HardwareGraph(manifest.net_paths(), **args)
    assert "\n" not in str(exc.value)
    calls: list[tuple[bool, tuple, int]] = []
    monkeypatch.setattr(adapters, "connect_through_adapter",
                        lambda src, dst, to_chip, bits, _: calls.append((to_chip, tuple(dst.shape), bits)))
    graph = HardwareGraph(manifest.net_paths(), **args)
    k = len(manifest.students)
    assert graph.plan.adapters and graph.plan.count("PyToNxAdapter") == graph.plan.count("NxToPyAdapter") == k
    assert graph.plan.reset_offsets == [2] * k  # 1 + the assumed input latency
    assert graph.plan.readout_delays == [s.num_layers + 2 for s in manifest.students]
    assert [c[0] for c in calls] == [True, False] * k and all(c[2] == manifest.input.bits for c in calls[::2])
    assert [c[1] for c in calls[1::2]] == [(s.out_features,) for s in manifest.students]
    for neurons in graph.count_neurons:
        assert all(hasattr(n, COUNTS_VAR) and not hasattr(n, COUNTS_PORT) for n in neurons)
        assert [int(n.count_timing.init[0]) for n in neurons] == [j + 2 for j in range(len(neurons))]
    cfg = graph._run_config()
    assert isinstance(cfg, Loihi2HwCfg) and len(cfg.exception_proc_model_map) == 2
    graph.stop()
