"""What a student is, independent of the neuron library: layer list, input, time and neurons.

Nothing here imports SLAYER or SpikingJelly, so specs can be built, validated, stored in
checkpoints and read back cheaply. :func:`sne_loihi.students.build_student` turns a
:class:`StudentSpec` into a network.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sne_loihi.config import NeuronConfig, NeuronLibrary, StudentEngine, StudentNorm
from sne_loihi.errors import ConfigError
from sne_loihi.layers import LayerKind

#: Most bits a graded input spike may carry here. Lava's graded spikes allow more, but the
#: first layer's integer input x 8-bit weights x fan-in must stay inside Loihi's 24-bit state.
MAX_INPUT_BITS = 8


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a student.

    Attributes:
        kind: Conv, flatten or dense.
        out_features: Output channels (conv) or neurons (dense); unused for flatten.
        kernel, stride, padding: Square convolution geometry (conv only).
    """

    kind: LayerKind
    out_features: int = 0
    kernel: int = 3
    stride: int = 1
    padding: int = 1

    @property
    def weighted(self) -> bool:
        """Whether the layer has synapses and neurons (conv, dense)."""
        return self.kind is not LayerKind.FLATTEN

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (kind as its string value)."""
        return {"kind": self.kind.value, "out_features": self.out_features, "kernel": self.kernel,
                "stride": self.stride, "padding": self.padding}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerSpec:
        """Inverse of :meth:`to_dict`; bad keys or values raise :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a layer spec must be a table, got {data!r}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown layer spec key(s): {', '.join(unknown)}")
        try:
            kind = LayerKind(data.get("kind"))
        except ValueError:
            raise ConfigError(f"layer kind {data.get('kind')!r} is not one of conv, flatten, dense") from None
        ints = {k: data[k] for k in ("out_features", "kernel", "stride", "padding") if k in data}
        for key, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"layer spec {key} must be an integer, got {value!r}")
        return cls(kind, **ints)


