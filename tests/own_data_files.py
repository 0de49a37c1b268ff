"""Synthetic image trees and ``.npz`` files for the own-data tests, and their cache fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sne_loihi.config import DataConfig

CLASSES = ("cat", "dog", "eel")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches decoded images in its own folder, never in the user's home."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SNE_CACHE_DIR", str(cache))
    return cache


def _image(label: int, size: tuple[int, int], mode: str, rng: np.random.Generator) -> Image.Image:
    """A learnable image: a bright horizontal band whose position is the class, plus noise."""
    w, h = size
    arr = (rng.random((h, w)) * 60).astype(np.uint8)
    band = h // len(CLASSES)
    arr[label * band:(label + 1) * band] += 160
    gray = Image.fromarray(arr, "L")
    return gray if mode == "L" else gray.convert(mode)


def make_tree(root: Path, *, split: bool, size: tuple[int, int] = (28, 28), mode: str = "L", fmt: str = "png",
              per_class: int = 10, seed: int = 0) -> Path:
    """A class-folder tree (``train/`` + ``test/`` when ``split``) of synthetic images."""
    rng = np.random.default_rng(seed)
    parts = {"train": per_class, "test": max(2, per_class // 3)} if split else {"": per_class}
    for part, n in parts.items():
        for label, name in enumerate(CLASSES):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _image(label, size, mode, rng).save(folder / f"{i:03d}.{fmt}")
    return root


def _cfg(path: Path, **kw) -> DataConfig:
    return DataConfig(name=kw.pop("name", "imagefolder"), data_dir=str(path), **kw)


def _npz(path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {"x_train": rng.integers(0, 256, (12, 3, 9, 9), dtype=np.uint8), "y_train": np.arange(12) % 3,
            "x_test": rng.integers(0, 256, (6, 3, 9, 9), dtype=np.uint8), "y_test": np.arange(6) % 3}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path
