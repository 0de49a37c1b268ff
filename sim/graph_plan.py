"""The plan of a Lava graph: every process, where it runs, every host<->chip crossing, the
adapters a Loihi 2 run inserts and the timing they shift.

Plain data built from the netx files' descriptions (:class:`~sne_loihi.netx_format.netx_file.NetxNetwork`),
no Lava import, so it is built and tested where Intel's lava-loihi extension is absent.
:class:`~sne_loihi.sim.graph.LavaGraph` takes its reset offsets, readout and counter delays
and adapter list from the plan; the export's readiness report prints its placement and
traffic (:mod:`sne_loihi.sim.readiness`).

Layouts:

* ``TAPPED`` (what :class:`~sne_loihi.sim.graph.LavaGraph` builds: the CPU reference, the
  export's parity check and foreign netx files): one host gate feeds
  every network; each network's hidden layers feed a host op counter every step; its output
  feeds a host readout and the host cascade decision.
* ``HARDWARE`` (what :class:`~sne_loihi.sim.hw_graph.HardwareGraph` builds, the default on
  every backend): per-student input injection (the gate's mask applied on the host before the
  data leaves it), outputs read from the last layer only, no hidden-layer taps (spike counts
  inside the neurons, read once per run), the cascade decision on the host between stage runs.

Adapters (``lava.proc.embedded_io`` of the non-public extension): one ``PyToNx`` adapter per
host->chip port and one ``NxToPy`` adapter per chip port read by the host (shared by all
host readers of that port). An adapter delays its data by :class:`AdapterLatency` steps, so
a network's reset phase moves by the input latency and everything read back by both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from sne_loihi.netx_format.netx_file import NetxNetwork


class Placement(str, Enum):
    """Where a process of the graph runs on Loihi 2."""

    HOST = "host CPU (Python process model)"
    CHIP = "Loihi 2 neuro-cores (netx block)"
    ADAPTER = "host<->chip adapter (lava-loihi embedded_io)"


class Layout(str, Enum):
    """Which graph is planned (see the module docstring)."""

    TAPPED = "tapped"
    HARDWARE = "hardware"


@dataclass(frozen=True)
class AdapterLatency:
    """Steps an adapter adds on the way into (``input_steps``) and out of (``output_steps``)
    the chip. 0 on the CPU, where no adapter is inserted."""

    input_steps: int = 0
    output_steps: int = 0


#: Latency assumed for Loihi 2 until measured on hardware (one step each way: lava-dl's
#: hardware examples shift their readouts by the adapters' delay; the exact figure is not
#: in Lava's open code). Measure it with one impulse sample: the step its output arrives
#: minus the network depth.
LOIHI2_ASSUMED_LATENCY = AdapterLatency(1, 1)


@dataclass(frozen=True)
class PlanNode:
    """One process of the graph.

    Attributes:
        name: Unique name (``net0.layer2``, ``gate``, ``adapter.in.net0``).
        kind: Process type.
        placement: Where it runs.
        values: Values it holds or carries per step (neurons for a layer, port size otherwise).
    """

    name: str
    kind: str
    placement: Placement
    values: int


@dataclass(frozen=True)
class PlanEdge:
    """One connection; ``crossing`` when it goes between the host and the chip (direction
    ``to_chip`` or ``to_host``), ``values`` per step on it."""

    src: str
    dst: str
    values: int
    crossing: str = ""


@dataclass
class GraphPlan:
    """A planned graph (see the module docstring).

    Attributes:
        layout: Which graph.
        adapters: Whether adapters are inserted (Loihi 2 with the extension).
        latency: Their latency (zeros without adapters).
        nodes, edges: The processes and connections (edges run through the adapters when
            there are adapters).
        reset_offsets: Per network the ``reset_offset`` for ``hdf5.Network``.
        readout_delays: Per network the steps between a sample's data leaving the host and
            its output spikes reaching the host.
        tap_delays: Per network, per weighted layer, the delay of the spikes entering it as
            the op counter sees them (``TAPPED`` only; empty otherwise).
    """

    layout: Layout
    adapters: bool
    latency: AdapterLatency
    nodes: list[PlanNode] = field(default_factory=list)
    edges: list[PlanEdge] = field(default_factory=list)
    reset_offsets: list[int] = field(default_factory=list)
    readout_delays: list[int] = field(default_factory=list)
    tap_delays: list[list[int]] = field(default_factory=list)

    def count(self, kind: str) -> int:
        """Number of nodes of ``kind``."""
        return sum(1 for n in self.nodes if n.kind == kind)

    def values_per_step(self, direction: str) -> int:
        """Values crossing per step in ``direction`` (``to_chip`` / ``to_host``)."""
        return sum(e.values for e in self.edges if e.crossing == direction)

    def placement(self) -> dict[str, list[str]]:
        """Placement -> names of the processes placed there."""
        out: dict[str, list[str]] = {}
        for n in self.nodes:
            out.setdefault(n.placement.value, []).append(n.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (nodes by placement, traffic, timing)."""
        return {
            "layout": self.layout.value, "adapters": self.adapters, "latency": asdict(self.latency),
            "input_adapters": self.count("PyToNxAdapter"), "output_adapters": self.count("NxToPyAdapter"),
            "values_to_chip_per_step": self.values_per_step("to_chip"),
            "values_to_host_per_step": self.values_per_step("to_host"),
            "reset_offsets": list(self.reset_offsets), "readout_delays": list(self.readout_delays),
            "placement": {k: v for k, v in self.placement().items()},
        }


def _size(shape: Sequence[int]) -> int:
    out = 1
    for v in shape:
        out *= int(v)
    return out


