"""The run object: one run folder, its config parsed once, and what it holds (data set,
teacher, ensembles, cascade head, export manifest) loaded once per process.

Stages take a :class:`Run` instead of ``(cfg, run_dir)``. Every artifact is loaded through a
process-wide cache keyed by the file it comes from (resolved path, inode, size, modification
time): a rewritten file (a retrained ensemble) is loaded anew, an unchanged one is handed out
again. The data set is keyed by the data section and the seed
(:func:`load_data`). :data:`LOADS` counts the real loads per kind (tests check that a
pipeline loads the data set and each ensemble once).

Handed-out objects are shared: callers must not modify them in place (models are in eval
mode; training builds its own models and writes new files).

The file names are :mod:`sne_loihi.run_files` (re-exported here).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from sne_loihi.config import RunConfig
from sne_loihi.errors import ConfigError
from sne_loihi.run_files import (  # re-exported: the run folder's names
    CASCADE_HEAD_FILE, CONFIG_FILE, DROPOUT_GLOB, ENSEMBLE_FILE, EXPORT_DIR, FEATURES_FILE, FINETUNE_FILE, LAVA_FILE,
    PARTITION_FILE, PRE_FINETUNE_TEACHER, REPORT_FILE, TEACHER_FILE, dropout_dir,
)

if TYPE_CHECKING:  # annotations only: importing the run module loads no torch model code
    import torch

    from sne_loihi.data.dataset import Dataset
    from sne_loihi.ensemble.checkpoint import LoadedEnsemble
    from sne_loihi.netx_format.manifest import Manifest

__all__ = [
    "CASCADE_HEAD_FILE", "CONFIG_FILE", "DROPOUT_GLOB", "ENSEMBLE_FILE", "EXPORT_DIR", "FEATURES_FILE", "FINETUNE_FILE",
    "LAVA_FILE", "LOADS", "PARTITION_FILE", "PRE_FINETUNE_TEACHER", "REPORT_FILE", "Run", "TEACHER_FILE", "as_run",
    "clear_cache", "dropout_dir", "file_sha256", "first_test_samples", "load_data", "remember_manifest",
]

T = TypeVar("T")
#: Real loads (cache misses) per kind: ``data``, ``teacher``, ``ensemble``, ``cascade_head``,
#: ``manifest``, ``config``, ``sha256``.
LOADS: Counter[str] = Counter()
#: How many objects of one kind the cache keeps (the least recently used goes first).
_KEEP = {"data": 2, "teacher": 2, "ensemble": 8, "cascade_head": 4, "manifest": 4, "config": 16, "sha256": 16}
_CACHE: dict[str, OrderedDict[Hashable, Any]] = {}


def _cached(kind: str, key: Hashable, load: Callable[[], T]) -> T:
    entries = _CACHE.setdefault(kind, OrderedDict())
    if key in entries:
        entries.move_to_end(key)
        return entries[key]
    value = load()  # a failed load (one-line error) is not cached
    LOADS[kind] += 1
    entries[key] = value
    while len(entries) > _KEEP[kind]:
        entries.popitem(last=False)
    return value


def _file(path: Path) -> tuple[str, int, int, int]:
    """The cache key of a file: resolved path, inode (an atomic rewrite is a new file), size
    and modification time."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns


def clear_cache() -> None:
    """Forget every loaded object (and the load counts)."""
    _CACHE.clear()
    LOADS.clear()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (:func:`sne_loihi.io.sha256_file`), computed once per file version."""
    from sne_loihi.io import sha256_file

    return _cached("sha256", _file(path), lambda: sha256_file(path))


def load_data(cfg: RunConfig) -> Dataset:
    """The data set named by the config, loaded once per process for each data section and
    seed (the dropout variants and every later stage share it)."""
    from sne_loihi.data import load_dataset
    from sne_loihi.data.dataset import check_class_names

    data_cfg = asdict(cfg.data)
    data_cfg.pop("class_names")  # not which data it is: checked against the data loaded
    key = (tuple(sorted(data_cfg.items())), cfg.train.seed)
    return check_class_names(cfg.data, _cached("data", key, lambda: load_dataset(replace(cfg.data, class_names=None),
                                                                                  seed=cfg.train.seed)))


def first_test_samples(cfg: RunConfig, samples: int,
                       data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first ``samples`` test images ``x_nchw``, their labels and the class names.

    Args:
        cfg: The config whose data set is read.
        samples: How many test images (the first ones).
        data_dir: Read the data set from here instead of ``cfg.data.data_dir`` (the same
            data moved, e.g. a shipped model's data on another machine); ``None``: the config's.

    Raises:
        ConfigError: ``samples`` < 1, or ``data_dir`` for the embedded digits data set.
    """
    if samples < 1:
        raise ConfigError(f"the number of samples must be >= 1, got {samples}")
    if data_dir is not None:
        if cfg.data.name == "digits":
            raise ConfigError(f"data folder {data_dir} (--data-dir): this data set (digits) is embedded and reads no folder")
        cfg = replace(cfg, data=replace(cfg.data, data_dir=str(data_dir)))
    data = load_data(cfg)
    n = min(samples, len(data.y_test))
    return data.x_test_nchw[:n].numpy(), data.y_test[:n].numpy(), list(data.class_names)


