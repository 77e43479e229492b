"""``pad``: differentiable padding of the trailing axes with zeros, reflection, replication or wrap-around.

Every mode is an index map per axis (``source[i]`` = the input position that output position ``i`` copies,
-1 for a zero), built here with ``np.pad`` on ``arange``; the kernels ``pad_axis_fwd``/``pad_axis_bwd``
(in :mod:`fnnet.kernels.conv`) gather through it and add the cotangent back through it, one axis at a time.
Convolution layers use it for their ``padding_mode``.

Why a kernel pair rather than a composition of existing ops: measured on the shared 2-core machine
(``(8, 16, 32, 32)``, reflect 1 on H and W, forward + backward, median of 20, noisy up to 2x), the pair
takes 1.3 ms in float32 and 2.0 ms in float64, against 2.5 ms and 2.7-3.6 ms for two ``ops.take`` calls
(whose backward scatter-adds through an int64 position per gathered row, kept on the tape); a 16->16
3x3 convolution on the same input takes 11-13 ms.  The pair also covers zero padding, which ``take`` cannot.
"""

from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ..autodiff.batching import axis_batching
from ._validate import check_float, contiguous, value
from .geometry import is_int

__all__ = ["pad", "PAD_MODES"]

#: The padding modes, named as PyTorch's ``padding_mode`` of convolutions.
PAD_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _source(length, before, after, mode):
    """The index map of one axis: output position -> input position (-1 for a zero)."""
    positions = np.arange(length, dtype=np.int64)
    if mode == "zeros":
        return np.pad(positions, (before, after), constant_values=-1)
    return np.pad(positions, (before, after), mode=_NUMPY_MODE[mode])


def _through(x, axis, source, fn, *args):
    """Run a pad kernel on ``x`` seen as ``(A, L, B)`` around ``axis``; the result keeps the other axes."""
    shape = x.shape
    x3 = contiguous(x).reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))
    y = fn(x3, source, *args)
    return y.reshape(shape[:axis] + (y.shape[1],) + shape[axis + 1:])


def _pad_fwd(x, *, maps):
    for axis, _, source in maps:
        x = _through(x, axis, source, K.pad_axis_fwd)
    return x, None


def _pad_bwd(res, g, *, maps):
    for axis, length, source in reversed(maps):
        g = _through(g, axis, source, K.pad_axis_bwd, length)
    return (g,)


_pad = primitive("pad", _pad_fwd, _pad_bwd, argnames=("x",))


def _pairs(op, padding, ndim):
    if is_int(padding):
        padding = (padding,) * max(ndim - 2, 0)
    if not isinstance(padding, (tuple, list)) or not 1 <= len(padding) <= ndim:
        raise TypeError(f"{op}: padding expected an int or a sequence of at most {ndim} entries (one per trailing "
                        f"axis of x, each an int or a (before, after) pair), got {padding!r}")
    pairs = []
    for e in padding:
        pair = (e, e) if is_int(e) else tuple(e) if isinstance(e, (tuple, list)) else None
        if pair is None or len(pair) != 2 or not all(is_int(v) for v in pair):
            raise TypeError(f"{op}: each padding entry expected an int or a (before, after) pair of ints, got {e!r} "
                            f"in padding={padding!r}")
        if min(pair) < 0:
            raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return pairs


def _check_fits(op, mode, shape, axis, before, after):
    length = shape[axis]
    if mode == "reflect" and max(before, after) >= length:
        raise ValueError(f"{op}: reflect padding must be smaller than the axis it pads, got padding ({before}, "
                         f"{after}) for axis {axis} of size {length} (x.shape={shape}); use mode='replicate' or "
                         "less padding")
    if mode == "circular" and max(before, after) > length:
        raise ValueError(f"{op}: circular padding can be at most the size of the axis it pads, got padding "
                         f"({before}, {after}) for axis {axis} of size {length} (x.shape={shape})")
    if mode == "replicate" and length == 0:
        raise ValueError(f"{op}: replicate padding needs a non-empty axis, got axis {axis} of size 0 "
                         f"(x.shape={shape})")


def pad(x, padding, mode="zeros"):
    """Pad the trailing axes of ``x``, like ``torch.nn.functional.pad`` (or a convolution's
    ``padding_mode``), differentiable.

    Args:
        x: float array ``(..., d_1, ..., d_k)``, e.g. ``(N, C, H, W)``.
        padding: one entry per padded trailing axis, FIRST axis first (unlike ``F.pad``, which lists the last
            axis first): an int (both sides) or a ``(before, after)`` pair; ``((1, 1), (2, 0))`` pads H by 1 on
            both sides and W by 2 on the left.  A single int pads every axis after the first two.
        mode: ``'zeros'``; ``'reflect'`` (mirror without repeating the edge, padding < the axis size);
            ``'replicate'`` (repeat the edge); ``'circular'`` (wrap around, padding <= the axis size).

    Returns:
        ``x`` with each padded axis grown by ``before + after``.  Gradient: every output position's
        cotangent is added to the input position it copies.

    Raises:
        TypeError: non-float ``x``, malformed ``padding``.
        ValueError: an unknown mode, negative padding, or padding that the mode cannot produce from the axis
            (see ``mode``).
    """
    op = "pad"
    x = check_float(op, "x", x)
    shape = value(x).shape
    if mode not in PAD_MODES:
        raise ValueError(f"{op}: mode must be one of {PAD_MODES}, got {mode!r}")
    pairs = _pairs(op, padding, len(shape))
    first = len(shape) - len(pairs)
    maps = []
    for axis, (before, after) in enumerate(pairs, start=first):
        _check_fits(op, mode, shape, axis, before, after)
        if before or after:
            maps.append((axis, shape[axis], _source(shape[axis], before, after, mode)))
    return _pad(x, maps=tuple(maps)) if maps else x


# fnnet.vmap: each example padded along its own axes
axis_batching(_pad, lambda p, n: {"maps": tuple((axis + 1, length, source) for axis, length, source in p["maps"])})
