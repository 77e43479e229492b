"""Indexing and joining: ``getitem`` (``x[index]``), ``take``, ``concatenate`` and ``stack``.

Forwards are pure data movement and use numpy.  Backwards:

* basic indexing (ints, slices with any step, ``None``, ``...``) selects each element at most once, so
  its VJP writes ``g`` into zeros (primitive ``getitem``);
* advanced indexing (integer arrays, boolean masks, mixed with basic entries) may select an element
  several times, so its VJP must ADD: the index is turned, at call time, into the flat positions of the
  selected rows (``pos``), and the backward is the deterministic Numba ``scatter_add_rows`` kernel
  (primitive ``gather_rows``).  A "row" is the block of trailing axes the index takes whole (``x[idx]``
  on ``(N, D)`` gathers rows of ``D``), so the positions array stays small in the common cases;
* ``concatenate``/``stack`` split ``g`` back into the inputs' pieces.

Every index is validated before anything runs: out-of-range integers raise ``IndexError`` naming the
value, its position and the axis.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from .. import kernels as K
from ..autodiff import Tracer, primitive
from ..autodiff.batching import axis_batching
from ..autodiff.arrays import plain_array
from ._validate import check_float, contiguous, value

__all__ = ["getitem", "take", "concatenate", "stack"]


# ---------------------------------------------------------------------------------------------- getitem

def _getitem_fwd(x, index):
    y = x[index]  # a numpy scalar when every axis gets an int: return it as a 0-d array, like every op
    return (y if type(y) is np.ndarray else np.asarray(y)), x.shape


def _getitem_bwd(shape, g, index):
    out = np.zeros(shape, dtype=g.dtype)
    out[index] = g
    return (out,)


_getitem = primitive("getitem", _getitem_fwd, _getitem_bwd, argnames=("x",))


def _gather_rows_fwd(x, index, pos, n_rows, row):
    return x[index], (x.shape, pos)


def _gather_rows_bwd(res, g, index, pos, n_rows, row):
    shape, pos = res
    g2 = contiguous(g).reshape(pos.size, row)
    return (K.scatter_add_rows(pos, g2, n_rows).reshape(shape),)


_gather_rows = primitive("gather_rows", _gather_rows_fwd, _gather_rows_bwd, argnames=("x",))


def _as_int(op, v, what):
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{op}: {what} expected an int or None, got {v!r}") from None


def _entry(op, item):
    """One index entry, checked and converted: int, slice, None, Ellipsis, or an int64/bool ndarray."""
    if item is None or item is Ellipsis:
        return item
    if type(item) is Tracer:
        raise TypeError(
            f"{op}: index entries must be ints, slices, None, ... or integer/boolean arrays, got a traced "
            "array; indices are not differentiable, pass fnnet.stop_gradient(idx) or a plain numpy array"
        )
    if isinstance(item, (bool, np.bool_)):
        raise TypeError(
            f"{op}: a bare boolean index ({item!r}) is not supported; use a boolean array mask of the "
            "indexed axes' shape"
        )
    if isinstance(item, (int, np.integer)):
        return int(item)
    if isinstance(item, slice):
        start = None if item.start is None else _as_int(op, item.start, "slice start")
        stop = None if item.stop is None else _as_int(op, item.stop, "slice stop")
        step = None if item.step is None else _as_int(op, item.step, "slice step")
        if step == 0:
            raise ValueError(f"{op}: slice step must not be zero, got {item!r}")
        return slice(start, stop, step)
    if isinstance(item, (list, tuple, np.ndarray)):
        arr = plain_array(op, "an index array", item) if isinstance(item, np.ndarray) else np.asarray(item)
        if arr.dtype == np.bool_:
            return arr
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64, copy=False)
        if arr.size == 0 and not isinstance(item, np.ndarray):  # [] means "no elements", as in numpy
            return arr.astype(np.int64)
        raise TypeError(
            f"{op}: index arrays must be integer or boolean, got dtype {arr.dtype}; convert with "
            "idx.astype(np.int64)"
        )
    raise TypeError(
        f"{op}: index entries must be ints, slices, None, ... or integer/boolean arrays, got "
        f"{type(item).__name__} ({item!r})"
    )


def _consumed(e) -> int:
    """How many axes of ``x`` an entry indexes."""
    if e is None or e is Ellipsis:
        return 0
    if isinstance(e, np.ndarray) and e.dtype == np.bool_:
        return e.ndim
    return 1


def _check_int_entry(op, e, axis, n):
    if isinstance(e, int):
        if not -n <= e < n:
            raise IndexError(f"{op}: index {e} is out of range for axis {axis} of size {n}; valid: {-n}..{n - 1}")
        return
    if e.size == 0:
        return
    bad = np.flatnonzero((e < -n) | (e >= n))
    if bad.size:
        where = np.unravel_index(bad[0], e.shape)
        raise IndexError(
            f"{op}: index array for axis {axis} has value {int(e.flat[bad[0]])} at position "
            f"{tuple(int(w) for w in where)}, out of range for size {n}; valid: {-n}..{n - 1}"
        )


def _normalize_index(op, shape, index) -> tuple:
    """Full, checked index tuple (Ellipsis expanded) for an array of ``shape``."""
    items = index if isinstance(index, tuple) else (index,)
    entries = [_entry(op, item) for item in items]
    ellipses = sum(1 for e in entries if e is Ellipsis)
    if ellipses > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis (...), got {ellipses}")
    used = sum(_consumed(e) for e in entries)
    if used > len(shape):
        raise IndexError(
            f"{op}: too many indices: the index uses {used} axes but x has shape {shape} ({len(shape)} axes)"
        )
    fill = [slice(None)] * (len(shape) - used)
    if ellipses:
        i = next(i for i, e in enumerate(entries) if e is Ellipsis)
        entries[i:i + 1] = fill
    else:
        entries += fill
    axis = 0
    for e in entries:
        if e is None or isinstance(e, slice):
            axis += 0 if e is None else 1
            continue
        if isinstance(e, np.ndarray) and e.dtype == np.bool_:
            covered = shape[axis:axis + e.ndim]
            if e.shape != covered:
                raise IndexError(
                    f"{op}: boolean mask of shape {e.shape} does not match the indexed axes "
                    f"{tuple(range(axis, axis + e.ndim))} of x, of shape {covered}"
                )
            axis += e.ndim
            continue
        _check_int_entry(op, e, axis, shape[axis])
        axis += 1
    return tuple(entries)


def _is_full_slice(e, n) -> bool:
    return isinstance(e, slice) and e.indices(n) == (0, n, 1)


def _row_positions(op, shape, entries):
    """For an advanced index: ``(pos, n_rows, row)``, the flat positions of the gathered rows of
    ``x.reshape(n_rows, row)``; the trailing axes that ``entries`` takes whole form a row."""
    # axes consumed, entry by entry, to find the trailing run of full slices
    axes_of = []
    axis = 0
    for e in entries:
        k = _consumed(e)
        axes_of.append(range(axis, axis + k))
        axis += k
    cut = len(entries)
    while cut > 0 and len(axes_of[cut - 1]) == 1 and _is_full_slice(entries[cut - 1], shape[axes_of[cut - 1][0]]):
        cut -= 1
    lead_ndim = axes_of[cut - 1].stop if cut > 0 else 0
    lead_shape = shape[:lead_ndim]
    n_rows = math.prod(lead_shape)
    row = math.prod(shape[lead_ndim:])
    try:
        pos = np.arange(n_rows, dtype=np.int64).reshape(lead_shape)[entries[:cut]]
    except IndexError as e:
        raise IndexError(f"{op}: {e} (index arrays must broadcast together, numpy's rules)") from None
    return np.ascontiguousarray(pos).reshape(-1), n_rows, row


def getitem(x, index):
    """``x[index]`` with numpy's semantics, differentiable.

    Args:
        x: float16/float32/float64 array of any shape.
        index: an int, slice (any step, negative included), ``None``, ``...``, an integer array or list
            (advanced indexing, repeats allowed), a boolean mask, or a tuple of those.

    Returns:
        The array numpy's ``x[index]`` returns (a view for basic indexing, a new array otherwise), with
        numpy's shape rules.  Gradient: the cotangent is written (basic) or scatter-ADDED (advanced: an
        element selected twice receives both cotangents) into zeros of ``x``'s shape.

    Raises:
        TypeError: ``x`` not a float16/float32/float64 array; index entries of another type (float arrays, traced
            arrays, bare booleans).
        IndexError: an integer out of range (the message names the value, its position and the axis), a
            mask whose shape does not match, too many indices, more than one ``...``, index arrays that do
            not broadcast together.
        ValueError: a slice step of zero.
    """
    x = check_float("getitem", "x", x)
    shape = value(x).shape
    entries = _normalize_index("getitem", shape, index)
    if not any(isinstance(e, np.ndarray) for e in entries):
        return _getitem(x, index=entries)
    pos, n_rows, row = _row_positions("getitem", shape, entries)
    return _gather_rows(x, index=entries, pos=pos, n_rows=n_rows, row=row)


def take(x, indices, axis=0):
    """Elements of ``x`` at integer ``indices`` along ``axis`` (``np.take`` without wrapping modes).

    Args:
        x: float16/float32/float64 array ``(d_0, ..., d_{n-1})``.
        indices: int or integer array of any shape ``I``; negative values count from the end.
        axis: the axis to index.

    Returns:
        ``x.shape[:axis] + I + x.shape[axis+1:]``.  Repeated indices accumulate in the gradient.

    Raises:
        TypeError: non-float ``x`` or non-integer ``indices``.
        ValueError: ``axis`` out of range.
        IndexError: an index out of range.
    """
    x = check_float("take", "x", x)
    ndim = value(x).ndim
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"take: axis expected an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"take: axis {axis} is out of range for an array with {ndim} dimension(s)")
    if isinstance(indices, (int, np.integer)) and not isinstance(indices, (bool, np.bool_)):
        idx = int(indices)
    else:
        idx = _entry("take", indices)
        if not isinstance(idx, np.ndarray) or idx.dtype == np.bool_:
            raise TypeError(
                f"take: indices expected an int or an integer array, got {indices!r}; use getitem(x, mask) "
                "for boolean masks"
            )
    index = (slice(None),) * (int(axis) % ndim) + (idx,)
    try:
        return getitem(x, index)
    except IndexError as e:
        raise IndexError(str(e).replace("getitem:", "take:", 1)) from None


# ------------------------------------------------------------------------------ concatenate and stack

def _concatenate_fwd(*xs, axis):
    return np.concatenate(xs, axis=axis), tuple(x.shape[axis] for x in xs)


def _concatenate_bwd(sizes, g, axis):
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(g, bounds, axis=axis))


_concatenate = primitive("concatenate", _concatenate_fwd, _concatenate_bwd)


def _stack_fwd(*xs, axis):
    return np.stack(xs, axis=axis), None


def _stack_bwd(res, g, axis):
    return tuple(np.asarray(np.take(g, i, axis=axis)) for i in range(g.shape[axis]))  # 0-d pieces stay arrays


_stack = primitive("stack", _stack_fwd, _stack_bwd)


def _check_sequence(op, xs) -> list:
    """``xs`` as a list of checked float arrays of one dtype (see ``check_float``)."""
    if type(xs) is Tracer or isinstance(xs, np.ndarray) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"{op}: xs expected a list or tuple of arrays, got {type(xs).__name__}; wrap it: [x]")
    if not xs:
        raise ValueError(f"{op}: xs expected at least one array, got an empty sequence")
    xs = [check_float(op, f"xs[{i}]", x) for i, x in enumerate(xs)]
    first = value(xs[0]).dtype
    for i, x in enumerate(xs[1:], start=1):
        if value(x).dtype != first:
            raise TypeError(
                f"{op}: xs[{i}] has dtype {value(x).dtype} but xs[0] has {first}; all inputs must share one "
                f"dtype (fnnet never promotes silently): cast with xs[{i}].astype(np.{first})"
            )
    return xs


def concatenate(xs, axis=0):
    """Join arrays along an existing axis.

    Args:
        xs: non-empty list/tuple of float arrays of one dtype, shapes equal except along ``axis``.
        axis: the joining axis (negative counts from the end).

    Returns:
        The joined array; its size along ``axis`` is the sum of the inputs'.

    Raises:
        TypeError: ``xs`` not a sequence, a non-float input, or mixed dtypes (naming the input).
        ValueError: an empty ``xs``, ``axis`` out of range, or an input whose ndim or other dimensions
            differ from ``xs[0]``'s (naming the input).
    """
    xs = _check_sequence("concatenate", xs)
    shapes = [value(x).shape for x in xs]
    ndim = len(shapes[0])
    if ndim == 0:
        raise ValueError("concatenate: 0-d arrays cannot be concatenated; use stack, or reshape them to (1,)")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"concatenate: axis expected an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"concatenate: axis {axis} is out of range for arrays with {ndim} dimension(s)")
    axis = int(axis) % ndim
    for i, s in enumerate(shapes[1:], start=1):
        if len(s) != ndim or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise ValueError(
                f"concatenate: xs[{i}] has shape {s}, incompatible with xs[0] of shape {shapes[0]}: all "
                f"dimensions except axis {axis} must be equal"
            )
    return _concatenate(*xs, axis=axis)


def stack(xs, axis=0):
    """Join arrays of one shape along a new axis.

    Args:
        xs: non-empty list/tuple of float arrays of one dtype and one shape ``S``.
        axis: where the new axis goes in the result, in ``[-(len(S) + 1), len(S)]``.

    Returns:
        ``S`` with ``len(xs)`` inserted at ``axis``.

    Raises:
        TypeError: ``xs`` not a sequence, a non-float input, or mixed dtypes (naming the input).
        ValueError: an empty ``xs``, ``axis`` out of range, or an input whose shape differs from
            ``xs[0]``'s (naming the input).
    """
    xs = _check_sequence("stack", xs)
    shapes = [value(x).shape for x in xs]
    ndim = len(shapes[0]) + 1
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"stack: axis expected an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for a result with {ndim} dimension(s)")
    for i, s in enumerate(shapes[1:], start=1):
        if s != shapes[0]:
            raise ValueError(
                f"stack: xs[{i}] has shape {s} but xs[0] has shape {shapes[0]}; stacked arrays must all "
                "have the same shape"
            )
    return _stack(*xs, axis=int(axis) % ndim)


# fnnet.vmap: basic indexing of each example (advanced indexing has no batching rule yet); joins along each
# example's axis
axis_batching(_getitem, lambda p, n: {"index": (slice(None), *p["index"])})
for _prim in (_concatenate, _stack):
    axis_batching(_prim, lambda p, n: {"axis": p["axis"] + 1})
