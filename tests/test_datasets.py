"""Tests for fnnet.datasets: IDX files written here (valid, gzip, truncated, wrong magic), MNIST folders,
scikit-learn digits, and key-driven batches."""

import gzip
import struct
import sys

import numpy as np
import pytest

from fnnet import datasets
from fnnet import random as fnrandom

TYPE_CODES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}


def idx_bytes(array, type_code=None):
    """The IDX encoding of ``array``: magic, big-endian uint32 sizes, big-endian data."""
    if type_code is None:
        type_code = {np.dtype(v): k for k, v in TYPE_CODES.items()}[array.dtype]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.dtype(TYPE_CODES[type_code]).newbyteorder(">")).tobytes()


def write_idx(path, array, compress=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(5,), (3, 4, 2), (2, 0), (1, 1, 1, 3)], ids=str)
@pytest.mark.parametrize("code", sorted(TYPE_CODES), ids=[f"0x{c:02x}" for c in sorted(TYPE_CODES)])
def test_load_idx_every_type(tmp_path, code, shape):
    array = _sample(TYPE_CODES[code], shape)
    loaded = datasets.load_idx(write_idx(tmp_path / "a.idx", array))
    assert loaded.dtype == np.dtype(TYPE_CODES[code]) and loaded.dtype.isnative
    assert loaded.shape == shape
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable


def test_load_idx_gzip_by_name_and_by_magic(tmp_path):
    images = _sample(np.uint8, (4, 28, 28))
    by_name = datasets.load_idx(write_idx(tmp_path / "images.idx.gz", images, compress=True))
    by_magic = datasets.load_idx(write_idx(tmp_path / "images-no-suffix", images, compress=True))
    np.testing.assert_array_equal(by_name, images)
    np.testing.assert_array_equal(by_magic, images)
    assert idx_bytes(images)[:4] == b"\x00\x00\x08\x03"
    assert idx_bytes(np.zeros(3, np.uint8))[:4] == b"\x00\x00\x08\x01"


def test_load_idx_errors(tmp_path):
    images = _sample(np.uint8, (2, 3, 3))
    data = idx_bytes(images)                         # 16 header bytes + 18 data bytes
    (tmp_path / "short").write_bytes(data[:-5])
    with pytest.raises(ValueError, match=r"is truncated: shape \(2, 3, 3\) of uint8 needs 34 bytes \(header "
                                         r"included\), got 29 bytes"):
        datasets.load_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="longer than its header says.*needs 34 bytes.*got 35 bytes"):
        datasets.load_idx(tmp_path / "long")
    (tmp_path / "header").write_bytes(data[:9])
    with pytest.raises(ValueError, match="truncated: its header needs 16 bytes for 3 dimension sizes, got 9 bytes"):
        datasets.load_idx(tmp_path / "header")
    (tmp_path / "magic").write_bytes(b"\xde\xad\xbe\xef" + data[4:])
    with pytest.raises(ValueError, match="is not an IDX file: magic bytes de ad be ef"):
        datasets.load_idx(tmp_path / "magic")
    (tmp_path / "code").write_bytes(b"\x00\x00\x0a\x01" + data[4:])
    with pytest.raises(ValueError, match="magic bytes 00 00 0a 01"):
        datasets.load_idx(tmp_path / "code")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match=r"magic bytes \(empty file\)"):
        datasets.load_idx(tmp_path / "empty")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-12])
    with pytest.raises(ValueError, match="is not a valid gzip file"):
        datasets.load_idx(tmp_path / "cut.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(data[:-1]))
    with pytest.raises(ValueError, match="needs 34 bytes .* got 33 bytes"):
        datasets.load_idx(tmp_path / "short.gz")
    with pytest.raises(FileNotFoundError):
        datasets.load_idx(tmp_path / "missing")


def _mnist_folder(folder, n_train=5, n_test=3, compress=(True, False, False, True), names=None):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays["train-images-idx3-ubyte"][0, 0, 0] = 255
    arrays["train-images-idx3-ubyte"][0, 0, 1] = 0
    for (name, array), gz in zip(arrays.items(), compress):
        write_idx(folder / (name + (".gz" if gz else "")), array, compress=gz)
    return arrays


def test_load_mnist(tmp_path):
    raw = _mnist_folder(tmp_path)
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(tmp_path)
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    np.testing.assert_allclose(x_train[:, 0] * 255, raw["train-images-idx3-ubyte"], atol=1e-4)
    np.testing.assert_array_equal(y_test, raw["t10k-labels-idx1-ubyte"])


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        datasets.load_mnist(tmp_path)
    _mnist_folder(tmp_path, compress=(False,) * 4)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="has 3 images but .* has 4 labels"):
        datasets.load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((3, 1), np.uint8))
    with pytest.raises(ValueError, match=r"should hold labels \(N,\), got shape \(3, 1\)"):
        datasets.load_mnist(tmp_path)


def test_load_digits():
    pytest.importorskip("sklearn")
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    assert x_train.shape[1:] == (1, 8, 8) and x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == round(1797 * 0.2)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.max() == 1.0
    again = datasets.load_digits()
    np.testing.assert_array_equal(again[1][0], x_test)
    other = datasets.load_digits(seed=1)
    assert not np.array_equal(other[1][1], y_test)
    from sklearn.datasets import load_digits as sk
    assert np.array_equal(np.bincount(np.concatenate([y_train, y_test])), np.bincount(sk().target))
    (x_all, _), (x_none, y_none) = datasets.load_digits(test_fraction=0.0)
    assert x_all.shape == (1797, 1, 8, 8) and x_none.shape == (0, 1, 8, 8) and y_none.shape == (0,)
    with pytest.raises(ValueError, match=r"test_fraction must be a number in \[0, 1\), got 1.0"):
        datasets.load_digits(test_fraction=1.0)


def test_load_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install fnnet\[examples\]"):
        datasets.load_digits()


def test_batches():
    key = fnrandom.key(3)
    first = list(datasets.batches(key, 10, 4))
    assert [len(b) for b in first] == [4, 4, 2] and all(b.dtype == np.int64 for b in first)
    assert sorted(np.concatenate(first).tolist()) == list(range(10))
    again = list(datasets.batches(key, 10, 4))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = np.concatenate(list(datasets.batches(fnrandom.key(4), 10, 4)))
    assert not np.array_equal(other, np.concatenate(first))
    assert [len(b) for b in datasets.batches(key, 10, 4, drop_last=True)] == [4, 4]
    assert [b.tolist() for b in datasets.batches(None, 5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]
    assert list(datasets.batches(key, 0, 3)) == []
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        datasets.batches(key, 10, 0)
    with pytest.raises(ValueError, match="shuffle=True needs a key"):
        datasets.batches(None, 10, 2)
