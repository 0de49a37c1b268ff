"""Trust: no file the toolkit reads runs code; refused inputs change nothing on disk.

Crafted inputs: a real TorchScript archive whose ``__setstate__`` creates a marker file when
``torch.jit.load`` (which torch 2.3's ``torch.load(weights_only=True)`` dispatches to) reads
it; pickles whose ``__reduce__`` would create a marker (zip and plain); and stored configs or
checkpoints naming an external-teacher factory whose import creates a marker. Each must give
exit code != 0, exactly one ``error:`` line, no marker, and every pre-existing file
byte-identical.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from cli_checks import one_error_line, snapshot
from sne_loihi.cli import app
from sne_loihi.errors import CheckpointError, UnsafeFileError
from sne_loihi.io import load_cache, load_checkpoint, load_torch_file, save_checkpoint

runner = CliRunner()


# ---- crafted files ------------------------------------------------------------------------
class _MarkerOnLoad(torch.nn.Module):
    """Scripted module whose ``__setstate__`` (run by ``torch.jit.load``) creates a file."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.w = torch.zeros(1)
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str]:
        return self.w, self.marker

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str]) -> None:
        self.training = False
        self.marker = state[1]
        self.w = state[0] + torch.from_file(state[1], shared=True, size=1)  # creates the file


def write_torchscript(path: Path, marker: Path) -> None:
    """A TorchScript archive that creates ``marker`` when loaded by ``torch.jit.load``."""
    torch.jit.save(torch.jit.script(_MarkerOnLoad(str(marker))), str(path))


class _Reduce:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.makedirs, (self.marker,)


def write_reduce_zip(path: Path, marker: Path) -> None:
    """A ``torch.save`` file whose pickle calls ``os.makedirs(marker)`` when unpickled."""
    torch.save({"model": {"w": torch.zeros(1)}, "evil": _Reduce(marker)}, path)


def write_reduce_pickle(path: Path, marker: Path) -> None:
    """A plain (non-zip) pickle calling ``os.makedirs(marker)``: torch's legacy load path."""
    path.write_bytes(pickle.dumps({"evil": _Reduce(marker)}, protocol=2))


CRAFTED: dict[str, Callable[[Path, Path], None]] = {
    "torchscript": write_torchscript, "reduce-zip": write_reduce_zip, "reduce-pickle": write_reduce_pickle,
}


# ---- the loader itself ----------------------------------------------------------------------
def test_the_crafted_torchscript_archive_really_runs_code_in_plain_torch(tmp_path: Path) -> None:
    """The probe is real: torch 2.3's own ``torch.load(weights_only=True)`` runs it."""
    marker = tmp_path / "marker"
    write_torchscript(tmp_path / "ts.pt", marker)
    assert not marker.exists()
    if tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 6):
        pytest.skip("torch >= 2.6 no longer dispatches weights_only loads to torch.jit.load")
    with pytest.warns(UserWarning, match="TorchScript"):
        torch.load(tmp_path / "ts.pt", weights_only=True)
    assert marker.exists()


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_loader_refuses_code_without_running_it(kind: str, tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / "bad.pt"
    CRAFTED[kind](path, marker)
    before = path.read_bytes()
    for load in (load_torch_file, load_checkpoint, load_cache):
        with pytest.raises(UnsafeFileError, match=r"^cannot load .*bad\.pt: .*refused") as info:
            load(path)
        assert "\n" not in str(info.value)
    assert not marker.exists()
    assert path.read_bytes() == before


def test_loader_reads_plain_data_and_reports_corrupt_caches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"w": torch.arange(3.0), "names": ["a"], "n": 2})
    assert torch.equal(load_checkpoint(good)["w"], torch.arange(3.0))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:50])  # a truncated zip
    with pytest.raises(CheckpointError, match="cannot load checkpoint") as info:
        load_checkpoint(corrupt)
    assert not isinstance(info.value, UnsafeFileError)
    assert load_cache(corrupt, what="feature cache") is None
    err = capsys.readouterr().err
    assert err.startswith("warning: cannot load feature cache") and err.count("\n") == 1