class Run:
    """A run folder and the config it runs with.

    Args:
        directory: The run folder.
        config: The resolved config; ``None``: the folder's ``config.toml``, parsed once (on
            first use of :attr:`config`).

    Attributes:
        dir: The run folder.
    """

    def __init__(self, directory: Path | str, config: RunConfig | None = None) -> None:
        self.dir = Path(directory)
        self._config = config

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    def file(self, name: str) -> Path:
        """``RUN/name`` (use the names of :mod:`sne_loihi.run_files`)."""
        return self.dir / name

    @property
    def config(self) -> RunConfig:
        """The run's config (given, or ``RUN/config.toml`` parsed once).

        Raises:
            ConfigError: No config given and no readable ``config.toml``.
        """
        if self._config is None:
            from sne_loihi.config import resolve

            path = self.file(CONFIG_FILE)
            if not path.is_file():
                raise ConfigError(f"{self.dir} has no {CONFIG_FILE}")
            self._config = _cached("config", _file(path), lambda: resolve(None, path))
        return self._config

    def with_config(self, config: RunConfig) -> Run:
        """The same folder run with another config (e.g. a dropout variant's)."""
        return Run(self.dir, config)

    def data(self) -> Dataset:
        """The data set of :attr:`config` (:func:`load_data`)."""
        return load_data(self.config)

    def teacher(self, device: str = "cpu", path: Path | str | None = None) -> tuple[Any, RunConfig, dict[str, Any]]:
        """``RUN/teacher.pt`` (or ``path``) as ``(model in eval mode, its config, metadata)``
        (:func:`sne_loihi.teachers.checkpoint.load_teacher`).

        Raises:
            CheckpointError: Missing, corrupt or not a teacher checkpoint.
            ConfigError: Unknown or unavailable ``device``.
        """
        from sne_loihi.device import resolve_device
        from sne_loihi.teachers.checkpoint import load_teacher

        path = Path(path) if path is not None else self.file(TEACHER_FILE)
        where = str(resolve_device(device))  # "auto" and "cpu" share the teacher on a CPU-only machine
        if not path.is_file():
            return load_teacher(path, device=device)  # its one-line error
        return _cached("teacher", (*_file(path), where), lambda: load_teacher(path, device=device))

    def ensemble(self, folder: Path | str | None = None) -> LoadedEnsemble:
        """``ensemble.pt`` of the run (or of ``folder``, e.g. a dropout variant's, or a
        checkpoint file), rebuilt once per file version
        (:func:`sne_loihi.ensemble.checkpoint.load_ensemble`)."""
        from sne_loihi.ensemble.checkpoint import load_ensemble

        path = Path(folder) if folder is not None else self.dir
        if path.is_dir():
            path = path / ENSEMBLE_FILE
        if not path.is_file():
            return load_ensemble(path)  # its one-line error
        return _cached("ensemble", _file(path), lambda: load_ensemble(path))

    def current_cascade_head(self, num_students: int) -> torch.nn.Linear | None:
        """``RUN/cascade_head.pt`` if current for ``RUN/ensemble.pt``
        (:func:`sne_loihi.ensemble.cascade.current_cascade_head`), loaded once per file version."""
        from sne_loihi.ensemble.cascade import current_cascade_head

        head, ens = self.file(CASCADE_HEAD_FILE), self.file(ENSEMBLE_FILE)
        if not (head.is_file() and ens.is_file()):
            return None
        return _cached("cascade_head", (*_file(head), *_file(ens), num_students),
                       lambda: current_cascade_head(self.dir, num_students))

    def manifest(self, export_dir: Path | str | None = None) -> Manifest:
        """The export manifest of ``export_dir`` (default ``RUN/export``), validated once per
        manifest version (:func:`sne_loihi.netx_format.load_manifest`)."""
        from sne_loihi.netx_format import MANIFEST_FILE, load_manifest

        directory = Path(export_dir) if export_dir is not None else self.file(EXPORT_DIR)
        path = directory / MANIFEST_FILE
        if not path.is_file():
            return load_manifest(directory)  # its one-line error
        return _cached("manifest", _file(path), lambda: load_manifest(directory))


def remember_manifest(manifest: Any) -> Any:
    """Hand out ``manifest`` (just written and validated, e.g. by the export) for its folder
    from now on, instead of validating the same files again."""
    from sne_loihi.netx_format import MANIFEST_FILE

    entries = _CACHE.setdefault("manifest", OrderedDict())
    entries[_file(Path(manifest.directory) / MANIFEST_FILE)] = manifest
    while len(entries) > _KEEP["manifest"]:
        entries.popitem(last=False)
    return manifest


def as_run(run: Run | Path | str, config: RunConfig | None = None) -> Run:
    """A :class:`Run` for a run object or a folder (``config``: see :class:`Run`)."""
    if isinstance(run, Run):
        return run if config is None else run.with_config(config)
    return Run(run, config)