def conv(out_features: int, stride: int = 1, kernel: int = 3) -> LayerSpec:
    """A square ``kernel`` convolution with 'same' padding (``kernel // 2``)."""
    return LayerSpec(LayerKind.CONV, out_features, kernel=kernel, stride=stride, padding=kernel // 2)


def dense(out_features: int) -> LayerSpec:
    """A fully connected layer."""
    return LayerSpec(LayerKind.DENSE, out_features)


FLATTEN = LayerSpec(LayerKind.FLATTEN)


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis (dilation 1)."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class StudentSpec:
    """Everything needed to build one student, storable as a plain dict.

    Attributes:
        layers: The layers in order; the last is DENSE with ``out_features`` neurons.
        in_shape: Input ``(C, H, W)``.
        out_features: Size of the student's feature sub-vector (its last layer's neurons).
        time_steps: T.
        input_bits: Bits of the graded input spikes (SLAYER backend).
        neuron: CUBA-LIF parameters (SLAYER backend; the SpikingJelly reference uses the
            paper's fixed LIF neuron).
        neuron_library: SLAYER or SpikingJelly (stored specs that call it ``backend`` load).
        engine: How a SLAYER student executes (identical spikes; see ``StudentEngine``).
        norm: ``BATCH``: a batch norm on each convolution's synaptic input (training form);
            ``FOLDED``: each convolution has a per-channel neuron bias instead (the trained,
            exported form); see :class:`~sne_loihi.config.StudentNorm`.
    """

    layers: tuple[LayerSpec, ...]
    in_shape: tuple[int, int, int]
    out_features: int
    time_steps: int
    input_bits: int
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    neuron_library: NeuronLibrary = NeuronLibrary.SLAYER
    engine: StudentEngine = StudentEngine.FAST
    norm: StudentNorm = StudentNorm.NONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        object.__setattr__(self, "neuron_library", NeuronLibrary(self.neuron_library))
        object.__setattr__(self, "engine", StudentEngine(self.engine))
        object.__setattr__(self, "norm", StudentNorm(self.norm))
        self.validate()

    def validate(self) -> None:
        """Check the spec describes a network netx can run.

        Raises:
            ConfigError: Bad input shape, time steps, bits, or layer sequence.
        """
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise ConfigError(f"student in_shape must be three positive sizes (C, H, W), got {self.in_shape}")
        if self.time_steps < 1:
            raise ConfigError(f"student time_steps must be >= 1, got {self.time_steps}")
        if not 1 <= self.input_bits <= MAX_INPUT_BITS:
            raise ConfigError(f"student input_bits must be in 1..{MAX_INPUT_BITS}, got {self.input_bits}")
        if not self.layers or self.layers[-1].kind is not LayerKind.DENSE:
            raise ConfigError("a student's last layer must be DENSE")
        why = norm_refusal(self.norm, self.neuron_library, self.neuron.current_decay)
        if why is not None:
            raise ConfigError(why)
        if self.layers[-1].out_features != self.out_features:
            raise ConfigError(f"the last layer has {self.layers[-1].out_features} neurons, "
                              f"but out_features is {self.out_features}")
        self.layer_shapes()  # raises on an impossible sequence

    def layer_shapes(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """``(input shape, output shape)`` of every layer, without time.

        Conv shapes are ``(C, H, W)``, flatten/dense shapes ``(F,)``.

        Raises:
            ConfigError: A conv after flatten, a dense on an unflattened input, a
                non-positive width or a convolution that leaves no pixels.
        """
        shapes = []
        shape: tuple[int, ...] = self.in_shape
        for i, layer in enumerate(self.layers):
            if layer.kind is not LayerKind.FLATTEN and layer.out_features < 1:
                raise ConfigError(f"layer {i} ({layer.kind.value}) needs out_features >= 1")
            if layer.kind is LayerKind.CONV:
                if len(shape) != 3:
                    raise ConfigError(f"layer {i}: a conv needs a (C, H, W) input, got {shape}")
                if layer.kernel < 1 or layer.stride < 1 or layer.padding < 0:
                    raise ConfigError(f"layer {i}: bad conv geometry {layer}")
                h, w = (conv_out_size(s, layer.kernel, layer.stride, layer.padding) for s in shape[1:])
                if h < 1 or w < 1:
                    raise ConfigError(f"layer {i}: convolution of a {shape} input leaves no pixels")
                out: tuple[int, ...] = (layer.out_features, h, w)
            elif layer.kind is LayerKind.FLATTEN:
                if len(shape) != 3:
                    raise ConfigError(f"layer {i}: flatten needs a (C, H, W) input, got {shape}")
                out = (shape[0] * shape[1] * shape[2],)
            else:
                if len(shape) != 1:
                    raise ConfigError(f"layer {i}: dense needs a flat input; add a FLATTEN layer before it")
                out = (layer.out_features,)
            shapes.append((shape, out))
            shape = out
        return shapes

    def weighted_layers(self) -> list[LayerSpec]:
        """The conv and dense layers in order (the ones with synapses, counted by the cost)."""
        return [layer for layer in self.layers if layer.weighted]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/TOML-safe dict."""
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "in_shape": list(self.in_shape),
            "out_features": self.out_features,
            "time_steps": self.time_steps,
            "input_bits": self.input_bits,
            "neuron": dataclasses.asdict(self.neuron),
            "neuron_library": self.neuron_library.value,
            "engine": self.engine.value,
            "norm": self.norm.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: Missing or unknown keys, bad values.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a student spec must be a table, got {data!r}")
        if "backend" in data:  # the old name of neuron_library (specs stored before the rename)
            if "neuron_library" in data:
                raise ConfigError("a student spec gives both backend (the old name) and neuron_library")
            data = {("neuron_library" if k == "backend" else k): v for k, v in data.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted({"layers", "in_shape", "out_features", "time_steps", "input_bits"} - set(data))
        if unknown or missing:
            raise ConfigError(f"bad student spec: unknown {unknown or '-'}, missing {missing or '-'}")
        neuron_data = data.get("neuron", {})
        neuron_keys = {f.name for f in dataclasses.fields(NeuronConfig)}
        if (not isinstance(neuron_data, dict) or set(neuron_data) - neuron_keys
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in neuron_data.values())):
            raise ConfigError(f"bad neuron parameters in student spec: {neuron_data!r}")
        try:
            library = NeuronLibrary(data.get("neuron_library", NeuronLibrary.SLAYER.value))
        except ValueError:
            raise ConfigError(f"unknown student neuron library {data.get('neuron_library')!r}") from None
        try:
            engine = StudentEngine(data.get("engine", StudentEngine.FAST.value))
        except ValueError:
            raise ConfigError(f"unknown student engine {data.get('engine')!r}") from None
        try:
            norm = StudentNorm(data.get("norm", StudentNorm.NONE.value))
        except ValueError:
            raise ConfigError(f"unknown student norm {data.get('norm')!r}") from None
        for key in ("out_features", "time_steps", "input_bits"):
            if isinstance(data[key], bool) or not isinstance(data[key], int):
                raise ConfigError(f"student spec {key} must be an integer, got {data[key]!r}")
        if not isinstance(data["layers"], (list, tuple)) or not isinstance(data["in_shape"], (list, tuple)):
            raise ConfigError("student spec layers and in_shape must be lists")
        try:
            neuron = NeuronConfig(**{k: float(v) for k, v in neuron_data.items()})
        except OverflowError:  # an integer beyond float's range (a stored file may hold any integer)
            raise ConfigError("bad neuron parameters in student spec: a value beyond the float range") from None
        check_neuron(neuron, "student spec neuron")
        return cls(
            layers=tuple(LayerSpec.from_dict(d) for d in data["layers"]),
            in_shape=tuple(data["in_shape"]),
            out_features=data["out_features"],
            time_steps=data["time_steps"],
            input_bits=data["input_bits"],
            neuron=neuron,
            neuron_library=library,
            engine=engine,
            norm=norm,
        )


def _finite(value: int | float) -> bool:
    """``math.isfinite``, False for an integer beyond float's range (where it raises)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def norm_refusal(norm: StudentNorm | str, library: NeuronLibrary | str, current_decay: float,
                 where: str = "student ") -> str | None:
    """Why students with this norm, neuron library and current decay cannot have their batch
    norm folded for Loihi, or ``None``. The one rule behind the config check and a built spec's.

    Args:
        norm: The students' norm.
        library: Their neuron library.
        current_decay: Their CUBA current decay.
        where: What the message puts before ``norm`` (``"student."`` for the config key).
    """
    norm, library = StudentNorm(norm), NeuronLibrary(library)
    if norm is StudentNorm.FOLDED and library is not NeuronLibrary.SLAYER:
        return f"{where}norm {norm.value!r} needs the SLAYER neuron library"
    if norm is not StudentNorm.NONE and library is NeuronLibrary.SLAYER and current_decay != 1.0:
        return (f"{where}norm {norm.value!r} needs current_decay = 1.0, got {current_decay}: the folded mean "
                "becomes a neuron bias, which Loihi adds to the voltage, equal to a constant current only without "
                "current memory")
    return None


def check_neuron(neuron: NeuronConfig, where: str = "student.neuron") -> None:
    """Refuse parameters no CUBA-LIF neuron can have: threshold and gradient shape > 0,
    decays in [0, 1], all finite.

    Args:
        neuron: The parameters.
        where: How the message names them (a config key or a file's spec).

    Raises:
        ConfigError: The first bad parameter, in one line.
    """
    for name, decay in (("threshold", False), ("current_decay", True), ("voltage_decay", True),
                        ("tau_grad", False), ("scale_grad", False)):
        value = getattr(neuron, name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
        if not decay and not (number and value > 0):
            raise ConfigError(f"{where}.{name} must be > 0, got {value!r}")
        if decay and not (number and 0 <= value <= 1):
            raise ConfigError(f"{where}.{name} must be in [0, 1], got {value!r}")
