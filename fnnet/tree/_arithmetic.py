"""Leafwise constructors and the tree arithmetic optimizers need (dtypes preserved, never promoted)."""

from __future__ import annotations

import builtins
import math

import numpy as np

from ._structure import _flatten_all, _leaf_paths, _path_repr, leaves, map, unflatten

__all__ = [
    "zeros_like", "ones_like", "full_like", "add", "sub", "mul", "scale", "add_scaled", "vdot", "global_norm",
    "size", "nbytes", "astype", "allclose", "assert_allclose",
]


def _dtype(x):
    dtype = getattr(x, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.result_type(x)


def zeros_like(tree):
    """Returns a tree of zero arrays with each leaf's shape and dtype."""
    return map(lambda x: np.zeros(np.shape(x), _dtype(x)), tree)


def ones_like(tree):
    """Returns a tree of one-filled arrays with each leaf's shape and dtype."""
    return map(lambda x: np.ones(np.shape(x), _dtype(x)), tree)


def full_like(tree, value):
    """Returns a tree of arrays filled with ``value``, with each leaf's shape and dtype."""
    return map(lambda x: np.full(np.shape(x), value, _dtype(x)), tree)


def _cast_scalar(s, leaf):
    """``s`` as a scalar of the leaf's floating dtype, so that arithmetic keeps float32 float32."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and np.issubdtype(dtype, np.inexact):
        return np.dtype(dtype).type(s)
    return s


def _binary(where, op, a, b):
    def leaf_op(path, x, y):
        if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype != y.dtype:
            raise TypeError(f"{where}: dtype mismatch at {_path_repr(path)}: {x.dtype} vs {y.dtype}; "
                            f"cast one tree with tree.astype first")
        return op(x, y)

    treedef, (xs, ys) = _flatten_all(where, a, (b,), None)
    return unflatten(treedef, [leaf_op(p, x, y) for p, x, y in zip(_leaf_paths(treedef), xs, ys)])


def add(a, b):
    """Leafwise ``a + b``. Raises ValueError on a structure mismatch, TypeError on a leaf dtype mismatch."""
    return _binary("tree.add", lambda x, y: x + y, a, b)


def sub(a, b):
    """Leafwise ``a - b``. Raises ValueError on a structure mismatch, TypeError on a leaf dtype mismatch."""
    return _binary("tree.sub", lambda x, y: x - y, a, b)


def mul(a, b):
    """Leafwise ``a * b``. Raises ValueError on a structure mismatch, TypeError on a leaf dtype mismatch."""
    return _binary("tree.mul", lambda x, y: x * y, a, b)


def scale(tree, s):
    """Leafwise ``s * leaf``; ``s`` is cast to each floating leaf's dtype so dtypes are preserved."""
    return map(lambda x: x * _cast_scalar(s, x), tree)


def add_scaled(a, b, s):
    """Leafwise ``a + s * b`` (``s`` cast to each floating leaf's dtype), e.g. an SGD step ``p - lr * g``.

    Raises:
      ValueError: structure mismatch.
      TypeError: leaf dtype mismatch.
    """
    return _binary("tree.add_scaled", lambda x, y: x + _cast_scalar(s, y) * y, a, b)


def vdot(a, b) -> float:
    """Sum over leaves of ``sum(a_leaf * b_leaf)``, accumulated in float64; returns a Python float.

    Raises:
      ValueError: structure mismatch.
    """
    _, (xs, ys) = _flatten_all("tree.vdot", a, (b,), None)
    total = 0.0
    for x, y in zip(xs, ys):
        total += float(np.dot(np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()))
    return total


def global_norm(tree) -> float:
    """The Euclidean norm of all leaves concatenated, ``sqrt(vdot(tree, tree))``, as a Python float."""
    return math.sqrt(vdot(tree, tree))


def size(tree) -> int:
    """The total number of elements over all leaves."""
    return int(builtins.sum(np.size(x) for x in leaves(tree)))


def nbytes(tree) -> int:
    """The total number of bytes of all leaves (Python scalars count as 0-d numpy arrays)."""
    return int(builtins.sum(np.asarray(x).nbytes for x in leaves(tree)))


def astype(tree, dtype):
    """Returns a tree whose every leaf is a numpy array cast to ``dtype`` (no copy when already that dtype)."""
    dtype = np.dtype(dtype)
    return map(lambda x: np.asarray(x).astype(dtype, copy=False), tree)


def allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """True when ``a`` and ``b`` have the same structure and all leaf pairs have equal shapes and are
    ``np.allclose`` (NaNs equal); False otherwise (:func:`assert_allclose` says where they differ)."""
    try:
        assert_allclose(a, b, rtol, atol)
    except AssertionError:
        return False
    return True


def assert_allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8):
    """Like :func:`allclose` but raises AssertionError naming the first differing path.

    Raises:
      AssertionError: structure, shape or value mismatch.
    """
    try:
        treedef, (xs, ys) = _flatten_all("tree.assert_allclose", a, (b,), None)
    except ValueError as e:
        raise AssertionError(str(e)) from None
    for path, x, y in zip(_leaf_paths(treedef), xs, ys):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            raise AssertionError(f"tree.assert_allclose: shape mismatch at {_path_repr(path)}: "
                                 f"{x.shape} vs {y.shape}")
        if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            err = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))) if x.size else 0.0
            raise AssertionError(f"tree.assert_allclose: values differ at {_path_repr(path)}: "
                                 f"max abs difference {err:.3g} (rtol={rtol}, atol={atol})")
