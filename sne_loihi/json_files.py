"""JSON files the toolkit reads back (an export's ``manifest.json``, ``partition.json``,
``lava.json``, a run's ``metrics_*.jsonl``): bounded in size and nesting depth before they are
parsed.

A file may have been edited or handed over by anyone. Its size is checked before it is read
(:data:`MAX_JSON_BYTES`) and its nesting depth counted on the raw bytes, strings skipped,
before ``json.loads`` recurses into it (:data:`MAX_JSON_DEPTH`), so a manifest nested
200,000 deep is one line, not a ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sne_loihi.errors import SneError

#: Largest JSON file read (an export's manifest with its head and Loihi 2 report is a few MB).
MAX_JSON_BYTES = 64 * 2 ** 20
#: Deepest nesting of arrays and objects accepted (the project's files nest fewer than 10 levels).
MAX_JSON_DEPTH = 64
#: A JSON string, escapes included (unrolled: no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_CHUNK = 1 << 22


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text ``data`` (brackets inside strings
    not counted), computed without recursion."""
    stripped = _STRING.sub(b'""', data)
    depth = peak = 0
    for start in range(0, len(stripped), _CHUNK):
        a = np.frombuffer(stripped, dtype=np.uint8, count=min(_CHUNK, len(stripped) - start), offset=start)
        step = ((a == 0x5B) | (a == 0x7B)).astype(np.int64) - ((a == 0x5D) | (a == 0x7D))
        levels = np.cumsum(step) + depth
        peak = max(peak, int(levels.max(initial=depth)))
        depth = int(levels[-1])
    return peak


def read_json_file(path: Path, what: str, error: type[SneError] = SneError, *, max_bytes: int = MAX_JSON_BYTES,
                   max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON file after checking its size, encoding and nesting depth.

    Args:
        what: How to name the file in errors (e.g. ``"manifest"``).
        error: The error type raised.

    Raises:
        SneError (``error``): Unreadable, larger than ``max_bytes``, not UTF-8, nested deeper
            than ``max_depth``, or not valid JSON (including an integer longer than Python's
            4,300-digit conversion limit); one line.
    """
    path = Path(path)
    data = _read_bounded(path, what, error, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} {path}: not UTF-8 text (byte {exc.start})") from None
    return _loads(text, max_depth, lambda reason: error(f"cannot read {what} {path}: {reason}"))


def read_jsonl_file(path: Path, what: str, error: type[SneError] = SneError) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (one object per line), such as a run's per-epoch metrics.

    A log is appended to line by line, so a process killed mid-append leaves a partial last
    line without its newline: that line is left out (the next ``--resume`` rewrites the log
    from the checkpoint). Any other line that is not a JSON object is an error.

    Args:
        what: How to name the file in errors (e.g. ``"metrics log"``).
        error: The error type raised.

    Raises:
        SneError (``error``): Unreadable, larger than :data:`MAX_JSON_BYTES`, not UTF-8, or a
            complete line that is not a JSON object (nested at most :data:`MAX_JSON_DEPTH`); one line.
    """
    path = Path(path)
    data = _read_bounded(path, what, error, MAX_JSON_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.endswith(b"\n") or b"\n" in data[exc.start:]:
            raise error(f"cannot read {what} {path}: not UTF-8 text (byte {exc.start})") from None
        text = data[:exc.start].decode("utf-8")  # a cut inside the partial last line
    lines = text.split("\n")
    partial = lines.pop()  # "" when the log ends with its newline
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _parse_line(line, number, path, what, error)
        records.append(record)
    if partial.strip():
        try:
            records.append(_parse_line(partial, len(lines) + 1, path, what, error))
        except SneError:
            pass  # cut short by a kill mid-append
    return records


def _read_bounded(path: Path, what: str, error: type[SneError], max_bytes: int) -> bytes:
    """The bytes of ``path``, refused in one line when unreadable or larger than ``max_bytes``
    (checked before reading, and again after in case the file grew meanwhile)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"cannot read {what} {path}: {size:,} bytes, more than the {max_bytes:,} read")
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:  # grew since stat
        raise error(f"cannot read {what} {path}: more than the {max_bytes:,} bytes read")
    return data


def _loads(text: str, max_depth: int, fail: Callable[[str], SneError]) -> Any:
    """``json.loads(text)`` after counting its nesting depth; ``fail(reason)`` builds the error."""
    depth = json_depth(text.encode())
    if depth > max_depth:
        raise fail(f"it nests {depth:,} levels deep, more than the {max_depth} accepted")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or an integer over 4,300 digits
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise fail(f"not valid JSON ({reason})") from None


def _parse_line(line: str, number: int, path: Path, what: str, error: type[SneError]) -> dict[str, Any]:
    record = _loads(line, MAX_JSON_DEPTH, lambda reason: error(f"cannot read {what} {path}: line {number}: {reason}"))
    if not isinstance(record, dict):
        raise error(f"cannot read {what} {path}: line {number} is a JSON {type(record).__name__}, not an object")
    return record
