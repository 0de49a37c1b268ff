"""JSON files the toolkit reads back (an export's ``manifest.json``, ``partition.json``,
``lava.json``): bounded in size and nesting depth before they are parsed.

A file may have been edited or handed over by anyone. Its size is checked before it is read
(:data:`MAX_JSON_BYTES`) and its nesting depth counted on the raw bytes, strings skipped,
before ``json.loads`` recurses into it (:data:`MAX_JSON_DEPTH`), so a manifest nested
200,000 deep is one line, not a ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"cannot read {what} {path}: {size:,} bytes, more than the {max_bytes:,} read")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:  # grew since stat
        raise error(f"cannot read {what} {path}: more than the {max_bytes:,} bytes read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} {path}: not UTF-8 text (byte {exc.start})") from None
    depth = json_depth(data)
    if depth > max_depth:
        raise error(f"cannot read {what} {path}: it nests {depth:,} levels deep, more than the {max_depth} accepted")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or an integer over 4,300 digits
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise error(f"cannot read {what} {path}: not valid JSON ({reason})") from None
