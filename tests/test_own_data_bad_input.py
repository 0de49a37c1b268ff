"""A user's own data gone wrong: the layouts people make by hand that must read as the plain
tree, and bad input (corrupt images, unsafe archive members, malformed ``.npz``) that must stop
with one line and write nothing."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from own_data_files import CLASSES, _cache_in_tmp, _cfg, _npz, make_tree  # noqa: F401 (_cache_in_tmp: autouse)
from PIL import Image
from typer.testing import CliRunner

from sne_loihi.cli import app
from sne_loihi.data import load_dataset
from sne_loihi.errors import DataError

runner = CliRunner()


def _tar_of_dot(tmp: Path) -> Path:
    """``tar czf d.tgz -C tree .``: members named ``./train/cat/0.png`` after a ``./`` folder."""
    root = make_tree(tmp / "tree", split=True, size=(8, 8), per_class=3)
    with tarfile.open(tmp / "d.tgz", "w:gz") as tf:
        tf.add(root, arcname=".")
    return tmp / "d.tgz"


def _readme_beside_wrapper(tmp: Path) -> Path:
    make_tree(tmp / "root" / "data", split=True, size=(8, 8), per_class=3)
    (tmp / "root" / "README.txt").write_text("my data set")
    return tmp / "root"


def _capitalised_splits(tmp: Path) -> Path:
    root = make_tree(tmp / "root", split=True, size=(8, 8), per_class=3)
    (root / "train").rename(root / "Train")
    (root / "test").rename(root / "testing")
    return root


def _netpbm_images(tmp: Path) -> Path:
    return make_tree(tmp / "root", split=True, size=(8, 8), per_class=3, fmt="ppm", mode="RGB")


def _link_in_a_hidden_folder(tmp: Path) -> Path:
    root = make_tree(tmp / "root", split=True, size=(8, 8), per_class=3)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").symlink_to("/etc/hostname")
    return root


LAYOUT_VARIANTS = {"tar of ./": _tar_of_dot, "README beside the wrapper": _readme_beside_wrapper,
                   "Train/ and testing/": _capitalised_splits, "PPM images": _netpbm_images,
                   "a link in a hidden folder": _link_in_a_hidden_folder}


@pytest.mark.parametrize("case", list(LAYOUT_VARIANTS))
def test_common_layout_variants_read_as_the_plain_tree(tmp_path: Path, case: str) -> None:
    data = load_dataset(_cfg(LAYOUT_VARIANTS[case](tmp_path)))
    assert data.class_names == CLASSES
    assert torch.bincount(data.y_train).tolist() == [3, 3, 3] and torch.bincount(data.y_test).tolist() == [2, 2, 2]


def test_images_outside_the_split_folders_are_named_and_counted(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    root = make_tree(tmp_path / "root", split=True, size=(8, 8), per_class=3)
    make_tree(tmp_path / "v", split=False, size=(8, 8), per_class=2)
    (tmp_path / "v").rename(root / "val")
    data = load_dataset(_cfg(root))
    assert len(data.y_train) == 9 and len(data.y_test) == 6
    err = capfd.readouterr().err
    assert "skipped 6 images in val/ (only the train and test folders are read)" in err and "not an image" not in err


def test_archive_members_that_are_not_images_are_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only image members are read (a large README costs nothing); an image member over the
    size limit is refused before it is read."""
    from sne_loihi.data import image_tree

    monkeypatch.setattr(image_tree, "MAX_IMAGE_BYTES", 4000)
    root = make_tree(tmp_path / "tree", split=True, size=(8, 8), per_class=3)
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(root.rglob("*.png")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
        zf.writestr("tree/README.txt", b"x" * 50_000)
    assert load_dataset(_cfg(archive, cache=False)).class_names == CLASSES
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("tree/train/cat/big.png", _png_bytes() + b"\0" * 5000)
    with pytest.raises(DataError, match=r"tree/train/cat/big.png is 5,\d{3} bytes, more than the 4,000"):
        load_dataset(_cfg(archive, cache=False))


def _png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros(size[::-1], np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    root = make_tree(path.parent / "tree", split=True, size=(8, 8), per_class=3)
    with tarfile.open(path, "w:gz") as tf:
        tf.add(root, arcname="tree")
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def _bad_empty_class(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    (root / "train" / "fox").mkdir()
    return root, "class folder train/fox"


def _bad_test_class(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    (root / "test" / "fox").mkdir()
    (root / "test" / "fox" / "0.png").write_bytes(_png_bytes())
    return root, "test class 'fox'"


def _bad_corrupt(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root, "cannot decode .*broken.png"


def _bad_truncated(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "train" / "dog" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return root, "cannot decode .*cut.jpg.*truncated"


def _bad_bomb(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    side = int((Image.MAX_IMAGE_PIXELS or 89_478_485) ** 0.5) + 100  # just above Pillow's pixel limit
    Image.new("1", (side, side)).save(root / "train" / "cat" / "bomb.png")  # a few KB on disk
    return root, "bomb.png is refused as a decompression bomb"


def _bad_absolute(tmp: Path) -> tuple[Path, str]:
    member = tarfile.TarInfo("/etc/evil.png")
    member.size = len(_png_bytes())
    return _tar_with(tmp / "a.tar.gz", member, _png_bytes()), "absolute path"


def _bad_dotdot(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "tree", split=True, size=(8, 8), per_class=3)
    path = tmp / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(root.rglob("*.png")):
            zf.write(p, p.relative_to(tmp).as_posix())
        zf.writestr("tree/train/cat/../../../../evil.png", _png_bytes())
    return path, "climbs out with '..'"


def _bad_link(tmp: Path) -> tuple[Path, str]:
    member = tarfile.TarInfo("tree/train/cat/link.png")
    member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return _tar_with(tmp / "a.tar", member), "holds a link"


def _bad_npz_object(tmp: Path) -> tuple[Path, str]:
    obj = np.empty(12, dtype=object)
    obj[:] = [1] * 12
    return _npz(tmp / "o.npz", y_train=obj), "holds Python objects"


def _bad_npz_lengths(tmp: Path) -> tuple[Path, str]:
    return _npz(tmp / "l.npz", y_train=np.arange(11) % 3), r"y_train has shape \(11,\) for 12 images"


def _bad_npz_range(tmp: Path) -> tuple[Path, str]:
    return _npz(tmp / "r.npz", class_names=np.array(["a", "b"])), "label 2, outside the 2 classes"


def _bad_npz_nan(tmp: Path) -> tuple[Path, str]:
    x = np.zeros((6, 3, 9, 9), np.float32)
    x[2, 1, 4, 4] = np.nan
    return _npz(tmp / "n.npz", x_test=x, x_train=np.zeros((12, 3, 9, 9), np.float32)), "NaN"


def _bad_one_class(tmp: Path) -> tuple[Path, str]:
    root = tmp / "t"
    (root / "cat").mkdir(parents=True)
    for i in range(4):
        (root / "cat" / f"{i}.png").write_bytes(_png_bytes())
    return root, r"one class folder \(cat\); a classifier needs at least two"


def _bad_two_train_folders(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    (root / "Train" / "cat").mkdir(parents=True)
    (root / "Train" / "cat" / "0.png").write_bytes(_png_bytes())
    return root, "has both Train/ and train/ for the train split; keep one"


def _bad_not_an_image(tmp: Path) -> tuple[Path, str]:
    root = make_tree(tmp / "t", split=True, size=(8, 8), per_class=3)
    (root / "train" / "dog" / "page.png").write_text("<html><body>a web page saved as .png</body></html>")
    return root, r"cannot decode .*page.png \(not an image format Pillow reads, or not an image at all\)$"


def _bad_npz_one_class(tmp: Path) -> tuple[Path, str]:
    return _npz(tmp / "c.npz", y_train=np.zeros(12, np.int64), y_test=np.zeros(6, np.int64)), "at least two classes"


def _bad_npz_folder(tmp: Path) -> tuple[Path, str]:
    (tmp / "arrays").mkdir()
    return tmp / "arrays", "is a folder; data.data_dir \\(--data-dir\\) names the .npz file itself"


def _bad_npz_empty(tmp: Path) -> tuple[Path, str]:
    return _npz(tmp / "e.npz", x_train=np.zeros((0, 3, 9, 9), np.uint8), y_train=np.zeros(0, np.int64)), \
        "x_train holds no images"


def _bad_npz_repeated_class(tmp: Path) -> tuple[Path, str]:
    return _npz(tmp / "d.npz", class_names=np.array(["a", "b", "a"])), "class_names names 'a' more than once"


BAD_INPUTS = {
    "empty class folder": ("imagefolder", _bad_empty_class),
    "test class without training folder": ("imagefolder", _bad_test_class),
    "corrupt image": ("imagefolder", _bad_corrupt),
    "truncated image": ("imagefolder", _bad_truncated),
    "decompression bomb": ("imagefolder", _bad_bomb),
    "archive member with an absolute path": ("imagefolder", _bad_absolute),
    "archive member with ..": ("imagefolder", _bad_dotdot),
    "archive member that is a link": ("imagefolder", _bad_link),
    "npz object arrays": ("npz", _bad_npz_object),
    "npz x/y lengths differ": ("npz", _bad_npz_lengths),
    "npz labels out of range": ("npz", _bad_npz_range),
    "npz NaN pixels": ("npz", _bad_npz_nan),
    "one class folder": ("imagefolder", _bad_one_class),
    "two folders for one split": ("imagefolder", _bad_two_train_folders),
    "a web page saved as .png": ("imagefolder", _bad_not_an_image),
    "npz labels of one class": ("npz", _bad_npz_one_class),
    "npz path is a folder": ("npz", _bad_npz_folder),
    "npz without training images": ("npz", _bad_npz_empty),
    "npz class named twice": ("npz", _bad_npz_repeated_class),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, case: str, _cache_in_tmp: Path) -> None:
    dataset, make = BAD_INPUTS[case]
    src = tmp_path / "src"
    src.mkdir()
    path, message = make(src)
    before = {p: p.stat().st_mtime_ns for p in src.rglob("*")}
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["pipeline", "--dataset", dataset, "--data-dir", str(path), "--run-dir", str(run_dir),
                                 "--no-progress"])
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not run_dir.exists() and not _cache_in_tmp.exists()
    assert {p: p.stat().st_mtime_ns for p in src.rglob("*")} == before
