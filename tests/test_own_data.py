"""A user's own data: image folders (plain, archived), ``.npz`` arrays, the decode cache, and
whole pipelines on them with default architectures and 0 Lava mismatches (bad input:
``test_own_data_bad_input.py``)."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sne_loihi.cli import app
from sne_loihi.config import ArrayLayout, ImageChannels
from sne_loihi.data import load_dataset
from sne_loihi.errors import DataError
from own_data_files import CLASSES, _cache_in_tmp, _cfg, _image, _npz, make_tree  # noqa: F401 (_cache_in_tmp: autouse)

runner = CliRunner()


# ----------------------------------------------------------------------------- loaders


def test_split_tree_labels_follow_sorted_class_names(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    root = make_tree(tmp_path / "t", split=True)
    (root / "train" / "notes.txt").write_text("not an image")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0")  # hidden: not read, not counted
    (root / "test" / "dog" / "labels.csv").write_text("a,b")
    data = load_dataset(_cfg(root))
    assert "skipped 2 files that are not an image in a class folder" in capfd.readouterr().err
    assert data.class_names == CLASSES and data.in_shape == (1, 28, 28)
    assert torch.bincount(data.y_train).tolist() == [10, 10, 10] and torch.bincount(data.y_test).tolist() == [3, 3, 3]
    # the band of class k sits in rows [9k, 9k + 9): its mean brightness names the label
    rows = data.x_train_nchw.mean(dim=(1, 3))
    band_of = torch.stack([rows[:, 9 * k:9 * k + 9].mean(1) for k in range(3)], 1).argmax(1)
    assert torch.equal(band_of, data.y_train)


def test_single_tree_is_split_seeded_and_stratified(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", split=False, per_class=10)
    a = load_dataset(_cfg(root, test_fraction=0.3), seed=0)
    b = load_dataset(_cfg(root, test_fraction=0.3), seed=0)
    c = load_dataset(_cfg(root, test_fraction=0.3), seed=1)
    assert torch.bincount(a.y_test).tolist() == [3, 3, 3] and len(a.y_train) == 21
    assert torch.equal(a.x_test_nchw, b.x_test_nchw) and not torch.equal(a.x_test_nchw, c.x_test_nchw)


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tgz", "zip"])
def test_archives_are_read_without_extracting_and_wrapper_is_looked_through(tmp_path: Path, kind: str) -> None:
    root = make_tree(tmp_path / "src" / "wrapped", split=True, fmt="jpg", mode="RGB", size=(12, 12))
    folder_data = load_dataset(_cfg(root))
    archive = tmp_path / f"data.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(root.rglob("*")):
                zf.write(p, p.relative_to(root.parent).as_posix())
    else:
        with tarfile.open(archive, "w:gz" if "gz" in kind else "w") as tf:
            tf.add(root, arcname="wrapped")
    before = sorted(p.name for p in tmp_path.iterdir())
    data = load_dataset(_cfg(archive))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing extracted beside it
    assert data.class_names == CLASSES and data.in_shape == (3, 12, 12)
    assert torch.equal(data.x_train_nchw, folder_data.x_train_nchw) and torch.equal(data.y_test, folder_data.y_test)


def test_channels_and_size_settings(tmp_path: Path) -> None:
    gray = make_tree(tmp_path / "gray", split=True, size=(10, 10))
    rgba = make_tree(tmp_path / "rgba", split=True, size=(10, 10), mode="RGBA")
    assert load_dataset(_cfg(gray)).in_shape == (1, 10, 10)
    assert load_dataset(_cfg(gray, channels=ImageChannels.RGB)).in_shape == (3, 10, 10)
    assert load_dataset(_cfg(rgba)).in_shape == (4, 10, 10)  # auto: every image has alpha
    as_rgb = load_dataset(_cfg(rgba, channels=ImageChannels.RGB))
    as_gray = load_dataset(_cfg(rgba, channels=ImageChannels.GRAY, image_size=6))
    assert as_rgb.in_shape == (3, 10, 10) and as_gray.in_shape == (1, 6, 6)
    plain = load_dataset(_cfg(gray))  # gray -> RGB -> gray round trip keeps the pixels
    assert torch.allclose(as_rgb.x_train_nchw[:, :1], plain.x_train_nchw)


def test_mixed_sizes_need_a_size_setting(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", split=True, size=(16, 16))
    _image(0, (20, 18), "L", np.random.default_rng(1)).save(root / "test" / "cat" / "odd.png")
    with pytest.raises(DataError, match=r"mixes image sizes \(16x16 in .*, 20x18 in .*odd.png\)"):
        load_dataset(_cfg(root))
    assert load_dataset(_cfg(root, image_size=16)).in_shape == (1, 16, 16)


def test_cache_is_reused_plain_and_rebuilt_when_the_source_changes(tmp_path: Path, _cache_in_tmp: Path,
                                                                   capfd: pytest.CaptureFixture) -> None:
    root = make_tree(tmp_path / "t", split=True, size=(8, 8))
    first = load_dataset(_cfg(root))
    assert "decoded" in capfd.readouterr().err
    (folder,) = list(_cache_in_tmp.iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f[0] for f in manifest["fingerprint"]["files"]} >= {"train/cat/000.png", "test/eel/002.png"}
    for npy in folder.glob("*.npy"):  # plain arrays, readable without pickle
        np.load(npy, allow_pickle=False)
    second = load_dataset(_cfg(root))
    assert "read from the cache" in capfd.readouterr().err
    assert torch.equal(first.x_train_nchw, second.x_train_nchw) and torch.equal(first.y_test, second.y_test)
    img = root / "train" / "dog" / "000.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(img)
    os.utime(img, ns=(1, 1))
    third = load_dataset(_cfg(root))
    assert "decoded" in capfd.readouterr().err
    assert not torch.equal(first.x_train_nchw, third.x_train_nchw)
    np.save(folder / "y_train.npy", np.zeros(3, np.int64))  # a damaged cache is a miss, not an error
    assert torch.equal(load_dataset(_cfg(root)).y_train, third.y_train)


def test_npz_layouts_and_dtypes(tmp_path: Path) -> None:
    nchw = load_dataset(_cfg(_npz(tmp_path / "a.npz"), name="npz"))
    assert nchw.in_shape == (3, 9, 9) and nchw.class_names == ("0", "1", "2")
    x = np.load(tmp_path / "a.npz")["x_train"]
    nhwc = load_dataset(_cfg(_npz(tmp_path / "b.npz", x_train=x.transpose(0, 2, 3, 1),
                                  x_test=np.load(tmp_path / "a.npz")["x_test"].transpose(0, 2, 3, 1),
                                  class_names=np.array(["x", "y", "z"])), name="npz"))
    assert torch.equal(nhwc.x_train_nchw, nchw.x_train_nchw) and nhwc.class_names == ("x", "y", "z")
    floats = load_dataset(_cfg(_npz(tmp_path / "c.npz", x_train=np.zeros((12, 5, 5), np.float32),
                                    x_test=np.ones((6, 5, 5), np.float32)), name="npz", image_size=4))
    assert floats.in_shape == (1, 4, 4) and float(floats.x_test_nchw.min()) == pytest.approx(1.0)
    ambiguous = _npz(tmp_path / "d.npz", x_train=np.zeros((12, 3, 5, 3), np.uint8), x_test=np.zeros((6, 3, 5, 3), np.uint8))
    with pytest.raises(DataError, match="set data.layout"):
        load_dataset(_cfg(ambiguous, name="npz"))
    assert load_dataset(_cfg(ambiguous, name="npz", layout=ArrayLayout.NHWC)).in_shape == (3, 3, 5)


# ----------------------------------------------------------------------------- whole pipelines


@pytest.mark.parametrize(("shape", "teacher", "student"), [((1, 28, 28), "digits_cnn", "digits_small"),
                                                          ((3, 20, 20), "digits_cnn", "digits_small"),
                                                          ((3, 32, 32), "vgg11", "vgg5mini"),
                                                          ((4, 64, 48), "vgg11", "vgg5mini")])
def test_auto_architectures_follow_the_image_size(shape, teacher: str, student: str) -> None:
    from sne_loihi.config import StudentConfig, TeacherConfig
    from sne_loihi.students.archs import auto_student_arch, student_spec
    from sne_loihi.teachers import build_teacher
    from sne_loihi.teachers.registry import auto_teacher_arch

    assert (auto_teacher_arch(shape), auto_student_arch(shape)) == (teacher, student)
    model = build_teacher(TeacherConfig(arch="auto"), shape, 5).eval()
    x = torch.rand(2, *shape)
    assert model(x).shape == (2, 5) and model.features(x).shape == (2, model.feature_dim)
    assert student_spec(StudentConfig(arch="auto"), shape, 7).layers[-1].out_features == 7

PIPELINE = ["--teacher-epochs", "1", "--student-epochs", "1", "--lava-samples", "2", "--no-progress", "--threads", "2",
            "--no-activation", "--noise", ""]


def _gray_png(tmp: Path, split: bool) -> tuple[str, Path]:
    return "imagefolder", make_tree(tmp / "gray", split=split, size=(28, 28), mode="L", fmt="png", per_class=6)


def _rgb_jpeg(tmp: Path, split: bool) -> tuple[str, Path]:
    return "imagefolder", make_tree(tmp / "rgb", split=split, size=(20, 20), mode="RGB", fmt="jpg", per_class=6)


def _npz_rgb(tmp: Path, split: bool) -> tuple[str, Path]:
    del split
    rng = np.random.default_rng(0)
    x = np.stack([np.asarray(_image(i % 3, (20, 20), "RGB", rng)) for i in range(18)])
    return "npz", _npz(tmp / "d.npz", x_train=x[:12], y_train=np.arange(12) % 3, x_test=x[12:], y_test=np.arange(6) % 3)


# each shape and format once, split and unsplit trees once each (the loader tests cover every
# combination; a pipeline costs ~17 s on 2 cores)
@pytest.mark.parametrize(("make", "split"), [(_gray_png, True), (_rgb_jpeg, False), (_npz_rgb, True)],
                         ids=["gray28-png-split", "rgb20-jpeg-tree", "npz"])
def test_pipeline_end_to_end_with_default_architectures(tmp_path: Path, make, split: bool) -> None:
    dataset, path = make(tmp_path, split)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["pipeline", "--dataset", dataset, "--data-dir", str(path), "--run-dir", str(run_dir),
                                 *PIPELINE])
    assert result.exit_code == 0, result.stderr + result.stdout
    lava = json.loads((run_dir / "lava.json").read_text())
    assert lava["samples"] == 2 and lava["evaluations"]
    for ev in lava["evaluations"]:
        assert ev["torch"]["spike_mismatches"] == 0 and ev["torch"]["op_mismatches"] == 0
        assert ev["torch"].get("decision_mismatches", 0) == 0
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    assert manifest["class_names"] == (list(CLASSES) if dataset == "imagefolder" else ["0", "1", "2"])
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data"]["class_names"] == manifest["class_names"]
    assert "classes (label: name) 0 " in (run_dir / "report.md").read_text()
    assert (run_dir / "export" / "loihi2.md").is_file()  # the Loihi 2 readiness report took the shape
    if dataset == "npz":  # NIR export + snnTorch re-import on the new shape (once: it costs ~10 s)
        nir = runner.invoke(app, ["export", str(run_dir), "--format", "nir", "--check-samples", "2"])
        assert nir.exit_code == 0, nir.stderr + nir.stdout
        assert "ensemble predictions differing from torch: 0" in nir.stdout


def test_the_run_records_class_names_and_refuses_other_classes(tmp_path: Path) -> None:
    import tomli

    root = make_tree(tmp_path / "t", split=True, size=(8, 8), per_class=3)
    run_dir = tmp_path / "run"
    args = ["teacher", "--dataset", "imagefolder", "--data-dir", str(root), "--run-dir", str(run_dir),
            "--teacher-epochs", "1", "--no-progress"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    config = tomli.loads((run_dir / "config.toml").read_text())
    assert config["data"]["class_names"] == list(CLASSES)
    (root / "train" / "ant").mkdir()  # a new class sorts first: every label would shift
    _image(0, (8, 8), "L", np.random.default_rng(0)).save(root / "train" / "ant" / "0.png")
    before = (run_dir / "config.toml").read_bytes()
    from sne_loihi.run import clear_cache

    clear_cache()  # a later command is a new process: nothing loaded in this one carries over
    again = runner.invoke(app, ["teacher", "--run-dir", str(run_dir), "--resume", "--teacher-epochs", "2", "--no-progress"])
    assert again.exit_code == 1
    errors = [ln for ln in again.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "not the ones this run recorded in data.class_names" in errors[0], again.stderr
    assert "Traceback" not in again.stderr
    assert (run_dir / "config.toml").read_bytes() == before


def test_export_reads_its_check_images_where_the_data_set_moved(tmp_path: Path) -> None:
    """A trained run whose image folder has moved (a shipped model on another machine): the
    export's Lava check fails in one line naming the recorded folder, and reads the images from
    --data-dir or --set data.data_dir instead (which it used to ignore); other data keys and a
    folder without a check are refused; the run folder is left as it was."""
    import hashlib
    import shutil

    root = make_tree(tmp_path / "t", split=True, size=(8, 8), per_class=3)
    run_dir = tmp_path / "run"
    trained = runner.invoke(app, ["pipeline", "--dataset", "imagefolder", "--data-dir", str(root), "--run-dir",
                                  str(run_dir), "--no-lava", *PIPELINE])
    assert trained.exit_code == 0, trained.stderr + trained.stdout
    moved = shutil.move(str(root), str(tmp_path / "moved"))
    from sne_loihi.run import clear_cache

    clear_cache()  # a later command is a new process: the images loaded in this one are gone

    def digests() -> dict[str, str]:
        return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(run_dir.rglob("*")) if p.is_file()}

    before = digests()
    export = ["export", str(run_dir), "--check-samples", "2"]
    lost = runner.invoke(app, [*export, "--out", str(tmp_path / "lost")])
    errors = [ln for ln in lost.stderr.splitlines() if ln.startswith("error: ")]
    assert lost.exit_code == 1 and len(errors) == 1 and str(root) in errors[0], lost.stderr
    assert "Traceback" not in lost.stderr and not (tmp_path / "lost").exists()
    for n, flag in enumerate((["--data-dir", moved], ["--set", f"data.data_dir='{moved}'"])):
        out = tmp_path / f"export{n}"
        found = runner.invoke(app, [*export, "--out", str(out), *flag])
        assert found.exit_code == 0, found.stderr + found.stdout
        assert json.loads((out / "manifest.json").read_text())["parity"] == {
            "samples": 2, "compared": "every weighted layer, every neuron and step", "mismatches": 0,
            "backend": "cpu (Loihi2SimCfg select_tag=fixed_pt)"}
    nir = runner.invoke(app, [*export, "--format", "nir", "--out", str(tmp_path / "nir"), "--data-dir", moved])
    assert nir.exit_code == 0 and "ensemble predictions differing from torch: 0 of 2" in nir.stdout, nir.stderr
    for bad, says in ((["--set", "data.image_size=16"], "--set data.image_size: the export's check reads"),
                      (["--data-dir", moved, "--check-samples", "0"], "--data-dir names the check's test images; with --check-samples 0")):
        refused = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "refused"), *bad])
        assert refused.exit_code == 1 and refused.stderr.startswith(f"error: {says}"), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
    assert digests() == before


def test_nir_reads_its_check_images_where_the_data_set_moved(tmp_path: Path) -> None:
    """``sne nir RUN/nir --check-samples N`` on a run whose image folder has moved: one line
    naming the recorded folder, and the check reads the images from --data-dir instead; a
    folder without a check (--check-samples 0, a single graph) is refused; nothing is written."""
    import hashlib
    import shutil

    root = make_tree(tmp_path / "t", split=True, size=(8, 8), per_class=3)
    run_dir = tmp_path / "run"
    trained = runner.invoke(app, ["pipeline", "--dataset", "imagefolder", "--data-dir", str(root), "--run-dir",
                                  str(run_dir), "--no-lava", *PIPELINE])
    assert trained.exit_code == 0, trained.stderr + trained.stdout
    exported = runner.invoke(app, ["export", str(run_dir), "--format", "nir", "--check-samples", "0"])
    assert exported.exit_code == 0, exported.stderr + exported.stdout
    moved = shutil.move(str(root), str(tmp_path / "moved"))
    from sne_loihi.run import clear_cache

    clear_cache()  # a later command is a new process: the images loaded in this one are gone
    before = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    check = ["nir", str(run_dir / "nir"), "--check-samples", "2"]
    lost = runner.invoke(app, check)
    errors = [ln for ln in lost.stderr.splitlines() if ln.startswith("error: ")]
    assert lost.exit_code == 1 and len(errors) == 1 and str(root) in errors[0], lost.stderr
    assert "Traceback" not in lost.stderr
    found = runner.invoke(app, [*check, "--data-dir", moved])
    assert found.exit_code == 0, found.stderr + found.stdout
    assert "ensemble predictions differing from torch: 0 of 2" in found.stdout
    for target in (run_dir / "nir", run_dir / "nir" / "student_0.nir"):
        refused = runner.invoke(app, ["nir", str(target), "--data-dir", moved])
        assert refused.exit_code == 1 and refused.stderr.strip() == (
            "error: --data-dir names the check's test images; with --check-samples 0 nothing reads them"), refused.stderr
    after = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    assert after == before


def _bar_drawn(stderr: str) -> bool:
    """A tqdm bar on stderr: its ``NN%|`` gauge or the carriage returns that redraw it."""
    return "%|" in stderr or "\r" in stderr


def test_no_progress_switches_off_every_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, decoding an image folder draws a bar in every command that reads one
    (export's check, evaluate, nir's check, partition, and the training commands);
    --no-progress switches it off in each (the training commands' --no-progress used to leave it
    on)."""
    from sne_loihi.run import clear_cache

    monkeypatch.setattr("sne_loihi.progress.stderr_is_terminal", lambda: True)
    root = make_tree(tmp_path / "t", split=True, size=(8, 8), per_class=3)
    run_dir = tmp_path / "run"
    trained = runner.invoke(app, ["pipeline", "--dataset", "imagefolder", "--data-dir", str(root), "--run-dir",
                                  str(run_dir), "--no-lava", *PIPELINE])  # PIPELINE says --no-progress
    assert trained.exit_code == 0, trained.stderr + trained.stdout
    assert not _bar_drawn(trained.stderr), trained.stderr
    commands = [["evaluate", str(run_dir)],
                ["export", str(run_dir), "--format", "nir", "--check-samples", "1", "--overwrite"],
                ["nir", str(run_dir / "nir"), "--check-samples", "1"],
                ["partition", str(run_dir)]]
    for n, command in enumerate(commands):
        for flag in ([], ["--no-progress"]):
            monkeypatch.setenv("SNE_CACHE_DIR", str(tmp_path / f"cache-{n}{len(flag)}"))  # decoded afresh
            clear_cache()
            result = runner.invoke(app, [*command, *flag])
            assert result.exit_code == 0, result.stderr + result.stdout
            assert _bar_drawn(result.stderr) == (not flag), (command, flag, result.stderr)


def test_npz_auto_channels_are_decided_over_both_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = _npz(tmp_path / "mixed.npz", x_train=rng.integers(0, 256, (12, 9, 9), dtype=np.uint8),
                x_test=rng.integers(0, 256, (6, 9, 9, 3), dtype=np.uint8))
    data = load_dataset(_cfg(path, name="npz"))
    assert data.in_shape == (3, 9, 9) and data.x_test_nchw.shape == (6, 3, 9, 9)
    gray = data.x_train_nchw
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])  # gray repeated
