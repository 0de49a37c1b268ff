"""CIFAR-10 from a folder in the official "python version" layout, read without running code.

Layout (``data_batch_1..5`` may be a subset, at least one must exist)::

    cifar-10-batches-py/data_batch_1 ... data_batch_5   training batches
    cifar-10-batches-py/test_batch                       test batch
    cifar-10-batches-py/batches.meta                     label_names

``cfg.data_dir`` may be that folder or its parent. Each batch is a pickled dict with
``b"data"`` (uint8 ``[N, 3072]``, channel-major R, G, B planes of 32x32) and ``b"labels"``.

Pickle can execute arbitrary code, so batches are read by :class:`SafeBatchUnpickler`, which
resolves only the globals a pickled numpy array needs (see ``_SAFE_GLOBALS``) and refuses
every other one.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_loihi.config import DataConfig
from sne_loihi.data.dataset import DATASETS, Dataset
from sne_loihi.errors import DataError

SUBFOLDER = "cifar-10-batches-py"
LAYOUT = "expected the CIFAR-10 python-batch layout (data_batch_1..5, test_batch, batches.meta)"
IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
_TRAIN_RE = re.compile(r"^data_batch_(\d+)$")


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed set."""


def _reconstruct_ndarray(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` restricted to plain ``numpy.ndarray``."""
    if subtype is not np.ndarray:
        raise ForbiddenGlobalError(f"array subtype {subtype!r} is not allowed")
    return np.core.multiarray._reconstruct(np.ndarray, shape, dtype)


def _plain_dtype(code: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` restricted to plain bool/int/uint/float codes (no object dtype)."""
    if isinstance(code, bytes):
        code = code.decode("ascii", errors="replace")
    if not isinstance(code, str):
        raise ForbiddenGlobalError(f"dtype spec {code!r} is not allowed")
    try:
        dtype = np.dtype(code, bool(align), bool(copy))
    except TypeError as exc:
        raise ForbiddenGlobalError(f"dtype spec {code!r} is not valid: {exc}") from None
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ForbiddenGlobalError(f"dtype {code!r} is not allowed (only bool/int/uint/float)")
    return dtype


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode(text, "latin1")``: how Python 3 writes ``bytes`` in pickle protocol 2."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ForbiddenGlobalError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin1")


def _frombuffer_plain(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (pickle protocol 5) restricted to plain arrays."""
    if not isinstance(buffer, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise ForbiddenGlobalError(f"array buffer of type {type(buffer).__name__} is not allowed")
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or dtype.fields is not None:
        raise ForbiddenGlobalError(f"dtype {dtype!r} is not allowed (only bool/int/uint/float)")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape) or order not in "CF":
        raise ForbiddenGlobalError(f"array shape {shape!r} / order {order!r} is not allowed")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how Python 3 writes an empty ``bytes`` in pickle protocol 2 (no arguments)."""
    if args:
        raise ForbiddenGlobalError("bytes(...) with arguments is not allowed")
    return b""


#: The only globals a CIFAR-10 batch needs: how numpy pickles an ndarray
#: (``_reconstruct(ndarray, shape, dtype)`` followed by ``ndarray.__setstate__``).
#: ``numpy._core`` is numpy 2's module name for the same function. Object dtypes are refused,
#: so no array can smuggle in further objects; every other global raises.
_SAFE_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    # Protocol 2 written by Python 3 stores bytes as text to re-encode: data, not code.
    ("_codecs", "encode"): _latin1_bytes,
    # Protocol 5: numpy passes the raw buffer out of band to _frombuffer.
    ("numpy.core.numeric", "_frombuffer"): _frombuffer_plain,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer_plain,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
}


class SafeBatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_SAFE_GLOBALS`` (numpy arrays)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobalError(f"refused to load global {module}.{name}") from None


def read_batch(path: Path) -> Any:
    """Unpickle one batch file with :class:`SafeBatchUnpickler` (``encoding="bytes"``).

    Raises:
        DataError: Missing, truncated or corrupt file, or a forbidden global.
    """
    if not path.is_file():
        raise DataError(f"cifar10: missing {path.name} in {path.parent}; {LAYOUT}")
    try:
        with open(path, "rb") as fh:
            return SafeBatchUnpickler(fh, encoding="bytes").load()
    except ForbiddenGlobalError as exc:
        raise DataError(f"cifar10: {path} is not a plain CIFAR-10 batch ({exc}); {LAYOUT}") from None
    except Exception as exc:  # pickle raises many types for truncated/garbled input
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cifar10: cannot read {path} (truncated or corrupt: {detail}); {LAYOUT}") from None


def _field(batch: Any, key: str, path: Path) -> Any:
    if not isinstance(batch, dict):
        raise DataError(f"cifar10: {path} holds a {type(batch).__name__}, expected a dict; {LAYOUT}")
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise DataError(f"cifar10: {path} has no {key!r} entry; {LAYOUT}")


def _images_and_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_batch(path)
    data = _field(batch, "data", path)
    labels = _field(batch, "labels", path)
    expected = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != expected:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"cifar10: {path} data must be uint8 of shape (N, {expected}), got {got}")
    try:
        raw = np.asarray(labels)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"cifar10: {path} labels must be integers 0..9") from None
    integral_floats = raw.dtype.kind == "f" and bool(np.all(np.isfinite(raw))) and bool(np.all(raw == np.round(raw)))
    if raw.dtype.kind not in "iub" and not integral_floats:  # 0.7 is no class; 10**30 makes an object array
        raise DataError(f"cifar10: {path} labels must be integers 0..9, got {raw.dtype} values")
    if raw.size and (raw.min() < 0 or raw.max() >= NUM_CLASSES):
        raise DataError(f"cifar10: {path} labels must be in 0..9, got {raw.min()}..{raw.max()}")
    labels_arr = raw.astype(np.int64)
    if labels_arr.shape != (len(data),):
        raise DataError(f"cifar10: {path} has {len(data)} images but labels of shape {labels_arr.shape}")
    if len(labels_arr) and (labels_arr.min() < 0 or labels_arr.max() >= NUM_CLASSES):
        raise DataError(f"cifar10: {path} labels must be in 0..9, got {labels_arr.min()}..{labels_arr.max()}")
    return data, labels_arr


def _class_names(path: Path) -> tuple[str, ...]:
    names = _field(read_batch(path), "label_names", path)
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise DataError(f"cifar10: {path} label_names must be a list of {NUM_CLASSES} names")
    out = []
    for n in names:
        if not isinstance(n, (bytes, str)):
            raise DataError(f"cifar10: {path} label_names must be strings, got {type(n).__name__}")
        out.append(n.decode("utf-8", errors="replace") if isinstance(n, bytes) else n)
    return tuple(out)


def find_batch_folder(data_dir: str | Path | None) -> Path:
    """The folder holding the batch files: ``data_dir`` or ``data_dir/cifar-10-batches-py``.

    Raises:
        DataError: No folder given, or it does not exist.
    """
    if data_dir is None:
        raise DataError(f"cifar10: no data folder given (data.data_dir / --data-dir); {LAYOUT}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"cifar10: data folder {root} does not exist; {LAYOUT}")
    nested = root / SUBFOLDER
    return nested if nested.is_dir() else root


def _to_nchw(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data).view(len(data), *IMAGE_SHAPE).float().div_(255.0)


@DATASETS.register("cifar10")
def load_cifar10(cfg: DataConfig, seed: int) -> Dataset:
    """CIFAR-10 as ``[N, 3, 32, 32]`` float32 in [0, 1] (``seed`` is unused: official split).

    Raises:
        DataError: Missing folder or files, corrupt or malicious pickles, wrong shapes.
    """
    del seed
    folder = find_batch_folder(cfg.data_dir)
    train_files = sorted(
        (p for p in folder.iterdir() if p.is_file() and _TRAIN_RE.match(p.name)),
        key=lambda p: int(_TRAIN_RE.match(p.name).group(1)),
    )
    if not train_files:
        raise DataError(f"cifar10: no data_batch_* in {folder}; {LAYOUT}")
    for required in ("test_batch", "batches.meta"):
        if not (folder / required).is_file():
            raise DataError(f"cifar10: missing {required} in {folder}; {LAYOUT}")
    class_names = _class_names(folder / "batches.meta")
    parts = [_images_and_labels(p) for p in train_files]
    x_test, y_test = _images_and_labels(folder / "test_batch")
    x_train = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y_train = np.concatenate([p[1] for p in parts])
    return Dataset(
        name="cifar10",
        x_train_nchw=_to_nchw(x_train),
        y_train=torch.from_numpy(y_train),
        x_test_nchw=_to_nchw(x_test),
        y_test=torch.from_numpy(y_test),
        class_names=class_names,
    )
