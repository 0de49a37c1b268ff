"""The export stage behind ``sne export`` and ``sne nir`` (and the pipeline's export step):
a run's ensemble to netx files verified in Lava, or to NIR graphs re-imported in snnTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sne_loihi.config import DEFAULT_LAVA_CAPACITY, DEFAULT_LAVA_SAMPLES, FirstLayer
from sne_loihi.errors import ConfigError, ExportError
from sne_loihi.run import CASCADE_HEAD_FILE, CONFIG_FILE, ENSEMBLE_FILE, EXPORT_DIR, Run, as_run, first_test_samples, remember_manifest
from sne_loihi.io import sha256_file


def export_run(run: Run | Path | str, out_dir: Path | str | None = None, *, samples: int = DEFAULT_LAVA_SAMPLES,
               overwrite: bool = False, capacity: int = DEFAULT_LAVA_CAPACITY, first_layer: FirstLayer | str | None = None,
               data_dir: str | Path | None = None) -> Any:
    """Export ``RUN/ensemble.pt`` to netx files + manifest, verified in Lava on the first
    ``samples`` test samples (0 skips the check, which the manifest then records as null).
    ``RUN/cascade_head.pt`` goes into the manifest only if it is current for this ensemble
    (:func:`~sne_loihi.ensemble.cascade.current_cascade_head`). ``first_layer`` (a
    :class:`~sne_loihi.config.FirstLayer`; default the run's ``lava.first_layer``) says how
    the students' first layers are driven (:func:`~sne_loihi.export.exporter.export_model`);
    another choice than the run's is written into its ``config.toml`` after the export, so the
    report counts the ops as the exported students run.

    Args:
        run: The run (or its folder) holding ``ensemble.pt``.
        out_dir: The export folder (default ``RUN/export``); not the run folder or above it.
        samples: Test samples of the Lava-vs-torch check (0 skips it).
        overwrite: Replace an earlier export in ``out_dir``.
        capacity: Samples per Lava run of the check's compiled graph.
        first_layer: How the students' first layers are driven (see above).
        data_dir: Where the check's test images are, when the data set the ensemble was
            trained on has moved (default: the ensemble's ``data.data_dir``).

    Returns:
        The loaded, validated :class:`~sne_loihi.export.Manifest`.

    Raises:
        ExportError / ParityError / CheckpointError: One-line reasons.
        ConfigError: An unknown ``first_layer``.
    """
    from sne_loihi.export.exporter import check_out_dir, export_loaded
    from sne_loihi.netx_format import CascadeHead

    if first_layer is not None:
        try:
            first_layer = FirstLayer(first_layer)
        except ValueError:
            raise ConfigError(f"first_layer must be one of {', '.join(m.value for m in FirstLayer)}, "
                              f"got {first_layer!r}") from None
    run = as_run(run)
    out_dir = _export_folder(run.dir, out_dir, EXPORT_DIR)
    check_out_dir(out_dir, overwrite)  # before any work
    loaded = run.ensemble()
    x = first_test_samples(loaded.config, samples, data_dir)[0] if samples > 0 else None
    n = loaded.model.num_students
    head = run.current_cascade_head(n)  # lets `sne simulate --cascade` run from the export alone
    cascade = CascadeHead.from_linear(head, range(n), source=CASCADE_HEAD_FILE) if head is not None else None
    stored = run.config.lava.first_layer if run.file(CONFIG_FILE).is_file() else loaded.config.lava.first_layer
    chosen = stored if first_layer is None else first_layer
    manifest = remember_manifest(export_loaded(loaded, out_dir, x_verify_nchw=x, verify_samples=samples,
                                               overwrite=overwrite, capacity=capacity, cascade_head=cascade,
                                               first_layer=chosen, ensemble_sha256=sha256_file(run.file(ENSEMBLE_FILE))))
    # the run's own export (RUN/export) is the one `sne evaluate` pairs with; an export written
    # elsewhere (a variant, or from a shipped model's folder) leaves the run's config as it was
    own = out_dir.resolve() == run.file(EXPORT_DIR).resolve()
    if own and FirstLayer(chosen) is not FirstLayer(stored) and run.file(CONFIG_FILE).is_file():
        _record_first_layer(run, FirstLayer(chosen))
    return manifest


def _record_first_layer(run: Run, first_layer: Any) -> None:
    """Write the export's ``lava.first_layer`` into the run's ``config.toml``, so that ``sne
    evaluate`` counts the first layers' ops as the exported students run them (only for the
    run's own export folder)."""
    from dataclasses import replace

    from sne_loihi.config import dump_toml

    cfg = run.config
    dump_toml(replace(cfg, lava=replace(cfg.lava, first_layer=first_layer)), run.file(CONFIG_FILE))


def _export_folder(run_dir: Path, out_dir: Path | None, default: str) -> Path:
    """``--out`` (or ``RUN/default``), refused when it is the run folder or a folder above it."""
    out_dir = Path(out_dir) if out_dir is not None else run_dir / default
    if out_dir.resolve() == run_dir.resolve() or out_dir.resolve() in run_dir.resolve().parents:
        raise ExportError(f"the export folder {out_dir} (--out) is the run folder or a folder above it; an export goes into a folder of its own")
    inside = next((p for p in out_dir.resolve().parents if (p / "manifest.json").is_file()
                   or (p / "nir_manifest.json").is_file()), None)
    if inside is not None:  # a later --overwrite of the outer export would refuse (or lose) the inner one
        raise ExportError(f"the export folder {out_dir} (--out) lies inside the export {inside}; choose a folder "
                          "outside it")
    return out_dir


def export_nir_run(run_dir: Path, out_dir: Path | None = None, *, samples: int = DEFAULT_LAVA_SAMPLES, overwrite: bool = False,
                   data_dir: str | Path | None = None) -> Any:
    """Export ``RUN/ensemble.pt`` as NIR graphs (``RUN/nir`` by default), checked by re-import
    in snnTorch on the first ``samples`` test samples (0 skips the check), read from
    ``data_dir`` when given (default: the ensemble's ``data.data_dir``).

    Returns:
        The :class:`~sne_loihi.export.nir_export.NirExport` read back from ``out_dir``.

    Raises:
        ExportError / ParityError / CheckpointError: One-line reasons.
    """
    from sne_loihi.export.exporter import check_out_dir
    from sne_loihi.export.nir_export import NIR_DIR, NIR_MANIFEST_FILE, export_nir

    run = as_run(run_dir)
    out_dir = _export_folder(run.dir, out_dir, NIR_DIR)
    check_out_dir(out_dir, overwrite, NIR_MANIFEST_FILE)  # before any work
    loaded = run.ensemble()
    x = first_test_samples(loaded.config, samples, data_dir)[0] if samples > 0 else None
    return export_nir(loaded, out_dir, x_verify_nchw=x, verify_samples=samples, overwrite=overwrite,
                      ensemble_sha256=sha256_file(run.file(ENSEMBLE_FILE)))


def check_nir_export(exported: Any, checkpoint: Path, samples: int, data_dir: str | Path | None = None) -> Any:
    """Re-import a NIR export read back (:func:`~sne_loihi.export.nir_export.read_nir_export`)
    in snnTorch and compare it with the ensemble in ``checkpoint`` on its first ``samples``
    test samples: every layer's spikes, the predictions and the accuracy. The samples are read
    from ``data_dir`` when given (default: the ensemble's ``data.data_dir``).

    Raises:
        ExportError: The export does not belong to the checkpoint (other student specs).
        CheckpointError: Unreadable checkpoint. ParityError: a mapping error (see nir_check).
    """
    import torch

    from sne_loihi.ensemble import encode_for
    from sne_loihi.export.nir_check import check_nir

    recorded = exported.manifest.get("ensemble_sha256")
    if recorded is not None and Path(checkpoint).is_file() and sha256_file(Path(checkpoint)) != recorded:
        raise ExportError(f"{exported.directory} was not exported from {checkpoint} (the checkpoint changed since, e.g. "
                          "trained on); export again")
    loaded = Run(Path(checkpoint).parent).ensemble(Path(checkpoint))
    specs = [s.spec.to_dict() for s in loaded.model.students]
    if [e.get("spec") for e in exported.manifest["students"]] != specs:
        raise ExportError(f"{exported.directory} was not exported from {checkpoint} (its student specs differ)")
    x, y, _ = first_test_samples(loaded.config, samples, data_dir)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        logits = loaded.model(x_t).logits.cpu().numpy()
    return check_nir(list(loaded.model.students), exported.students, encode_for(loaded.model.students[0].spec, x_t),
                     exported.head, logits, y)
