"""`sne simulate NET.net --input x.npy` on netx files written by lava-dl's own exporter.

Every network here is built from ``slayer.block.cuba`` blocks and written with their own
``export_hdf5`` into ``layer/{i}`` groups (as lava-dl's tests do, not with this toolkit's
writer). The ground truth is a direct Lava run of the same file: ``netx.hdf5.Network`` fed by
``io.source.RingBuffer`` and watched by ``io.sink.RingBuffer`` on every block, with Lava's
own process models (``Loihi2SimCfg(select_tag='fixed_pt')``). Output spikes and synaptic op
counts from the CLI must equal what that run gives, entry for entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_checks import one_error_line
from sne_loihi.cli import app

runner = CliRunner()
T, N = 5, 3
NEURON = {"threshold": 0.25, "current_decay": 0.25, "voltage_decay": 0.1}
INPUT_NEURON = {"threshold": 0.1, "current_decay": 0.25, "voltage_decay": 0.1}


def export(blocks: list[torch.nn.Module], x: torch.Tensor, path: Path, *, flat_before: tuple[int, ...] = (),
           input_shape: list[int] | None = None, delays: dict[int, list[float]] | None = None) -> Path:
    """One forward pass (SLAYER learns shapes there), then every block's own ``export_hdf5``.

    Args:
        flat_before: Block indices whose input is reshaped to ``[N, F, 1, 1, T]``, so a dense
            block learns the ``[F, 1, 1]`` neuron shape lava-dl writes after a conv/flatten.
        input_shape: Write a plain ``input`` group (no neuron) with this shape first.
        delays: Per block index, axonal delays to set before the export.
    """
    import h5py

    with torch.no_grad():
        for i, block in enumerate(blocks):
            if i in flat_before:
                x = x.reshape(x.shape[0], -1, 1, 1, x.shape[-1])
            x = block(x)
        for i, values in (delays or {}).items():
            blocks[i].delay.delay.data = torch.tensor(values, dtype=torch.float32).reshape(blocks[i].delay.delay.shape)
    with h5py.File(path, "w") as fh:
        group = fh.create_group("layer")
        offset = 0
        if input_shape is not None:
            inp = group.create_group("0")
            inp.create_dataset("type", (1,), "S10", [b"input"])
            inp.create_dataset("shape", data=np.array(input_shape))
            offset = 1
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(i + offset)))
    return path


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Input neuron [2, 6, 6] -> conv -> flatten -> dense [5, 1, 1] with axonal delays -> dense [4, 1, 1]."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(0)
    blocks = [
        slayer.block.cuba.Input(INPUT_NEURON),
        slayer.block.cuba.Conv(NEURON, 2, 3, 3, stride=2, padding=1, weight_scale=3),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(NEURON, 27, 5, weight_scale=3, delay=True),
        slayer.block.cuba.Dense(NEURON, 5, 4, weight_scale=3),
    ]
    path = tmp_path_factory.mktemp("foreign") / "conv.net"
    return export(blocks, torch.zeros(1, 2, 6, 6, 1), path, flat_before=(3,), delays={3: [0, 1, 2, 0, 3]})


@pytest.fixture(scope="module")
def conv_net_no_delays(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Input neuron [2, 6, 6] -> conv (stored delays, all zero) -> flatten -> dense [5, 1, 1] -> dense [4, 1, 1]."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(0)
    blocks = [
        slayer.block.cuba.Input(INPUT_NEURON),
        slayer.block.cuba.Conv(NEURON, 2, 3, 3, stride=2, padding=1, weight_scale=3, delay=True),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(NEURON, 27, 5, weight_scale=3),
        slayer.block.cuba.Dense(NEURON, 5, 4, weight_scale=3),
    ]
    path = tmp_path_factory.mktemp("foreign") / "conv_nodelay.net"
    return export(blocks, torch.zeros(1, 2, 6, 6, 1), path, flat_before=(3,))


@pytest.fixture(scope="module")
def dense_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain input [12] -> dense [6, 1, 1] with delays -> dense [3, 1, 1], binary spikes."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(1)
    blocks = [slayer.block.cuba.Dense(NEURON, 12, 6, weight_scale=4, delay=True),
              slayer.block.cuba.Dense(NEURON, 6, 3, weight_scale=4)]
    path = tmp_path_factory.mktemp("foreign") / "dense.net"
    return export(blocks, torch.zeros(1, 12, 1, 1, 1), path, input_shape=[12], delays={0: [2, 0, 1, 0, 0, 1]})


@pytest.fixture(scope="module")
def sdnn_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sigma-delta: input (Delta) [12] -> dense 6 -> dense 3, signed graded messages."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(2)
    sd = {"threshold": 0.1, "activation": torch.relu}
    blocks = [slayer.block.sigma_delta.Input(sd), slayer.block.sigma_delta.Dense(sd, 12, 6, weight_scale=3),
              slayer.block.sigma_delta.Dense(sd, 6, 3, weight_scale=3)]
    return export(blocks, torch.zeros(1, 12, 1), tmp_path_factory.mktemp("foreign") / "sdnn.net")


@pytest.fixture(scope="module")
def input_dense_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Input neuron [12] -> dense 6 -> dense 3 (no delays), for the per-sample reset."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(4)
    blocks = [slayer.block.cuba.Input(INPUT_NEURON), slayer.block.cuba.Dense(NEURON, 12, 6, weight_scale=4),
              slayer.block.cuba.Dense(NEURON, 6, 3, weight_scale=4)]
    return export(blocks, torch.zeros(1, 12, 1), tmp_path_factory.mktemp("foreign") / "input_dense.net")


# ---- the ground truth: the file run directly in netx ------------------------------------
def direct_netx_run(path: Path, stream: np.ndarray, *, input_bits: int, reset_interval: int | None,
                    num_layers: int | None = None, reset_offset: int = 1,
                    input_bias: np.ndarray | None = None) -> tuple[object, list[np.ndarray]]:
    """Run ``stream`` ``[*port, steps]`` through ``hdf5.Network`` with Lava's own models.

    An ``Input`` block's ``inp`` is left unconnected by netx (lava-dl issue #298); as
    lava-dl's examples do, the source then drives the block's neuron directly. With
    ``input_bias`` (Lava order) nothing is connected: the input neurons' ``bias_mant`` is set
    to it by hand before the run, as lava-dl's own tests drive a netx network (``stream``
    then only gives the number of steps).

    Returns:
        Whether the first block is an input neuron, and every block's output ``[*shape, steps]``.
    """
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    net = netx.hdf5.Network(net_config=str(path), input_message_bits=input_bits, num_layers=num_layers,
                            reset_interval=reset_interval, reset_offset=reset_offset if reset_interval else 0)
    steps = stream.shape[-1]
    input_neuron = type(net.layers[0]).__name__ == "Input"
    if input_bias is None:
        runner_proc = io.source.RingBuffer(data=stream.astype(np.int32))
        runner_proc.s_out.connect(net.layers[0].neuron.a_in if input_neuron else net.inp)
    else:
        net.layers[0].neuron.bias_mant.init = input_bias.astype(np.int32)
        runner_proc = net
    sinks = []
    for block in net.layers:
        sinks.append(io.sink.RingBuffer(shape=block.out.shape, buffer=steps))
        block.out.connect(sinks[-1].a_in)
    runner_proc.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    try:
        outs = [np.asarray(s.data.get()) for s in sinks]
    finally:
        runner_proc.stop()
    return input_neuron, outs


def fanouts_torch_order(path: Path, num_layers: int | None = None) -> list[tuple[np.ndarray, tuple[int, ...]]]:
    """Per weighted layer: the fan-out of every input neuron in torch order (non-zero weights
    leaving it, found by pushing a one-hot input through the synapse), and its input shape."""
    import h5py

    out = []
    with h5py.File(path, "r") as fh:
        groups = [fh[f"layer/{i}"] for i in range(len(fh["layer"]))][:num_layers]
        shape: tuple[int, ...] = ()
        for g in groups:
            kind = g["type"][0].decode()
            if kind == "input":
                shape = tuple(int(v) for v in g["shape"][()])
            elif kind == "conv":
                w = torch.as_tensor((np.asarray(g["weight"][()]) != 0).astype(np.float32))
                w = w.reshape(w.shape[:4])
                size = int(np.prod(shape))
                eye = torch.eye(size).reshape(size, *shape)
                hits = torch.nn.functional.conv2d(eye, w, stride=tuple(g["stride"][()]), padding=tuple(g["padding"][()]),
                                                  dilation=tuple(g["dilation"][()]), groups=int(g["groups"][()]))
                out.append((hits.reshape(size, -1).sum(dim=1).numpy().astype(np.int64).reshape(shape), shape))
                shape = tuple(int(v) for v in g["shape"][()])
            elif kind == "dense":
                w = np.asarray(g["weight"][()])
                out.append(((w != 0).sum(axis=0).astype(np.int64).reshape(shape), shape))
                shape = tuple(int(v) for v in g["shape"][()])
    return out


def to_port(a: np.ndarray, port_shape: tuple[int, ...]) -> np.ndarray:
    """A torch-order array ``[C, H, W]`` (or flat) as a Lava port of ``port_shape``."""
    return a.transpose(2, 1, 0) if len(port_shape) == 3 and a.ndim == 3 else a.reshape(port_shape)


def expected(path: Path, x: np.ndarray, *, input_bits: int, reset_interval: int | None, retime: bool,
             num_layers: int | None = None, reset_offset: int = 1,
             input_bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The direct netx run's output spikes ``[N, F, T]`` and ops ``[N, L]`` per sample.

    Sample ``n``'s step ``t`` enters at stream index ``n * T + t``; with ``retime`` the
    spikes leaving ``d`` synapses later are read ``d`` indices later (raw index otherwise).
    Ops of weighted layer ``j``: the spikes entering its synapse, each times its fan-out.
    """
    n, t = x.shape[0], x.shape[-1]
    fans = fanouts_torch_order(path, num_layers)
    per = x.transpose(0, 3, 2, 1, 4) if x.ndim == 5 else x.reshape(n, -1, t)  # N, *port, T
    steps = n * t + len(fans) + 64
    stream = np.zeros((*per.shape[1:-1], steps), dtype=np.int32)
    stream[..., : n * t] = np.moveaxis(per, 0, -2).reshape(*per.shape[1:-1], n * t)
    input_neuron, outs = direct_netx_run(path, stream, input_bits=input_bits, reset_interval=reset_interval,
                                         num_layers=num_layers, reset_offset=reset_offset, input_bias=input_bias)
    first = int(input_neuron)
    sources = ([outs[0]] if input_neuron else [stream]) + outs[first:first + len(fans) - 1]
    spikes = np.zeros((n, int(np.prod(outs[-1].shape[:-1])), t), dtype=np.int64)  # or graded messages
    ops = np.zeros((n, len(fans)), dtype=np.int64)
    for sample in range(n):
        for step in range(t):
            idx = sample * t + step
            spikes[sample, :, step] = outs[-1][..., idx + (len(fans) if retime else 0)].reshape(-1)
            for j, ((fan, _), src) in enumerate(zip(fans, sources)):
                fan_port = to_port(fan, src.shape[:-1])
                ops[sample, j] += int(fan_port[src[..., idx + (j if retime else 0)] != 0].sum())
    return spikes, ops


