"""Safe file I/O: atomic writes and code-free checkpoint loading."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sne_loihi.errors import CheckpointError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    A crash mid-write leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def file_key(path: Path) -> str:
    """Size and modification time of a file: changes whenever it is rewritten, so results
    derived from a checkpoint can tell when they predate it."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically (plain tensors, numbers, strings, lists, dicts)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code (``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: Missing, truncated, corrupt, or containing non-plain objects.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load checkpoint {path} (truncated, corrupt or not a torch file: {first})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict (got {type(payload).__name__})")
    return payload
