"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with sklearn: no download)."""

from __future__ import annotations

import torch

from sne_loihi.config import DataConfig
from sne_loihi.data.dataset import DATASETS, Dataset
from sne_loihi.errors import ConfigError, DataError


@DATASETS.register("digits")
def load_digits_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Digits as ``[N, 1, 8, 8]`` float32 in [0, 1] (pixel values 0..16 divided by 16).

    The train/test split is stratified and fixed by ``seed``
    (``train_test_split(test_size=cfg.test_fraction, stratify=y, random_state=seed)``).

    Raises:
        ConfigError: ``cfg.test_fraction`` outside (0, 1).
        DataError: A split that leaves a class without images on one side.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < cfg.test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction must be in (0, 1), got {cfg.test_fraction}")
    bunch = load_digits()
    x = bunch.images.astype("float32") / 16.0
    y = bunch.target.astype("int64")
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=cfg.test_fraction, stratify=y, random_state=seed
        )
    except ValueError as exc:  # a split too small for every class on both sides
        raise DataError(f"digits: cannot split {len(y)} images with test_fraction {cfg.test_fraction}: "
                        f"{' '.join(str(exc).split())}") from None
    return Dataset(
        name="digits",
        x_train_nchw=torch.from_numpy(x_tr).unsqueeze(1).contiguous(),
        y_train=torch.from_numpy(y_tr),
        x_test_nchw=torch.from_numpy(x_te).unsqueeze(1).contiguous(),
        y_test=torch.from_numpy(y_te),
        class_names=tuple(str(i) for i in range(10)),
    )
