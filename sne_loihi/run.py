"""What a run uses besides its files: the data set its config names, and its first test
samples (the file names are :mod:`sne_loihi.run_files`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sne_loihi.config import RunConfig
from sne_loihi.errors import ConfigError
from sne_loihi.run_files import (  # re-exported: the run folder's names
    CASCADE_HEAD_FILE, CONFIG_FILE, DROPOUT_GLOB, ENSEMBLE_FILE, EXPORT_DIR, FEATURES_FILE, FINETUNE_FILE, LAVA_FILE,
    PARTITION_FILE, PRE_FINETUNE_TEACHER, REPORT_FILE, TEACHER_FILE, dropout_dir,
)

__all__ = [
    "CASCADE_HEAD_FILE", "CONFIG_FILE", "DROPOUT_GLOB", "ENSEMBLE_FILE", "EXPORT_DIR", "FEATURES_FILE", "FINETUNE_FILE",
    "LAVA_FILE", "PARTITION_FILE", "PRE_FINETUNE_TEACHER", "REPORT_FILE", "TEACHER_FILE", "dropout_dir",
    "first_test_samples", "load_data",
]


def load_data(cfg: RunConfig) -> Any:  # -> Dataset
    """Load the data set named by the config."""
    from sne_loihi.data import load_dataset

    return load_dataset(cfg.data, seed=cfg.train.seed)


def first_test_samples(cfg: RunConfig, samples: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first ``samples`` test images ``x_nchw``, their labels and the class names.

    Raises:
        ConfigError: ``samples`` < 1.
    """
    if samples < 1:
        raise ConfigError(f"the number of samples must be >= 1, got {samples}")
    data = load_data(cfg)
    n = min(samples, len(data.y_test))
    return data.x_test_nchw[:n].numpy(), data.y_test[:n].numpy(), list(data.class_names)
