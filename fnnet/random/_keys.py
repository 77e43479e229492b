"""Keys and the Threefry cipher behind them: ``key``, ``split``, ``fold_in``, plus the argument checks that
every function of :mod:`fnnet.random` (and :mod:`fnnet.init`) shares."""

from __future__ import annotations

import numpy as np

from fnnet.kernels import random as _kernels

from ..autodiff.recording import host_step  # fnnet.jit records each draw as one step

MASK32 = 0xFFFFFFFF
MASK64 = (1 << 64) - 1
_SPLIT_DOMAIN = 0x53504C54                      # counter high word used by split ("SPLT")
_FOLD_DOMAIN = 0x464F4C44                       # counter high word used by fold_in ("FOLD")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def threefry2x32(key_words, counter_hi, counter_lo):
    """The Threefry-2x32 block cipher with 20 rounds, vectorised over counters.

    Args:
      key_words: ``(2,)`` uint32 key.
      counter_hi, counter_lo: uint32 arrays (or scalars) of broadcastable shapes: the two words of each counter.

    Returns:
      ``(out_hi, out_lo)``: two uint32 arrays of the counters' broadcast shape (scalars for scalar counters).
    """
    k0, k1 = np.asarray(key_words, np.uint32)
    hi, lo = np.broadcast_arrays(np.asarray(counter_hi, np.uint32), np.asarray(counter_lo, np.uint32))
    out_hi, out_lo = np.empty(hi.size, np.uint32), np.empty(hi.size, np.uint32)
    _kernels.threefry_blocks(k0, k1, np.ascontiguousarray(hi).reshape(-1), np.ascontiguousarray(lo).reshape(-1),
                             out_hi, out_lo)
    return out_hi.reshape(hi.shape)[()], out_lo.reshape(hi.shape)[()]


# ------------------------------------------------------------------------------------- validation


def describe(obj):
    """``obj`` for an error message: an array's shape and dtype, else its type and repr."""
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    return f"{type(obj).__name__} {obj!r}"


def check_key(k, where):
    """Raise TypeError/ValueError unless ``k`` is a (2,) uint32 array; ``where`` names the caller."""
    msg = (f"{where}: key must be a (2,) uint32 array from fnnet.random.key(seed) or split(...), "
           f"got {describe(k)}")
    if not isinstance(k, np.ndarray) or k.dtype != np.uint32:
        raise TypeError(msg)
    if k.shape != (2,):
        hint = "; index the result of split, e.g. k1, k2 = split(key)" if k.ndim == 2 else ""
        raise ValueError(msg + hint)


def as_shape(shape, where):
    """``shape`` (an int or a sequence of ints) as a tuple of non-negative ints."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{where}: shape must be an int or a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{where}: shape must be an int or a tuple of ints, got {shape!r}")
    if any(d < 0 for d in dims):
        raise ValueError(f"{where}: shape dimensions must be >= 0, got {shape!r}")
    return tuple(int(d) for d in dims)


def as_int(value, where, name):
    """``value`` as a Python int; TypeError naming ``name`` for floats, bools and other types."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int, got {describe(value)}")
    return int(value)


def as_dtype(dtype, where, allowed, expected: str):
    """``np.dtype(dtype)`` when ``allowed(dt)``; TypeError saying ``dtype must be <expected>`` otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or not allowed(dt):
        raise TypeError(f"{where}: dtype must be {expected}, got {dtype!r}")
    return dt


def float_dtype(dtype, where):
    """``dtype`` as float32 or float64; TypeError for anything else."""
    return as_dtype(dtype, where, lambda dt: dt in _FLOATS, "float32 or float64; draw float32 and cast for float16")


def _fold64(value):
    """A Python int folded deterministically into [0, 2**64): two's complement, then Threefry-chained."""
    if -(1 << 63) <= value < (1 << 64):
        return value & MASK64
    words = []
    n = 1
    while not -(1 << (64 * n - 1)) <= value < (1 << (64 * n)):
        n += 1
    value &= (1 << (64 * n)) - 1
    for _ in range(n):
        words.append(value & MASK64)
        value >>= 64
    state = np.array([words[0] >> 32, words[0] & MASK32], np.uint32)
    for w in words[1:]:
        hi, lo = threefry2x32(state, np.uint32(w >> 32), np.uint32(w & MASK32))
        state = np.array([hi, lo], np.uint32)
    return (int(state[0]) << 32) | int(state[1])


# ------------------------------------------------------------------------------------------ keys


def key(seed: int) -> np.ndarray:
    """Make a key from an integer seed.

    Args:
      seed: any Python (or numpy) int. Seeds in ``[-2**63, 2**64)`` map to their 64-bit two's complement
        (so ``-1`` and ``2**64 - 1`` give the same key); larger seeds are hashed into 64 bits.

    Returns:
      ``(2,)`` uint32 key ``[high 32 bits, low 32 bits]``.

    Raises:
      TypeError: ``seed`` is not an int (floats and bools are rejected).
    """
    value = _fold64(as_int(seed, "fnnet.random.key", "seed"))
    return np.array([value >> 32, value & MASK32], np.uint32)


@host_step
def split(key: np.ndarray, num: int = 2) -> np.ndarray:
    """Derive ``num`` new keys from ``key``.

    Args:
      key: ``(2,)`` uint32 key.
      num: number of children, ``>= 1``.

    Returns:
      ``(num, 2)`` uint32 array; row ``i`` is the encryption of counter ``(SPLIT_DOMAIN, i)``, so children
      are pairwise different.

    Raises:
      TypeError / ValueError: bad key or ``num``.
    """
    check_key(key, "fnnet.random.split")
    num = as_int(num, "fnnet.random.split", "num")
    if not 1 <= num <= MASK32:
        raise ValueError(f"fnnet.random.split: num must be in [1, 2**32), got {num}")
    counters = np.arange(num, dtype=np.uint32)
    hi, lo = threefry2x32(key, np.full(num, _SPLIT_DOMAIN, np.uint32), counters)
    return np.stack([hi, lo], axis=1)


@host_step
def fold_in(key: np.ndarray, data: int) -> np.ndarray:
    """Derive a new key from ``key`` and an integer (e.g. a step number); different data give different keys.

    Args:
      key: ``(2,)`` uint32 key.
      data: any int, folded into 64 bits as in :func:`key`.

    Returns:
      ``(2,)`` uint32 key.
    """
    check_key(key, "fnnet.random.fold_in")
    value = _fold64(as_int(data, "fnnet.random.fold_in", "data"))
    hi, lo = threefry2x32(key, np.uint32(_FOLD_DOMAIN), np.uint32(0))
    fold_key = np.array([hi, lo], np.uint32)
    hi, lo = threefry2x32(fold_key, np.uint32(value >> 32), np.uint32(value & MASK32))
    return np.array([hi, lo], np.uint32)