def run_cli(path: Path, x: np.ndarray, tmp_path: Path, *extra: str) -> tuple[dict, dict]:
    """``sne simulate path --input x.npy --output out.npz --json out.json`` -> (npz, json)."""
    np.save(tmp_path / "x.npy", x)
    result = runner.invoke(app, ["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "cpu",
                                 "--output", str(tmp_path / "out.npz"), "--json", str(tmp_path / "out.json"), *extra])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "spike counts per neuron" in result.stdout
    with np.load(tmp_path / "out.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads((tmp_path / "out.json").read_text())


def graded_input(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(N, *shape, T)).astype(np.int32)


# ---- contract -------------------------------------------------------------------------
def test_input_neuron_conv_flatten_dense_with_delays_runs_as_plain_netx(conv_net: Path, tmp_path: Path) -> None:
    """No reset, raw timing: exactly one plain netx run of the whole input stream."""
    x = graded_input(0, (2, 6, 6))
    got, rep = run_cli(conv_net, x, tmp_path, "--input-bits", "8", "--reset-interval", "none", "--no-retime")
    spikes, ops = expected(conv_net, x, input_bits=8, reset_interval=None, retime=False)
    assert spikes.sum() > 0 and ops[:, 2].sum() > 0, "the network must fire through to its last layer"
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)
    np.testing.assert_array_equal(got["counts"], spikes.sum(axis=-1))
    assert rep["output"]["counts"] == spikes.sum(axis=-1).tolist()
    assert rep["output"]["counts_per_neuron"] == spikes.sum(axis=(0, 2)).tolist()
    assert rep["evaluations"][0]["ops_per_student_layer"][0] == ops.mean(axis=0).tolist()


