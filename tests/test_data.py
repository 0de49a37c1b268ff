"""Data loaders: digits, CIFAR-10 python batches (incl. corrupt and malicious input), subsets, augmentation."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sne_loihi.config import DataConfig
from sne_loihi.data import DATASETS, augment_nchw, load_dataset, stratified_subset
from sne_loihi.errors import ConfigError, DataError

CIFAR_SUBSET = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-subset"
needs_cifar = pytest.mark.skipif(not CIFAR_SUBSET.is_dir(), reason=f"shared CIFAR-10 subset not found at {CIFAR_SUBSET}")


def test_registry_names() -> None:
    assert DATASETS.names() == ["cifar10", "digits", "imagefolder", "npz"]
    with pytest.raises(ConfigError, match="unknown data set 'mnist'"):
        load_dataset(DataConfig(name="mnist"))


def test_digits_shapes_range_and_split() -> None:
    data = load_dataset(DataConfig(name="digits", test_fraction=0.2), seed=3)
    assert data.in_shape == (1, 8, 8) and data.num_classes == 10
    assert data.class_names == tuple(str(i) for i in range(10))
    assert data.x_train_nchw.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert len(data.y_train) + len(data.y_test) == 1797
    assert len(data.y_test) == 360  # ceil(0.2 * 1797)
    both = torch.cat([data.x_train_nchw, data.x_test_nchw])
    assert float(both.min()) == 0.0 and float(both.max()) == 1.0
    # 16 grey levels: every pixel is k / 16
    assert torch.equal(both * 16, torch.round(both * 16))
    # stratified: each class's test share is within one sample of 20%
    counts_all = torch.bincount(torch.cat([data.y_train, data.y_test]), minlength=10)
    counts_test = torch.bincount(data.y_test, minlength=10)
    assert torch.all((counts_test - 0.2 * counts_all).abs() <= 1)


def test_digits_split_is_reproducible_and_seeded() -> None:
    a = load_dataset(DataConfig(name="digits"), seed=0)
    b = load_dataset(DataConfig(name="digits"), seed=0)
    c = load_dataset(DataConfig(name="digits"), seed=1)
    assert torch.equal(a.x_train_nchw, b.x_train_nchw) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_rejects_bad_test_fraction() -> None:
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset(DataConfig(name="digits", test_fraction=1.5))


def test_max_train_subset_is_balanced_and_deterministic() -> None:
    cfg = DataConfig(name="digits", max_train=105, max_test=40)
    a = load_dataset(cfg, seed=0)
    b = load_dataset(cfg, seed=0)
    assert len(a.y_train) == 105 and len(a.y_test) == 40
    counts = torch.bincount(a.y_train, minlength=10)
    assert int(counts.max() - counts.min()) <= 1
    assert torch.equal(torch.bincount(a.y_test, minlength=10), torch.full((10,), 4))
    assert torch.equal(a.x_train_nchw, b.x_train_nchw)
    with pytest.raises(ConfigError, match="max_train"):
        load_dataset(DataConfig(name="digits", max_train=-1))


def test_stratified_subset_nested_and_uneven_classes() -> None:
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 20)
    small = stratified_subset(labels, 9, seed=5)
    large = stratified_subset(labels, 30, seed=5)
    assert torch.equal(torch.bincount(labels[small], minlength=3), torch.tensor([3, 3, 3]))
    # class 1 runs out after 3; the rest is shared between classes 0 and 2
    assert torch.bincount(labels[large], minlength=3).tolist() == [14, 3, 13] or \
        torch.bincount(labels[large], minlength=3).tolist() == [13, 3, 14]
    assert set(small.tolist()) <= set(large.tolist())
    assert torch.equal(stratified_subset(labels, 0, seed=5), torch.arange(len(labels)))


# ---------------------------------------------------------------- CIFAR-10


@needs_cifar
@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar10_loads_shared_subset(sub: str) -> None:
    data = load_dataset(DataConfig(name="cifar10", data_dir=str(CIFAR_SUBSET / sub)))
    assert data.in_shape == (3, 32, 32) and data.num_classes == 10
    assert data.x_train_nchw.shape == (10_000, 3, 32, 32) and data.x_test_nchw.shape == (2_000, 3, 32, 32)
    assert data.class_names[0] == "airplane" and data.class_names[-1] == "truck"
    assert torch.equal(torch.bincount(data.y_train), torch.full((10,), 1000))
    assert torch.equal(torch.bincount(data.y_test), torch.full((10,), 200))
    assert data.x_train_nchw.dtype == torch.float32
    assert 0.0 <= float(data.x_test_nchw.min()) and float(data.x_test_nchw.max()) <= 1.0
    # channel-major layout: the first image's red plane is the first 1024 bytes of the batch
    with open(CIFAR_SUBSET / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")[b"data"]  # the trusted shared file
    assert torch.equal(data.x_test_nchw[0, 0].flatten(), torch.from_numpy(raw[0, :1024]).float() / 255)


def _write_batch(path: Path, n: int, *, data: np.ndarray | None = None, labels: list | None = None) -> None:
    payload = {
        b"data": np.zeros((n, 3072), np.uint8) if data is None else data,
        b"labels": [i % 10 for i in range(n)] if labels is None else labels,
        b"batch_label": b"synthetic",
    }
    path.write_bytes(pickle.dumps(payload, protocol=4))


def _fake_cifar(folder: Path, n_train: int = 20, n_test: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write_batch(folder / "data_batch_1", n_train)
    _write_batch(folder / "data_batch_2", n_train)
    _write_batch(folder / "test_batch", n_test)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return folder


def _load(folder: Path):
    return load_dataset(DataConfig(name="cifar10", data_dir=str(folder)))


def test_cifar10_synthetic_folder_and_parent(tmp_path: Path) -> None:
    folder = _fake_cifar(tmp_path / "cifar-10-batches-py")
    for where in (folder, tmp_path):
        data = _load(where)
        assert data.x_train_nchw.shape == (40, 3, 32, 32) and len(data.y_test) == 10
        assert data.class_names[3] == "c3"


def test_cifar10_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no data_batch_\* in .*expected the CIFAR-10 python-batch layout"):
        _load(tmp_path)
    with pytest.raises(DataError, match="no data folder given"):
        load_dataset(DataConfig(name="cifar10", data_dir=None))


@pytest.mark.parametrize("missing", ["test_batch", "batches.meta"])
def test_cifar10_missing_file(tmp_path: Path, missing: str) -> None:
    folder = _fake_cifar(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(DataError, match=f"missing {missing}"):
        _load(folder)


def test_cifar10_truncated_batch(tmp_path: Path) -> None:
    folder = _fake_cifar(tmp_path)
    raw = (folder / "data_batch_1").read_bytes()
    (folder / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        _load(folder)
    assert "\n" not in str(info.value)


def test_cifar10_garbage_batch(tmp_path: Path) -> None:
    folder = _fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"this is not a pickle at all")
    with pytest.raises(DataError, match="truncated or corrupt"):
        _load(folder)


class _Exploit:
    """Unpickling this would run ``os.system`` (creating a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_malicious_pickle_without_running_it(tmp_path: Path) -> None:
    folder = _fake_cifar(tmp_path / "data")
    marker = tmp_path / "pwned"
    payload = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3], b"x": _Exploit(marker)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match=r"refused to load global (posix|os|nt)\.system"):
        _load(folder)
    assert not marker.exists()


