"""Datasets: MNIST-format IDX files, scikit-learn's bundled 8x8 digits, and key-driven mini-batch indices.

Nothing is downloaded: :func:`load_mnist` reads the four standard files from a folder you provide, and
:func:`load_digits` uses the copy of the UCI digits that ships inside scikit-learn.

Example::

    (x_train, y_train), (x_test, y_test) = fnnet.datasets.load_digits()
    for idx in fnnet.datasets.batches(fnnet.random.fold_in(key, epoch), len(x_train), 64):
        xb, yb = x_train[idx], y_train[idx]
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import zlib

import numpy as np

from . import random as fnrandom

__all__ = ["load_idx", "load_mnist", "load_digits", "batches", "IDX_DTYPES"]

IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""The IDX type code (third byte of the file) -> the big-endian dtype of the data, as :func:`load_idx` reads it."""

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path) -> bytes:
    """The file's bytes, gunzipped when it is gzip-compressed (by its magic bytes or a .gz name)."""
    where = "fnnet.datasets.load_idx"
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC or os.fspath(path).endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{where}: {os.fspath(path)} is not a valid gzip file (truncated or corrupt): "
                             f"{type(e).__name__}: {e}") from None
    return raw


def load_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), optionally gzip-compressed.

    The header is 4 magic bytes ``00 00 <type> <ndim>`` followed by ``ndim`` big-endian uint32 sizes;
    the data follows, big-endian.  Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64 (MNIST images are ``00 00 08 03``, labels ``00 00 08 01``).

    Args:
        path: the file; compressed files are recognised by their gzip magic bytes or a ``.gz`` name.

    Returns:
        A native-endian array of shape ``(d_1, ..., d_ndim)`` and the type code's dtype
        (uint8 for MNIST).

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad magic bytes (shown in hex), an unknown type code, a header shorter than the sizes it
            announces, or a data length that differs from the sizes (both byte counts are named).
    """
    where = "fnnet.datasets.load_idx"
    name = os.fspath(path)
    data = _read_bytes(path)
    magic = data[:4]
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES or magic[3] == 0:
        shown = " ".join(f"{b:02x}" for b in magic) or "(empty file)"
        raise ValueError(f"{where}: {name} is not an IDX file: magic bytes {shown}, expected 00 00 <type> <ndim> "
                         f"with type one of {', '.join(f'{t:02x}' for t in IDX_DTYPES)} and ndim >= 1 "
                         "(e.g. 00 00 08 03 for MNIST images, 00 00 08 01 for labels)")
    dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where}: {name} is truncated: its header needs {header} bytes for {ndim} dimension "
                         f"sizes, got {len(data)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{where}: {name} is {what}: shape {dims} of {dtype.newbyteorder('=').name} needs "
                         f"{expected} bytes (header included), got {len(data)} bytes")
    array = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a native-endian, writable copy


_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find(folder, stem):
    """The first existing variant of an MNIST file name (``-idx`` or ``.idx``, plain or ``.gz``)."""
    candidates = []
    for base in (stem, stem.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            candidates.append(os.path.join(folder, base + suffix))
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(f"fnnet.datasets.load_mnist: none of {[os.path.basename(c) for c in candidates]} "
                            f"exists in {os.fspath(folder)!r}; put the four MNIST IDX files there (fnnet does not "
                            "download them)")


def load_mnist(folder):
    """Load MNIST (or Fashion-MNIST, same format) from the four standard IDX files in ``folder``.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally ``.gz``-compressed (``.idx3-ubyte`` spellings work too).

    Args:
        folder: the folder holding the files.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: images float32 in ``[0, 1]`` of shape ``(N, 1, H, W)``
        (``H = W = 28`` for MNIST), labels int64 of shape ``(N,)``.

    Raises:
        FileNotFoundError: a file is missing (the message lists the names tried).
        ValueError: a malformed file, images that are not 3-D uint8, labels that are not 1-D, or image and
            label counts that differ.
    """
    where = "fnnet.datasets.load_mnist"
    loaded = {}
    for key, stem in _MNIST_FILES.items():
        path = _find(folder, stem)
        arr = load_idx(path)
        if key.startswith("x") and (arr.ndim != 3 or arr.dtype != np.uint8):
            raise ValueError(f"{where}: {path} should hold uint8 images (N, H, W), got {arr.dtype} {arr.shape}")
        if key.startswith("y") and arr.ndim != 1:
            raise ValueError(f"{where}: {path} should hold labels (N,), got shape {arr.shape}")
        loaded[key] = (path, arr)
    out = []
    for split in ("train", "test"):
        (xpath, x), (ypath, y) = loaded[f"x_{split}"], loaded[f"y_{split}"]
        if len(x) != len(y):
            raise ValueError(f"{where}: {xpath} has {len(x)} images but {ypath} has {len(y)} labels")
        images = (x.astype(np.float32) / np.float32(255.0))[:, None, :, :]
        out.append((np.ascontiguousarray(images), y.astype(np.int64)))
    return tuple(out)


def load_digits(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), split into train and test.

    Args:
        test_fraction: the fraction of examples in the test split, in ``[0, 1)`` (rounded to a count).
        seed: the seed of the ``fnnet.random`` key whose permutation shuffles the examples before splitting.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: images float32 in ``[0, 1]`` (pixel / 16) of shape
        ``(N, 1, 8, 8)``, labels int64 ``(N,)``.  The same seed always gives the same split.

    Raises:
        ImportError: scikit-learn is not installed (``pip install fnnet[examples]``).
        ValueError: ``test_fraction`` outside ``[0, 1)``.
    """
    where = "fnnet.datasets.load_digits"
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or not 0 <= test_fraction < 1:
        raise ValueError(f"{where}: test_fraction must be a number in [0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError(f"{where} needs scikit-learn, which is an optional dependency: "
                          "pip install fnnet[examples] (or pip install scikit-learn)") from None
    bunch = sklearn_digits()
    images = (np.asarray(bunch.images, np.float32) / np.float32(16.0))[:, None, :, :]
    labels = np.asarray(bunch.target, np.int64)
    order = fnrandom.permutation(fnrandom.key(seed), len(labels))
    n_test = int(round(len(labels) * float(test_fraction)))
    test, train = order[:n_test], order[n_test:]
    return ((np.ascontiguousarray(images[train]), labels[train]),
            (np.ascontiguousarray(images[test]), labels[test]))