def test_reset_every_sample_and_retimed_output_equal_netx_with_the_same_reset(conv_net_no_delays: Path,
                                                                              tmp_path: Path) -> None:
    """The default (--reset-interval T, re-timed) equals netx with reset_interval=T and the
    offset that lines the resets up with the samples (0 behind an input neuron block). The
    conv layer stores delays that are all zero (netx ignores conv delays: nothing lost)."""
    x = graded_input(1, (2, 6, 6))
    got, rep = run_cli(conv_net_no_delays, x, tmp_path, "--input-bits", "8", "--lava-engine", "reference")
    spikes, ops = expected(conv_net_no_delays, x, input_bits=8, reset_interval=T, retime=True, reset_offset=0)
    assert spikes.sum() > 0
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)
    # neuron updates: the input block's 2*6*6 neurons, the conv's 3*3*3, 5 and 4, every step
    assert rep["evaluations"][0]["neuron_updates"] == (72 + 27 + 5 + 4) * T


def test_reset_every_sample_starts_each_sample_from_rest(input_dense_net: Path, tmp_path: Path) -> None:
    """Behind an input neuron, ``--reset-interval T`` gives every sample what a fresh network
    run on that sample alone gives (no reset needed there)."""
    x = graded_input(7, (12,))
    got, _ = run_cli(input_dense_net, x, tmp_path, "--input-bits", "8")
    assert got["spikes"].sum() > 0
    for n in range(N):
        alone, ops = expected(input_dense_net, x[n:n + 1], input_bits=8, reset_interval=None, retime=True)
        np.testing.assert_array_equal(got["spikes"][n:n + 1], alone)
        np.testing.assert_array_equal(got["ops"][n:n + 1], ops)


