"""A small netx HDF5 network as lava-dl writes it, and edits that craft a bad one from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

NEURON = {"type": b"CUBA", "iDecay": 1024, "vDecay": 410, "vThMant": 16, "refDelay": 1, "gradedSpike": False}


def write_neuron(group: h5py.Group, **values: Any) -> None:
    for name, value in {**NEURON, **values}.items():
        if name == "type":
            group.create_dataset("neuron/type", data=value, dtype=h5py.string_dtype())
        else:
            group.create_dataset(f"neuron/{name}", data=value)


def write_net(path: Path, mutate: Callable[[h5py.File], None] | None = None) -> Path:
    """Input [1, 4, 4] -> conv 3x3 -> [2, 2, 2] -> flatten -> dense [3], as lava-dl writes it
    (float32 weights on the even 8-bit grid); ``mutate`` edits the open file before it closes."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as fh:
        layer = fh.create_group("layer")
        g = layer.create_group("0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array([1, 4, 4]))
        g = layer.create_group("1")
        g.create_dataset("type", (1,), "S10", [b"conv"])
        g.create_dataset("shape", data=np.array([2, 2, 2]))
        g.create_dataset("weight", data=(2 * rng.integers(-40, 40, (2, 1, 3, 3))).astype(np.float32))
        for name, value in (("stride", [1, 1]), ("padding", [0, 0]), ("dilation", [1, 1]), ("groups", 1)):
            g.create_dataset(name, data=np.array(value))
        write_neuron(g)
        g = layer.create_group("2")
        g.create_dataset("type", (1,), "S10", [b"flatten"])
        g.create_dataset("shape", data=np.array([8, 1, 1]))
        g = layer.create_group("3")
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g.create_dataset("shape", data=np.array([3]))
        g.create_dataset("weight", data=(2 * rng.integers(-40, 40, (3, 8))).astype(np.float32))
        write_neuron(g)
        if mutate is not None:
            mutate(fh)
    return path


def replace_dataset(name: str, value: Any, **kwargs: Any) -> Callable[[h5py.File], None]:
    def mutate(fh: h5py.File) -> None:
        del fh[name]
        fh.create_dataset(name, data=value, **kwargs)
    return mutate


def set_weight(layer: str, index: tuple[int, ...], value: float) -> Callable[[h5py.File], None]:
    def mutate(fh: h5py.File) -> None:
        w = fh[f"layer/{layer}/weight"][()]
        w[index] = value
        fh[f"layer/{layer}/weight"][...] = w
    return mutate
