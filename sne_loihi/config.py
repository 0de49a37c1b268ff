"""Typed run configuration: one small dataclass per concern, stored in every artifact.

A run's resolved :class:`RunConfig` is written to ``RUN/config.toml`` and into every
checkpoint (``ckpt["config"]``), so an artifact rebuilds itself with
``RunConfig.from_dict(ckpt["config"])``. Precedence when resolving: dataset preset <
TOML file < CLI flags (see :func:`resolve`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli
import tomli_w

from sne_loihi.errors import ConfigError


class Optimizer(str, enum.Enum):
    """Optimisers a training stage may use."""

    ADAM = "adam"
    ADAMW = "adamw"
    SGD = "sgd"


class StudentBackend(str, enum.Enum):
    """Which neuron library a student is built with.

    ``SLAYER``: lava-dl SLAYER CUBA-LIF, quantised like Loihi; exportable to netx and Lava.
    ``SPIKINGJELLY``: the paper's SpikingJelly LIF (Eqs. 1-3), float, torch only: the
    reference to compare with; it cannot be exported.
    """

    SLAYER = "slayer"
    SPIKINGJELLY = "spikingjelly"


class StudentEngine(str, enum.Enum):
    """How SLAYER students are executed (the parameters and the exported network are the same).

    ``FAST``: the project's time-major engine (``sne_loihi.students.fast_cuba``): SLAYER's
    quantised weights and fixed-point CUBA arithmetic, spike-for-spike identical to SLAYER,
    one fused autograd op per layer, plain torch on CPU and CUDA (nothing compiled).
    ``SLAYER``: lava-dl's own blocks (its CPU path is a Python loop over time on int64; on
    CUDA it compiles ``.cu`` kernels at first use, which needs nvcc).
    """

    FAST = "fast"
    SLAYER = "slayer"


class PartitionStrategy(str, enum.Enum):
    """How the teacher's feature dimensions are split among students (method.md section 4)."""

    FIXED = "fixed"
    AGGLOMERATIVE = "agglomerative"
    KMEANS = "kmeans"
    BALANCED_KMEANS = "balanced-kmeans"
    BALANCED_OPTIMAL = "balanced-optimal"
    FINETUNE = "finetune"


class FeatureScaling(str, enum.Enum):
    """How teacher features are mapped onto the students' firing-rate range [0, 1].

    ``MAX``: divide each feature dimension by a high percentile of its training-set values
    (``feature_percentile``) and clip to [0, 1]. Teacher features are post-ReLU (>= 0), so
    this keeps every dimension inside the range a rate can reach while preserving its
    relative spread. ``NONE``: use raw features (only sensible for teachers already in [0, 1]).
    """

    MAX = "max"
    NONE = "none"


@dataclass
class DataConfig:
    """Which data set and how it is read.

    Attributes:
        name: Registered data set name (``digits`` or ``cifar10``).
        data_dir: Folder for file-based data sets (CIFAR-10 python-batch layout).
        augment: Standard augmentation during training (random crop with padding, flip).
        test_fraction: Held-out fraction for data sets without an official split (digits).
        max_train: Use at most this many training samples (0 = all); stratified prefix.
        max_test: Use at most this many test samples (0 = all).
    """

    name: str = "digits"
    data_dir: str | None = None
    augment: bool = False
    test_fraction: float = 0.2
    max_train: int = 0
    max_test: int = 0


@dataclass
class TeacherConfig:
    """The ANN teacher and how it is trained.

    Attributes:
        arch: Registered teacher name, or ``external`` for a user's own model.
        factory: For ``external``: ``"package.module:function"`` returning the nn.Module.
        feature_layer: For ``external``: name of the module whose output is f_T.
        checkpoint: For ``external``: path to the user's state_dict.
        epochs, lr, batch_size, optimizer, weight_decay: Training settings (``batch_size`` is
            the global batch: under torchrun each of P processes takes ``batch_size / P``).
        amp: Train in mixed precision (float16 + loss scaling on CUDA, bfloat16 on CPU);
            off by default, so results are float32's.
    """

    arch: str = "digits_cnn"
    factory: str | None = None
    feature_layer: str | None = None
    checkpoint: str | None = None
    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64
    optimizer: Optimizer = Optimizer.ADAM
    weight_decay: float = 1e-4
    amp: bool = False


@dataclass
class NeuronConfig:
    """SLAYER CUBA-LIF neuron parameters (Loihi semantics, see method.md section 2)."""

    threshold: float = 1.0
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    tau_grad: float = 0.03
    scale_grad: float = 3.0


