"""Matrix products inside kernels: direct calls to BLAS ``sgemm``/``dgemm``.

Kernels multiply with :func:`gemm` instead of ``np.dot``.  Both end in the same OpenBLAS (SciPy's copy,
made single-threaded in ``_jit``), but Numba's ``np.dot`` compiles its own shape checks, the formatting of
their error messages and a layout dispatch into every kernel that calls it: one ``prange`` kernel with a
single ``np.dot`` took 9.3 s to compile against 0.9 s with :func:`gemm`.  Shapes are checked by the Python
ops before any kernel runs, so nothing is lost.

The BLAS entry points are found through ``scipy.linalg.cython_blas`` (a capsule per function) and bound to
a symbol name with ``llvmlite.binding.add_symbol`` at import, so compiled kernels refer to them by name and
stay cacheable on disk.  BLAS is column-major: a row-major product ``C = A @ B`` is computed as the
column-major product ``C^T = B^T A^T``, which reads the row-major arrays as they lie.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
import scipy.linalg.cython_blas as _cython_blas
from numba import types

from ._jit import helper

__all__ = ["gemm", "matmul"]


def _capsule_address(name):
    """The address of the function ``name`` that ``scipy.linalg.cython_blas`` exports."""
    capsule = _cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _bind(name):
    """``name`` (e.g. ``sgemm``) as an external function kernels can call; every argument is a pointer."""
    symbol = f"fnnet_blas_{name}"
    llvm.add_symbol(symbol, _capsule_address(name))
    return types.ExternalFunction(symbol, types.void(*([types.voidptr] * 13)))


_sgemm = _bind("sgemm")
_dgemm = _bind("dgemm")

_N, _T = 78, 84  # 'N' and 'T': BLAS reads the first byte of the (little-endian) int32


@helper
def _operand(x, by_rows, slot, ints):
    """Describe the matrix ``x`` to column-major BLAS: writes the transpose flag to ``ints[slot]`` and the
    leading dimension to ``ints[slot + 1]``.  ``by_rows``: x's rows lie contiguous (see :func:`_rows_ok`), so
    column-major reads x^T as it is; otherwise its columns do, column-major reads x, and BLAS transposes."""
    size = x.itemsize
    rows, cols = x.shape
    if by_rows:
        ints[slot] = _N
        ints[slot + 1] = x.strides[0] // size if rows > 1 else max(cols, 1)
    else:
        ints[slot] = _T
        ints[slot + 1] = x.strides[1] // size if cols > 1 else max(rows, 1)


@helper
def _rows_ok(x):
    """Each row of ``x`` is contiguous and rows follow each other forward without overlap."""
    rows, cols = x.shape
    size = x.itemsize
    return (cols <= 1 or x.strides[1] == size) and (rows <= 1 or x.strides[0] >= size * max(cols, 1))


@helper
def _cols_ok(x):
    """Each column of ``x`` is contiguous and columns follow each other forward without overlap."""
    rows, cols = x.shape
    size = x.itemsize
    return (rows <= 1 or x.strides[0] == size) and (cols <= 1 or x.strides[1] >= size * max(rows, 1))


@helper
def _gemm_row_major(a, b, c, alpha, beta):
    """``c = alpha * a @ b + beta * c`` for a ``c`` whose rows lie contiguous."""
    if not (_rows_ok(a) or _cols_ok(a)):  # negative, zero (broadcast) or gapped strides: copy
        a = np.ascontiguousarray(a)
    if not (_rows_ok(b) or _cols_ok(b)):
        b = np.ascontiguousarray(b)
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty sum: BLAS implementations differ on it, numpy gives zeros
        for i in range(m):
            for j in range(n):
                c[i, j] = 0.0 if beta == 0.0 else beta * c[i, j]
        return
    ints = np.empty(9, np.int32)  # transb, ldb, transa, lda, n, m, k, ldc, (unused)
    _operand(b, _rows_ok(b), 0, ints)
    _operand(a, _rows_ok(a), 2, ints)
    ints[4] = n
    ints[5] = m
    ints[6] = k
    ints[7] = c.strides[0] // c.itemsize if m > 1 else max(n, 1)
    scalars = np.empty(2, c.dtype)
    scalars[0] = alpha
    scalars[1] = beta
    arguments = (ints[0:].ctypes, ints[2:].ctypes, ints[4:].ctypes, ints[5:].ctypes, ints[6:].ctypes,
                 scalars[0:].ctypes, b.ctypes, ints[1:].ctypes, a.ctypes, ints[3:].ctypes, scalars[1:].ctypes,
                 c.ctypes, ints[7:].ctypes)
    if c.itemsize == 4:
        _sgemm(*arguments)
    else:
        _dgemm(*arguments)


@helper
def gemm(a, b, c, alpha=1.0, beta=0.0):
    """``c[...] = alpha * a @ b + beta * c`` for 2-D float32 or float64 arrays of one dtype (views allowed).

    ``c`` must have contiguous rows or columns laid out forward (any slice of rows of a C-contiguous array,
    or its transpose); ``a`` and ``b`` may be any 2-D views (one with negative, zero or gapped strides is
    copied first).  With
    ``beta=0`` the old contents of ``c`` are never read, so it may be uninitialised.  Shapes are not checked.
    """
    if _rows_ok(c):
        _gemm_row_major(a, b, c, alpha, beta)
    else:
        _gemm_row_major(b.T, a.T, c.T, alpha, beta)


@helper
def matmul(a, b):
    """A new C-contiguous ``a @ b`` (see :func:`gemm`)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    gemm(a, b, out)
    return out