def test_cifar10_refuses_object_arrays(tmp_path: Path) -> None:
    folder = _fake_cifar(tmp_path)
    obj = np.array([b"a", 1], dtype=object)
    _write_batch(folder / "data_batch_1", 2, data=obj)  # object dtype: numpy globals, but not allowed
    with pytest.raises(DataError, match="not allowed"):
        _load(folder)


@pytest.mark.parametrize(
    ("data", "labels", "message"),
    [
        (np.zeros((4, 1024), np.uint8), [0, 1, 2, 3], r"uint8 of shape \(N, 3072\)"),
        (np.zeros((4, 3072), np.float32), [0, 1, 2, 3], r"uint8 of shape \(N, 3072\)"),
        (np.zeros((4, 3072), np.uint8), [0, 1, 2], "4 images but labels"),
        (np.zeros((4, 3072), np.uint8), [0, 1, 2, 10], r"labels must be in 0\.\.9"),
        (np.zeros((4, 3072), np.uint8), [0.7, 1.2, 2.5, 9.7], r"labels must be integers 0\.\.9, got float64"),
        (np.zeros((4, 3072), np.uint8), [0, 1, 2, 10**30], r"labels must be integers 0\.\.9, got object"),
    ],
)
def test_cifar10_wrong_shapes(tmp_path: Path, data: np.ndarray, labels: list, message: str) -> None:
    folder = _fake_cifar(tmp_path)
    _write_batch(folder / "data_batch_2", len(data), data=data, labels=labels)
    with pytest.raises(DataError, match=message):
        _load(folder)


