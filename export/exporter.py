"""Export a trained ensemble: one netx file per student, a manifest, and a Lava parity check."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.config import DEFAULT_LAVA_CAPACITY, DEFAULT_LAVA_SAMPLES, FirstLayer
from sne_loihi.cost.first_layer import FirstLayerChoice, resolve_first_layer
from sne_loihi.errors import ExportError, ParityError
from sne_loihi.json_files import read_json_file
from sne_loihi.export.netx_write import write_student_hdf5
from sne_loihi.io import atomic_write_json, sha256_file
from sne_loihi.netx_format.manifest import (
    LOIHI2_REPORT, MANIFEST_FILE, NIR_MANIFEST_FILE, CascadeHead, InputEncoding, Manifest, ParityRecord, StudentEntry,
    load_manifest,
)
from sne_loihi.netx_format.netx_file import read_netx_layers


def torch_layer_spikes(student: Any, x_nchwt: Any) -> list[np.ndarray]:
    """Every weighted block's spikes of a SLAYER student, in Lava order ``[N, *xyz, T]``.

    Runs ``student.blocks`` one by one (the same modules ``Student.forward`` chains), so
    hidden layers can be compared too.
    """
    import torch

    out: list[np.ndarray] = []
    x = x_nchwt
    with torch.no_grad():
        for block in student.blocks:
            x = block(x)
            if type(block).__name__ == "Flatten":
                continue
            a = x.detach().cpu().numpy()
            out.append(a.transpose(0, 3, 2, 1, 4) if a.ndim == 5 else a)
    return out


def first_mismatch(lava: Sequence[np.ndarray], torch_: Sequence[np.ndarray]) -> tuple[int, int, int, int] | None:
    """``(layer, sample, step, count)`` of the first layer whose spikes differ, else None.

    ``step`` is the earliest differing time step in that layer; ``count`` the number of
    differing (neuron, step) entries in it.
    """
    for j, (a, b) in enumerate(zip(lava, torch_)):
        if a.shape != b.shape:
            return (j, -1, -1, -1)
        diff = a != b
        if diff.any():
            idx = np.argwhere(diff)
            first = idx[np.argmin(idx[:, -1])]
            return (j, int(first[0]), int(first[-1]), int(diff.sum()))
    return None


def check_parity(students: Sequence[Any], net_paths: Sequence[Path], x_nchwt: Any, input_bits: int,
                 capacity: int = DEFAULT_LAVA_CAPACITY) -> ParityRecord:
    """Run the networks in Lava (CPU, fixed point) and compare every layer's spikes with torch.

    All students run in one compiled graph with all layers probed.

    Raises:
        ParityError: Naming the student, layer, sample and first differing step.
    """
    from sne_loihi.sim.backend import Backend
    from sne_loihi.sim.graph import LavaGraph, LavaSchedule

    x_np = x_nchwt.detach().cpu().numpy().round().astype(np.int32)
    time_steps = int(x_np.shape[-1])
    schedule = LavaSchedule(time_steps, capacity=min(capacity, len(x_np)))
    with LavaGraph(net_paths, input_bits=input_bits, schedule=schedule, backend=Backend.CPU, probe_layers=True) as graph:
        run = graph.run(x_np)
    for i, student in enumerate(students):
        ref = torch_layer_spikes(student, x_nchwt)
        bad = first_mismatch(run.layer_spikes[i], ref)
        if bad is not None:
            layer, sample, step, count = bad
            if count < 0:
                raise ParityError(f"student {i} layer {layer}: Lava shape {run.layer_spikes[i][layer].shape} "
                                  f"!= torch {ref[layer].shape}")
            raise ParityError(f"student {i} layer {layer}: Lava spikes differ from torch first at step {step} "
                              f"(sample {sample}; {count} differing neuron-steps)")
    return ParityRecord(samples=len(x_np), compared="every weighted layer, every neuron and step", mismatches=0)


def write_readiness(directory: Path, net_paths: Sequence[Path], input_bits: int, time_steps: int,
                    students: Sequence[Any], x_nchwt: Any) -> dict[str, Any]:
    """Write the Loihi 2 readiness report (``directory/loihi2.md``) and return its JSON
    (see :mod:`sne_loihi.sim.readiness`); the state is measured on ``x_nchwt`` when given."""
    from sne_loihi.sim.readiness import build_report
    from sne_loihi.sim.readiness_md import readiness_markdown

    report = build_report(net_paths, input_bits, time_steps, students=students, x_nchwt=x_nchwt)
    (Path(directory) / LOIHI2_REPORT).write_text(readiness_markdown(report))
    return report.to_dict()


def _student_entry(directory: Path, i: int, student: Any, choice: FirstLayerChoice) -> StudentEntry:
    name = f"student_{i}.net"
    write_student_hdf5(student, directory / name, first_layer=choice.mode)
    layers = read_netx_layers(directory / name)
    return StudentEntry(file=name, sha256=sha256_file(directory / name), spec=student.spec.to_dict(),
                        out_features=int(np.prod(layers[-1].out_shape_xyz)), num_layers=len(layers),
                        first_layer=choice.mode.value, first_layer_note=choice.note)


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` holds a netx or NIR export: its manifest beside ``student_0`` (a lone
    ``manifest.json`` is common in other projects' folders)."""
    return any((folder / manifest).is_file() and (folder / student).is_file()
               for manifest, student in ((MANIFEST_FILE, "student_0.net"), (NIR_MANIFEST_FILE, "student_0.nir")))