@dataclass
class StudentConfig:
    """The spiking students.

    Attributes:
        arch: Registered student architecture name.
        backend: Neuron library (SLAYER for Loihi, SpikingJelly as the paper's reference).
        width: Channel multiplier applied to the architecture's base widths.
        time_steps: T, the number of steps the (repeated) input is presented.
        input_bits: Graded input spikes carry pixel values quantised to this many bits
            (integers 0 .. 2**bits - 1, exactly what the Lava graph's gate sends with
            ``input_message_bits = input_bits``).
        neuron: CUBA-LIF parameters.
        engine: How SLAYER students run (same spikes either way; see :class:`StudentEngine`).
    """

    arch: str = "digits_small"
    backend: StudentBackend = StudentBackend.SLAYER
    engine: StudentEngine = StudentEngine.FAST
    width: float = 1.0
    time_steps: int = 4
    input_bits: int = 4
    neuron: NeuronConfig = field(default_factory=NeuronConfig)


@dataclass
class EnsembleConfig:
    """The student ensemble and its distillation loss.

    Attributes:
        num_students: N.
        partition: How teacher features are split among the students.
        alpha: Weight of the distillation term (0 = no distillation).
        feature_scaling: How teacher features meet the rate range [0, 1].
        feature_percentile: Percentile used by ``FeatureScaling.MAX``.
        train_active: Dropout training: activate this many random students per batch
            (0 = all).
    """

    num_students: int = 4
    partition: PartitionStrategy = PartitionStrategy.FIXED
    alpha: float = 5.0
    feature_scaling: FeatureScaling = FeatureScaling.MAX
    feature_percentile: float = 99.0
    train_active: int = 0


