"""Trust: no file the toolkit reads runs code; refused inputs change nothing on disk.

Crafted inputs: a real TorchScript archive whose ``__setstate__`` creates a marker file when
``torch.jit.load`` (which torch 2.3's ``torch.load(weights_only=True)`` dispatches to) reads
it; pickles whose ``__reduce__`` would create a marker (zip and plain); and stored configs or
checkpoints naming an external-teacher factory whose import creates a marker. Each must give
exit code != 0, exactly one ``error:`` line, no marker, and every pre-existing file
byte-identical.
"""

from __future__ import annotations

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


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(result: Any, needle: str) -> None:
    assert result.exit_code not in (0, None), result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr, result.stderr


@pytest.fixture()
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished tiny run (file times kept, so cache keys still match)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


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


# ---- every load path of the CLI -------------------------------------------------------------
#: (file in the run folder, command, text of the error). ``{run}`` and ``{tmp}`` are filled in.
LOAD_PATHS = [
    ("ensemble.pt", ["evaluate", "{run}", "--no-activation"], "checkpoint"),
    ("teacher.pt", ["partition", "--run-dir", "{run}"], "checkpoint"),
    ("teacher_pre_finetune.pt", ["teacher", "--run-dir", "{run}", "finetune", "--students", "2", "--epochs", "1"],
     "checkpoint"),
    ("teacher_features.pt", ["partition", "--run-dir", "{run}"], "teacher feature cache"),
    ("cascade_head.pt", ["export", "{run}", "--out", "{tmp}/exp", "--verify-samples", "0"], "cascade head"),
]


@pytest.mark.parametrize("kind", sorted(CRAFTED))
@pytest.mark.parametrize(("name", "args", "what"), LOAD_PATHS, ids=[p[0] for p in LOAD_PATHS])
def test_every_run_file_is_loaded_without_running_code(
    run_copy: Path, tmp_path: Path, kind: str, name: str, args: list[str], what: str
) -> None:
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
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--samples", "2", "--compare", str(bad)])
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
        "teacher", "--dataset", "digits", "--run-dir", str(tmp_path / "run"), "--arch", "external",
        "--factory", factory, "--feature-layer", "2", "--checkpoint", str(bad), "--epochs", "0",
        "--max-train", "50", "--max-test", "20", "--no-progress",
    ])
    one_error_line(result, f"cannot load external teacher checkpoint {bad}")
    assert imported.exists()  # the factory named on the command line is the user's own code
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


# ---- writes: --overwrite, leftovers, config.toml, the run lock ------------------------------
def _user_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("where", ["run", "parent", "user", "user-with-manifest", "file"])
def test_export_overwrite_replaces_only_an_earlier_export(run_copy: Path, tmp_path: Path, where: str) -> None:
    manifest = (run_copy / "export" / "manifest.json").read_bytes()
    if where == "user":
        out = _user_folder(tmp_path, {"notes.txt": b"mine"})
    elif where == "user-with-manifest":
        out = _user_folder(tmp_path, {"manifest.json": manifest, "notes.txt": b"mine"})
    elif where == "file":
        out = tmp_path / "a_file"
        out.write_bytes(b"keep")
    else:
        out = run_copy if where == "run" else run_copy.parent
    before = snapshot(tmp_path)
    result = runner.invoke(app, ["export", str(run_copy), "--out", str(out), "--overwrite", "--verify-samples", "0"])
    one_error_line(result, str(out))
    assert snapshot(tmp_path) == before


def test_export_overwrite_replaces_an_export_and_cleans_leftovers(run_copy: Path) -> None:
    parent = run_copy
    dead = [parent / ".export.tmp-999999999-abc", parent / ".export.tmp-k2j3_x", parent / ".export.old-999999999"]
    alive = parent / f".export.tmp-{os.getpid()}-live"
    for folder in [*dead, alive]:
        folder.mkdir()
        (folder / "student_0.net").write_bytes(b"partial")
    result = runner.invoke(app, ["export", str(run_copy), "--overwrite", "--verify-samples", "0"])
    assert result.exit_code == 0, result.stderr
    assert not any(p.exists() for p in dead)
    assert alive.is_dir()  # a running export's folder is not touched
    assert (run_copy / "export" / "manifest.json").is_file()
    assert not [p for p in parent.iterdir() if p.name.startswith(".export.") and p != alive]


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--run-dir", "{run}", "--epochs", "3"],
        ["train", "--run-dir", "{run}", "--resume", "--seed", "7"],
        ["pipeline", "--run-dir", "{run}", "--resume", "--students", "2", "--no-progress"],
        ["teacher", "--run-dir", "{run}", "--resume", "--lr", "0.5", "--no-progress"],
    ],
)
def test_refused_commands_leave_config_toml_byte_identical(run_copy: Path, args: list[str]) -> None:
    before = snapshot(run_copy)
    result = runner.invoke(app, [a.format(run=run_copy) for a in args])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert snapshot(run_copy) == before


def test_a_second_writer_is_refused_naming_the_holder(run_copy: Path) -> None:
    import fcntl

    from sne_loihi.io import LOCK_FILE

    with open(run_copy / LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held as a running `sne` process holds it
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        before = snapshot(run_copy)
        for args in (["train", "--run-dir", str(run_copy), "--resume"], ["evaluate", str(run_copy)],
                     ["export", str(run_copy), "--overwrite"]):
            result = runner.invoke(app, args)
            one_error_line(result, f"run folder {run_copy} is in use by another process (pid {os.getpid()}")
            assert snapshot(run_copy) == before


def test_a_stale_lock_of_a_dead_process_is_taken_over(run_copy: Path) -> None:
    from sne_loihi.io import LOCK_FILE

    (run_copy / LOCK_FILE).write_text("999999999\n")  # a SIGKILLed holder: no flock held
    result = runner.invoke(app, ["train", "--run-dir", str(run_copy)])  # gets past the lock, then refuses
    one_error_line(result, "ensemble.pt already exists")
    assert not (run_copy / LOCK_FILE).exists()


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
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--samples", "2", *args])
    one_error_line(result, message)
    assert snapshot(tiny_run) == before
