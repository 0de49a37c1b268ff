"""Typed run configuration: one small dataclass per concern (:mod:`sne_loihi.config_sections`),
assembled into :class:`RunConfig`, stored in every artifact.

A run's resolved :class:`RunConfig` is written to ``RUN/config.toml`` and into every
checkpoint (``ckpt["config"]``), so an artifact rebuilds itself with
``RunConfig.from_dict(ckpt["config"])``. Precedence when resolving: dataset preset <
TOML file < CLI flags (see :func:`resolve`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli
import tomli_w

from sne_loihi.config_sections import (  # noqa: F401  (re-exported: the config's public names)
    NeuronLibrary,
    Optimizer,
    StudentBackend,
    StudentEngine,
    StudentNorm,
    PartitionStrategy,
    FeatureScaling,
    DataConfig,
    ImageChannels,
    ArrayLayout,
    TeacherConfig,
    LrSchedule,
    FlipMode,
    TestTimeAugment,
    NeuronConfig,
    StudentConfig,
    EnsembleConfig,
    FinetuneConfig,
    TrainConfig,
    Backend,
    FirstLayer,
    DEFAULT_ENERGY_PROFILE,
    DEFAULT_LAVA_CAPACITY,
    DEFAULT_LAVA_SAMPLES,
    LavaConfig,
    ReportConfig,
    PipelineConfig,
)
from sne_loihi.errors import ConfigError, SneError

__all__ = [
    "AUTO_ARCH", "OWN_DATA_SETS", "ArrayLayout", "ImageChannels", "DEFAULT_ENERGY_PROFILE", "DEFAULT_LAVA_CAPACITY", "DEFAULT_LAVA_SAMPLES", "PRESET_DIR", "RENAMED_KEYS", "Backend",
    "DataConfig", "EnsembleConfig", "FeatureScaling", "FinetuneConfig", "FirstLayer", "FlipMode", "LavaConfig", "LrSchedule", "NeuronConfig", "NeuronLibrary",
    "Optimizer", "PartitionStrategy", "PipelineConfig", "ReportConfig", "RunConfig", "StudentBackend", "StudentConfig",
    "StudentEngine", "StudentNorm", "TeacherConfig", "TestTimeAugment", "TrainConfig", "comma_items", "dump_toml", "field_types", "load_toml", "merge", "named_preset", "parse_override", "preset",
    "preset_names", "resolve", "set_dotted", "upgrade_tree",
]


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
    report: ReportConfig = field(default_factory=ReportConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, TOML/JSON-safe dict (enums as their values, ``None`` dropped)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Rebuild from :meth:`to_dict` output (old key names mapped, :data:`RENAMED_KEYS`);
        unknown keys raise :class:`ConfigError`."""
        return _from_plain(cls, upgrade_tree(data), "")


#: Config keys renamed since files were written: old dotted key -> new one. Reading maps the
#: old key (config.toml, --config files, presets, checkpoints, manifests); writing uses the new.
RENAMED_KEYS: dict[str, str] = {"student.backend": "student.neuron_library"}


def upgrade_tree(tree: Any) -> Any:
    """A config tree with its old key names (:data:`RENAMED_KEYS`) replaced by the new ones.

    Raises:
        ConfigError: A section that gives both the old and the new name.
    """
    if not isinstance(tree, dict):
        return tree
    out = dict(tree)
    for old, new in RENAMED_KEYS.items():
        section, old_leaf = old.split(".")
        new_leaf = new.split(".")[1]
        node = out.get(section)
        if isinstance(node, dict) and old_leaf in node:
            if new_leaf in node:
                raise ConfigError(f"{old} is the old name of {new}; give only {new}")
            node = {(new_leaf if k == old_leaf else k): v for k, v in node.items()}
            out[section] = node
    return out


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