@dataclass
class FinetuneConfig:
    """Teacher disentanglement before distillation (method.md section 4), run by
    ``sne pipeline`` when ``ensemble.partition = "finetune"``: the teacher is fine-tuned with
    ``L_CE + beta * L_sim`` over ``ensemble.num_students`` contiguous chunks, then the
    contiguous equal split is used.

    Attributes:
        beta: Weight of L_sim; must be negative (L_sim is maximised).
        epochs: Fine-tuning epochs (the paper: 10-20).
        lr: Adam learning rate of the fine-tuning.
    """

    beta: float = -0.5
    epochs: int = 10
    lr: float = 1e-4

    def __post_init__(self) -> None:
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not (
            math.isfinite(self.beta) and self.beta < 0
        ):
            raise ConfigError(f"finetune.beta must be a negative number (L_sim is maximised), got {self.beta!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"finetune.epochs must be a positive integer, got {self.epochs!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
            math.isfinite(self.lr) and self.lr > 0
        ):
            raise ConfigError(f"finetune.lr must be a positive number, got {self.lr!r}")


@dataclass
class TrainConfig:
    """Student-ensemble training settings.

    Attributes:
        batch_size: The global batch (under torchrun each of P processes takes ``batch_size / P``).
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:i]``.
        threads: torch intra-op threads on CPU (0 = torch's default).
    """

    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 64
    optimizer: Optimizer = Optimizer.ADAM
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    threads: int = 0


class Backend(str, enum.Enum):
    """Where the Lava graph runs: ``auto`` (Loihi 2 when Intel's lava-loihi extension is
    installed, else the CPU), ``cpu`` (``Loihi2SimCfg`` fixed point) or ``loihi2``."""

    AUTO = "auto"
    CPU = "cpu"
    LOIHI2 = "loihi2"


#: The energy profile reports, ``sne evaluate`` and ``sne simulate`` use unless told otherwise
#: (:data:`sne_loihi.cost.energy.ENERGY_PROFILES`).
DEFAULT_ENERGY_PROFILE = "cmos45nm"
#: Samples per Lava run of one compiled graph (``lava.capacity``, ``--capacity``, the graph's,
#: the simulator's and the export parity check's default).
DEFAULT_LAVA_CAPACITY = 25
#: Test samples of the Lava stage, the export's parity check and ``sne simulate``.
DEFAULT_LAVA_SAMPLES = 100


@dataclass
class LavaConfig:
    """The pipeline's export and Lava simulation stage.

    Attributes:
        enabled: Export to netx and simulate in Lava at the end of ``sne pipeline``.
        samples: The first test samples that the export's parity check and the simulation
            run (0 disables the stage).
        backend: Where the simulation runs.
        capacity: Samples per Lava run of the one compiled graph.
        active: Active sets to simulate on the same graph, each ``all``, indices
            ``0,2`` or ``k=K`` (K drawn at random with the run's seed).
        cascade: Confidence thresholds of per-sample activation simulated on the same
            graph: the run's cascade head (trained before the export) decides in the graph,
            after each student, whether a sample goes on (0: the first student only; > 1:
            every student). Empty: no per-sample runs.
    """

    enabled: bool = True
    samples: int = DEFAULT_LAVA_SAMPLES
    backend: Backend = Backend.AUTO
    capacity: int = DEFAULT_LAVA_CAPACITY
    active: list[str] = field(default_factory=lambda: ["all", "0"])
    cascade: list[float] = field(default_factory=lambda: [0.6, 0.9])


@dataclass
class RunConfig:
    """Everything needed to rebuild and re-run one experiment.

    Attributes:
        preset: The named preset the run was resolved from (``--preset``), recorded for the
            reader; it changes nothing by itself (the resolved sections hold every value).
    """

    preset: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lava: LavaConfig = field(default_factory=LavaConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, TOML/JSON-safe dict (enums as their values, ``None`` dropped)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise :class:`ConfigError`."""
        return _from_plain(cls, data, "")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = _to_plain(getattr(obj, f.name))
            if value is not None:
                out[f.name] = value
        return out
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def _from_plain(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or 'root'!r} must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) in {where or 'root'!r}: {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}".lstrip("."))
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        return _from_plain(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def preset(dataset: str) -> RunConfig:
    """Defaults that work for a data set (``digits`` or ``cifar10``).

    Raises:
        ConfigError: For an unknown data set name.
    """
    if dataset == "digits":
        return RunConfig()
    if dataset == "cifar10":
        return RunConfig(
            data=DataConfig(name="cifar10", augment=True),
            teacher=TeacherConfig(arch="vgg11", epochs=10, lr=1e-3, batch_size=128),
            student=StudentConfig(arch="vgg5mini", time_steps=4, input_bits=4),
            ensemble=EnsembleConfig(num_students=4, alpha=5.0),
            train=TrainConfig(epochs=5, lr=1e-3, batch_size=64),
            # The fast Lava engine runs 4 x vgg5mini at ~3 samples/s per pass on 2 cores (~0.05 with
            # Lava's own Conv model, see benchmarks/results/bench_lava.md).
            lava=LavaConfig(samples=200),
        )
    raise ConfigError(f"no preset for data set {dataset!r}; known: digits, cifar10")


#: Named presets shipped with the package: ``sne_loihi/presets/<name>.toml``.
PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """Names accepted by ``--preset`` (the TOML files in :data:`PRESET_DIR`)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def named_preset(name: str) -> dict[str, Any]:
    """The config tree of a named preset (a partial config; see :func:`resolve`).

    Raises:
        ConfigError: For an unknown name.
    """
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(names)}")
    tree = load_toml(PRESET_DIR / f"{name}.toml")
    tree["preset"] = name
    return tree


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a one-line :class:`ConfigError`."""
    try:
        with open(path, "rb") as fh:
            return tomli.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomli.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for ``dotted = "a.b"`` (creating tables).

    Raises:
        ConfigError: ``tree["a"]`` is not a table (a config file with ``a = "x"``).
    """
    *parents, leaf = dotted.split(".")
    node = tree
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config section {'.'.join(parents[:depth + 1])!r} must be a table, got {node!r}")
    node[leaf] = value


def resolve(
    dataset: str | None,
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    preset_name: str | None = None,
) -> RunConfig:
    """Resolve a run config: data-set preset < named preset < TOML file < dotted CLI overrides.

    Args:
        dataset: Data set chosen on the command line (``None``: the file's ``[data] name``,
            else the named preset's, else ``digits``). Its data-set preset is the base.
        config_file: Optional TOML file with any subset of the sections.
        overrides: ``{"train.epochs": 3, ...}``; ``None`` values are ignored.
        preset_name: A named preset (:func:`preset_names`), e.g. ``cpu-cifar10``.
    """
    file_tree = load_toml(config_file) if config_file is not None else {}
    named = named_preset(preset_name) if preset_name else {}
    file_dataset = _data_name(file_tree, "the config file")
    named_dataset = _data_name(named, f"preset {preset_name}")
    chosen = dataset or file_dataset or named_dataset or "digits"
    for source, name in ((f"the config file's data set {file_dataset}", file_dataset),
                         (f"preset {preset_name}'s data set {named_dataset}", named_dataset)):
        if name and name != chosen:
            raise ConfigError(f"data set {chosen} contradicts {source}")
    tree = merge(merge(preset(chosen).to_dict(), named), file_tree)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value.value if isinstance(value, enum.Enum) else value)
    return RunConfig.from_dict(tree)


def _data_name(tree: dict[str, Any], where: str) -> str | None:
    section = tree.get("data", {})
    if not isinstance(section, dict):
        raise ConfigError(f"config section 'data' must be a table (in {where}), got {section!r}")
    name = section.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"data.name in {where}: expected a string, got {name!r}")
    return name


def dump_toml(config: RunConfig, path: Path) -> None:
    """Write ``config`` as TOML (atomically)."""
    from sne_loihi.io import atomic_write_bytes

    atomic_write_bytes(path, tomli_w.dumps(config.to_dict()).encode())
