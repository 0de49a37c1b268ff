"""The run folder's plan: every file name a stage reads or writes, and the data a run uses.

A run folder holds::

    config.toml  teacher.pt  teacher_features.pt  partition.json  ensemble.pt  cascade_head.pt
    finetune.json  teacher_pre_finetune.pt  metrics_*.jsonl  report.md  report.json  *.png
    export/  (netx files + manifest.json)   lava.json   dropout-k{K}/  (one ensemble each)

The names live here (or, for a checkpoint with its own reader, beside that reader and are
re-exported here), so core code and every stage refer to one spelling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.config import RunConfig
from sne_loihi.ensemble.cascade import CASCADE_HEAD_FILE
from sne_loihi.ensemble.checkpoint import ENSEMBLE_FILE
from sne_loihi.errors import ConfigError
from sne_loihi.teachers.checkpoint import TEACHER_FILE

CONFIG_FILE = "config.toml"
FEATURES_FILE = "teacher_features.pt"
PARTITION_FILE = "partition.json"
FINETUNE_FILE = "finetune.json"
PRE_FINETUNE_TEACHER = "teacher_pre_finetune.pt"
EXPORT_DIR = "export"
LAVA_FILE = "lava.json"
DROPOUT_GLOB = "dropout-k*"
REPORT_FILE = "report.md"

__all__ = [
    "CASCADE_HEAD_FILE", "CONFIG_FILE", "DROPOUT_GLOB", "ENSEMBLE_FILE", "EXPORT_DIR", "FEATURES_FILE", "FINETUNE_FILE",
    "LAVA_FILE", "PARTITION_FILE", "PRE_FINETUNE_TEACHER", "REPORT_FILE", "TEACHER_FILE", "dropout_dir", "load_data",
    "first_test_samples",
]


def dropout_dir(run_dir: Path, k: int) -> Path:
    """The folder of the dropout-trained variant with ``k`` active students."""
    return Path(run_dir) / f"dropout-k{k}"


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
