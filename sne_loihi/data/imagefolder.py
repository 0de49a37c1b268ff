"""The ``imagefolder`` data set: a user's own images in class folders, decoded once and cached.

Layouts (see :mod:`sne_loihi.data.image_tree`)::

    ROOT/train/<class>/*.png   ROOT/test/<class>/*.png     official split
    ROOT/<class>/*.jpg                                     one tree, split with the run's seed

``ROOT`` (``data.data_dir``) is a folder or a ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip`` of one,
read without extracting it; one top-level folder wrapping the tree is looked through. Labels
are indices into the sorted class folder names.

Images are decoded with Pillow (its decompression-bomb limit is an error here, not a warning),
brought to ``data.channels`` (:class:`~sne_loihi.config.ImageChannels`) and, with
``data.image_size``, resized (bilinear, antialiased) to a square. Decoded arrays are cached as
plain ``.npy`` files beside a ``manifest.json`` of the source (every file's path, size and
modification time; for an archive its own size and time), so a second run reads the cache;
a changed source or other settings rebuild it. The cache holds data only: arrays are read with
``allow_pickle=False`` and checked against the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sne_loihi.config import DataConfig, ImageChannels
from sne_loihi.data.dataset import DATASETS, Dataset
from sne_loihi.data.image_tree import (
    LAYOUTS,
    TreeEntry,
    TreeListing,
    TreePlan,
    check_image_size,
    is_hidden,
    is_image_name,
    iter_archive,
    list_folder,
    plan_tree,
    source_kind,
)
from sne_loihi.errors import ConfigError, DataError, SneError
from sne_loihi.json_files import read_json_file

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
#: Pillow modes read as grayscale / as carrying alpha.
GRAY_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_CHANNELS = {ImageChannels.GRAY: 1, ImageChannels.RGB: 3, ImageChannels.RGBA: 4}
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
#: A Python object's repr in an exception message (``<_io.BytesIO object at 0x7f...>``): left out.
_OBJECT_AT = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def default_cache_root() -> Path:
    """``$SNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/sne-loihi``, else ``~/.cache/sne-loihi``."""
    if os.environ.get("SNE_CACHE_DIR"):
        return Path(os.environ["SNE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "sne-loihi"


# --------------------------------------------------------------------------- decoding


def _native_channels(img: Any) -> int:
    if img.mode in GRAY_MODES:
        return 1
    if img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        return 4
    return 3


def _to_mode(img: Any, channels: int) -> Any:
    if img.mode.startswith("I;16"):  # 16-bit gray: keep the top 8 bits (Pillow's convert clips)
        arr = (np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)
        from PIL import Image

        img = Image.fromarray(arr, mode="L")
    return img.convert(_MODES[channels])


def decode_image(data: bytes, name: str, channels: int | None, size: int) -> np.ndarray:
    """One encoded image as uint8 ``[H, W, C]``.

    Args:
        data: The encoded file.
        name: Its name, for errors.
        channels: 1, 3 or 4; ``None``: the image's own (1 gray, 4 with alpha, else 3).
        size: Resize to ``size x size`` (bilinear, antialiased); 0 keeps the size.

    Raises:
        DataError: A corrupt or truncated image, or one above Pillow's pixel limit.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                target = channels if channels is not None else _native_channels(img)
                out = _to_mode(img, target)
                if size and out.size != (size, size):
                    out = out.resize((size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(out, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"imagefolder: {name} is refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise DataError(f"imagefolder: cannot decode {name} (not an image format Pillow reads, or not an image at "
                        "all)") from None
    except Exception as exc:  # Pillow raises many types for corrupt or truncated files
        detail = _OBJECT_AT.sub("", " ".join(str(exc).split())).strip() or type(exc).__name__
        raise DataError(f"imagefolder: cannot decode {name} (corrupt or truncated: {detail})") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def convert_channels(img_hwc: np.ndarray, channels: int) -> np.ndarray:
    """An uint8 ``[H, W, C]`` image with ``C`` in {1, 3, 4} brought to ``channels``.

    Gray -> RGB repeats, RGB -> gray is ITU-R 601 luma (Pillow's ``L``), alpha is dropped or
    added opaque.
    """
    c = img_hwc.shape[2]
    if c == channels:
        return img_hwc
    rgb = img_hwc[:, :, :3] if c >= 3 else np.repeat(img_hwc, 3, axis=2)
    if channels == 1:
        luma = (rgb[:, :, 0].astype(np.uint32) * 19595 + rgb[:, :, 1].astype(np.uint32) * 38470
                + rgb[:, :, 2].astype(np.uint32) * 7471 + 0x8000) >> 16
        return luma.astype(np.uint8)[:, :, None]
    if channels == 3:
        return np.ascontiguousarray(rgb)
    alpha = img_hwc[:, :, 3:4] if c == 4 else np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def resolve_channels(setting: ImageChannels, found: set[int]) -> int:
    """Channel count for :class:`ImageChannels` given the images' own counts (AUTO rule)."""
    setting = ImageChannels(setting)
    if setting is not ImageChannels.AUTO:
        return _CHANNELS[setting]
    if found <= {1}:
        return 1
    if found == {4}:
        return 4
    return 3


def check_one_size(images: list[np.ndarray], names: list[str], where: str) -> None:
    """Refuse images of more than one size, naming two of them."""
    first = images[0].shape[:2]
    for img, name in zip(images, names):
        if img.shape[:2] != first:
            raise DataError(f"imagefolder: {where} mixes image sizes ({first[1]}x{first[0]} in {names[0]}, "
                            f"{img.shape[1]}x{img.shape[0]} in {name}); set data.image_size to resize every image "
                            "to one size")


def stack_images(images: list[np.ndarray], channels: int) -> np.ndarray:
    """One uint8 ``[N, H, W, C]`` array of same-sized images brought to ``channels``."""
    out = np.empty((len(images), *images[0].shape[:2], channels), np.uint8)
    for i, img in enumerate(images):
        out[i] = convert_channels(img, channels)
    return out


# --------------------------------------------------------------------------- decoding a tree


@dataclass
class DecodedTree:
    """A decoded image tree (uint8 NHWC arrays; ``x_test_nhwc`` is ``None`` for one tree)."""

    class_names: tuple[str, ...]
    x_train_nhwc: np.ndarray
    y_train: np.ndarray
    x_test_nhwc: np.ndarray | None
    y_test: np.ndarray | None
    skipped: int
    other_folders: tuple[str, ...] = ()
    other_images: int = 0


def _progress(total: int | None, desc: str) -> Any:
    """The decoding bar: on a terminal only, and not under a command's ``--no-progress``."""
    from tqdm import tqdm

    from sne_loihi.progress import terminal_bar_shown

    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=not terminal_bar_shown())


def decode_tree(path: Path, channels: ImageChannels, size: int) -> tuple[DecodedTree, dict[str, Any]]:
    """Read and decode every image of a source; also return its fingerprint (for the cache).

    Raises:
        DataError: See :func:`plan_tree`, :func:`decode_image` and the archive readers.
    """
    kind = source_kind(path)
    fixed = None if ImageChannels(channels) is ImageChannels.AUTO else _CHANNELS[ImageChannels(channels)]
    decoded: dict[tuple[str, ...], np.ndarray] = {}
    listing = TreeListing()
    if kind == "folder":
        listing = list_folder(path)
        wanted = [e for e in listing.files if _is_image(e.parts)]
        with _progress(len(wanted), f"decoding {path.name}") as bar:
            for entry in wanted:
                file = path / Path(*entry.parts)
                check_image_size(entry.size, entry.name, str(path))
                try:
                    data = file.read_bytes()
                except OSError as exc:
                    raise DataError(f"imagefolder: cannot read {file} ({exc.strerror or type(exc).__name__})") from None
                decoded[entry.parts] = decode_image(data, str(file), fixed, size)
                bar.update(1)
        fingerprint = {"kind": kind, "files": [[e.name, e.size, e.mtime_ns] for e in listing.files]}
    else:
        with _progress(None, f"decoding {path.name}") as bar:
            for item, data in iter_archive(path, kind, _is_image):  # other members are not read
                if not isinstance(item, TreeEntry):
                    listing.folders.add(item)
                    for i in range(1, len(item)):
                        listing.folders.add(item[:i])
                    continue
                listing.add_file(item)
                if data is not None:
                    decoded[item.parts] = decode_image(data, f"{path}:{item.name}", fixed, size)
                    bar.update(1)
        st = path.stat()
        fingerprint = {"kind": kind, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    plan = plan_tree([e.parts for e in listing.files], listing.folders, str(path))
    return _assemble(plan, decoded, fixed, channels, str(path)), fingerprint


def _is_image(parts: tuple[str, ...]) -> bool:
    """A file that is decoded: visible, with an image suffix."""
    return not is_hidden(parts) and is_image_name(parts[-1])


def _assemble(plan: TreePlan, decoded: dict[tuple[str, ...], np.ndarray], fixed: int | None,
              channels: ImageChannels, where: str) -> DecodedTree:
    groups: dict[str, tuple[list[np.ndarray], list[int], list[str]]] = {}
    for parts in sorted(decoded):
        placed = plan.place(parts)
        if placed is None:
            continue
        imgs, labels, names = groups.setdefault(placed[0], ([], [], []))
        imgs.append(decoded[parts])
        labels.append(placed[1])
        names.append("/".join(parts))
    skipped = plan.skipped
    target = fixed if fixed is not None else resolve_channels(channels, {i.shape[2] for g in groups.values() for i in g[0]})
    all_imgs = [i for g in groups.values() for i in g[0]]
    if not all_imgs:
        raise DataError(f"imagefolder: {where} holds no images in class folders; {LAYOUTS}")
    check_one_size(all_imgs, [n for g in groups.values() for n in g[2]], where)
    out = {k: (stack_images(v[0], target), np.asarray(v[1], np.int64)) for k, v in groups.items()}
    if plan.split:
        return DecodedTree(plan.class_names, *out["train"], *out.get("test", (None, None)), skipped,
                           plan.other_folders, plan.other_images)
    return DecodedTree(plan.class_names, *out["all"], None, None, skipped)


# --------------------------------------------------------------------------- the cache


def _settings(channels: ImageChannels, size: int) -> dict[str, Any]:
    return {"channels": ImageChannels(channels).value, "image_size": int(size)}


def cache_folder(root: Path, source: Path, channels: ImageChannels, size: int) -> Path:
    """The cache folder of one source and its decoding settings."""
    key = json.dumps({"source": str(source), **_settings(channels, size), "format": CACHE_FORMAT}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name)[:60]
    return root / f"imagefolder-{stem}-{digest}"


def current_fingerprint(source: Path) -> dict[str, Any]:
    """What the cache compares: every file's path, size and time (folder) or the archive's."""
    kind = source_kind(source)
    if kind == "folder":
        return {"kind": kind, "files": [[e.name, e.size, e.mtime_ns] for e in list_folder(source).files]}
    st = source.stat()
    return {"kind": kind, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


_ARRAYS = ("x_train_nhwc", "y_train", "x_test_nhwc", "y_test")


def read_cache(folder: Path, source: Path, channels: ImageChannels, size: int) -> DecodedTree | None:
    """The cached decode if it exists and matches the source and settings, else ``None``.

    Arrays are read with ``allow_pickle=False`` and checked against the manifest (dtype, shape,
    label range); anything that does not match is a cache miss, not an error.
    """
    manifest_path = folder / MANIFEST
    try:
        if not manifest_path.is_file():
            return None
        manifest = read_json_file(manifest_path, "image cache manifest")
        if (manifest.get("format") != CACHE_FORMAT or manifest.get("source") != str(source)
                or manifest.get("settings") != _settings(channels, size)
                or manifest.get("fingerprint") != current_fingerprint(source)):
            return None
        names = tuple(str(n) for n in manifest["class_names"])
        arrays: dict[str, np.ndarray | None] = {}
        for key in _ARRAYS:
            shape = manifest["shapes"].get(key)
            if shape is None:
                arrays[key] = None
                continue
            arr = np.load(folder / f"{key}.npy", allow_pickle=False, mmap_mode="r")
            want = np.uint8 if key.startswith("x") else np.int64
            if arr.dtype != want or list(arr.shape) != list(shape):
                return None
            arrays[key] = np.array(arr)
        for key in ("y_train", "y_test"):
            y = arrays[key]
            if y is not None and len(y) and (y.min() < 0 or y.max() >= len(names)):
                return None
        return DecodedTree(names, arrays["x_train_nhwc"], arrays["y_train"], arrays["x_test_nhwc"],
                           arrays["y_test"], int(manifest.get("skipped", 0)),
                           tuple(str(f) for f in manifest.get("other_folders", ())), int(manifest.get("other_images", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SneError):  # any doubt: decode again
        return None


def write_cache(folder: Path, source: Path, channels: ImageChannels, size: int, tree: DecodedTree,
                fingerprint: dict[str, Any]) -> None:
    """Write the cache into a new folder beside ``folder``, then rename it into place.

    A failure to write is reported on stderr (the data set is still returned).
    """
    tmp: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        shapes = {}
        for key in _ARRAYS:
            arr = getattr(tree, key)
            shapes[key] = None if arr is None else list(arr.shape)
            if arr is not None:
                np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        manifest = {"format": CACHE_FORMAT, "source": str(source), "settings": _settings(channels, size),
                    "class_names": list(tree.class_names), "shapes": shapes, "skipped": tree.skipped,
                    "other_folders": list(tree.other_folders), "other_images": tree.other_images,
                    "fingerprint": fingerprint}
        (tmp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        if folder.exists():
            if not (folder / MANIFEST).is_file() or folder.is_symlink():
                raise OSError(f"{folder} exists and is not a cache folder of this toolkit")
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError as exc:
        print(f"warning: could not write the decoded-image cache ({exc}); the next run decodes again",
              file=sys.stderr)
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- the data set


def load_tree(cfg: DataConfig) -> DecodedTree:
    """Decode ``cfg.data_dir`` (or read its cache) with the config's channel and size settings.

    Raises:
        DataError: See :func:`decode_tree`.
    """
    if cfg.data_dir is None:
        raise DataError(f"imagefolder: no data folder given (data.data_dir / --data-dir); {LAYOUTS}")
    source = Path(cfg.data_dir).expanduser().resolve()
    source_kind(source)
    folder = cache_folder(Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_root(), source,
                          cfg.channels, cfg.image_size)
    if cfg.cache:
        cached = read_cache(folder, source, cfg.channels, cfg.image_size)
        if cached is not None:
            _report(cached, source, f"read from the cache {folder}")
            return cached
    tree, fingerprint = decode_tree(source, cfg.channels, cfg.image_size)
    if cfg.cache:
        write_cache(folder, source, cfg.channels, cfg.image_size, tree, fingerprint)
    _report(tree, source, "decoded")
    return tree


def _report(tree: DecodedTree, source: Path, how: str) -> None:
    n = len(tree.y_train) + (len(tree.y_test) if tree.y_test is not None else 0)
    _, h, w, c = tree.x_train_nhwc.shape
    line = f"imagefolder: {n} images of {len(tree.class_names)} classes, {c}x{h}x{w}, {how}"
    if tree.other_images:
        line += (f"; skipped {tree.other_images} image{'s' if tree.other_images != 1 else ''} in "
                 f"{', '.join(f + '/' for f in tree.other_folders)} (only the train and test folders are read)")
    if tree.skipped:
        line += f"; skipped {tree.skipped} file{'s' if tree.skipped != 1 else ''} that {'are' if tree.skipped != 1 else 'is'} not an image in a class folder"
    print(line, file=sys.stderr)


def nhwc_to_nchw(x_nhwc: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` -> float32 ``[N, C, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x_nhwc)).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def split_tree(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, where: str) -> tuple[np.ndarray, ...]:
    """A seeded, stratified train/test split of one tree (as the digits set is split).

    Raises:
        DataError: A class with too few images for the split.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    try:
        return tuple(train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed))
    except ValueError as exc:
        raise DataError(f"imagefolder: cannot split {where} with test_fraction {test_fraction} "
                        f"(every class needs images on both sides: {' '.join(str(exc).split())})") from None


@DATASETS.register("imagefolder")
def load_imagefolder(cfg: DataConfig, seed: int) -> Dataset:
    """An image tree as ``[N, C, H, W]`` float32 in [0, 1] (see the module docstring).

    Raises:
        DataError: Missing or unreadable source, a bad layout, a corrupt image.
    """
    tree = load_tree(cfg)
    if tree.x_test_nhwc is None:
        x_tr, x_te, y_tr, y_te = split_tree(tree.x_train_nhwc, tree.y_train, cfg.test_fraction, seed, str(cfg.data_dir))
    else:
        x_tr, x_te, y_tr, y_te = tree.x_train_nhwc, tree.x_test_nhwc, tree.y_train, tree.y_test
    return Dataset(
        name="imagefolder",
        x_train_nchw=nhwc_to_nchw(x_tr),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr)),
        x_test_nchw=nhwc_to_nchw(x_te),
        y_test=torch.from_numpy(np.ascontiguousarray(y_te)),
        class_names=tree.class_names,
    )
