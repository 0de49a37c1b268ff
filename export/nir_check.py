"""Re-import a NIR export in snnTorch and compare it spike for spike (see :mod:`nir_export`).

Every student graph runs in snnTorch (``snntorch.import_nir.import_from_nir``, which assumes
dt = 1e-4) and each CubaLIF layer's spikes are compared with SLAYER's fixed-point spikes
(differences counted: NIR's CubaLIF has no fixed-point truncation) and with the same
dynamics in float32 computed here (:func:`float_cuba_layer_spikes`), which must agree exactly.
snnTorch and nirtorch come with the ``interop`` extra and the dev group.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sne_loihi.errors import ExportError, ParityError
from sne_loihi.export.nir_params import cuba_params, synapse_bias


@dataclass
class LayerCheck:
    """Re-import check of one weighted layer of one student.

    Attributes:
        student, layer: Indices (layer among the weighted layers).
        neuron_steps: Neurons x steps x samples compared.
        spikes: SLAYER's spikes in them.
        vs_slayer: Entries where snnTorch's spike differs from SLAYER's fixed-point spike.
        vs_float: Entries where it differs from the real-valued reference (must be 0).
    """

    student: int
    layer: int
    neuron_steps: int
    spikes: int
    vs_slayer: int
    vs_float: int


@dataclass
class NirCheck:
    """What the export's re-import in snnTorch compared."""

    samples: int
    importer: str
    layers: list[LayerCheck] = field(default_factory=list)
    prediction_mismatches: int | None = None
    accuracy: float | None = None

    @property
    def mismatches_vs_slayer(self) -> int:
        """All differing (neuron, step) entries against SLAYER."""
        return sum(c.vs_slayer for c in self.layers)

    @property
    def mismatches_vs_float(self) -> int:
        """All differing entries against the real-valued reference."""
        return sum(c.vs_float for c in self.layers)

    @property
    def neuron_steps(self) -> int:
        """Entries compared."""
        return sum(c.neuron_steps for c in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, totals included."""
        return {"samples": self.samples, "importer": self.importer, "neuron_steps": self.neuron_steps,
                "mismatches_vs_slayer": self.mismatches_vs_slayer, "mismatches_vs_float": self.mismatches_vs_float,
                "prediction_mismatches": self.prediction_mismatches, "accuracy": self.accuracy,
                "layers": [asdict(c) for c in self.layers]}


def _lava_order(a: np.ndarray) -> np.ndarray:
    """``[N, C, H, W, T]`` -> ``[N, W, H, C, T]`` (what :func:`torch_layer_spikes` returns)."""
    return a.transpose(0, 3, 2, 1, 4) if a.ndim == 5 else a


def import_snntorch(graph: Any) -> Any:
    """``snntorch.import_nir.import_from_nir(graph)``, its console chatter captured.

    Raises:
        ExportError: snnTorch / nirtorch are not installed.
    """
    try:
        from snntorch.import_nir import import_from_nir
    except ImportError as exc:
        raise ExportError(f"the NIR re-import check needs snnTorch and nirtorch ({exc}); install the 'interop' "
                          "extra (uv sync installs them with the dev group) or pass --check-samples 0") from None
    with contextlib.redirect_stdout(io.StringIO()):
        return import_from_nir(graph)


def snntorch_layer_spikes(graph: Any, x_nchwt: Any) -> list[np.ndarray]:
    """Every CubaLIF layer's spikes of ``graph`` re-imported in snnTorch, Lava order ``[N, *xyz, T]``.

    One sample at a time: the importer turns NIR's batch-less ``Flatten(start_dim=0)`` into a
    ``torch.nn.Flatten(0, -1)``, which would merge a batch into the features.
    """
    import snntorch as snn
    import torch

    net = import_snntorch(graph)
    keys = _neuron_keys(graph)
    modules = dict(net.named_modules())
    neurons = [modules.get(k) for k in keys]
    if not all(isinstance(m, snn.Synaptic) for m in neurons):
        raise ExportError(f"snnTorch did not import the CubaLIF nodes {keys} as Synaptic neurons")
    steps: dict[int, list[Any]] = {id(m): [] for m in neurons}
    hooks = [m.register_forward_hook(lambda mod, _i, out: steps[id(mod)].append(out[0] if isinstance(out, tuple) else out))
             for m in neurons]
    per_layer: list[list[np.ndarray]] = [[] for _ in neurons]
    try:
        with torch.no_grad():
            for n in range(x_nchwt.shape[0]):
                for m in neurons:
                    m.reset_mem()
                for v in steps.values():
                    v.clear()
                for t in range(x_nchwt.shape[-1]):
                    net(x_nchwt[n:n + 1, ..., t].float())
                for j, m in enumerate(neurons):
                    shape = tuple(graph.nodes[keys[j]].v_threshold.shape)
                    per_layer[j].append(torch.stack([s.reshape(shape) for s in steps[id(m)]], dim=-1).cpu().numpy())
    finally:
        for h in hooks:
            h.remove()
    return [_lava_order(np.stack(a)) for a in per_layer]


def _neuron_keys(graph: Any) -> list[str]:
    """The CubaLIF node names of a student graph, in order along its edges."""
    import nir

    order, node = [], "input"
    following = dict(graph.edges)
    while node in following:
        node = following[node]
        if isinstance(graph.nodes[node], nir.CubaLIF):
            order.append(node)
    return order


def float_cuba_layer_spikes(student: Any, x_nchwt: Any) -> list[np.ndarray]:
    """The student's dynamics as NIR's CubaLIF states them, without fixed-point truncation.

    Same synapses (quantised weights, a folded bias) and parameters as :func:`student_nir_graph`; float32,
    current first (``I = (1 - cd) I + z``, ``v = (1 - vd) v + I``, spike ``v > threshold``,
    reset ``v = 0``). Lava order ``[N, *xyz, T]``.
    """
    import torch
    import torch.nn.functional as F

    from sne_loihi.cost.ops import synapse_view
    from sne_loihi.layers import LayerKind

    out: list[np.ndarray] = []
    x = x_nchwt.float()
    with torch.no_grad():
        for layer, block in zip(student.spec.layers, student.blocks):
            if layer.kind is LayerKind.FLATTEN:
                x = x.reshape(x.shape[0], -1, x.shape[-1])
                continue
            view = synapse_view(block, layer.kind)
            w = view.weight.float()
            p = cuba_params(block)
            alpha, beta = float(1 - p.current_decay), float(1 - p.voltage_decay)
            bias = synapse_bias(block)
            b = None if bias is None else torch.as_tensor(bias, dtype=torch.float32, device=x.device)
            z = [F.conv2d(x[..., t], w, b, view.stride, view.padding, view.dilation, view.groups)
                 if layer.kind is LayerKind.CONV else F.linear(x[..., t], w, b) for t in range(x.shape[-1])]
            cur = torch.zeros_like(z[0])
            volt = torch.zeros_like(z[0])
            spikes = []
            for z_t in z:
                cur = alpha * cur + z_t
                volt = beta * volt + cur
                s = (volt > p.threshold).float()
                volt = volt - s * volt
                spikes.append(s)
            x = torch.stack(spikes, dim=-1)
            out.append(_lava_order(x.cpu().numpy()))
    return out


def check_nir(students: Sequence[Any], graphs: Sequence[Any], x_nchwt: Any, head: Any = None,
              logits_ref: Any = None, labels: Any = None) -> NirCheck:
    """Re-import every graph in snnTorch and compare every layer's spikes with SLAYER's and
    with the real-valued reference (see the module doc).

    With the ``head`` graph (re-imported too, applied to the re-imported students' rates),
    ``logits_ref`` (the torch ensemble's ``[N, classes]``) and optionally ``labels``, the
    check also counts the samples whose predicted class differs, and the accuracy.

    Raises:
        ParityError: The re-import differs from the real-valued reference (a mapping error),
            naming the student, layer and first differing step.
    """
    import snntorch

    from sne_loihi.export.exporter import first_mismatch, torch_layer_spikes

    check = NirCheck(samples=int(x_nchwt.shape[0]), importer=f"snntorch {snntorch.__version__} import_from_nir")
    rates = []
    for i, (student, graph) in enumerate(zip(students, graphs)):
        got = snntorch_layer_spikes(graph, x_nchwt)
        rates.append(got[-1].mean(axis=-1))
        ref = float_cuba_layer_spikes(student, x_nchwt)
        fixed = torch_layer_spikes(student, x_nchwt)
        bad = first_mismatch(got, ref)
        if bad is not None:
            layer, sample, step, count = bad
            raise ParityError(f"student {i} layer {layer}: snnTorch's re-import of the NIR graph differs from the "
                              f"CubaLIF reference first at step {step} (sample {sample}; {count} neuron-steps)")
        for j, (a, b, c) in enumerate(zip(got, ref, fixed)):
            check.layers.append(LayerCheck(student=i, layer=j, neuron_steps=int(c.size), spikes=int(c.sum()),
                                           vs_slayer=int((a != c).sum()), vs_float=int((a != b).sum())))
    if head is not None and logits_ref is not None:
        pred = head_logits(head, np.concatenate(rates, axis=1)).argmax(axis=1)
        check.prediction_mismatches = int((pred != np.asarray(logits_ref).argmax(axis=1)).sum())
        if labels is not None:
            check.accuracy = float((pred == np.asarray(labels)).mean())
    return check


def head_logits(head: Any, rates_nd: np.ndarray) -> np.ndarray:
    """The head graph re-imported in snnTorch, applied to ``[N, sum F]`` rates."""
    import torch

    net = import_snntorch(head)
    with torch.no_grad():
        out = net(torch.as_tensor(rates_nd, dtype=torch.float32))
    return (out[0] if isinstance(out, tuple) else out).cpu().numpy()