def field_types(cls: type) -> dict[str, Any]:
    """The evaluated type of every field of a config dataclass (``typing.get_type_hints``
    itself refuses the ``InitVar`` that keeps a renamed key settable, on Python 3.10)."""
    annotations = {f.name: f.type for f in dataclasses.fields(cls)}
    probe = type(cls.__name__, (), {"__annotations__": annotations, "__module__": cls.__module__})
    return typing.get_type_hints(probe)


def _from_plain(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or 'root'!r} must be a table, got {data!r}")
    hints = field_types(cls)
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


#: Architecture name that picks a built-in architecture from the input shape (see
#: ``sne_loihi.teachers.registry.auto_teacher`` and ``sne_loihi.students.archs.auto_student``).
AUTO_ARCH = "auto"

#: Data sets whose image size is only known once they are read: their preset picks the
#: architectures from the input shape (``AUTO_ARCH``).
OWN_DATA_SETS: tuple[str, ...] = ("imagefolder", "npz")


def preset(dataset: str) -> RunConfig:
    """Defaults that work for a data set (``digits``, ``cifar10``, ``imagefolder``, ``npz``).

    A user's own data (``imagefolder``, ``npz``) gets the CIFAR-10 recipe with architectures
    chosen from the image size (``auto``: VGG-style for images of at least 32x32, the small
    digits networks below) and no augmentation (flips do not suit every data set).

    Raises:
        ConfigError: For an unknown data set name.
    """
    if dataset == "digits":
        return RunConfig()
    if dataset == "cifar10" or dataset in OWN_DATA_SETS:
        own = dataset in OWN_DATA_SETS
        return RunConfig(
            data=DataConfig(name=dataset, augment=not own),
            teacher=TeacherConfig(arch=AUTO_ARCH if own else "vgg11", epochs=10, lr=1e-3, batch_size=128),
            student=StudentConfig(arch=AUTO_ARCH if own else "vgg5mini", time_steps=4, input_bits=4),
            ensemble=EnsembleConfig(num_students=4, alpha=5.0),
            train=TrainConfig(epochs=5, lr=1e-3, batch_size=64),
            # The fast Lava engine runs 4 x vgg5mini at ~3 samples/s per pass on 2 cores (~0.05 with
            # Lava's own Conv model, see benchmarks/results/bench_lava.md).
            lava=LavaConfig(samples=200),
        )
    raise ConfigError(f"no preset for data set {dataset!r}; known: digits, cifar10, {', '.join(OWN_DATA_SETS)}")


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


#: Largest TOML file read (a config is a few KB).
MAX_TOML_BYTES = 1 << 20
#: Deepest table / array nesting accepted in a TOML file (a config nests 3 levels).
MAX_TOML_DEPTH = 16


def load_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """Read a TOML file, turning every failure into a one-line :class:`ConfigError`: a file
    over :data:`MAX_TOML_BYTES`, not UTF-8, or nested deeper than :data:`MAX_TOML_DEPTH`
    (checked without recursion) is refused like a syntax error."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TOML_BYTES + 1)
        if len(data) > MAX_TOML_BYTES:
            raise ConfigError(f"cannot read {what} {path}: more than {MAX_TOML_BYTES:,} bytes")
        tree = tomli.loads(data.decode("utf-8").removeprefix("\ufeff"))  # a byte-order mark some editors write
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"cannot read {what} {path}: nested deeper than a config goes") from None
    except (OSError, tomli.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {' '.join(str(exc).split())}") from None
    _check_depth(tree, f"{what} {path}")
    return tree


def _check_depth(tree: Any, where: str) -> None:
    """Refuse tables and arrays nested deeper than :data:`MAX_TOML_DEPTH` (iteratively)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TOML_DEPTH:
            raise ConfigError(f"cannot read {where}: tables or arrays nested more than {MAX_TOML_DEPTH} levels deep")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: ``(KEY, VALUE)`` with VALUE read as TOML (``3``, ``1e-3``, ``true``,
    ``[1, 2]``, ``"x"``); a bare word that is not TOML stays a string (``--set student.arch=vgg5``).

    Raises:
        ConfigError: No ``=``, or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. --set train.epochs=3), got {text!r}")
    if key.strip() == "preset":
        raise ConfigError("--set preset: choose a preset with --preset NAME (a preset is applied, not recorded)")
    try:
        parsed = tomli.loads(f"v = {value.strip()}")
    except tomli.TOMLDecodeError:
        return key.strip(), value.strip()
    except RecursionError:
        raise ConfigError(f"--set {key.strip()}: the value is nested deeper than a config goes") from None
    _check_depth(parsed, f"--set {key.strip()}")
    if isinstance(parsed["v"], dict):  # would replace the whole section, every other key back to its default
        first = next(iter(parsed["v"]), "KEY")
        raise ConfigError(f"--set {key.strip()}: a table would replace the whole section; set its keys one by one "
                          f"(--set {key.strip()}.{first}=...)")
    return key.strip(), parsed["v"]


