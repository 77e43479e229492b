"""Input checks shared by every op: run in Python before any kernel sees the data.

Messages follow one form: ``"<op>: <arg> expected ..., got ...; <how to fix>"``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import kernels as K
from ..autodiff import Batched, Tracer, half
from ..autodiff.arrays import check_live, plain_array

#: float16 is accepted as a storage type: primitives compute it in float32 (``fnnet.autodiff.half``).
FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def _widen(a: np.ndarray) -> np.ndarray:
    return K.half_to_float32(np.ascontiguousarray(a).reshape(-1).view(np.uint16)).reshape(a.shape)


def _narrow(a: np.ndarray) -> np.ndarray:
    return K.float32_to_half(np.ascontiguousarray(a).reshape(-1)).view(np.float16).reshape(a.shape)


half.set_converters(_widen, _narrow)


def value(x):
    return x.value if type(x) is Tracer else x


def dtype_error(op: str, arg: str, got) -> TypeError:
    return TypeError(f"{op}: {arg} must be a float16, float32 or float64 array, got dtype {got}; "
                     "convert with x.astype(np.float32)")


def check_float(op: str, arg: str, x):
    """``x`` ready for a kernel: a float16/32/64 tracer, or a plain, native-byte-order, aligned ndarray
    (``np.memmap`` and other subclasses, big-endian and unaligned arrays are converted by
    ``fnnet.autodiff.arrays.plain_array``); a numpy float scalar becomes a 0-d array.  Ops pass on what this
    returns, never the original.

    Raises:
        TypeError: not a float array (or tracer of one); a masked array or ``np.matrix``.
        UnexpectedTracerError: a tracer that leaked out of a finished ``grad`` call (the message names ``op``).
    """
    if type(x) is Tracer:
        if not x.tape.active:
            check_live(op, x)
        v = x.value
        if type(v) is np.ndarray and v.dtype.type in FLOAT_DTYPES:
            return x
        if isinstance(v, (np.ndarray, np.generic)) and v.dtype.type in FLOAT_DTYPES:
            # a user primitive returned a numpy scalar or an ndarray subclass: the same node, a plain value
            return Tracer(plain_array(op, arg, v if isinstance(v, np.ndarray) else np.asarray(v)), x.tape, x.node)
        if type(v) is Batched and v.dtype.type in FLOAT_DTYPES:
            return x
    elif type(x) is np.ndarray and x.dtype.type in FLOAT_DTYPES and x.dtype.isnative and x.flags.aligned:
        return x  # the common case, checked cheaply
    elif type(x) is Batched and x.dtype.type in FLOAT_DTYPES:  # every example under fnnet.vmap
        return x
    elif isinstance(x, np.ndarray):
        x = plain_array(op, arg, x)
        if x.dtype.type not in FLOAT_DTYPES:
            raise dtype_error(op, arg, x.dtype)
        return x
    elif type(x) in FLOAT_DTYPES:  # a numpy scalar such as np.float32(2.0), e.g. numpy's own x[1]
        return np.asarray(x)
    v = value(x)
    if isinstance(v, (np.ndarray, np.generic)):
        raise dtype_error(op, arg, v.dtype)
    raise TypeError(
        f"{op}: {arg} must be a numpy array (or a traced one), got {type(v).__name__}; "
        "wrap it with np.asarray(..., dtype=np.float32)"
    )


def is_array(x) -> bool:
    """A numpy array of any dtype (subclasses included), a tracer, or a batched array (``fnnet.vmap``)."""
    return type(x) is Tracer or isinstance(x, np.ndarray) or type(x) is Batched


def check_optional_floats(op: str, **arrays) -> tuple:
    """:func:`check_float` for each named array that is not None; returns them in order (None kept)."""
    return tuple(None if a is None else check_float(op, name, a) for name, a in arrays.items())


def check_array(where: str, arg: str, x):
    """``x`` as a plain array of any dtype (see :func:`check_float`), for integer and boolean inputs such as
    indices, labels and masks; tracers are rejected: they are not differentiable there."""
    if type(x) is Tracer:
        raise TypeError(
            f"{where}: {arg} must be a plain numpy array, got a traced array; it is not differentiable, pass "
            f"fnnet.stop_gradient({arg}) or a numpy array"
        )
    if type(x) is np.ndarray and x.dtype.isnative and x.flags.aligned:
        return x
    return plain_array(where, arg, x) if isinstance(x, np.ndarray) else x


def as_number(op: str, arg: str, v, expected: str = "a number") -> float:
    """A hyperparameter given as a Python or numpy real number, or a 0-d real array, as a float; the
    TypeError for anything else reads ``"<op>: <arg> expected <expected>, got ..."``."""
    if type(v) is Tracer:
        raise TypeError(
            f"{op}: {arg} expected {expected}, got a traced array; it is not differentiable here, pass "
            f"float(fnnet.stop_gradient({arg}))"
        )
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf":
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{op}: {arg} expected {expected}, got {v!r}")
    return float(v)


def check_same_dtype(op: str, **arrays) -> None:
    """All given arrays (None skipped) share one dtype; nothing is silently promoted."""
    first_name = first = None
    for name, v in arrays.items():
        if v is None:
            continue
        dt = (v.value if type(v) is Tracer else v).dtype
        if first is None:
            first_name, first = name, dt
        elif dt != first:
            raise TypeError(
                f"{op}: {first_name} is {first} but {name} is {dt}; fnnet never promotes silently, "
                f"cast one of them (e.g. {name}.astype(np.{first}))"
            )


def check_ndim(op: str, arg: str, x, ndims, meaning: str = "") -> None:
    v = value(x)
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if v.ndim not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        extra = f" {meaning}" if meaning else ""
        raise ValueError(f"{op}: {arg} must have {expected} dimensions{extra}, got shape {v.shape}")


def _weak_dtype(like) -> np.dtype:
    v = value(like)
    return np.dtype(v.dtype.type) if isinstance(v, (np.ndarray, np.generic, Batched)) \
        and v.dtype.type in FLOAT_DTYPES else np.dtype(np.float64)


def as_operand(op, arg, x, like=None):
    """A binary op's operand: arrays/tracers are checked (see :func:`check_float`); Python and numpy scalars
    take the other operand's dtype (weak typing), so ``x * 2.0`` and ``x * np.float64(2.0)`` keep ``x``'s
    float32.  A 0-d array keeps its dtype, like the traced 0-d value ``x[1]`` it may stand for."""
    if isinstance(x, np.ndarray) and x.dtype == np.bool_:  # masks such as x * (x > 0): exact in any float dtype
        return plain_array(op, arg, x).astype(_weak_dtype(like))
    if type(x) is Batched and x.dtype == np.bool_:  # the same, one mask per example (fnnet.vmap)
        return x.astype(_weak_dtype(like))
    if type(x) is Tracer or isinstance(x, np.ndarray) or type(x) is Batched:
        return check_float(op, arg, x)
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        return np.asarray(x, dtype=_weak_dtype(like))
    raise TypeError(
        f"{op}: {arg} must be a float array, a traced array or a Python number, got {type(x).__name__}"
    )


def indices_in_range(n: int, indices: np.ndarray) -> bool:
    """True when every element of the int32/int64 array ``indices`` is in ``[0, n)`` (one kernel pass).
    Ops that take labels or row indices check with it, and a jit replay runs it as their quick check
    (``recording.check``'s ``fnnet_quick_check``) before building any message."""
    if not indices.size:
        return True
    lo, hi = K.index_range(indices)
    return lo >= 0 and hi < n


def contiguous(x: np.ndarray) -> np.ndarray:
    """C-contiguous view or copy (kernels read raw memory and must never see strided data)."""
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def normalize_axis(op: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for an array with {ndim} dimension(s)")
    return int(axis) % max(ndim, 1)