def test_plain_input_dense_layers_stored_as_n11_with_delays(dense_net: Path, tmp_path: Path) -> None:
    x = (np.random.default_rng(2).random((N, 12, T)) < 0.5).astype(np.int32)
    got, _ = run_cli(dense_net, x, tmp_path, "--reset-interval", "none", "--no-retime")
    spikes, ops = expected(dense_net, x, input_bits=0, reset_interval=None, retime=False)
    assert spikes.sum() > 0 and ops[:, 1].sum() > 0
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)


def test_sigma_delta_network_with_signed_graded_input(sdnn_net: Path, tmp_path: Path) -> None:
    """SDNN layers send signed graded messages; outputs are the messages themselves, re-timed."""
    x = np.random.default_rng(6).integers(-300, 301, size=(N, 12, T)).astype(np.int32)
    got, rep = run_cli(sdnn_net, x, tmp_path, "--reset-interval", "none")
    spikes, ops = expected(sdnn_net, x, input_bits=0, reset_interval=None, retime=True)
    assert (spikes < 0).any() and (np.abs(spikes) > 1).any() and ops[:, 1].sum() > 0, "graded, signed, flowing"
    assert got["spikes"].dtype == np.int32 and rep["output"]["graded"] is True
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)
    np.testing.assert_array_equal(got["counts"], (spikes != 0).sum(axis=-1))