def test_a_file_of_random_bytes_is_named_corrupt_without_torch_advice(tmp_path: Path) -> None:
    """Bytes that are no pickle at all: the error gives the unpickler's reason, not torch's
    preamble advising ``weights_only=False`` (loading that would run code)."""
    path = tmp_path / "ensemble.pt"
    path.write_bytes(bytes([220]) + os.urandom(4096))  # 220: no pickle opcode
    with pytest.raises(CheckpointError, match=r"^cannot load checkpoint .*ensemble\.pt \(truncated, corrupt or not a "
                                              r"torch file: Unsupported operand 220\)$") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeFileError) and "weights_only" not in str(info.value)


# ---- every load path of the CLI -------------------------------------------------------------
#: (file in the run folder, command, text of the error, files removed first: a fine-tune is
#: only resumed, reading teacher_pre_finetune.pt, before students were distilled).
#: ``{run}`` and ``{tmp}`` are filled in.
LOAD_PATHS = [
    ("ensemble.pt", ["evaluate", "{run}", "--no-activation"], "checkpoint", []),
    ("ensemble.pt", ["train", "--run-dir", "{run}", "--resume", "--no-progress"], "checkpoint", []),
    ("teacher.pt", ["partition", "--run-dir", "{run}"], "checkpoint", []),
    ("teacher_pre_finetune.pt", ["teacher", "--run-dir", "{run}", "finetune", "--students", "2", "--finetune-epochs", "1"],
     "checkpoint", ["ensemble.pt", "partition.json"]),
    ("teacher_features.pt", ["partition", "--run-dir", "{run}"], "teacher feature cache", []),
    ("cascade_head.pt", ["export", "{run}", "--out", "{tmp}/exp", "--check-samples", "0"], "cascade head", []),
]


@pytest.mark.parametrize("kind", sorted(CRAFTED))
@pytest.mark.parametrize(("name", "args", "what", "removed"), LOAD_PATHS, ids=[f"{p[0]}-{p[1][0]}" for p in LOAD_PATHS])
def test_every_run_file_is_loaded_without_running_code(
    run_copy: Path, tmp_path: Path, kind: str, name: str, args: list[str], what: str, removed: list[str]
) -> None:
    for other in removed:
        (run_copy / other).unlink()
    if name == "teacher_pre_finetune.pt":  # read when a fine-tune was cut short (teacher.pt half-written)
        (run_copy / "teacher.pt").write_bytes(b"half-written")
    marker = tmp_path / "marker"
    CRAFTED[kind](run_copy / name, marker)
    before = snapshot(run_copy)
    result = runner.invoke(app, [a.format(run=run_copy, tmp=tmp_path) for a in args])
    one_error_line(result, f"cannot load {what} {run_copy / name}")
    assert "refused" in result.stderr
    assert not marker.exists()
    assert snapshot(run_copy) == before
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_compare_checkpoint_is_loaded_without_running_code(tiny_run: Path, tmp_path: Path, kind: str) -> None:
    marker, bad = tmp_path / "marker", tmp_path / "compare.pt"
    CRAFTED[kind](bad, marker)
    before = snapshot(tiny_run)
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--lava-samples", "2", "--compare", str(bad)])
    one_error_line(result, f"cannot load checkpoint {bad}")
    assert not marker.exists()
    assert snapshot(tiny_run) == before


# ---- external teacher code ------------------------------------------------------------------
FACTORY_SRC = """
import pathlib
pathlib.Path({marker!r}).mkdir()  # importing this module is running its code

import torch.nn as nn


def make():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
"""


