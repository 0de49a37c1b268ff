"""Every file name of a run folder, in one place (no heavy imports: the CLI reads them too).

A run folder holds::

    config.toml  teacher.pt  teacher_features.pt  partition.json  ensemble.pt  cascade_head.pt
    finetune.json  teacher_pre_finetune.pt  metrics_*.jsonl  report.md  report.json  *.png
    export/  (netx files + manifest.json)   lava.json   dropout-k{K}/  (one ensemble each)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CASCADE_HEAD_FILE", "CONFIG_FILE", "DROPOUT_GLOB", "ENSEMBLE_FILE", "EXPORT_DIR", "FEATURES_FILE", "FINETUNE_FILE",
    "LAVA_FILE", "PARTITION_FILE", "PRE_FINETUNE_TEACHER", "REPORT_FILE", "RUN_FOLDER_INDEX", "RunFile", "STUDENT_METRICS",
    "TEACHER_FILE", "TEACHER_METRICS",
    "dropout_dir", "run_folder_index",
]

CONFIG_FILE = "config.toml"
TEACHER_FILE = "teacher.pt"
TEACHER_METRICS = "metrics_teacher.jsonl"
STUDENT_METRICS = "metrics_students.jsonl"
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


@dataclass(frozen=True)
class RunFile:
    """One entry of a run folder's index (:data:`RUN_FOLDER_INDEX`).

    Attributes:
        pattern: File or folder name, or a glob (``*.png``).
        what: What it holds.
        made_by: The command that writes it.
    """

    pattern: str
    what: str
    made_by: str


#: What each file of a run folder is and which command writes it (report.md lists the ones
#: present, so a run folder explains itself).
RUN_FOLDER_INDEX: tuple[RunFile, ...] = (
    RunFile(CONFIG_FILE, "the resolved config of the run (every stage reads it; --resume checks it)",
            "sne teacher / sne partition / sne train / sne pipeline"),
    RunFile(TEACHER_FILE, "the teacher checkpoint (weights + config + data split)", "sne teacher"),
    RunFile(TEACHER_METRICS, "the teacher's learning curve, one JSON line per epoch", "sne teacher"),
    RunFile(FINETUNE_FILE, "teacher fine-tuning (disentanglement): accuracy and L_sim before / after",
            "sne teacher finetune"),
    RunFile(PRE_FINETUNE_TEACHER, "the teacher as it was before fine-tuning", "sne teacher finetune"),
    RunFile(FEATURES_FILE, "the teacher's features on the training set (cache for partitioning)", "sne partition / sne train"),
    RunFile(PARTITION_FILE, "which teacher features each student learns", "sne partition / sne train"),
    RunFile(ENSEMBLE_FILE, "the student ensemble: students, linear head, fold record, provenance", "sne train"),
    RunFile(STUDENT_METRICS, "the students' learning curve, one JSON line per epoch", "sne train"),
    RunFile(CASCADE_HEAD_FILE, "the head refit with random prefix masks, used by per-sample activation",
            "sne evaluate / sne pipeline"),
    RunFile(DROPOUT_GLOB, "ensembles trained with K random active students (Table VI)", "sne pipeline --dropout-k"),
    RunFile(EXPORT_DIR, "netx HDF5 file per student, manifest.json, head, Loihi 2 readiness report (loihi2.md)",
            "sne export / sne pipeline"),
    RunFile("nir", "one NIR graph per student + the head, nir_manifest.json (interoperability)",
            "sne export --format nir"),
    RunFile(LAVA_FILE, "the Lava simulation's accuracy, ops, energy and parity with torch", "sne pipeline"),
    RunFile(REPORT_FILE, "this report (report.json: the same numbers, machine-readable)", "sne evaluate / sne pipeline"),
    RunFile("*.png", "the report's plots", "sne evaluate / sne pipeline"),
)


def run_folder_index(run_dir: Path, about_to_write: tuple[str, ...] = ()) -> list[RunFile]:
    """The entries of :data:`RUN_FOLDER_INDEX` present in ``run_dir`` (or named in
    ``about_to_write``), each with the names it matched."""
    run_dir = Path(run_dir)
    found = []
    for entry in RUN_FOLDER_INDEX:
        names = sorted({p.name for p in run_dir.glob(entry.pattern)}
                       | {n for n in about_to_write if Path(n).match(entry.pattern)})
        if names:
            found.append(RunFile(", ".join(names), entry.what, entry.made_by))
    return found


def dropout_dir(run_dir: Path, k: int) -> Path:
    """The folder of the dropout-trained variant with ``k`` active students."""
    return Path(run_dir) / f"dropout-k{k}"