def batches(key, n: int, batch_size: int, shuffle: bool = True, drop_last: bool = False):
    """The index arrays of the mini-batches of one epoch over ``n`` examples, as an iterator.

    Pure: the order is a function of ``key`` alone (use ``fnnet.random.fold_in(key, epoch)`` for a new
    order each epoch); nothing global is consumed.

    Args:
        key: a ``fnnet.random`` key (may be None when ``shuffle=False``).
        n: the number of examples, ``>= 0``.
        batch_size: ``> 0``.
        shuffle: visit the examples in the order of a random permutation (else ``0 .. n-1``).
        drop_last: skip a final batch smaller than ``batch_size``.

    Returns:
        An iterator of int64 arrays of shape ``(batch_size,)`` (the last one may be shorter unless
        ``drop_last``).

    Raises:
        ValueError / TypeError: bad ``n``, ``batch_size`` or key (raised by the call itself).
    """
    where = "fnnet.datasets.batches"
    for name, value, low in (("n", n, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")
    n, batch_size = int(n), int(batch_size)
    if shuffle:
        if key is None:
            raise ValueError(f"{where}: shuffle=True needs a key, e.g. fnnet.random.key(0); pass shuffle=False "
                             "for the fixed order")
        order = fnrandom.permutation(key, n)
    else:
        order = np.arange(n, dtype=np.int64)
    stop = n - n % batch_size if drop_last else n
    return (order[start:start + batch_size] for start in range(0, stop, batch_size))