@pytest.fixture()
def evil_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """An importable module ``evilfactory_<id>`` whose import creates a marker folder."""
    marker = tmp_path / "imported"
    name = f"evilfactory_{tmp_path.name.replace('-', '_')}"
    pkg = tmp_path / "pkgs"
    pkg.mkdir()
    (pkg / f"{name}.py").write_text(textwrap.dedent(FACTORY_SRC.format(marker=str(marker))))
    monkeypatch.syspath_prepend(str(pkg))
    return f"{name}:make", marker


def _name_external(config: dict[str, Any], factory: str) -> dict[str, Any]:
    config = dict(config)
    config["teacher"] = {**config["teacher"], "arch": "external", "factory": factory, "feature_layer": "2"}
    return config


@pytest.mark.parametrize("command", ["train", "partition"])
def test_a_stored_config_naming_a_factory_does_not_import_it(
    run_copy: Path, evil_factory: tuple[str, Path], command: str
) -> None:
    from sne_loihi.config import RunConfig, dump_toml, load_toml

    factory, marker = evil_factory
    dump_toml(RunConfig.from_dict(_name_external(load_toml(run_copy / "config.toml"), factory)), run_copy / "config.toml")
    before = snapshot(run_copy)
    result = runner.invoke(app, [command, "--run-dir", str(run_copy)])
    one_error_line(result, f"names the external teacher factory '{factory}'")
    assert not marker.exists()
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("args", [["evaluate", "{run}", "--no-activation"], ["partition", "--run-dir", "{run}"]])
def test_a_stored_checkpoint_naming_a_factory_does_not_import_it(
    run_copy: Path, evil_factory: tuple[str, Path], args: list[str]
) -> None:
    factory, marker = evil_factory
    ckpt = load_checkpoint(run_copy / "teacher.pt")
    ckpt["config"] = _name_external(ckpt["config"], factory)
    save_checkpoint(run_copy / "teacher.pt", ckpt)
    before = snapshot(run_copy)
    result = runner.invoke(app, [a.format(run=run_copy) for a in args])
    one_error_line(result, f"{run_copy / 'teacher.pt'} names the external teacher factory '{factory}'")
    assert not marker.exists()
    assert snapshot(run_copy) == before


def test_trust_factory_is_what_lets_a_stored_factory_run(run_copy: Path, evil_factory: tuple[str, Path]) -> None:
    """The refusal above is the trust rule, not a broken import: with the flag the module runs."""
    factory, marker = evil_factory
    ckpt = load_checkpoint(run_copy / "teacher.pt")
    ckpt["config"] = _name_external(ckpt["config"], factory)
    save_checkpoint(run_copy / "teacher.pt", ckpt)
    result = runner.invoke(app, ["partition", "--run-dir", str(run_copy), "--trust-factory"])
    assert marker.exists()
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr  # digits_cnn weights do not fit


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_external_teacher_checkpoint_is_loaded_without_running_code(
    tmp_path: Path, evil_factory: tuple[str, Path], kind: str
) -> None:
    factory, imported = evil_factory
    marker, bad = tmp_path / "marker", tmp_path / "weights.pt"
    CRAFTED[kind](bad, marker)
    result = runner.invoke(app, [
        "teacher", "--dataset", "digits", "--run-dir", str(tmp_path / "run"), "--teacher-arch", "external",
        "--factory", factory, "--feature-layer", "2", "--checkpoint", str(bad), "--teacher-epochs", "0",
        "--max-train", "50", "--max-test", "20", "--no-progress",
    ])
    one_error_line(result, f"cannot load external teacher checkpoint {bad}")
    assert imported.exists()  # the factory named on the command line is the user's own code
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


