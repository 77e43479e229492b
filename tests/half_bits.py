"""Bit-level comparison of float16 arrays, shared by the native-float16 tests."""

import numpy as np


def bits_of(a):
    """The uint16 bits of a float16 array, flattened."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint16)


def same_bits(a, b):
    """``a`` and ``b`` are both None, or float16 arrays of one shape with identical bits (NaN payloads too)."""
    assert (a is None) == (b is None)
    if a is not None:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype == np.float16 and a.shape == b.shape
        np.testing.assert_array_equal(bits_of(a), bits_of(b))
