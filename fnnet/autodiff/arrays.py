"""Array inputs as kernels and the tape need them, checked once for ``grad`` and for every op.

Kernels read raw memory, so an array reaches them as a plain ``np.ndarray`` in native byte order and
aligned.  :func:`plain_array` converts what holds ordinary values in another container (``np.memmap`` and
other subclasses, big-endian data, a buffer at an odd address) and rejects the two subclasses whose values
mean something else (``np.ma.MaskedArray``, ``np.matrix``).  ``grad`` applies it to the leaves it traces
and ``fnnet.ops`` to every array argument, so both agree on what an array is.
"""

from __future__ import annotations

import numpy as np

from .primitive import _check_tapes
from .tape import Tracer

__all__ = ["plain_array", "check_live"]


def plain_array(where: str, arg: str, a: np.ndarray) -> np.ndarray:
    """``a`` as a plain, native-byte-order, aligned, writeable-or-strided ndarray: ``a`` itself when it
    already is one, a base-class view for an ndarray subclass such as ``np.memmap``, a copy otherwise
    (read-only contiguous arrays are copied too: kernels are compiled for writeable arrays only).

    Raises:
        TypeError: ``a`` is a masked array (its mask would be silently dropped) or an ``np.matrix``.
    """
    if type(a) is not np.ndarray:
        if isinstance(a, np.ma.MaskedArray):
            raise TypeError(
                f"{where}: {arg} is a numpy masked array, whose mask fnnet would silently drop; fill the masked "
                "entries first, e.g. x.filled(0.0), or pass np.asarray(x) if the mask does not matter"
            )
        if isinstance(a, np.matrix):
            raise TypeError(
                f"{where}: {arg} is an np.matrix, which is always 2-D and multiplies as a matrix; convert it "
                "with np.asarray(x)"
            )
        a = np.asarray(a)
    if not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    if not a.flags.aligned:
        return a.copy()
    if not a.flags.writeable and a.flags.c_contiguous:
        # Numba compiles a separate read-only version of every kernel it is handed such an array (8-25 s
        # each, e.g. for weights loaded with np.load(..., mmap_mode="r")); one copy is far cheaper.
        return a.copy()
    return a


def check_live(where: str, *args) -> None:
    """Raise the tape's clear error, naming ``where``, when a tracer among ``args`` leaked out of a finished
    ``grad`` call or comes from another ``grad`` call than the others."""
    tape = next((a.tape for a in args if type(a) is Tracer), None)
    if tape is not None:
        _check_tapes(where, tape, args)
