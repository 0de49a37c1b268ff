"""NeuroBench as an outside referee of our synaptic-op counts (``sne evaluate --neurobench``).

NeuroBench (``neurobench`` 2.3, the ``interop`` extra / dev group) hooks every ``nn.Conv1d/2d/3d``
and ``nn.Linear`` subclass, so SLAYER's synapses (``Conv3d`` subclasses), and counts, per call,
``non-zero inputs x non-zero-weight fan-out`` (``SynapticOperations``: effective MACs when the
call's input holds a value outside {-1, 0, 1}, effective ACs otherwise; ``Dense``: every
synapse of every input). Our counter (:mod:`sne_loihi.cost.ops`) applies the same rule to the
weights the forward pass multiplies with (SLAYER's ``pre_hook_fx`` quantisation) and decides
MAC vs AC from ``input_bits``.

NeuroBench reads a synapse's ``.weight``; SLAYER keeps the raw float weights there and
quantises inside its forward. So the referee runs on a copy of each student whose ``.weight``
holds the quantised weights (quantisation is idempotent: the copy's spikes are checked to be
the original's); on raw weights NeuroBench counts the synapses whose weight rounds to zero too
(:func:`neurobench_counts` with ``quantised=False`` shows that over-count). The copy runs
SLAYER's own block forwards (the fast engine calls ``conv2d`` directly and NeuroBench's hooks
would see nothing).

Nothing here imports NeuroBench or SLAYER at module level.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sne_loihi.config import NeuronLibrary, StudentEngine
from sne_loihi.cost.ops import OpKind, count_student_ops, neuron_updates_per_sample
from sne_loihi.errors import ConfigError, SneError

#: NeuroBench sums each hooked call's counts in float32 (``nr_updates.sum()``), exact only up to
#: 2**24; larger batches lost single operations (measured: 1 AC in 41.7 million on digits).
FLOAT32_EXACT = 2**24

INSTALL_HINT = "install the 'interop' extra (pip install 'sne-loihi[interop]'; uv sync installs it with the dev group)"


@dataclass
class RefereeRow:
    """NeuroBench's per-sample numbers next to ours for one student (or the ensemble).

    Attributes:
        model: ``student i`` or ``ensemble``.
        samples: Test samples counted.
        nb_macs, nb_acs, nb_dense: NeuroBench ``SynapticOperations`` per sample.
        our_macs, our_acs: :func:`~sne_loihi.cost.ops.count_student_ops` per sample.
        nb_sparsity, our_sparsity: Fraction of (neuron, step) outputs without a spike.
        footprint_bytes: NeuroBench ``Footprint`` (parameters and buffers as torch holds them).
        params: Trainable parameters.
    """

    model: str
    samples: int
    nb_macs: float
    nb_acs: float
    nb_dense: float
    our_macs: float
    our_acs: float
    nb_sparsity: float
    our_sparsity: float
    footprint_bytes: int
    params: int

    @property
    def diff_macs(self) -> float:
        """NeuroBench minus ours (expected 0)."""
        return self.nb_macs - self.our_macs

    @property
    def diff_acs(self) -> float:
        """NeuroBench minus ours (expected 0)."""
        return self.nb_acs - self.our_acs

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the differences."""
        return {**asdict(self), "diff_macs": self.diff_macs, "diff_acs": self.diff_acs,
                "diff_sparsity": self.nb_sparsity - self.our_sparsity}


def import_neurobench() -> Any:
    """The NeuroBench pieces used here, or a one-line error."""
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics.static import Footprint
        from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
        from neurobench.models import TorchModel
    except ImportError as exc:
        raise SneError(f"the NeuroBench cross-check needs neurobench ({exc}); {INSTALL_HINT}") from None
    return Benchmark, TorchModel, Footprint, SynapticOperations, ActivationSparsity


