"""Writes: ``--overwrite`` replaces only what the toolkit wrote, a killed writer's leftovers
are cleaned, refused commands leave ``config.toml`` byte-identical, one writer per run folder
(the lock), atomic writes, and logs cut mid-line by a kill."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_checks import one_error_line, snapshot
from sne_loihi.cli import app

runner = CliRunner()


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
    result = runner.invoke(app, ["export", str(run_copy), "--out", str(out), "--overwrite", "--check-samples", "0"])
    one_error_line(result, str(out))
    assert snapshot(tmp_path) == before


def test_export_overwrite_replaces_an_export_and_cleans_leftovers(run_copy: Path) -> None:
    parent = run_copy
    dead = [parent / ".export.tmp-999999999-abc", parent / ".export.tmp-k2j3_x", parent / ".export.old-999999999"]
    alive = parent / f".export.tmp-{os.getpid()}-live"
    from sne_loihi.export.exporter import LEFTOVER_MARKER

    for folder in [*dead, alive]:
        folder.mkdir()
        (folder / "student_0.net").write_bytes(b"partial")
        (folder / LEFTOVER_MARKER).write_text("made by sne export")  # what a killed export leaves
    result = runner.invoke(app, ["export", str(run_copy), "--overwrite", "--check-samples", "0"])
    assert result.exit_code == 0, result.stderr
    assert not any(p.exists() for p in dead)
    assert alive.is_dir()  # a running export's folder is not touched
    assert (run_copy / "export" / "manifest.json").is_file()
    assert not [p for p in parent.iterdir() if p.name.startswith(".export.") and p != alive]


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--run-dir", "{run}", "--student-epochs", "3"],
        ["train", "--run-dir", "{run}", "--resume", "--seed", "7"],
        ["pipeline", "--run-dir", "{run}", "--resume", "--students", "2", "--no-progress"],
        ["teacher", "--run-dir", "{run}", "--resume", "--teacher-lr", "0.5", "--no-progress"],
        ["teacher", "--run-dir", "{run}", "finetune", "--students", "2", "--finetune-epochs", "1"],  # students distilled
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


def test_a_killed_writers_temporaries_are_removed_when_the_lock_is_next_taken(run_copy: Path) -> None:
    """A process killed inside ``atomic_write_bytes`` leaves ``.NAME.<8 random>.tmp`` (a whole
    checkpoint's size); the next command that locks the folder removes it, and nothing else."""
    left = [run_copy / ".ensemble.pt.k2j3_x9q.tmp", run_copy / "export" / ".manifest.json.abcd1234.tmp"]
    kept = [run_copy / ".notes.tmp", run_copy / "mine.tmp"]  # the user's: not the writer's names
    for path in [*left, *kept]:
        path.write_bytes(b"partial")
    result = runner.invoke(app, ["train", "--run-dir", str(run_copy)])  # takes the lock, then refuses
    one_error_line(result, "ensemble.pt already exists")
    assert not any(p.exists() for p in left)
    assert all(p.read_bytes() == b"partial" for p in kept)


def test_temporaries_of_a_subfolder_with_its_own_lock_are_left_to_its_writer(tmp_path: Path) -> None:
    from sne_loihi.io import LOCK_FILE, remove_stale_temporaries

    own, other = tmp_path / "export", tmp_path / "seed0"
    for folder in (own, other):
        folder.mkdir()
        (folder / ".ensemble.pt.abcd1234.tmp").write_bytes(b"partial")
    (other / LOCK_FILE).write_text("123\n")  # another run folder, written by its own process
    assert remove_stale_temporaries(tmp_path) == [own / ".ensemble.pt.abcd1234.tmp"]
    assert (other / ".ensemble.pt.abcd1234.tmp").exists()


def test_atomic_writes_get_the_umask_permissions_not_the_temporary_files(tmp_path: Path) -> None:
    from sne_loihi.io import atomic_write_bytes

    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_metrics_log_cut_mid_line_by_a_kill_keeps_its_whole_lines(tmp_path: Path) -> None:
    from sne_loihi.errors import SneError
    from sne_loihi.json_files import read_jsonl_file

    log = tmp_path / "metrics_students.jsonl"
    log.write_bytes(b'{"epoch": 1, "seconds": 2.0}\n\n{"epoch": 2, "seconds": 3.0}\n{"epoch": 3, "sec')
    assert read_jsonl_file(log, "metrics log") == [{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 3.0}]
    log.write_bytes(b'{"epoch": 1}\n{"epoch": 3, "sec\n{"epoch": 2}\n')  # broken inside: not a kill's mark
    with pytest.raises(SneError, match="line 2: not valid JSON") as info:
        read_jsonl_file(log, "metrics log")
    assert "\n" not in str(info.value)
    log.write_bytes(b'{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(SneError, match="line 2 is a JSON list, not an object"):
        read_jsonl_file(log, "metrics log")
    log.write_bytes(b'{"epoch": 1}\n{"note": "caf\xc3')  # cut inside a UTF-8 character of the last line
    assert read_jsonl_file(log, "metrics log") == [{"epoch": 1}]


def test_an_export_into_a_folder_of_the_users_files_says_so(run_copy: Path, tmp_path: Path) -> None:
    mine = _user_folder(tmp_path, {"notes.txt": b"mine"})
    for extra in ([], ["--overwrite"]):  # the same answer with and without --overwrite
        result = runner.invoke(app, ["export", str(run_copy), "--out", str(mine), "--check-samples", "0", *extra])
        one_error_line(result, f"{mine} holds files that are not an export (notes.txt; no manifest.json)")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_an_export_inside_another_export_is_refused(run_copy: Path) -> None:
    inner = run_copy / "export" / "sub"
    result = runner.invoke(app, ["export", str(run_copy), "--out", str(inner), "--check-samples", "0"])
    one_error_line(result, f"lies inside the export {run_copy / 'export'}")
    assert not inner.exists()


def test_an_export_folder_gets_the_umask_permissions(run_copy: Path) -> None:
    old = os.umask(0o022)
    try:
        result = runner.invoke(app, ["export", str(run_copy), "--out", str(run_copy / "exp2"), "--check-samples", "0"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    assert (run_copy / "exp2").stat().st_mode & 0o777 == 0o755  # mkdtemp's 0700 made it unreadable to others


def test_a_larger_teacher_budget_on_resume_is_refused_when_students_exist(run_copy: Path) -> None:
    """It retrained teacher.pt, then the student stage refused the folder for good (the
    students were distilled from the old teacher)."""
    before = snapshot(run_copy)
    result = runner.invoke(app, ["pipeline", "--run-dir", str(run_copy), "--resume", "--teacher-epochs", "5",
                                 "--no-progress"])
    one_error_line(result, f"{run_copy / 'ensemble.pt'} was made from the teacher of 2 epochs; training it to 5 would "
                           "orphan it")
    assert snapshot(run_copy) == before
