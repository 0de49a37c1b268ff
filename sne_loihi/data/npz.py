"""The ``npz`` data set: image arrays in one ``.npz`` file, read without running code.

Keys: ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``class_names`` (an array
of strings; without it the classes are ``"0" .. str(max label)``). Images are uint8 (0..255) or
float in [0, 1], ``[N, H, W]`` (grayscale), ``[N, H, W, C]`` or ``[N, C, H, W]`` with C in
{1, 3, 4}; the axis order is inferred where only one side can be a channel axis, else
``data.layout`` names it. Labels are integers in ``0 .. classes - 1``.

The file is opened with ``allow_pickle=False`` (object arrays are refused), and every member's
``.npy`` header is checked against the member's stored size before anything is allocated.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sne_loihi.config import ArrayLayout, DataConfig, ImageChannels
from sne_loihi.data.dataset import DATASETS, Dataset
from sne_loihi.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Largest array an ``.npz`` member may declare (bytes), checked before it is read.
MAX_MEMBER_BYTES = 32 * 2**30
#: Most classes a data set may have (labels are 0 .. MAX_CLASSES - 1).
MAX_CLASSES = 100_000
_LUMA = (0.299, 0.587, 0.114)


def _member_header(zf: zipfile.ZipFile, key: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an ``.npz`` member declares, checked against its stored size."""
    name = f"{key}.npy"
    try:
        info = zf.getinfo(name)
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = reader[version](fh)
            header_len = fh.tell()
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"npz: {path}: {key} is not a plain array ({' '.join(str(exc).split())})") from None
    if dtype.hasobject:
        raise DataError(f"npz: {path}: {key} holds Python objects (dtype {dtype}); only numeric arrays are read")
    count = int(np.prod(shape, dtype=object))
    if count * dtype.itemsize > MAX_MEMBER_BYTES or info.file_size != header_len + count * dtype.itemsize:
        raise DataError(f"npz: {path}: {key} declares shape {tuple(shape)} of {dtype}, which its "
                        f"{info.file_size}-byte member does not hold")
    return tuple(int(s) for s in shape), dtype


def _read(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        raise DataError(f"npz: {path} is a folder; data.data_dir (--data-dir) names the .npz file itself")
    if not path.is_file():
        raise DataError(f"npz: {path} does not exist (expected an .npz with {', '.join(KEYS)})")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
            missing = [k for k in KEYS if k not in names]
            if missing:
                raise DataError(f"npz: {path} has no {missing[0]!r} array (expected {', '.join(KEYS)})")
            for key in (*KEYS, "class_names"):
                if key in names:
                    _member_header(zf, key, path)
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in (*KEYS, "class_names") if k in npz.files}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"npz: cannot read {path} ({' '.join(str(exc).split())})") from None


def _layout(x: np.ndarray, layout: ArrayLayout, key: str, path: Path) -> str:
    if x.ndim == 3:
        return "nhw"
    if x.ndim != 4:
        raise DataError(f"npz: {path}: {key} must be [N, H, W], [N, H, W, C] or [N, C, H, W], got shape {x.shape}")
    layout = ArrayLayout(layout)
    if layout is not ArrayLayout.AUTO:
        return layout.value
    last, first = x.shape[3] in (1, 3, 4), x.shape[1] in (1, 3, 4)
    if last != first:
        return "nhwc" if last else "nchw"
    raise DataError(f"npz: {path}: cannot tell the channel axis of {key} with shape {x.shape}; set data.layout to "
                    "nhwc or nchw")


def _images(x: np.ndarray, layout: ArrayLayout, key: str, path: Path) -> torch.Tensor:
    """Float32 ``[N, C, H, W]`` in [0, 1]."""
    order = _layout(x, layout, key, path)
    if x.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
    elif x.dtype.kind == "f":
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not torch.isfinite(t).all():
            raise DataError(f"npz: {path}: {key} holds NaN or infinite pixels")
        if len(t) and (t.min() < 0 or t.max() > 1):
            raise DataError(f"npz: {path}: float {key} must lie in [0, 1], got {float(t.min()):g}..{float(t.max()):g}")
    else:
        raise DataError(f"npz: {path}: {key} must be uint8 (0..255) or float in [0, 1], got {x.dtype}")
    if order == "nhw":
        t = t.unsqueeze(1)
    elif order == "nhwc":
        t = t.permute(0, 3, 1, 2)
    if t.shape[1] not in (1, 3, 4):
        raise DataError(f"npz: {path}: {key} has {t.shape[1]} channels as {order}; expected 1, 3 or 4")
    return t.contiguous()


