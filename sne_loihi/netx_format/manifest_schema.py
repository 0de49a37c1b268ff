"""The export manifest's schema, checked on the parsed JSON before anything is built from it,
and the claims its students' specs make about the input, checked against the manifest.

:func:`check_manifest_schema` runs first (on the raw JSON object): types, ranges, unique
student files, a 64-hex sha256 per student, ``format_version`` a small integer, time steps
and input bits within what the toolkit runs, ``shape_chw`` three positive integers, a numeric
head of ``classes x sum(out_features)``. :func:`check_student_claims` then compares what a
student's recorded spec says (input shape, time steps, input bits, outputs) with the
manifest's input encoding and the student's own netx file. Every refusal is one line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from sne_loihi.errors import ExportError
from sne_loihi.layers import LayerKind
from sne_loihi.netx_format.limits import MAX_LAYER_GROUPS, MAX_LAYER_NEURONS, MAX_TIME_STEPS
from sne_loihi.students.spec import MAX_INPUT_BITS

#: Students an export may list.
MAX_STUDENTS = 1024
#: Classes an export may name.
MAX_CLASSES = 100_000
#: Largest manifest format version taken for a small integer.
MAX_FORMAT_VERSION = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TOP = {"students": list, "partition": dict, "head_weight": list, "head_bias": list, "input": dict,
        "class_names": list, "config": dict, "format_version": int}
_OPTIONAL_TOP = {"parity": dict, "cascade": dict, "loihi2": dict, "ensemble_sha256": str}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(value: Any, lo: int, hi: int, where: str, path: Path) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise ExportError(f"{path}: {where} must be an integer in {lo}..{hi}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _numbers(row: Any, length: int, where: str, path: Path) -> None:
    if not isinstance(row, list):
        raise ExportError(f"{path}: {where} must be a list of {length} numbers, got {_show(row)}")
    if len(row) != length:
        raise ExportError(f"{path}: {where} has {len(row)} values, which do not match the ensemble head ({length} "
                          "expected)")
    for v in row:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ExportError(f"{path}: {where} holds {_show(v)}, not numeric")
        if not math.isfinite(v):
            raise ExportError(f"{path}: {where} holds the non-finite value {v}")


def check_manifest_schema(raw: Any, path: Path) -> None:
    """Types and ranges of a parsed manifest, before anything is built from it.

    Raises:
        ExportError: The first violation, one line naming the field.
    """
    if not isinstance(raw, dict):
        raise ExportError(f"{path} does not hold a JSON object")
    for key, kind in {**_TOP, **_OPTIONAL_TOP}.items():
        if key not in raw:
            if key in _TOP:
                raise ExportError(f"{path}: manifest has no {key!r}")
            continue
        value = raw[key]
        if key in _OPTIONAL_TOP and value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ExportError(f"{path}: manifest {key} must be a JSON {'object' if kind is dict else kind.__name__}, "
                              f"got {type(value).__name__}")
    _int_in(raw["format_version"], 1, MAX_FORMAT_VERSION, "format_version", path)
    source = raw.get("ensemble_sha256")
    if source is not None and not re.fullmatch(r"[0-9a-f]{64}", source):
        raise ExportError(f"{path}: manifest ensemble_sha256 must be 64 lowercase hex digits, got {_show(source)}")
    enc = raw["input"]
    _int_in(enc.get("bits"), 1, MAX_INPUT_BITS, "input.bits", path)
    _int_in(enc.get("time_steps"), 1, MAX_TIME_STEPS, "input.time_steps", path)
    shape = enc.get("shape_chw")
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) and v >= 1 for v in shape):
        raise ExportError(f"{path}: input.shape_chw must be a list of 3 positive integers, got {_show(shape)}")
    if math.prod(shape) > MAX_LAYER_NEURONS:
        raise ExportError(f"{path}: input.shape_chw {shape} holds more than {MAX_LAYER_NEURONS:,} values")
    if not isinstance(enc.get("layout", ""), str):
        raise ExportError(f"{path}: input.layout must be a string")
    students = raw["students"]
    if not 1 <= len(students) <= MAX_STUDENTS:
        raise ExportError(f"{path}: manifest must list 1..{MAX_STUDENTS} students, got {len(students)}")
    files: set[str] = set()
    for i, s in enumerate(students):
        where = f"student {i}"
        if not isinstance(s, dict):
            raise ExportError(f"{path}: {where} must be a JSON object")
        name = s.get("file")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ExportError(f"{path}: {where} file must be a file name, got {_show(name)}")
        if name in files:
            raise ExportError(f"{path}: {where} file {name!r} is listed twice")
        files.add(name)
        if not isinstance(s.get("sha256"), str) or not _SHA256.fullmatch(s["sha256"]):
            raise ExportError(f"{path}: {where} sha256 must be 64 lowercase hex digits, got {_show(s.get('sha256'))}")
        if not isinstance(s.get("spec"), dict):
            raise ExportError(f"{path}: {where} spec must be a JSON object")
        _int_in(s.get("out_features"), 1, MAX_LAYER_NEURONS, f"{where} out_features", path)
        _int_in(s.get("num_layers"), 1, MAX_LAYER_GROUPS, f"{where} num_layers", path)
    names = raw["class_names"]
    if len(names) > MAX_CLASSES or not all(isinstance(c, str) for c in names):
        raise ExportError(f"{path}: class_names must be a list of at most {MAX_CLASSES:,} strings")
    weight, bias = raw["head_weight"], raw["head_bias"]
    total = sum(s["out_features"] for s in students)
    rows = len(names) if names else len(weight)
    if len(weight) != rows or not 1 <= rows <= MAX_CLASSES:
        raise ExportError(f"{path}: head weight has {len(weight)} rows for {rows} classes")
    for r, row in enumerate(weight):
        _numbers(row, total, f"head weight row {r}", path)
    _numbers(bias, rows, "head bias", path)
    parity = raw.get("parity")
    if parity is not None:
        _int_in(parity.get("samples"), 0, 2 ** 31, "parity.samples", path)
        _int_in(parity.get("mismatches"), 0, 2 ** 63, "parity.mismatches", path)
    cascade = raw.get("cascade")
    if cascade is not None:
        if not isinstance(cascade.get("weight"), list) or len(cascade["weight"]) != rows:
            raise ExportError(f"{path}: cascade.weight rows do not match the ensemble head's {rows}")
        for r, row in enumerate(cascade["weight"]):
            _numbers(row, total, f"cascade.weight row {r}", path)
        _numbers(cascade.get("bias"), rows, "cascade.bias", path)
        order = cascade.get("order")
        if not isinstance(order, list) or not all(_is_int(v) for v in order):
            raise ExportError(f"{path}: cascade.order must be a list of student indices")


def check_student_claims(spec: dict[str, Any], input_bits: int, time_steps: int, shape_chw: Sequence[int],
                         out_features: int, first_kind: LayerKind, first_in_xyz: Sequence[int], where: str) -> None:
    """What a student's spec and netx file say about its input must match the manifest.

    Args:
        spec: The student's recorded spec (``StudentSpec.to_dict``; keys absent in a
            hand-written export are not compared).
        first_kind, first_in_xyz: The netx file's first weighted layer and the shape (Lava
            order) of the spikes it takes.

    Raises:
        ExportError: Time steps, input bits, input shape or outputs that contradict the
            manifest, one line.
    """
    claims = (("time_steps", time_steps, "input.time_steps"), ("input_bits", input_bits, "input.bits"),
              ("out_features", out_features, "out_features"))
    for key, want, name in claims:
        if key in spec and spec[key] != want:
            raise ExportError(f"{where}: spec {key} {_show(spec[key])} contradicts the manifest's {name} {want}")
    if "in_shape" in spec and list(spec["in_shape"] if isinstance(spec["in_shape"], list) else [spec["in_shape"]]) \
            != list(shape_chw):
        raise ExportError(f"{where}: spec in_shape {_show(spec['in_shape'])} contradicts the manifest's input.shape_chw "
                          f"{list(shape_chw)}")
    want_xyz = list(reversed(list(shape_chw)))
    if first_kind is LayerKind.CONV and list(first_in_xyz) != want_xyz:
        raise ExportError(f"{where}: its first (conv) layer takes {list(first_in_xyz)} (x, y, f), the manifest's "
                          f"input.shape_chw {list(shape_chw)} is {want_xyz}")