# ---- one-line checks up front -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        ("[student.neuron]\nthreshold = -1.0\n", [], "student.neuron.threshold must be > 0, got -1.0"),
        ("[student.neuron]\nvoltage_decay = 1.5\n", [], "student.neuron.voltage_decay must be in [0, 1]"),
        ("", ["--data-dir", "{tmp}"], "the digits data set is embedded"),
    ],
)
def test_bad_run_settings_fail_before_any_work(tmp_path: Path, toml: str, args: list[str], message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    run = tmp_path / "run"
    result = runner.invoke(app, ["pipeline", "--dataset", "digits", "--config", str(config), "--run-dir", str(run),
                                 *[a.format(tmp=tmp_path) for a in args]])
    one_error_line(result, message)
    assert not run.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--active", ""], "--active must not be empty"),
        (["--active", "all", "--active", " "], "--active must not be empty"),
        (["--cascade", "-1"], "--cascade thresholds must be finite numbers >= 0, got -1.0"),
        (["--cascade", "0.5,inf"], "--cascade thresholds must be finite numbers >= 0, got inf"),
        (["--input-bits", "99"], "--input-bits must be in 0..8"),
        (["--data-dir", "/tmp"], "data set (digits) is embedded"),
    ],
)
def test_bad_simulate_options_are_one_line_errors(tiny_run: Path, args: list[str], message: str) -> None:
    before = snapshot(tiny_run)
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--lava-samples", "2", *args])
    one_error_line(result, message)
    assert snapshot(tiny_run) == before


# ---- late checks and config values: refused before any work -----------------------------------
@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        ("[lava]\nactive = [\"7\"]\n", [], "lava.active: --active '7': student index 7 out of range 0..3"),
        ("[lava]\nactive = [\"\"]\n", [], "lava.active: --active must not be empty"),
        ("[lava]\nbackend = \"loihi2\"\n", [], "lava.backend loihi2 needs Intel's lava-loihi extension"),
        ("", ["--students", "1000"], "ensemble.num_students 1000 exceeds teacher digits_cnn's 64 features"),
        ("[student]\ninput_bits = 99\n", [], "student.input_bits must be in 1..8, got 99"),
        ("data = 5\n", [], "config section 'data' must be a table"),
        ("train = \"x\"\n", ["--student-epochs", "1"], "config section 'train' must be a table, got 'x'"),
        ("[train]\nbatch_size = \"big\"\n", [], "train.batch_size"),
    ],
    ids=["lava-active-range", "lava-active-empty", "loihi2-without-loihi", "students-1000", "input-bits-99",
         "toml-data-5", "toml-train-x", "toml-batch-size-text"],
)
def test_late_checks_fail_before_any_training(tmp_path: Path, toml: str, args: list[str], message: str) -> None:
    test_bad_run_settings_fail_before_any_work(tmp_path, toml, args, message)