class _Builder:
    """Adds nodes and edges; routes host<->chip edges through (shared) adapters."""

    def __init__(self, plan: GraphPlan) -> None:
        self.plan = plan
        self.where: dict[str, Placement] = {}
        self.out_adapters: dict[str, str] = {}

    def node(self, name: str, kind: str, placement: Placement, values: int) -> str:
        self.plan.nodes.append(PlanNode(name, kind, placement, values))
        self.where[name] = placement
        return name

    def edge(self, src: str, dst: str, values: int) -> None:
        a, b = self.where[src], self.where[dst]
        if a is b:
            self.plan.edges.append(PlanEdge(src, dst, values))
            return
        direction = "to_chip" if b is Placement.CHIP else "to_host"
        if not self.plan.adapters:
            self.plan.edges.append(PlanEdge(src, dst, values, direction))
            return
        if direction == "to_chip":
            adapter = self.node(f"adapter.in.{dst}", "PyToNxAdapter", Placement.ADAPTER, values)
            self.plan.edges.append(PlanEdge(src, adapter, values, direction))
            self.plan.edges.append(PlanEdge(adapter, dst, values))
            return
        adapter = self.out_adapters.get(src)
        if adapter is None:  # one adapter per chip port, shared by its host readers
            adapter = self.out_adapters[src] = self.node(f"adapter.out.{src}", "NxToPyAdapter", Placement.ADAPTER, values)
            self.plan.edges.append(PlanEdge(src, adapter, values, direction))
        self.plan.edges.append(PlanEdge(adapter, dst, values))


def input_lag(network: NetxNetwork) -> int:
    """Steps between the gate's data and the network's first block beyond netx's own timing:
    1 for an ``Input`` block driven by its bias (the bias driver writes the step's value in
    the management phase, the neuron integrates it the next step), else 0."""
    return 1 if network.bias_input is not None else 0


def base_reset_offset(network: NetxNetwork, reset_interval: int | None) -> int:
    """The ``reset_offset`` that zeroes every block at the step a sample's first step
    reaches it, without adapters: 1, or 0 behind an ``Input`` block driven by the input
    (1 behind one driven by its bias); 0 without a reset."""
    if reset_interval is None:
        return 0
    return 0 if network.input_neuron and not input_lag(network) else 1


def plan_graph(networks: Sequence[NetxNetwork], *, layout: Layout = Layout.TAPPED, adapters: bool = False,
               latency: AdapterLatency | None = None, reset_interval: int | None = 1, retime: bool = True,
               decision: bool = False) -> GraphPlan:
    """Plan the graph over ``networks``.

    Args:
        networks: The netx networks (one per student).
        layout: ``TAPPED`` (today's graph) or ``HARDWARE``.
        adapters: Insert host<->chip adapters (a Loihi 2 run with the extension).
        latency: Adapter latency; default :data:`LOIHI2_ASSUMED_LATENCY` with adapters,
            zeros without.
        reset_interval: The networks' reset interval (``None``: no reset).
        retime: Attribute outputs to samples by the depth (readout / tap delays); off: 0.
        decision: The tapped graph holds the in-graph cascade decision.
    """
    if latency is None:
        latency = LOIHI2_ASSUMED_LATENCY if adapters else AdapterLatency()
    plan = GraphPlan(layout=Layout(layout), adapters=bool(adapters), latency=latency)
    b = _Builder(plan)
    tapped = plan.layout is Layout.TAPPED
    if tapped:
        b.node("gate", "Gate", Placement.HOST, _size(networks[0].input_shape_xyz))
        if decision:
            b.node("decision", "CascadeDecision", Placement.HOST, sum(_size(n.layers[-1].out_shape_xyz) for n in networks))
    shift_in, shift_out = latency.input_steps, latency.output_steps
    for k, net in enumerate(networks):
        offset = base_reset_offset(net, reset_interval)
        plan.reset_offsets.append(offset + shift_in if reset_interval is not None else 0)
        depth, lag = len(net.layers), input_lag(net)
        plan.readout_delays.append(depth + lag + shift_in + shift_out if retime else 0)
        in_size = _size(net.input_shape_xyz)
        src = "gate" if tapped else b.node(f"source{k}", "InputInjection", Placement.HOST, in_size)
        blocks = [b.node(f"net{k}.layer{j}", layer.kind.value, Placement.CHIP, _size(layer.out_shape_xyz))
                  for j, layer in enumerate(net.layers)]
        first = blocks[0]
        if net.input_neuron:
            first = b.node(f"net{k}.input", "Input", Placement.CHIP, in_size)
            b.edge(first, blocks[0], in_size)
        b.edge(src, first, in_size)
        for j in range(1, depth):
            b.edge(blocks[j - 1], blocks[j], _size(net.layers[j - 1].out_shape_xyz))
        readout = b.node(f"readout{k}", "Readout", Placement.HOST, _size(net.layers[-1].out_shape_xyz))
        b.edge(blocks[-1], readout, _size(net.layers[-1].out_shape_xyz))
        if tapped:
            counter = b.node(f"counter{k}", "OpCounter", Placement.HOST, depth)
            b.edge(first if net.input_neuron else src, counter, in_size)
            for j in range(1, depth):
                b.edge(blocks[j - 1], counter, _size(net.layers[j - 1].out_shape_xyz))
            first_tap = shift_in + shift_out if net.input_neuron else 0  # the gate's data never leaves the host
            base = [first_tap + lag] + [j + lag + shift_in + shift_out for j in range(1, depth)]
            plan.tap_delays.append(base if retime else [0] * depth)
            if decision:
                b.edge(blocks[-1], "decision", _size(net.layers[-1].out_shape_xyz))
    if tapped and decision:
        b.edge("decision", "gate", len(networks))
    return plan
