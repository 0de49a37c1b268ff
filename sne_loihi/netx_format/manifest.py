"""The export manifest (``EXPORT/manifest.json``) and its validation against the networks."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.config import NeuronConfig
from sne_loihi.errors import ConfigError, ExportError
from sne_loihi.indices import check_student_indices
from sne_loihi.io import sha256_file
from sne_loihi.json_files import read_json_file
from sne_loihi.netx_format.manifest_schema import check_manifest_schema, check_student_claims
from sne_loihi.netx_format.netx_file import read_netx_layers
from sne_loihi.students.spec import check_neuron

MANIFEST_FILE = "manifest.json"
#: The manifest of a NIR export (``sne export --format nir``, :mod:`sne_loihi.export.nir_export`).
NIR_MANIFEST_FILE = "nir_manifest.json"
#: The Loihi 2 readiness report written beside the manifest (its JSON is the manifest's ``loihi2``).
LOIHI2_REPORT = "loihi2.md"
FORMAT_VERSION = 1


@dataclass
class InputEncoding:
    """How images become the graded spikes every student receives.

    Attributes:
        bits: ``x_int = round(x * (2**bits - 1))`` for pixels in [0, 1]; Lava's
            ``input_message_bits``.
        time_steps: T, the image is repeated for T steps.
        shape_chw: Image shape ``[C, H, W]``.
        layout: Lava's per-step layout of a torch ``[C, H, W]`` image.
    """

    bits: int
    time_steps: int
    shape_chw: list[int]
    layout: str = "torch x_nchwt[n] -> Lava (W, H, C, T): x.permute(2, 1, 0, 3)"


@dataclass
class StudentEntry:
    """One exported student.

    ``first_layer``: ``bias`` when its first layer is driven by a per-sample neuron bias
    (the file's ``inputDrive`` marker, :mod:`sne_loihi.netx_format.bias_layer`), else
    ``synaptic``; ``first_layer_note``: why ``lava.first_layer = auto`` fell back to synaptic.
    """

    file: str
    sha256: str
    spec: dict[str, Any]
    out_features: int
    num_layers: int
    first_layer: str = "synaptic"
    first_layer_note: str = ""


@dataclass
class ParityRecord:
    """What the export's Lava-vs-torch check compared."""

    samples: int
    compared: str
    mismatches: int
    backend: str = "cpu (Loihi2SimCfg select_tag=fixed_pt)"


@dataclass
class CascadeHead:
    """The head of per-sample activation (trained with prefix masks in ``order``), optional.

    Attributes:
        weight: ``[classes, sum F]``, the same shape as the ensemble head.
        bias: ``[classes]``.
        order: The students in cascade order (distinct indices).
        source: The file it came from, by name (``cascade_head.pt`` of the exported run; no
            folder, so a shipped manifest names no local path).
    """

    weight: list[list[float]]
    bias: list[float]
    order: list[int]
    source: str = ""

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Weight and bias as float64 arrays."""
        return np.asarray(self.weight, dtype=np.float64), np.asarray(self.bias, dtype=np.float64)

    @classmethod
    def from_linear(cls, linear: Any, order: Any, source: str = "") -> "CascadeHead":
        """From a ``torch.nn.Linear`` and its cascade order."""
        return cls(weight=linear.weight.detach().cpu().double().tolist(), bias=linear.bias.detach().cpu().double().tolist(),
                   order=[int(i) for i in order], source=source)


@dataclass
class Manifest:
    """An exported ensemble: networks, partition, head, encoding, configs.

    ``loihi2`` (optional): the Loihi 2 readiness report
    (:meth:`sne_loihi.sim.readiness.ReadinessReport.to_dict`; ``EXPORT/loihi2.md`` in words).
    ``ensemble_sha256`` (optional; exports made before it have none): the SHA-256 of the
    ``ensemble.pt`` the students were exported from, so a torch comparison or a shipped copy
    can tell that it belongs to this export.

    ``directory`` is set by :func:`load_manifest` (not stored).
    """

    students: list[StudentEntry]
    partition: dict[str, Any]
    head_weight: list[list[float]]
    head_bias: list[float]
    input: InputEncoding
    class_names: list[str]
    config: dict[str, Any]
    parity: ParityRecord | None
    cascade: CascadeHead | None = None
    loihi2: dict[str, Any] | None = None
    ensemble_sha256: str | None = None
    format_version: int = FORMAT_VERSION
    directory: Path | None = field(default=None, compare=False)

    def net_paths(self) -> list[Path]:
        """Absolute paths of the students' netx files."""
        if self.directory is None:
            raise ExportError("manifest has no directory; load it with load_manifest")
        return [self.directory / s.file for s in self.students]

    def head_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Head weight ``[classes, sum F]`` and bias ``[classes]`` as float64 arrays."""
        return np.asarray(self.head_weight, dtype=np.float64), np.asarray(self.head_bias, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without ``directory``)."""
        d = asdict(self)
        d.pop("directory")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        """Inverse of :meth:`to_dict`; raises ExportError on missing or wrong fields."""
        try:
            return cls(
                students=[StudentEntry(**s) for s in d["students"]],
                partition=dict(d["partition"]),
                head_weight=[list(map(float, r)) for r in d["head_weight"]],
                head_bias=list(map(float, d["head_bias"])),
                input=InputEncoding(**d["input"]),
                class_names=[str(c) for c in d["class_names"]],
                config=dict(d["config"]),
                parity=ParityRecord(**d["parity"]) if d.get("parity") else None,
                cascade=CascadeHead(**d["cascade"]) if d.get("cascade") else None,
                loihi2=_optional_dict(d.get("loihi2"), "loihi2"),
                ensemble_sha256=d.get("ensemble_sha256"),
                format_version=int(d["format_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"manifest is malformed: {type(exc).__name__}: {exc}") from None


def _optional_dict(value: Any, key: str) -> dict[str, Any] | None:
    """``None`` or a JSON object; anything else is a malformed manifest."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{key} must be an object, got {type(value).__name__}")
    return value


def _partition_sizes(partition: dict[str, Any], directory: Path) -> list[int] | None:
    """The students' sizes the manifest's partition records (``sizes``, else the length of
    each of its ``groups``), or ``None`` when it records neither.

    Raises:
        ExportError: ``sizes`` or ``groups`` that are not lists of numbers / of lists.
    """
    key = "sizes" if "sizes" in partition else "groups" if "groups" in partition else None
    if key is None:
        return None
    try:
        return [int(s) for s in partition["sizes"]] if key == "sizes" else [len(g) for g in partition["groups"]]
    except (TypeError, ValueError, OverflowError):
        shown = repr(partition[key])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ExportError(f"{directory}: manifest partition {key} must be a list of "
                          f"{'integers' if key == 'sizes' else 'lists of feature indices'}, got {shown}") from None


def _check_spec_neuron(spec: Any, where: str) -> None:
    """The neuron parameters a student spec records (any spec: exports of hand-built students
    carry their own) must be ones a CUBA-LIF neuron can have.

    Raises:
        ExportError: A parameter out of range or not a number.
    """
    neuron = spec.get("neuron") if isinstance(spec, dict) else None
    if neuron is None:
        return
    if not isinstance(neuron, dict):
        raise ExportError(f"{where} must be a table, got {neuron!r}")
    known = {f.name for f in dataclasses.fields(NeuronConfig)}
    try:
        check_neuron(dataclasses.replace(NeuronConfig(), **{k: v for k, v in neuron.items() if k in known}), where)
    except ConfigError as exc:
        raise ExportError(str(exc)) from None


def validate_manifest(m: Manifest, directory: Path) -> None:
    """Check the manifest against its files: present, unchanged (sha256), readable, shapes.

    Raises:
        ExportError: The first inconsistency, in one line.
    """
    if m.format_version != FORMAT_VERSION:
        raise ExportError(f"{directory}: manifest format {m.format_version}, this version reads {FORMAT_VERSION}")
    if not m.students:
        raise ExportError(f"{directory}: manifest lists no students")
    sizes = _partition_sizes(m.partition, directory)
    if sizes is not None and sizes != [s.out_features for s in m.students]:
        raise ExportError(f"{directory}: partition sizes {sizes} do not match the students' outputs "
                          f"{[s.out_features for s in m.students]}")
    if "groups" in m.partition:  # the whole partition, not just its sizes
        from sne_loihi.partition.base import Partition

        try:
            Partition.from_dict(m.partition)
        except ConfigError as exc:
            raise ExportError(f"{directory}: manifest partition: {exc}") from None
    in_xyz = tuple(reversed(m.input.shape_chw))
    for i, s in enumerate(m.students):
        path = directory / s.file
        if Path(s.file).name != s.file or path.resolve().parent != Path(directory).resolve():
            raise ExportError(f"{directory}: student {i} file {s.file!r} is not a file name inside the export folder")
        if not path.is_file():
            raise ExportError(f"{directory}: student {i} network {s.file} is missing")
        digest = sha256_file(path)
        if digest != s.sha256:
            raise ExportError(f"{path}: sha256 {digest[:12]}... does not match the manifest ({s.sha256[:12]}...); "
                              "the file changed after export")
        _check_spec_neuron(s.spec, f"{directory}: student {i} spec neuron")
        layers = read_netx_layers(path)
        _check_first_layer(s.first_layer, path)
        if len(layers) != s.num_layers:
            raise ExportError(f"{path}: {len(layers)} weighted layers, manifest says {s.num_layers}")
        if int(np.prod(layers[-1].out_shape_xyz)) != s.out_features:
            raise ExportError(f"{path}: {int(np.prod(layers[-1].out_shape_xyz))} outputs, manifest says {s.out_features}")
        first_in = layers[0].in_shape_xyz
        if int(np.prod(first_in)) != int(np.prod(in_xyz)):
            raise ExportError(f"{path}: input shape {list(first_in)} does not match the manifest's {list(in_xyz)}")
        check_student_claims(s.spec, m.input.bits, m.input.time_steps, m.input.shape_chw, s.out_features,
                             layers[0].kind, first_in, str(path))
    w, b = m.head_arrays()
    total = sum(s.out_features for s in m.students)
    n_cls = len(m.class_names) if m.class_names else w.shape[0]
    if w.ndim != 2 or w.shape != (n_cls, total) or b.shape != (n_cls,):
        raise ExportError(f"{directory}: head weight {list(w.shape)} / bias {list(b.shape)} do not fit "
                          f"{total} student outputs and {n_cls} classes")
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise ExportError(f"{directory}: the head holds non-finite values")
    if m.cascade is not None:
        validate_cascade_head(m.cascade, w.shape, len(m.students), str(directory))


def _check_first_layer(first_layer: str, path: Path) -> None:
    """The manifest's ``first_layer`` must name the file's drive (its ``inputDrive`` marker)."""
    from sne_loihi.netx_format.bias_layer import read_bias_driven_layer

    if first_layer not in ("bias", "synaptic"):
        raise ExportError(f"{path}: manifest first_layer {first_layer!r} is neither 'bias' nor 'synaptic'")
    if (read_bias_driven_layer(path) is not None) != (first_layer == "bias"):
        raise ExportError(f"{path}: manifest says first_layer {first_layer!r}, the file's first layer says otherwise")


def validate_cascade_head(head: CascadeHead, head_shape: tuple[int, ...], num_students: int, where: str) -> None:
    """The cascade head must have the ensemble head's shape, finite values and an order of
    distinct students.

    Raises:
        ExportError: The first problem, in one line.
    """
    try:
        cw, cb = head.arrays()
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{where}: cascade head is not numeric: {exc}") from None
    if cw.shape != tuple(head_shape) or cb.shape != (head_shape[0],):
        raise ExportError(f"{where}: cascade head weight {list(cw.shape)} / bias {list(cb.shape)} do not match "
                          f"the ensemble head {list(head_shape)}")
    if not (np.isfinite(cw).all() and np.isfinite(cb).all()):
        raise ExportError(f"{where}: cascade head holds non-finite values")
    check_student_indices(head.order, num_students, f"{where}: cascade order", ExportError, nonempty=True)


def load_manifest(directory: Path) -> Manifest:
    """Load ``EXPORT/manifest.json`` and validate it against the networks beside it.

    Raises:
        ExportError: Missing or unreadable manifest, or any check of :func:`validate_manifest`.
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ExportError(f"no export at {directory} ({MANIFEST_FILE} not found)")
    raw = read_json_file(path, "manifest", ExportError)  # size and nesting bounded before parsing
    check_manifest_schema(raw, path)
    m = Manifest.from_dict(raw)
    validate_manifest(m, directory)
    m.directory = directory
    return m