# ---- provenance: artifacts that do not belong together ------------------------------------------
def _swap_teacher(run: Path) -> None:
    """Put a teacher of the same config and split but other weights in place (a retrained one)."""
    ckpt = load_checkpoint(run / "teacher.pt")
    ckpt["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    save_checkpoint(run / "teacher.pt", ckpt)


def _ensemble_of_seed_7(run: Path) -> None:
    """Another run's ensemble: distilled on the digits split of seed 7 from another teacher."""
    ckpt = load_checkpoint(run / "ensemble.pt")
    ckpt["config"]["train"]["seed"] = 7
    ckpt["teacher_sha256"] = "0" * 64
    save_checkpoint(run / "ensemble.pt", ckpt)


def _teacher_only(run: Path) -> None:
    """The run as it was right after ``sne teacher`` (seed 0)."""
    for path in run.iterdir():
        if path.name not in ("teacher.pt", "config.toml", "metrics_teacher.jsonl"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


#: (what is done to the run copy, command, text of the error)
PROVENANCE = {
    "swapped-teacher-evaluate": (_swap_teacher, ["evaluate", "{run}", "--no-activation"], "is not the teacher"),
    "swapped-teacher-resume": (_swap_teacher, ["train", "--run-dir", "{run}", "--resume", "--no-progress"],
                               "distilled from another teacher"),
    "other-runs-ensemble": (_ensemble_of_seed_7, ["evaluate", "{run}", "--no-activation"], "asks for seed 7"),
    "new-seed-train": (_teacher_only, ["train", "--run-dir", "{run}", "--seed", "7", "--no-progress"],
                       "split used seed 0"),
    "new-seed-partition": (_teacher_only, ["partition", "--run-dir", "{run}", "--seed", "7"], "split used seed 0"),
}


@pytest.mark.parametrize("case", sorted(PROVENANCE))
def test_artifacts_that_do_not_belong_together_are_refused(run_copy: Path, case: str) -> None:
    prepare, args, message = PROVENANCE[case]
    prepare(run_copy)
    before = snapshot(run_copy)
    result = runner.invoke(app, [a.format(run=run_copy) for a in args])
    one_error_line(result, message)
    assert snapshot(run_copy) == before


# ---- damaged exports, netx files and run files: one line, nothing written ------------------------
def _manifest(key: str, change: Callable[[Any], Any]) -> Callable[[Path], Path]:
    def damage(run: Path) -> Path:
        path = run / "export" / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest[key] = change(manifest[key])
        path.write_text(json.dumps(manifest))
        return run / "export"
    return damage


def _nan_head(weight: list[list[float]]) -> list[list[Any]]:
    return [[float("nan"), *weight[0][1:]], *weight[1:]]


def _outside(students: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**students[0], "file": "../ensemble.pt"}, *students[1:]]


def _negative_threshold(students: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = students[0]["spec"]
    return [{**students[0], "spec": {**spec, "neuron": {**spec["neuron"], "threshold": -1.0}}}, *students[1:]]


def _stride_zero(run: Path) -> Path:
    """A copy of one exported netx file with a convolution of stride 0 (and its input)."""
    import h5py
    import numpy as np

    net = run / "stride0.net"
    shutil.copy2(run / "export" / "student_0.net", net)
    with h5py.File(net, "r+") as f:
        f["layer/1/stride"][...] = 0
    np.save(run / "x.npy", np.ones((2, 1, 8, 8, 2), dtype=np.int32))
    return net


DAMAGED = {
    "head-nan": (_manifest("head_weight", _nan_head), [], "head weight row 0 holds the non-finite value nan"),
    "too-few-class-names": (_manifest("class_names", lambda names: names[:3]), [], "rows for 3 classes"),
    "file-outside-export": (_manifest("students", _outside), [], "is not a file name inside the export folder"),
    "negative-threshold": (_manifest("students", _negative_threshold), [],
                           "student 0 spec neuron.threshold must be > 0, got -1.0"),
    "partition-of-1e13-features": (_manifest("partition", lambda part: {**part, "feature_dim": 10 ** 13}), [],
                                   "manifest partition: partition leaves 9999999999936"),
    "netx-stride-0": (_stride_zero, ["--input", "{run}/x.npy", "--input-bits", "4"],
                      "layer/1 stride holds 0, outside 1..127"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_exports_are_one_line_errors(run_copy: Path, case: str) -> None:
    damage, args, message = DAMAGED[case]
    target = damage(run_copy)
    before = snapshot(run_copy)
    samples = ["--lava-samples", "2"] if target.is_dir() else []  # a single network runs its --input
    result = runner.invoke(app, ["simulate", str(target), *samples, *[a.format(run=run_copy) for a in args]])
    one_error_line(result, message)
    assert snapshot(run_copy) == before


def test_a_partition_file_of_absurd_size_is_a_one_line_error(run_copy: Path) -> None:
    """``feature_dim = 1e13`` once ran into a MemoryError traceback."""
    path = run_copy / "partition.json"
    path.write_text(path.read_text().replace('"feature_dim": 64', '"feature_dim": 10000000000000'))
    (run_copy / "ensemble.pt").unlink()
    before = snapshot(run_copy)
    result = runner.invoke(app, ["train", "--run-dir", str(run_copy), "--resume", "--no-progress"])
    one_error_line(result, str(path))
    assert snapshot(run_copy) == before