def test_cifar10_bad_meta(tmp_path: Path) -> None:
    folder = _fake_cifar(tmp_path)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    with pytest.raises(DataError, match="label_names must be a list of 10"):
        _load(folder)


@needs_cifar
def test_cifar10_subset_files_copied_partially(tmp_path: Path) -> None:
    """The real test_batch alone is not a complete layout."""
    shutil.copy(CIFAR_SUBSET / "cifar-10-batches-py" / "test_batch", tmp_path / "test_batch")
    with pytest.raises(DataError, match=r"no data_batch_\*"):
        _load(tmp_path)


# ------------------------------------------------------------ augmentation


def test_augment_keeps_shape_range_and_is_seeded() -> None:
    x = torch.rand(16, 3, 8, 8)
    a = augment_nchw(x, torch.Generator().manual_seed(1), pad=2)
    b = augment_nchw(x, torch.Generator().manual_seed(1), pad=2)
    c = augment_nchw(x, torch.Generator().manual_seed(2), pad=2)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_augment_is_a_shift_or_flip_of_each_image() -> None:
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5) + 1  # all pixels nonzero
    out = augment_nchw(x, torch.Generator().manual_seed(0), pad=1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        candidates = [
            img
            for dy in range(3)
            for dx in range(3)
            for img in (padded[i, :, dy:dy + 5, dx:dx + 5], padded[i, :, dy:dy + 5, dx:dx + 5].flip(-1))
        ]
        assert any(torch.equal(out[i], cand) for cand in candidates)


def test_augment_pad_zero_only_flips() -> None:
    x = torch.rand(32, 1, 4, 4)
    out = augment_nchw(x, torch.Generator().manual_seed(0), pad=0)
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | flipped) and same.any() and flipped.any()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar10_reads_every_plain_pickle_protocol(tmp_path: Path, protocol: int) -> None:
    """Protocol 2 from Python 3 stores bytes through _codecs.encode: plain data, so it loads."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 3072), dtype=np.uint8)
    for name in ("data_batch_1", "test_batch"):
        payload = {b"data": images, b"labels": [i % 10 for i in range(12)], b"batch_label": b""}
        (folder / name).write_bytes(pickle.dumps(payload, protocol=protocol))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    data = _load(folder)
    assert torch.equal(data.x_test_nchw.flatten(1), torch.from_numpy(images).float() / 255)
    assert data.class_names[9] == "c9"


def test_cifar10_protocol2_helpers_refuse_anything_but_plain_bytes(tmp_path: Path) -> None:
    class Sneaky:
        def __reduce__(self):
            import _codecs

            return (_codecs.encode, ("x", "rot13"))

    folder = _fake_cifar(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Sneaky()}, protocol=2))
    with pytest.raises(DataError, match="not a plain CIFAR-10 batch"):
        _load(folder)