def comma_items(text: str, flag: str, error: type[SneError] = ConfigError) -> list[str]:
    """The items of a comma-separated option value (``"0.6, 0.9"`` -> ``["0.6", "0.9"]``),
    each stripped; every list option (``--noise``, ``--cascade``, ``--active``, ...) splits
    its value here.

    Args:
        text: The option value.
        flag: The option as the error names it, e.g. ``"--cascade"``.
        error: The :class:`~sne_loihi.errors.SneError` subclass to raise.

    Raises:
        error: An empty item (``"0.5,,0.9"``, a comma at an end, or an empty value): a typo,
            not an item to skip.
    """
    items = [t.strip() for t in text.split(",")]
    if "" in items:
        raise error(f"{flag} {text!r}: empty item in the comma-separated list (two commas in a row, or one at "
                    "an end)")
    return items


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
    config_file: Path | Sequence[Path] | None = None,
    overrides: dict[str, Any] | None = None,
    preset_name: str | None = None,
) -> RunConfig:
    """Resolve a run config: data-set preset < named preset < TOML file < dotted CLI overrides.

    Args:
        dataset: Data set chosen on the command line (``None``: the file's ``[data] name``,
            else the named preset's, else ``digits``). Its data-set preset is the base.
        config_file: Optional TOML file with any subset of the sections, or several, merged
            in order (a run's stored config.toml, then a user's file over it). A file's
            ``preset`` key only records the preset a run was made with (``preset_name``
            applies one).
        overrides: ``{"train.epochs": 3, ...}``; ``None`` values are ignored.
        preset_name: A named preset (:func:`preset_names`), e.g. ``cpu-cifar10``.
    """
    file_tree = {}
    for path in ([] if config_file is None else [config_file] if isinstance(config_file, (str, Path)) else config_file):
        file_tree = merge(file_tree, upgrade_tree(load_toml(Path(path))))  # later files over earlier ones
    named = upgrade_tree(named_preset(preset_name)) if preset_name else {}
    file_dataset = _data_name(file_tree, "the config file")
    named_dataset = _data_name(named, f"preset {preset_name}")
    set_dataset = (overrides or {}).get("data.name")
    chosen = dataset or set_dataset or file_dataset or named_dataset or "digits"
    for source, name in ((f"--set data.name={set_dataset}", set_dataset),
                         (f"the config file's data set {file_dataset}", file_dataset),
                         (f"preset {preset_name}'s data set {named_dataset}", named_dataset)):
        if name and name != chosen:
            raise ConfigError(f"data set {chosen} contradicts {source}")
    tree = merge(merge(preset(chosen).to_dict(), named), file_tree)
    for dotted, value in (overrides or {}).items():
        if value is not None:  # an old key name sets the new one (as it does in a file)
            set_dotted(tree, RENAMED_KEYS.get(dotted, dotted), value.value if isinstance(value, enum.Enum) else value)
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