def test_input_neuron_flattened_straight_into_a_dense_layer(tmp_path: Path) -> None:
    """Input neuron [2, 3, 3] -> flatten -> dense [4, 1, 1]: the dense synapse reads the input
    block's (x, y, f) spikes through netx's flatten."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(9)
    blocks = [slayer.block.cuba.Input(INPUT_NEURON), slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(NEURON, 18, 4, weight_scale=4)]
    path = export(blocks, torch.zeros(1, 2, 3, 3, 1), tmp_path / "flat.net", flat_before=(2,))
    x = graded_input(10, (2, 3, 3))
    got, _ = run_cli(path, x, tmp_path, "--input-bits", "8", "--reset-interval", "none", "--no-retime")
    spikes, ops = expected(path, x, input_bits=8, reset_interval=None, retime=False)
    assert spikes.sum() > 0 and ops.sum() > 0
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)


def test_an_integer_reset_interval_equals_netx_with_that_interval(dense_net: Path, tmp_path: Path) -> None:
    x = (np.random.default_rng(8).random((N, 12, T)) < 0.6).astype(np.int32)
    got, rep = run_cli(dense_net, x, tmp_path, "--reset-interval", "3", "--no-retime")
    spikes, ops = expected(dense_net, x, input_bits=0, reset_interval=3, retime=False)
    assert spikes.sum() > 0 and rep["output"]["reset_interval"] == 3
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)


def test_layers_netx_cannot_build_are_named_and_left_out_with_layers(tmp_path: Path) -> None:
    """A file ending in an ``average`` readout (netx raises NotImplementedError for it).

    ``slayer.block.cuba.Average.export_hdf5`` itself fails in lava-dl 0.6.0 (it reads a
    ``neuron`` the block does not have), so its group is written as that method means to:
    ``type = 'average'``, ``shape = [num_outputs, 1, 1]``.
    """
    import h5py
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(3)
    blocks = [slayer.block.cuba.Dense(NEURON, 12, 6, weight_scale=4)]
    path = export(blocks, torch.zeros(1, 12, 1), tmp_path / "avg.net", input_shape=[12])
    with h5py.File(path, "a") as fh:
        avg = fh.create_group("layer/2")
        avg.create_dataset("type", (1,), "S10", [b"average"])
        avg.create_dataset("shape", data=np.array([2, 1, 1]))
    x = (np.random.default_rng(4).random((2, 12, T)) < 0.5).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    one_error_line(runner.invoke(app, ["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "cpu"]),
                   "layer/2 has type 'average', which netx cannot build")
    got, rep = run_cli(path, x, tmp_path, "--layers", "2", "--reset-interval", "none", "--no-retime")
    spikes, ops = expected(path, x, input_bits=0, reset_interval=None, retime=False, num_layers=2)
    assert spikes.sum() > 0 and rep["output"]["layers_run"] == 2
    np.testing.assert_array_equal(got["spikes"], spikes)
    np.testing.assert_array_equal(got["ops"], ops)


def test_networks_netx_cannot_connect_or_run_are_one_line_errors(tmp_path: Path) -> None:
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(5)
    x = np.zeros((1, 2, 6, 6, T), dtype=np.int32)
    np.save(tmp_path / "x.npy", x)
    # dense straight after a conv (no flatten): netx would hand Lava ports of different shapes
    no_flatten = export([slayer.block.cuba.Input(INPUT_NEURON),
                         slayer.block.cuba.Conv(NEURON, 2, 3, 3, stride=2, padding=1, weight_scale=3),
                         slayer.block.cuba.Dense(NEURON, 27, 4, weight_scale=3)],
                        torch.zeros(1, 2, 6, 6, 1), tmp_path / "noflat.net", flat_before=(2,))
    sdnn = export([slayer.block.sigma_delta.Input({"threshold": 0.1, "activation": torch.relu}),
                   slayer.block.sigma_delta.Dense({"threshold": 0.1, "activation": torch.relu}, 12, 4)],
                  torch.zeros(1, 12, 1), tmp_path / "sdnn.net")
    base = ["--input", str(tmp_path / "x.npy"), "--backend", "cpu"]
    one_error_line(runner.invoke(app, ["simulate", str(no_flatten), *base]),
                   "layer/2 is a dense layer after a conv layer without a flatten layer")
    one_error_line(runner.invoke(app, ["simulate", str(sdnn), *base]),
                   "layer/0 has sigma-delta (SDNN) neurons, which netx never resets")
    one_error_line(runner.invoke(app, ["simulate", str(no_flatten), *base, "--reset-interval", "0"]), "--reset-interval")
    one_error_line(runner.invoke(app, ["simulate", str(no_flatten), *base, "--layers", "0"]), "--layers")
    for option in (["--layers", "2"], ["--output", str(tmp_path / "o.npz")], ["--reset-interval", "none"], ["--no-retime"]):
        one_error_line(runner.invoke(app, ["simulate", str(tmp_path), *option]),
                       f"{option[0]} applies to a single netx network, not to an export folder")
    (tmp_path / "taken.npz").write_bytes(b"")
    one_error_line(runner.invoke(app, ["simulate", str(no_flatten), *base, "--output", str(tmp_path / "taken.npz")]),
                   "exists")


def test_input_layer_driven_by_its_bias(tmp_path: Path) -> None:
    """``slayer.block.cuba.Input(weight=, bias=)`` writes SLAYER's input transform into the
    input layer; netx leaves the neuron's bias for the user to drive. Every sample must give
    what lava-dl's own procedure gives: a fresh netx network whose input neurons'
    ``bias_mant`` is set by hand to ``rint(weight * x + bias)`` for that sample."""
    import h5py
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(11)
    blocks = [slayer.block.cuba.Input({"threshold": 0.1, "current_decay": 1.0, "voltage_decay": 0.1},
                                      weight=0.75, bias=0.25),
              slayer.block.cuba.Dense(NEURON, 12, 6, weight_scale=4),
              slayer.block.cuba.Dense(NEURON, 6, 3, weight_scale=4)]
    path = export(blocks, torch.zeros(1, 12, 1), tmp_path / "bias.net")
    with h5py.File(path, "r") as fh:
        weight, bias = int(fh["layer/0/weight"][0]), int(fh["layer/0/bias"][0])
    assert (weight, bias) == (48, 16)  # 0.75 and 0.25 in SLAYER's weight scale (64)
    x_static = np.random.default_rng(12).uniform(-1.0, 1.0, size=(N, 12))
    x = np.repeat(x_static[..., None], T, axis=-1)
    got, rep = run_cli(path, x, tmp_path)
    assert rep["output"]["input_drive"] == "bias" and got["spikes"].sum() > 0
    for n in range(N):
        mant = np.rint(weight * x_static[n] + bias)
        alone, ops = expected(path, np.zeros((1, 12, T), dtype=np.int32), input_bits=0, reset_interval=None,
                              retime=True, input_bias=mant)
        np.testing.assert_array_equal(got["spikes"][n:n + 1], alone)
        np.testing.assert_array_equal(got["ops"][n:n + 1], ops)
    assert rep["evaluations"][0]["neuron_updates"] == (12 + 6 + 3) * T
    np.save(tmp_path / "big.npy", x * 1000)
    one_error_line(runner.invoke(app, ["simulate", str(path), "--input", str(tmp_path / "big.npy"), "--backend", "cpu"]),
                   "13-bit bias_mant")


def test_graded_spike_cuba_neurons_run_as_netx_builds_them(tmp_path: Path) -> None:
    """``graded_spike=True`` CUBA neurons: netx ignores the flag and builds Lava's LIF (binary
    spikes); the run equals netx's and a warning line says so."""
    import lava.lib.dl.slayer as slayer

    torch.manual_seed(13)
    graded = dict(NEURON, graded_spike=True)
    blocks = [slayer.block.cuba.Dense(graded, 12, 6, weight_scale=4), slayer.block.cuba.Dense(NEURON, 6, 3, weight_scale=4)]
    path = export(blocks, torch.zeros(1, 12, 1, 1, 1), tmp_path / "graded.net", input_shape=[12])
    x = (np.random.default_rng(14).random((N, 12, T)) < 0.6).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    result = runner.invoke(app, ["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "cpu",
                                 "--output", str(tmp_path / "out.npz"), "--reset-interval", "none"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "warning: " in result.stderr and "layer/1 has gradedSpike CUBA neurons" in result.stderr, result.stderr
    with np.load(tmp_path / "out.npz") as npz:
        got_spikes, got_ops = npz["spikes"], npz["ops"]
    spikes, ops = expected(path, x, input_bits=0, reset_interval=None, retime=True)
    assert spikes.sum() > 0
    np.testing.assert_array_equal(got_spikes, spikes)
    np.testing.assert_array_equal(got_ops, ops)


def test_axonal_delays_run_only_as_netx_runs_them(conv_net: Path, tmp_path: Path) -> None:
    """Re-timing cannot undo per-neuron delays and a per-sample reset does not stop spikes in
    flight: both are refused in one line naming the layer; a conv layer with non-zero delays
    (which netx ignores) is refused too."""
    import h5py

    x = graded_input(3, (2, 6, 6))
    np.save(tmp_path / "x.npy", x)
    base = ["simulate", str(conv_net), "--input", str(tmp_path / "x.npy"), "--backend", "cpu", "--input-bits", "8"]
    for extra in ([], ["--no-retime"], ["--reset-interval", "none"], ["--reset-interval", "3"]):
        one_error_line(runner.invoke(app, [*base, *extra]), "layer/3 has axonal delays (up to 3 steps)")
    conv_delay = tmp_path / "conv_delay.net"
    conv_delay.write_bytes(conv_net.read_bytes())
    with h5py.File(conv_delay, "a") as fh:
        fh["layer/1"].create_dataset("delay", data=np.array([0.0, 2.0, 1.0]))
    one_error_line(runner.invoke(app, ["simulate", str(conv_delay), *base[2:]]),
                   "layer/1 is a conv layer with axonal delays (up to 2 steps), which netx ignores")


def test_graph_rules_for_bias_driven_inputs(tmp_path: Path) -> None:
    """A bias-driven input cannot share a graph with other inputs, nor run on Loihi 2 (the bias
    is written every step from the host); the mantissas must fit Lava's 13-bit bias_mant."""
    import lava.lib.dl.slayer as slayer

    from sne_loihi.errors import SimulationError
    from sne_loihi.export import read_netx_network
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.foreign_netx import bias_stream, check_networks

    torch.manual_seed(15)
    dense = slayer.block.cuba.Dense(NEURON, 4, 2, weight_scale=4)
    biased = export([slayer.block.cuba.Input(INPUT_NEURON, bias=0.5), dense], torch.zeros(1, 4, 1), tmp_path / "b.net")
    plain = export([slayer.block.cuba.Input(INPUT_NEURON), dense], torch.zeros(1, 4, 1), tmp_path / "p.net")
    nets = [read_netx_network(biased), read_netx_network(plain)]
    assert nets[0].bias_input is not None and (nets[0].bias_input.weight, nets[0].bias_input.bias) == (64, 32)
    assert nets[1].bias_input is None and nets[0].num_neurons == 4 + 2
    with pytest.raises(SimulationError, match="all, or none"):
        check_networks([biased, plain], nets, retime=True, reset_interval="T", backend=Backend.CPU)
    with pytest.raises(SimulationError, match="only the CPU backend"):
        check_networks([biased], nets[:1], retime=True, reset_interval="T", backend=Backend.LOIHI2)
    np.testing.assert_array_equal(bias_stream(nets[0].bias_input, np.array([[-0.5, 0.25, 1.0]])), [[0, 48, 96]])
    with pytest.raises(SimulationError, match="finite"):
        bias_stream(nets[0].bias_input, np.array([np.nan]))