def check_out_dir(out_dir: Path, overwrite: bool, manifest_file: str = MANIFEST_FILE) -> None:
    """Refuse an ``out_dir`` whose contents an export would destroy.

    An existing non-empty ``out_dir`` is replaced only with ``overwrite`` and only when it
    holds an earlier export and nothing else: a readable ``manifest_file`` (``manifest.json``
    for netx, ``nir_manifest.json`` for NIR) and the files it lists.

    Raises:
        ExportError: ``out_dir`` is a file, lies inside another export, or is a non-empty
            folder that is not an export (or ``overwrite`` is False).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder; choose another export folder (--out)")
    inside = next((p for p in Path(out_dir).resolve().parents if _is_export(p)), None)
    if inside is not None:  # a nested export would be a stray folder of that one (its next export refuses it)
        raise ExportError(f"{out_dir} lies inside the export {inside}; choose a folder outside it (--out)")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    refuse = "an export replaces only a folder holding an earlier export; choose a new or empty folder (--out)"
    if not (out_dir / manifest_file).is_file():
        names = sorted(p.name for p in out_dir.iterdir())
        raise ExportError(f"{out_dir} holds files that are not an export ({names[0]}{', ...' if len(names) > 1 else ''}; "
                          f"no {manifest_file}): {refuse}")
    try:
        manifest = read_json_file(out_dir / manifest_file, manifest_file, ExportError)
        listed = {str(e["file"]) for e in manifest["students"]}
        if isinstance(manifest.get("head"), dict):  # a NIR export's head graph
            listed.add(str(manifest["head"]["file"]))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ExportError(f"{out_dir}/{manifest_file} is not an export manifest ({type(exc).__name__}): {refuse}") from None
    others = sorted(p.name for p in out_dir.iterdir()
                    if p.name not in listed | {manifest_file, LOIHI2_REPORT} or not p.is_file())
    if others:
        raise ExportError(f"{out_dir} holds more than an export ({others[0]}{', ...' if len(others) > 1 else ''}): {refuse}")
    if not overwrite:
        raise ExportError(f"{out_dir} already holds an export; pass overwrite=True (--overwrite) to replace it")


#: Written into every temporary folder an export makes (its build folder, and the old export
#: while it is being replaced): only folders holding it are ever removed as leftovers.
LEFTOVER_MARKER = ".sne-export-temporary"


def _mark_temporary(folder: Path) -> None:
    (folder / LEFTOVER_MARKER).write_text(f"made by sne export, pid {os.getpid()}; safe to delete\n")


def make_build_dir(out_dir: Path) -> Path:
    """A new, marked temporary folder beside ``out_dir`` to build an export in."""
    from sne_loihi.io import _umask

    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    tmp.chmod(0o777 & ~_umask())  # the export folder it becomes: as a plain mkdir makes it (mkdtemp: 0700)
    _mark_temporary(tmp)
    return tmp


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove the temporary folders a killed export left beside ``out_dir``
    (``.NAME.tmp-PID-*`` and ``.NAME.old-PID`` of processes that no longer run, holding the
    :data:`LEFTOVER_MARKER` the export wrote into them: a folder of the user's that merely
    matches the name pattern is never touched).

    Returns:
        The folders removed.
    """
    import re

    from sne_loihi.io import pid_alive

    if not out_dir.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(?:tmp-(\d+)-.*|tmp-[^-]*|old-(\d+))$")
    removed = []
    for p in out_dir.parent.iterdir():
        m = pattern.match(p.name)
        if not m or not p.is_dir() or p.is_symlink() or not (p / LEFTOVER_MARKER).is_file():
            continue
        pid = m.group(1) or m.group(2)
        if pid is not None and pid_alive(int(pid)):
            continue  # an export running now
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` export to ``out_dir`` (replacing an old one) via renames."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        _mark_temporary(old)
    (tmp / LEFTOVER_MARKER).unlink(missing_ok=True)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(model: Any, out_dir: Path, *, partition: dict[str, Any], in_shape_chw: Sequence[int],
                 class_names: Sequence[str], config: dict[str, Any], x_verify_nchw: Any = None,
                 verify_samples: int = DEFAULT_LAVA_SAMPLES, overwrite: bool = False, capacity: int = DEFAULT_LAVA_CAPACITY,
                 cascade_head: CascadeHead | None = None, first_layer: FirstLayer | str = FirstLayer.SYNAPTIC,
                 ensemble_sha256: str | None = None) -> Manifest:
    """Export an in-memory :class:`~sne_loihi.ensemble.Ensemble` (see :func:`export_ensemble`).

    ``ensemble_sha256`` (optional): the SHA-256 of the checkpoint the model was loaded from,
    recorded in the manifest.

    ``cascade_head`` (optional) is stored in the manifest for per-sample activation in Lava.
    ``first_layer`` (``lava.first_layer``): ``bias`` drives every student's first layer by a
    per-sample neuron bias (refused in one line for a student that does not allow it),
    ``auto`` where a student allows it (the manifest's ``first_layer_note`` says why not
    elsewhere); the parity check and the readiness report then run that path.
    """
    import torch

    from sne_loihi.ensemble import encode_for

    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    if verify_samples < 0:
        raise ExportError(f"verify_samples must be >= 0, got {verify_samples}")
    if verify_samples > 0 and x_verify_nchw is None:
        raise ExportError("the parity check needs samples: pass x_verify_nchw (or verify_samples=0 to skip it)")
    students = list(model.students)
    choices = resolve_first_layer(first_layer, students)  # a refused 'bias' fails before any file is written
    specs = [s.spec for s in students]
    bits, steps = {int(s.input_bits) for s in specs}, {int(s.time_steps) for s in specs}
    if len(bits) != 1 or len(steps) != 1:
        raise ExportError(f"students must share input_bits and time_steps, got {sorted(bits)} / {sorted(steps)}")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out_dir)
    tmp = make_build_dir(out_dir)
    try:
        entries = [_student_entry(tmp, i, s, c) for i, (s, c) in enumerate(zip(students, choices))]
        parity, x_nchwt, input_bits = None, None, bits.pop()
        paths = [tmp / e.file for e in entries]
        if verify_samples > 0:
            x = torch.as_tensor(np.asarray(x_verify_nchw[:verify_samples]), dtype=torch.float32)
            x_nchwt = encode_for(specs[0], x)
            parity = check_parity(students, paths, x_nchwt, input_bits, capacity)
        readiness = write_readiness(tmp, paths, input_bits, int(specs[0].time_steps), students, x_nchwt)
        head = model.head
        manifest = Manifest(
            students=entries, partition=dict(partition),
            head_weight=head.weight.detach().cpu().double().tolist(), head_bias=head.bias.detach().cpu().double().tolist(),
            input=InputEncoding(bits=int(specs[0].input_bits), time_steps=steps.pop(), shape_chw=[int(v) for v in in_shape_chw]),
            class_names=[str(c) for c in class_names], config=dict(config), parity=parity, cascade=cascade_head,
            loihi2=readiness, ensemble_sha256=ensemble_sha256,
        )
        atomic_write_json(tmp / MANIFEST_FILE, manifest.to_dict())
        checked = load_manifest(tmp)  # the export must pass its own validation
        after = model.state_dict()
        if any(not torch.equal(before[k], after[k]) for k in before):
            raise ExportError("internal error: export changed the model's weights")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    checked.directory = out_dir  # the validated files, renamed into place
    return checked


def export_ensemble(ensemble_ckpt: Path, out_dir: Path, *, x_verify_nchw: Any = None, verify_samples: int = DEFAULT_LAVA_SAMPLES,
                    overwrite: bool = False, capacity: int = DEFAULT_LAVA_CAPACITY, cascade_head: Path | None = None,
                    first_layer: FirstLayer | str = FirstLayer.SYNAPTIC) -> Manifest:
    """Export ``RUN/ensemble.pt`` to ``out_dir``: ``student_{i}.net`` files + ``manifest.json``.

    Written into a temporary folder beside ``out_dir`` and renamed into place only after the
    parity check and the manifest validation passed, so a failed export leaves nothing
    half-written (and an earlier export untouched).

    Args:
        ensemble_ckpt: ``RUN/ensemble.pt`` (or the run folder).
        out_dir: Export folder.
        x_verify_nchw: Images in [0, 1] for the parity check (e.g. the first test samples).
        verify_samples: How many of them to check (0 skips the check; recorded as null).
        overwrite: Replace an existing export.
        capacity: Samples per Lava run during the check.
        cascade_head: ``RUN/cascade_head.pt`` (written by the report) to store in the
            manifest, so ``sne simulate`` can run per-sample activation from the export alone.
        first_layer: How the students' first layers are driven (``lava.first_layer``, see
            :func:`export_model`).

    Raises:
        ExportError: Existing export without ``overwrite``, SpikingJelly students, missing
            verification data, or an inconsistent result. ParityError: Lava != torch.
        CheckpointError: Unreadable checkpoint.
    """
    from sne_loihi.ensemble.checkpoint import load_ensemble

    loaded = load_ensemble(Path(ensemble_ckpt))
    cascade = None
    if cascade_head is not None:
        from sne_loihi.ensemble.cascade import load_cascade_head

        head, order = load_cascade_head(Path(cascade_head), loaded.model.num_students)
        cascade = CascadeHead.from_linear(head, order, source=Path(cascade_head).name)  # no local path in a shipped file
    return export_loaded(loaded, out_dir, x_verify_nchw=x_verify_nchw, verify_samples=verify_samples,
                         overwrite=overwrite, capacity=capacity, cascade_head=cascade, first_layer=first_layer)


def export_loaded(loaded: Any, out_dir: Path, *, x_verify_nchw: Any = None, verify_samples: int = DEFAULT_LAVA_SAMPLES,
                  overwrite: bool = False, capacity: int = DEFAULT_LAVA_CAPACITY, cascade_head: CascadeHead | None = None,
                  first_layer: FirstLayer | str = FirstLayer.SYNAPTIC, ensemble_sha256: str | None = None) -> Manifest:
    """:func:`export_model` of an already loaded checkpoint
    (:class:`~sne_loihi.ensemble.checkpoint.LoadedEnsemble`), with its partition, input
    shape, class names and config (and the checkpoint's ``ensemble_sha256``)."""
    return export_model(
        loaded.model, out_dir, partition=loaded.partition.to_dict(), in_shape_chw=loaded.in_shape,
        class_names=loaded.class_names, config=loaded.config.to_dict(), x_verify_nchw=x_verify_nchw,
        verify_samples=verify_samples, overwrite=overwrite, capacity=capacity, cascade_head=cascade_head,
        first_layer=first_layer, ensemble_sha256=ensemble_sha256,
    )
