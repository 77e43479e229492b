"""Matrix products inside kernels: direct calls to BLAS ``sgemm``/``dgemm``.

Kernels multiply with :func:`gemm` instead of ``np.dot``.  Both end in the same OpenBLAS (SciPy's copy,
made single-threaded in ``_jit``), but Numba's ``np.dot`` compiles its own shape checks, the formatting of
their error messages and a layout dispatch into every kernel that calls it: one ``prange`` kernel with a
single ``np.dot`` took 9.3 s to compile against 0.9 s with :func:`gemm`.  Shapes are checked by the Python
ops before any kernel runs, so nothing is lost.

The BLAS entry points are found through ``scipy.linalg.cython_blas`` (a capsule per function; loaded on its own
by ``_jit.cython_blas``) and bound to
a symbol name with ``llvmlite.binding.add_symbol`` at import, so compiled kernels refer to them by name and
stay cacheable on disk.  BLAS is column-major: a row-major product ``C = A @ B`` is computed as the
column-major product ``C^T = B^T A^T``, which reads the row-major arrays as they lie.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from numba import types

from ._jit import cython_blas, helper

_cython_blas = cython_blas()

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
def gemm(a, b, c, alpha=1.0, beta=0.0):
    """``c[...] = alpha * a @ b + beta * c`` for 2-D float32 or float64 arrays of one dtype (views allowed).

    Every operand must lie "forward" along one axis: its rows contiguous and following each other (any
    slice of rows of a C-contiguous array), or its columns so (the transpose of one).  Kernels only pass
    such views of the C-contiguous arrays the ops give them; nothing is checked or copied here (a copy path
    doubled this function's compile time).  With ``beta=0`` the old contents of ``c`` are never read, so it
    may be uninitialised.  Shapes are not checked.

    BLAS is column-major: the row-major ``c = a @ b`` is the column-major ``c^T = b^T a^T``, and a
    column-major reader sees a row-major matrix transposed, so row-major operands go in as they lie ('N')
    and column-major ones transposed ('T').  A ``c`` with contiguous columns is handled as ``c^T = b^T a^T``.
    """
    size = c.itemsize
    if c.shape[1] <= 1 or c.strides[1] == size:
        left, right, out = a, b, c
    else:
        left, right, out = b.T, a.T, c.T
    m, k = left.shape
    n = right.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty sum: BLAS implementations differ on it, numpy gives zeros
        for i in range(m):
            for j in range(n):
                out[i, j] = 0.0 if beta == 0.0 else beta * out[i, j]
        return
    ints = np.empty(8, np.int32)  # transb, ldb, transa, lda, n, m, k, ldc
    if right.shape[1] <= 1 or right.strides[1] == size:
        ints[0] = _N
        ints[1] = right.strides[0] // size if k > 1 else max(n, 1)
    else:
        ints[0] = _T
        ints[1] = right.strides[1] // size if n > 1 else max(k, 1)
    if left.shape[1] <= 1 or left.strides[1] == size:
        ints[2] = _N
        ints[3] = left.strides[0] // size if m > 1 else max(k, 1)
    else:
        ints[2] = _T
        ints[3] = left.strides[1] // size if k > 1 else max(m, 1)
    ints[4] = n
    ints[5] = m
    ints[6] = k
    ints[7] = out.strides[0] // size if m > 1 else max(n, 1)
    scalars = np.empty(2, c.dtype)
    scalars[0] = alpha
    scalars[1] = beta
    arguments = (ints[0:].ctypes, ints[2:].ctypes, ints[4:].ctypes, ints[5:].ctypes, ints[6:].ctypes,
                 scalars[0:].ctypes, right.ctypes, ints[1:].ctypes, left.ctypes, ints[3:].ctypes,
                 scalars[1:].ctypes, out.ctypes, ints[7:].ctypes)
    if size == 4:
        _sgemm(*arguments)
    else:
        _dgemm(*arguments)


@helper
def matmul(a, b):
    """A new C-contiguous ``a @ b`` (see :func:`gemm`)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    gemm(a, b, out)
    return out