def convert_channels_nchw(x_nchw: torch.Tensor, channels: ImageChannels) -> torch.Tensor:
    """Float images brought to ``channels`` (gray repeats, RGB -> luma, alpha dropped or opaque)."""
    c = x_nchw.shape[1]
    want = {ImageChannels.AUTO: c, ImageChannels.GRAY: 1, ImageChannels.RGB: 3, ImageChannels.RGBA: 4}[
        ImageChannels(channels)]
    if want == c:
        return x_nchw
    rgb = x_nchw[:, :3] if c >= 3 else x_nchw.expand(-1, 3, -1, -1)
    if want == 1:
        w = torch.tensor(_LUMA, dtype=x_nchw.dtype).view(1, 3, 1, 1)
        return (rgb * w).sum(1, keepdim=True)
    if want == 3:
        return rgb.contiguous()
    alpha = x_nchw[:, 3:4] if c == 4 else torch.ones_like(x_nchw[:, :1])
    return torch.cat([rgb, alpha], 1)


def _common_channels(setting: ImageChannels, found: set[int]) -> ImageChannels:
    """The channels both splits are brought to: the setting, or for ``auto`` one count over
    both (as for image folders: all gray -> gray, all with alpha -> RGBA, else RGB)."""
    setting = ImageChannels(setting)
    if setting is not ImageChannels.AUTO or len(found) == 1:
        return setting
    return ImageChannels.RGBA if found == {4} else ImageChannels.RGB


def resize_nchw(x_nchw: torch.Tensor, size: int, batch: int = 4096) -> torch.Tensor:
    """Bilinear, antialiased resize to ``size x size`` (0 or the same size: unchanged)."""
    if not size or tuple(x_nchw.shape[2:]) == (size, size):
        return x_nchw
    parts = [F.interpolate(x_nchw[i:i + batch], size=(size, size), mode="bilinear", antialias=True,
                           align_corners=False).clamp_(0, 1) for i in range(0, len(x_nchw), batch)]
    return torch.cat(parts) if parts else x_nchw.new_zeros((0, x_nchw.shape[1], size, size))


def _labels(y: np.ndarray, n: int, key: str, path: Path) -> torch.Tensor:
    if y.dtype.kind not in "iu":
        raise DataError(f"npz: {path}: {key} must hold integers, got {y.dtype}")
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"npz: {path}: {key} has shape {y.shape} for {n} images (expected [{n}])")
    if len(y) and int(y.min()) < 0:
        raise DataError(f"npz: {path}: {key} holds a negative label ({int(y.min())})")
    if len(y) and int(y.max()) >= MAX_CLASSES:  # before any cast (a uint64 label would wrap) or class list
        raise DataError(f"npz: {path}: {key} holds label {int(y.max())}, beyond the {MAX_CLASSES:,} classes a data "
                        "set may have")
    return torch.from_numpy(y.astype(np.int64))


def _class_names(arrays: dict[str, np.ndarray], y_train: torch.Tensor, path: Path) -> tuple[str, ...]:
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.dtype.kind not in "US" or names.ndim != 1 or len(names) == 0:
            raise DataError(f"npz: {path}: class_names must be a 1-D array of strings")
        out = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist())
        repeated = sorted({n for n in out if out.count(n) > 1})
        if repeated:
            raise DataError(f"npz: {path}: class_names names {repeated[0]!r} more than once")
        return out
    return tuple(str(i) for i in range(int(y_train.max()) + 1 if len(y_train) else 0))


@DATASETS.register("npz")
def load_npz(cfg: DataConfig, seed: int) -> Dataset:
    """An ``.npz`` data set as ``[N, C, H, W]`` float32 in [0, 1] (``seed`` unused: its own split).

    Raises:
        DataError: Missing keys, object arrays, bad shapes, NaN pixels, labels out of range.
    """
    del seed
    if cfg.data_dir is None:
        raise DataError("npz: no file given (data.data_dir / --data-dir names the .npz)")
    path = Path(cfg.data_dir).expanduser()
    arrays = _read(path)
    xs = {}
    for split in ("train", "test"):
        x = _images(arrays[f"x_{split}"], cfg.layout, f"x_{split}", path)
        if len(x) == 0:
            raise DataError(f"npz: {path}: x_{split} holds no images")
        xs[split] = x
    channels = _common_channels(cfg.channels, {x.shape[1] for x in xs.values()})
    parts = {}
    for split, x in xs.items():
        x = resize_nchw(convert_channels_nchw(x, channels), cfg.image_size)
        parts[split] = (x, _labels(arrays[f"y_{split}"], len(x), f"y_{split}", path))
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["test"]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"npz: {path}: training images are {tuple(x_tr.shape[1:])}, test images "
                        f"{tuple(x_te.shape[1:])}; set data.image_size to bring both to one size")
    names = _class_names(arrays, y_tr, path)
    for key, y in (("y_train", y_tr), ("y_test", y_te)):
        if len(y) and int(y.max()) >= len(names):
            raise DataError(f"npz: {path}: {key} holds label {int(y.max())}, outside the {len(names)} classes "
                            f"0..{len(names) - 1}")
    return Dataset(name="npz", x_train_nchw=x_tr, y_train=y_tr, x_test_nchw=x_te, y_test=y_te, class_names=names)
