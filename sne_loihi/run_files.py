"""Every file name of a run folder, in one place (no heavy imports: the CLI reads them too).

A run folder holds::

    config.toml  teacher.pt  teacher_features.pt  partition.json  ensemble.pt  cascade_head.pt
    finetune.json  teacher_pre_finetune.pt  metrics_*.jsonl  report.md  report.json  *.png
    export/  (netx files + manifest.json)   lava.json   dropout-k{K}/  (one ensemble each)
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CASCADE_HEAD_FILE", "CONFIG_FILE", "DROPOUT_GLOB", "ENSEMBLE_FILE", "EXPORT_DIR", "FEATURES_FILE", "FINETUNE_FILE",
    "LAVA_FILE", "PARTITION_FILE", "PRE_FINETUNE_TEACHER", "REPORT_FILE", "TEACHER_FILE", "dropout_dir",
]

CONFIG_FILE = "config.toml"
TEACHER_FILE = "teacher.pt"
FEATURES_FILE = "teacher_features.pt"
PARTITION_FILE = "partition.json"
FINETUNE_FILE = "finetune.json"
PRE_FINETUNE_TEACHER = "teacher_pre_finetune.pt"
ENSEMBLE_FILE = "ensemble.pt"
CASCADE_HEAD_FILE = "cascade_head.pt"
EXPORT_DIR = "export"
LAVA_FILE = "lava.json"
DROPOUT_GLOB = "dropout-k*"
REPORT_FILE = "report.md"


def dropout_dir(run_dir: Path, k: int) -> Path:
    """The folder of the dropout-trained variant with ``k`` active students."""
    return Path(run_dir) / f"dropout-k{k}"
