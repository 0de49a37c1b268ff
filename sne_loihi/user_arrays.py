"""A user's arrays (``.npy``, or one array of an ``.npz``) read without running code and
without allocating more than the file holds.

The ``.npy`` header is read first (``numpy.lib.format.read_magic`` /
``read_array_header_*``) and the shape it declares checked against the bytes actually
stored (the file's size, or the ``.npz`` member's size) and against a caller's bound before
anything is allocated, so a 100-byte file claiming 10**11 elements is one line, not a
``MemoryError``. Object and structured dtypes are refused (``allow_pickle=False`` besides),
and an empty file is named as such.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from sne_loihi.errors import SneError

#: ``.npy`` format versions read (numpy writes 1.0, and 2.0 for headers over 64 KiB).
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` header declares.

    Attributes:
        shape: The array's shape.
        dtype: Its dtype (numbers or booleans only).
        fortran_order: Stored column-major.
        data_offset: Bytes before the data.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int

    @property
    def nbytes(self) -> int:
        """Bytes the declared array takes."""
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def _header(fh: IO[bytes], stored: int, where: str, error: type[SneError]) -> ArrayHeader:
    """Read and check a header; ``stored`` is the number of bytes the file (member) holds."""
    if stored == 0:
        raise error(f"{where} is empty (0 bytes), not an .npy array")
    try:
        version = np.lib.format.read_magic(fh)
        if version not in _HEADER_READERS:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        shape, fortran, dtype = _HEADER_READERS[version](fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise error(f"{where} is not an .npy array ({' '.join(str(exc).split())})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biufc":
        raise error(f"{where} holds {dtype} values; only numbers are read (no Python objects, no records)")
    header = ArrayHeader(tuple(int(s) for s in shape), dtype, bool(fortran), fh.tell())
    if header.data_offset + header.nbytes != stored:
        raise error(f"{where} declares shape {list(header.shape)} of {dtype} ({header.nbytes:,} bytes), which its "
                    f"{stored:,}-byte file does not hold")
    return header


def _bound(header: ArrayHeader, where: str, max_bytes: int, error: type[SneError]) -> None:
    if header.nbytes > max_bytes:
        raise error(f"{where} declares shape {list(header.shape)} of {header.dtype} ({header.nbytes:,} bytes), more "
                    f"than the {max_bytes:,} bytes read here")


def read_npy_header(path: Path, where: str, error: type[SneError] = SneError) -> ArrayHeader:
    """The header of an ``.npy`` file, checked against the file's size.

    Raises:
        SneError (``error``): Missing, empty or not an ``.npy`` file, a non-numeric dtype,
            or a shape the file does not hold.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{where} not found (expected an .npy file)")
    with open(path, "rb") as fh:
        return _header(fh, path.stat().st_size, where, error)


def load_npy(path: Path, where: str, max_bytes: int, error: type[SneError] = SneError) -> np.ndarray:
    """An ``.npy`` array, memory-mapped (read-only) after its header was checked.

    Args:
        where: How to name the file in errors (e.g. ``"--input x.npy"``).
        max_bytes: Largest array accepted.

    Raises:
        SneError (``error``): As :func:`read_npy_header`, or an array over ``max_bytes``.
    """
    header = read_npy_header(path, where, error)
    _bound(header, where, max_bytes, error)
    try:
        if header.nbytes == 0:  # numpy cannot map zero bytes
            return np.load(path, allow_pickle=False)
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{where} is not a readable .npy array ({' '.join(str(exc).split())})") from None


def load_npz_array(path: Path, key: str | None, where: str, max_bytes: int,
                   error: type[SneError] = SneError) -> np.ndarray:
    """One array of an ``.npz``: ``key``, or the only one it holds when ``key`` is ``None``.

    The member's header is checked against the member's stored size and ``max_bytes``
    before it is read.

    Raises:
        SneError (``error``): Not a zip of ``.npy`` members, no such key, several arrays and
            no key, or any check of :func:`load_npy`.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{where} not found (expected an .npz file)")
    if path.stat().st_size == 0:
        raise error(f"{where} is empty (0 bytes), not an .npz archive")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            if key is None:
                if len(names) != 1:
                    listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") or "none"
                    raise error(f"{where} holds {len(names)} arrays ({listed}); name one as {path.name}:KEY")
                key = names[0]
            if key not in names:
                raise error(f"{where} has no array {key!r} (it holds {', '.join(names[:8]) or 'none'})")
            info = zf.getinfo(f"{key}.npy")
            with zf.open(info) as fh:
                header = _header(fh, info.file_size, f"{where} array {key!r}", error)
            _bound(header, f"{where} array {key!r}", max_bytes, error)
            with zf.open(info) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
    except SneError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise error(f"{where} is not a readable .npz archive ({' '.join(str(exc).split())})") from None


def split_npz_key(path: Path) -> tuple[Path, str | None]:
    """``FILE.npz:KEY`` -> ``(FILE.npz, KEY)``; any other path -> ``(path, None)`` (a file
    whose name holds a colon is taken as it is when it exists)."""
    text = str(path)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    head, _, key = text.rpartition(":")
    if head.lower().endswith(".npz") and key:
        return Path(head), key
    return Path(text), None


def load_user_array(path: Path, where: str, max_bytes: int, *, allow_npz: bool = True,
                    error: type[SneError] = SneError) -> np.ndarray:
    """A user's array from ``.npy``, ``.npz`` (its only array) or ``FILE.npz:KEY``.

    Args:
        allow_npz: Accept ``.npz`` (else it is refused in one line).

    Raises:
        SneError (``error``): Any check of :func:`load_npy` / :func:`load_npz_array`, or a
            suffix other than ``.npy`` / ``.npz``.
    """
    file, key = split_npz_key(Path(path))
    suffix = file.suffix.lower()
    if suffix == ".npz":
        if not allow_npz:
            raise error(f"{where}: expected an .npy array, got an .npz archive; save the array with numpy.save")
        return load_npz_array(file, key, where, max_bytes, error)
    if suffix != ".npy":
        raise error(f"{where}: expected an .npy array{' or an .npz archive' if allow_npz else ''}, got {file.name!r}")
    return load_npy(file, where, max_bytes, error)
