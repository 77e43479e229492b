"""Array layouts with the same values: the inputs of the metamorphic ("same") mutations.

Each ``fn(rng, a)`` returns an array equal to ``a`` element by element but stored differently.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

__all__ = ["axis", "byteorder", "strided", "transposed", "negative_stride", "readonly", "unaligned", "memmap"]


def axis(rng, a, need_size=1):
    """A random axis of ``a`` with at least ``need_size`` elements (None if there is none)."""
    axes = [i for i, n in enumerate(a.shape) if n >= need_size]
    return int(rng.choice(axes)) if axes else None


def byteorder(rng, a):
    """The non-native byte order (big-endian on x86 and ARM)."""
    return a.astype(a.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))


def strided(rng, a):
    """A step-2 view along a random axis of a buffer twice as long."""
    ax = axis(rng, a)
    big = np.zeros(a.shape[:ax] + (2 * a.shape[ax],) + a.shape[ax + 1:], a.dtype)
    view = big[(slice(None),) * ax + (slice(None, None, 2),)]
    view[...] = a
    return view


def transposed(rng, a):
    """A transposed view of a buffer stored in another axis order."""
    perm = tuple(int(p) for p in rng.permutation(a.ndim))
    if perm == tuple(range(a.ndim)):
        perm = perm[::-1]
    return np.transpose(np.ascontiguousarray(np.transpose(a, perm)), np.argsort(perm))


def negative_stride(rng, a):
    """A reversed view (negative stride) along a random axis."""
    ax = axis(rng, a)
    return np.flip(np.ascontiguousarray(np.flip(a, ax)), ax)


def readonly(rng, a):
    c = a.copy()
    c.setflags(write=False)
    return c


def unaligned(rng, a):
    """A view at byte offset 1 of a uint8 buffer."""
    buffer = np.zeros(a.nbytes + 1, np.uint8)
    view = buffer[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def memmap(rng, a):
    """An ``np.memmap`` of a temporary file, unlinked at once (the mapping outlives the name on POSIX, so
    nothing is left behind even when a forked case process exits without cleaning up)."""
    fd, path = tempfile.mkstemp(prefix="fnnet-fuzz-", suffix=".bin")
    os.close(fd)
    try:
        m = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    finally:
        os.unlink(path)
    m[...] = a
    return m
