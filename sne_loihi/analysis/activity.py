"""Spiking activity per layer: how much of each student's network actually carries spikes.

A student that plateaus often has layers whose neurons never fire (silent: no gradient
through a narrow surrogate, so they stay silent) or fire at every step on every sample
(always on: no information either), and deep layers that only fire in the last steps
(latency eats a short T). This module measures all three on a set of images, per student
and weighted layer, from the spikes the forward pass already returns
(:class:`~sne_loihi.students.base.StudentOutput`: the input of every weighted layer after
the first is the previous layer's spikes; the last layer's are ``spikes_nft``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from sne_loihi.ensemble.model import encode_for
from sne_loihi.layers import LayerKind
from sne_loihi.students.base import StudentOutput

__all__ = ["ActivityCounter", "LayerActivity", "activity_markdown", "layer_activity"]


@dataclass(frozen=True)
class LayerActivity:
    """One weighted layer of one student over a set of images.

    Attributes:
        student: Student index.
        layer: Weighted-layer index (0 = the layer fed by the encoded input).
        kind: ``conv`` or ``dense``.
        shape: Neuron shape without time: ``(C, H, W)`` or ``(F,)``.
        rate: Mean spikes per neuron per time step.
        rate_per_step: The same at each time step ``t = 0 .. T-1``.
        silent: Fraction of neurons that never fired on any image.
        always_on: Fraction of neurons that fired at every step on every image.
        dead_channels: Channels (conv) or neurons (dense) that never fired.
        channels: ``C`` (conv) or ``F`` (dense).
        samples: Images measured.
    """

    student: int
    layer: int
    kind: str
    shape: tuple[int, ...]
    rate: float
    rate_per_step: tuple[float, ...]
    silent: float
    always_on: float
    dead_channels: int
    channels: int
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _weighted_layers(spec: object) -> list[tuple[str, tuple[int, ...]]]:
    """``(kind, output shape)`` of each weighted layer of a student spec."""
    return [(layer.kind.value, tuple(out)) for layer, (_, out) in zip(spec.layers, spec.layer_shapes())
            if layer.kind is not LayerKind.FLATTEN]


class ActivityCounter:
    """Spike counts per student and weighted layer, fed one forward pass at a time.

    :func:`layer_activity` runs the students itself; a caller that already runs them (the
    report's evaluation pass) hands each :class:`StudentOutput` to :meth:`add` instead.
    """

    def __init__(self, students: Sequence[torch.nn.Module]) -> None:
        self._layers = [_weighted_layers(s.spec) for s in students]
        self._steps = [int(s.spec.time_steps) for s in students]
        self._counts = [[torch.zeros(shape, dtype=torch.float64) for _, shape in layers] for layers in self._layers]
        self._per_step = [[torch.zeros(t, dtype=torch.float64) for _ in layers] for layers, t in zip(self._layers, self._steps)]
        self._samples = [0] * len(students)

    def add(self, index: int, out: StudentOutput) -> None:
        """Count one batch of student ``index``'s spikes."""
        steps = self._steps[index]
        spikes = [*out.layer_inputs[1:], out.spikes_nft]
        for j, ((_, shape), s) in enumerate(zip(self._layers[index], spikes)):
            # over the batch first, on the device (exact: at most the batch size per entry)
            per_neuron_step = s.reshape(s.shape[0], *shape, steps).sum(dim=0).to(torch.float64).cpu()
            self._counts[index][j] += per_neuron_step.sum(dim=-1)
            self._per_step[index][j] += per_neuron_step.reshape(-1, steps).sum(dim=0)
        self._samples[index] += int(out.spikes_nft.shape[0])

    def rows(self) -> list[LayerActivity]:
        """One :class:`LayerActivity` per student and weighted layer, in order."""
        results: list[LayerActivity] = []
        for index, layers in enumerate(self._layers):
            n, steps = self._samples[index], self._steps[index]
            for j, (kind, shape) in enumerate(layers):
                counts = self._counts[index][j]
                neurons = counts.numel()
                by_channel = counts.reshape(shape[0], -1).sum(dim=1)
                results.append(LayerActivity(
                    student=index, layer=j, kind=kind, shape=shape,
                    rate=float(counts.sum()) / max(1, n * neurons * steps),
                    rate_per_step=tuple(float(v) / max(1, n * neurons) for v in self._per_step[index][j]),
                    silent=float((counts == 0).double().mean()),
                    always_on=float((counts >= n * steps).double().mean()) if n else 0.0,
                    dead_channels=int((by_channel == 0).sum()), channels=int(shape[0]), samples=n,
                ))
        return results


@torch.no_grad()
def layer_activity(students: Sequence[torch.nn.Module], x_nchw: torch.Tensor, batch_size: int = 256) -> list[LayerActivity]:
    """Measure every weighted layer of every student on ``x_nchw``.

    Args:
        students: The ensemble's students (each with a ``spec``), evaluated as they are
            (call ``.eval()`` first where it matters).
        x_nchw: Images in [0, 1], ``[N, C, H, W]``; moved batch by batch to each student's device.
        batch_size: Images per forward pass.

    Returns:
        One :class:`LayerActivity` per student and weighted layer, in order.
    """
    counter = ActivityCounter(students)
    for index, student in enumerate(students):
        device = next(student.parameters()).device
        for start in range(0, int(x_nchw.shape[0]), batch_size):
            counter.add(index, student(encode_for(student.spec, x_nchw[start:start + batch_size].to(device))))
    return counter.rows()


def activity_markdown(rows: Sequence[LayerActivity]) -> str:
    """A Markdown table of :func:`layer_activity`'s rows and what the columns mean."""
    lines = ["| student | layer | neurons | rate | rate per step | silent (%) | always on (%) | dead channels |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = ", ".join(f"{v:.3f}" for v in r.rate_per_step)
        lines.append(f"| {r.student} | {r.layer} {r.kind} | {'x'.join(map(str, r.shape))} | {r.rate:.3f} | {steps} "
                     f"| {100 * r.silent:.1f} | {100 * r.always_on:.1f} | {r.dead_channels} / {r.channels} |")
    samples = rows[0].samples if rows else 0
    return "\n".join(lines) + (
        f"\n\nOn {samples} test images. rate: spikes per neuron per time step; silent: neurons that never "
        "fired; always on: neurons that fired at every step on every image (neither carries information); "
        "dead channels: output channels (conv) or neurons (dense) without a single spike.")