def quantised_copy(student: nn.Module) -> nn.Module:
    """A copy of a SLAYER student that runs SLAYER's block forwards and whose synapses'
    ``.weight`` holds the quantised weights (what NeuroBench reads).

    Raises:
        ConfigError: Not a SLAYER student (SpikingJelly students have no quantiser; their
            float weights are already what they multiply with: pass ``quantised=False``).
    """
    from dataclasses import replace

    if student.spec.neuron_library is not NeuronLibrary.SLAYER:
        raise ConfigError("quantised_copy needs a SLAYER student")
    twin = copy.deepcopy(student)
    twin.spec = replace(student.spec, engine=StudentEngine.SLAYER)
    with torch.no_grad():
        for block in twin.blocks:
            synapse = getattr(block, "synapse", None)
            hook = getattr(synapse, "_pre_hook_fx", None)
            if hook is not None:
                synapse.weight.data = hook(synapse.weight.data)
    return twin


class _SpikesOut(nn.Module):
    """What NeuroBench runs: images ``[N, C, H, W]`` -> the student's output spikes ``[N, F, T]``."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        from sne_loihi.students import encode_for

        return self.student(encode_for(self.student.spec, x_nchw)).spikes_nft


def exact_batch_size(spec: Any, requested: int) -> int:
    """The largest batch <= ``requested`` whose every hooked call counts at most 2**24
    synapse uses (all inputs non-zero, every weight present), so NeuroBench's float32 sums
    stay exact."""
    from sne_loihi.layers import LayerKind

    worst = 1
    for layer, (in_shape, out_shape) in zip(spec.layers, spec.layer_shapes()):
        if layer.weighted:
            fan_in = in_shape[0] * layer.kernel**2 if layer.kind is LayerKind.CONV else in_shape[0]
            worst = max(worst, spec.time_steps * math.prod(out_shape) * fan_in)
    return max(1, min(int(requested), FLOAT32_EXACT // worst))


def neurobench_counts(student: nn.Module, x_nchw: torch.Tensor, batch_size: int = 64,
                      quantised: bool = True) -> dict[str, Any]:
    """Run NeuroBench's ``Footprint``, ``SynapticOperations`` and ``ActivationSparsity`` on one
    SLAYER student over ``x_nchw``.

    Args:
        batch_size: Samples per NeuroBench call, lowered to :func:`exact_batch_size`.
        quantised: Put the quantised weights into ``.weight`` first (the right count);
            ``False`` gives NeuroBench the raw weights (over-counts rounded-away synapses).

    Returns:
        NeuroBench's results dict (``SynapticOperations`` -> ``Effective_MACs`` /
        ``Effective_ACs`` / ``Dense`` per sample).

    Raises:
        SneError: neurobench is missing, or a metric failed (NeuroBench prints the error
            and records 0.0; that is turned into an error here).
    """
    from torch.utils.data import DataLoader, TensorDataset

    from sne_loihi.students.slayer_student import import_slayer

    Benchmark, TorchModel, Footprint, SynapticOperations, ActivationSparsity = import_neurobench()
    twin = quantised_copy(student) if quantised else copy.deepcopy(student)
    if not quantised:
        from dataclasses import replace

        twin.spec = replace(student.spec, engine=StudentEngine.SLAYER)
    if quantised:  # the copy must be the same network: the same spikes on a first batch
        from sne_loihi.students import encode_for

        xb = encode_for(student.spec, x_nchw[:batch_size].float())
        with torch.no_grad():
            if not torch.equal(twin(xb).spikes_nft, student(xb).spikes_nft):
                raise SneError("internal error: the student with quantised .weight spikes differently")
    model = TorchModel(_SpikesOut(twin))
    model.add_activation_module(import_slayer().neuron.cuba.Neuron)  # SLAYER's neurons are the activations
    x = x_nchw.detach().cpu().float()
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)),
                        batch_size=exact_batch_size(student.spec, batch_size), shuffle=False)
    bench = Benchmark(model, loader, [], [], [[Footprint], [SynapticOperations, ActivationSparsity]])
    log = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stderr(log):
        results = bench.run(quiet=True)
    ops = results.get("SynapticOperations")
    if not isinstance(ops, dict) or not isinstance(results.get("ActivationSparsity"), float):
        raise SneError(f"NeuroBench could not run its metrics on the student ({log.getvalue().strip()[:200] or ops!r})")
    return results


@torch.no_grad()
def our_counts(student: nn.Module, x_nchw: torch.Tensor, batch_size: int = 64) -> tuple[float, float, float]:
    """Per-sample MACs, ACs (:func:`count_student_ops`) and activation sparsity of one student."""
    from sne_loihi.students import encode_for

    macs = acs = spikes = 0.0
    for start in range(0, len(x_nchw), batch_size):
        xb = x_nchw[start:start + batch_size]
        out = student(encode_for(student.spec, xb))
        ops = count_student_ops(student, out)
        macs += float(ops.macs_n.sum())
        acs += float(ops.acs_n.sum())
        spikes += float(sum(float((t != 0).sum()) for t in [*out.layer_inputs[1:], out.spikes_nft]))
    n = len(x_nchw)
    neuron_steps = neuron_updates_per_sample(student.spec) * n
    return macs / n, acs / n, 1.0 - spikes / neuron_steps


def cross_check(model: nn.Module, x_nchw: torch.Tensor, batch_size: int = 64) -> list[RefereeRow]:
    """NeuroBench vs our counts for every student of an ensemble (all active) and their sum.

    The head is not counted (it runs on the host, once per sample, outside the spiking
    network; NeuroBench would count it as MACs if it were part of the hooked model).

    Raises:
        SneError: neurobench missing or failing; ConfigError for non-SLAYER students.
    """
    rows = []
    for i, student in enumerate(model.students):
        nb = neurobench_counts(student, x_nchw, batch_size)
        macs, acs, sparsity = our_counts(student, x_nchw, batch_size)
        ops = nb["SynapticOperations"]
        rows.append(RefereeRow(
            model=f"student {i}", samples=len(x_nchw), nb_macs=float(ops["Effective_MACs"]),
            nb_acs=float(ops["Effective_ACs"]), nb_dense=float(ops["Dense"]), our_macs=macs, our_acs=acs,
            nb_sparsity=float(nb["ActivationSparsity"]), our_sparsity=sparsity, footprint_bytes=int(nb["Footprint"]),
            params=sum(p.numel() for p in student.parameters() if p.requires_grad)))
    total = {k: sum(getattr(r, k) for r in rows) for k in ("nb_macs", "nb_acs", "nb_dense", "our_macs", "our_acs",
                                                           "footprint_bytes", "params")}
    steps = [neuron_updates_per_sample(s.spec) for s in model.students]
    mean = {k: sum(getattr(r, k) * w for r, w in zip(rows, steps)) / sum(steps) for k in ("nb_sparsity", "our_sparsity")}
    rows.append(RefereeRow(model="ensemble", samples=len(x_nchw), **total, **mean))
    return rows


def referee_markdown(rows: list[RefereeRow]) -> str:
    """The report section: NeuroBench's counts, ours and the difference."""
    from sne_loihi.report import markdown_table

    columns = (
        ("model", "model", str),
        ("nb_macs", "NeuroBench MACs", lambda v: f"{v:,.2f}"), ("our_macs", "our MACs", lambda v: f"{v:,.2f}"),
        ("diff_macs", "diff", lambda v: f"{v:+g}"),
        ("nb_acs", "NeuroBench ACs", lambda v: f"{v:,.2f}"), ("our_acs", "our ACs", lambda v: f"{v:,.2f}"),
        ("diff_acs", "diff", lambda v: f"{v:+g}"),
        ("nb_dense", "NeuroBench dense ops", lambda v: f"{v:,.0f}"),
        ("nb_sparsity", "NeuroBench act. sparsity", lambda v: f"{v:.6f}"),
        ("our_sparsity", "our act. sparsity", lambda v: f"{v:.6f}"),
        ("footprint_bytes", "footprint (bytes)", lambda v: f"{int(v):,}"),
    )
    n = rows[0].samples if rows else 0
    return (markdown_table([r.to_dict() for r in rows], columns)
            + f"\n\nPer sample, over {n} test samples, all students active. NeuroBench "
            "(`SynapticOperations`, `ActivationSparsity`, `Footprint`) hooked SLAYER's synapses and neurons on "
            "copies of the students whose `.weight` holds the quantised weights the forward pass uses; MAC vs AC "
            f"is NeuroBench's per-call decision ({OpKind.MAC.value}: a non-binary input). Dense ops count every "
            "synapse of every input; the footprint is the float32 parameters and buffers torch holds (Loihi "
            "stores 8-bit weights). The head (host side) is in neither count.")
