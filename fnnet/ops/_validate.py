"""Input checks shared by every op: run in Python before any kernel sees the data.

Messages follow one form: ``"<op>: <arg> expected ..., got ...; <how to fix>"``.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import Tracer, half

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


def check_float(op: str, arg: str, x) -> None:
    """Raise unless ``x`` is a float16/32/64 ndarray (or a tracer of one)."""
    v = x.value if type(x) is Tracer else x
    if type(v) is np.ndarray and v.dtype.type in FLOAT_DTYPES:
        return
    if not isinstance(v, np.ndarray):
        raise TypeError(
            f"{op}: {arg} must be a numpy array (or a traced one), got {type(v).__name__}; "
            "wrap it with np.asarray(..., dtype=np.float32)"
        )
    if v.dtype.type not in FLOAT_DTYPES:
        raise dtype_error(op, arg, v.dtype)


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


def as_operand(op: str, arg: str, x, like=None):
    """A binary op's operand: arrays/tracers are checked; Python and numpy scalars take the other
    operand's dtype (weak typing), so ``x * 2.0`` keeps ``x``'s float32."""
    if type(x) is np.ndarray and x.dtype == np.bool_:  # masks such as x * (x > 0): exact in any float dtype
        other = value(like)
        dtype = other.dtype if type(other) is np.ndarray and other.dtype.type in FLOAT_DTYPES else np.float64
        return x.astype(dtype)
    if type(x) is Tracer or type(x) is np.ndarray:
        check_float(op, arg, x)
        return x
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        dtype = value(like).dtype if like is not None and type(value(like)) is np.ndarray else np.float64
        if dtype.type not in FLOAT_DTYPES:
            dtype = np.float64
        return np.asarray(x, dtype=dtype)
    raise TypeError(
        f"{op}: {arg} must be a float array, a traced array or a Python number, got {type(x).__name__}"
    )


def contiguous(x: np.ndarray) -> np.ndarray:
    """C-contiguous view or copy (kernels read raw memory and must never see strided data)."""
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def normalize_axis(op: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for an array with {ndim} dimension(s)")
    return int(axis) % max(ndim, 1)
