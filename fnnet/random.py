"""Explicit, counter-based random numbers: keys in, numbers out, no hidden global state.

Design
------
A *key* is a numpy ``uint32`` array of shape ``(2,)``. Every function here is pure: it maps a key (and a
shape) to numbers with the Threefry-2x32 block cipher (20 rounds; Salmon, Moraes, Dror and Shaw, "Parallel
random numbers: as easy as 1, 2, 3", SC 2011). Word ``i`` of ``bits(key, shape)`` is the encryption of the
counter ``i // 2`` under ``key``, so the numbers depend only on the key and the shape, never on the process,
the thread count or the order of calls; code that needs randomness can run in any thread, be re-run by
``checkpoint``, or be replayed in another process and get identical numbers.

Because nothing advances behind the scenes, *using the same key twice gives the same numbers twice*. To get
independent streams, derive new keys: ``split(key, n)`` returns ``n`` child keys (the encryption of ``n``
distinct counters in a domain that ``bits`` never uses, so children are pairwise different and unrelated
to the parent's bits), and ``fold_in(key, i)`` derives a key from an integer (a step number, a layer
index). The usual pattern::

    key = fnnet.random.key(0)
    key, init_key = fnnet.random.split(key)           # consume init_key, keep `key` for later splits
    w = fnnet.random.normal(init_key, (784, 128))

Drawing a shape is a prefix of drawing a larger flat shape from the same key (``bits(k, 3)`` equals
``bits(k, 10)[:3]``); draws are stable across library versions (the tests pin golden values).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["key", "split", "fold_in", "bits", "uniform", "normal", "truncated_normal", "bernoulli",
           "permutation", "randint", "threefry2x32"]

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)   # Random123 R_32x2 rotation constants
_PARITY = 0x1BD11BDA                            # Threefish key-schedule parity constant
_SPLIT_DOMAIN = 0x53504C54                      # counter high word used by split ("SPLT")
_FOLD_DOMAIN = 0x464F4C44                       # counter high word used by fold_in ("FOLD")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def threefry2x32(key_words, counter_hi, counter_lo):
    """The Threefry-2x32 block cipher with 20 rounds, vectorised over counters.

    Args:
      key_words: ``(2,)`` uint32 key.
      counter_hi, counter_lo: uint32 arrays of the same shape: the two words of each counter.

    Returns:
      ``(out_hi, out_lo)``: two uint32 arrays of the counters' shape.
    """
    k0, k1 = (np.uint32(w) for w in np.asarray(key_words, np.uint32))
    with np.errstate(over="ignore"):
        schedule = (k0, k1, np.uint32(k0 ^ k1 ^ np.uint32(_PARITY)))
        x0 = np.asarray(counter_hi, np.uint32) + schedule[0]
        x1 = np.asarray(counter_lo, np.uint32) + schedule[1]
        for group in range(5):                     # 5 groups of 4 rounds, a key injection after each
            for r in _ROTATIONS[4 * (group % 2): 4 * (group % 2) + 4]:
                x0 += x1
                x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
                x1 ^= x0
            s = group + 1
            x0 += schedule[s % 3]
            x1 += schedule[(s + 1) % 3] + np.uint32(s)
    return x0, x1


# ------------------------------------------------------------------------------------- validation


def _describe(obj):
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    return f"{type(obj).__name__} {obj!r}"


def _check_key(k, where):
    """Raise TypeError/ValueError unless ``k`` is a (2,) uint32 array; ``where`` names the caller."""
    msg = (f"{where}: key must be a (2,) uint32 array from fnnet.random.key(seed) or split(...), "
           f"got {_describe(k)}")
    if not isinstance(k, np.ndarray) or k.dtype != np.uint32:
        raise TypeError(msg)
    if k.shape != (2,):
        hint = "; index the result of split, e.g. k1, k2 = split(key)" if k.ndim == 2 else ""
        raise ValueError(msg + hint)


def _as_shape(shape, where):
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


def _as_int(value, where, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int, got {_describe(value)}")
    return int(value)


def _float_dtype(dtype, where):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in _FLOATS:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype!r}; "
                        f"draw float32 and cast for float16")
    return dt


def _fold64(value):
    """A Python int folded deterministically into [0, 2**64): two's complement, then Threefry-chained."""
    if -(1 << 63) <= value < (1 << 64):
        return value & _MASK64
    words = []
    n = 1
    while not -(1 << (64 * n - 1)) <= value < (1 << (64 * n)):
        n += 1
    value &= (1 << (64 * n)) - 1
    for _ in range(n):
        words.append(value & _MASK64)
        value >>= 64
    state = np.array([words[0] >> 32, words[0] & _MASK32], np.uint32)
    for w in words[1:]:
        hi, lo = threefry2x32(state, np.uint32(w >> 32), np.uint32(w & _MASK32))
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
    value = _fold64(_as_int(seed, "fnnet.random.key", "seed"))
    return np.array([value >> 32, value & _MASK32], np.uint32)


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
    _check_key(key, "fnnet.random.split")
    num = _as_int(num, "fnnet.random.split", "num")
    if not 1 <= num <= _MASK32:
        raise ValueError(f"fnnet.random.split: num must be in [1, 2**32), got {num}")
    counters = np.arange(num, dtype=np.uint32)
    hi, lo = threefry2x32(key, np.full(num, _SPLIT_DOMAIN, np.uint32), counters)
    return np.stack([hi, lo], axis=1)


def fold_in(key: np.ndarray, data: int) -> np.ndarray:
    """Derive a new key from ``key`` and an integer (e.g. a step number); different data give different keys.

    Args:
      key: ``(2,)`` uint32 key.
      data: any int, folded into 64 bits as in :func:`key`.

    Returns:
      ``(2,)`` uint32 key.
    """
    _check_key(key, "fnnet.random.fold_in")
    value = _fold64(_as_int(data, "fnnet.random.fold_in", "data"))
    hi, lo = threefry2x32(key, np.uint32(_FOLD_DOMAIN), np.uint32(0))
    fold_key = np.array([hi, lo], np.uint32)
    hi, lo = threefry2x32(fold_key, np.uint32(value >> 32), np.uint32(value & _MASK32))
    return np.array([hi, lo], np.uint32)


# ------------------------------------------------------------------------------------------ draws


def _bits_flat(key, n):
    """``n`` uint32 words: the two output words of counters ``0, 1, ..., ceil(n/2) - 1``, interleaved."""
    m = (n + 1) // 2
    counters = np.arange(m, dtype=np.uint64)
    hi, lo = threefry2x32(key, (counters >> np.uint64(32)).astype(np.uint32),
                          (counters & np.uint64(_MASK32)).astype(np.uint32))
    return np.stack([hi, lo], axis=1).reshape(-1)[:n]


def bits(key: np.ndarray, shape=()) -> np.ndarray:
    """Uniform random uint32 words.

    Args:
      key: ``(2,)`` uint32 key.
      shape: int or tuple of ints.

    Returns:
      uint32 array of ``shape``.
    """
    _check_key(key, "fnnet.random.bits")
    shape = _as_shape(shape, "fnnet.random.bits")
    return _bits_flat(key, math.prod(shape)).reshape(shape)


def _unit(key, n, dtype, offset):
    """``n`` float64 values ``(j + offset) * 2**-b``: ``b = 24`` words for float32, ``b = 53`` for float64."""
    if dtype == np.float32:
        words = _bits_flat(key, n) >> np.uint32(8)
        return (words.astype(np.float64) + offset) * 2.0 ** -24
    pairs = _bits_flat(key, 2 * n).reshape(n, 2).astype(np.uint64)
    words = ((pairs[:, 0] << np.uint64(32)) | pairs[:, 1]) >> np.uint64(11)
    return (words.astype(np.float64) + offset) * 2.0 ** -53


def uniform(key, shape=(), dtype=np.float32, minval=0.0, maxval=1.0) -> np.ndarray:
    """Uniform floats in ``[minval, maxval)``.

    Built from 24 random bits (float32) or 53 random bits from two words (float64), so every value of the
    unit grid is exact; results are clamped below ``maxval`` after scaling, so ``maxval`` is never returned.

    Args:
      key: ``(2,)`` uint32 key.
      shape: int or tuple of ints.
      dtype: float32 or float64.
      minval, maxval: finite floats with ``minval < maxval``.

    Returns:
      array of ``shape`` and ``dtype``.

    Raises:
      TypeError: bad key, shape or dtype. ValueError: negative dimension or bad bounds.
    """
    where = "fnnet.random.uniform"
    _check_key(key, where)
    shape, dt = _as_shape(shape, where), _float_dtype(dtype, where)
    lo, hi = dt.type(minval), dt.type(maxval)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{where}: need finite minval < maxval (in {dt}), got minval={minval}, maxval={maxval}")
    u = _unit(key, math.prod(shape), dt, 0.0).astype(dt)
    with np.errstate(over="ignore"):
        out = lo + u * (hi - lo)
    return np.clip(out, lo, np.nextafter(hi, lo)).reshape(shape)


def normal(key, shape=(), dtype=np.float32) -> np.ndarray:
    """Standard normal floats (Box-Muller on two uniforms in ``(0, 1]`` and ``[0, 1)``, computed in float64).

    Args:
      key: ``(2,)`` uint32 key. shape: int or tuple. dtype: float32 or float64.

    Returns:
      array of ``shape`` and ``dtype``.
    """
    where = "fnnet.random.normal"
    _check_key(key, where)
    shape, dt = _as_shape(shape, where), _float_dtype(dtype, where)
    n = math.prod(shape)
    m = (n + 1) // 2
    u = _unit(key, 2 * m, dt, 0.0).reshape(m, 2)
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 0]))    # 1 - u in (0, 1]: log never sees 0
    angle = 2.0 * np.pi * u[:, 1]
    z = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).reshape(-1)[:n]
    return z.astype(dt).reshape(shape)


def truncated_normal(key, shape=(), dtype=np.float32, lower=-2.0, upper=2.0) -> np.ndarray:
    """Standard normal conditioned on ``lower < z < upper`` (exact, by inverting the normal CDF).

    Uses ``scipy.special.ndtr`` / ``ndtri`` (imported on first use). Values are strictly inside
    ``(lower, upper)`` after rounding to ``dtype``. Note the standard deviation is below 1 (about 0.8796
    for the default ``[-2, 2]``).

    Args:
      key: ``(2,)`` uint32 key. shape: int or tuple. dtype: float32 or float64.
      lower, upper: bounds in standard deviations, ``lower < upper`` (may be infinite).

    Returns:
      array of ``shape`` and ``dtype``.
    """
    from scipy.special import ndtr, ndtri

    where = "fnnet.random.truncated_normal"
    _check_key(key, where)
    shape, dt = _as_shape(shape, where), _float_dtype(dtype, where)
    lower, upper = float(lower), float(upper)
    if not lower < upper:
        raise ValueError(f"{where}: need lower < upper, got lower={lower}, upper={upper}")
    flip = lower > 0.0                      # invert in the lower tail, where the CDF is accurate
    a, b = (-upper, -lower) if flip else (lower, upper)
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    u = _unit(key, math.prod(shape), dt, 0.5)        # strictly inside (0, 1)
    z = ndtri(cdf_a + u * (cdf_b - cdf_a))
    z = np.clip(-z if flip else z, lower, upper).astype(dt)
    inside_lo = np.nextafter(dt.type(lower), dt.type(np.inf)) if np.isfinite(lower) else dt.type(-np.inf)
    inside_hi = np.nextafter(dt.type(upper), dt.type(-np.inf)) if np.isfinite(upper) else dt.type(np.inf)
    return np.clip(z, inside_lo, inside_hi).reshape(shape)


def bernoulli(key, shape=(), p=0.5) -> np.ndarray:
    """Booleans that are True with probability ``p`` (a float or an array broadcastable to ``shape``).

    Raises:
      ValueError: ``p`` outside ``[0, 1]`` or not broadcastable to ``shape``.
    """
    where = "fnnet.random.bernoulli"
    _check_key(key, where)
    shape = _as_shape(shape, where)
    p = np.asarray(p, np.float64)
    if np.any(~((p >= 0.0) & (p <= 1.0))):
        raise ValueError(f"{where}: p must be in [0, 1], got {p if p.ndim == 0 else 'an array outside it'}")
    try:
        p = np.broadcast_to(p, shape)
    except ValueError:
        raise ValueError(f"{where}: p of shape {p.shape} does not broadcast to shape {shape}") from None
    words = bits(key, shape).astype(np.float64)
    return words < p * 2.0 ** 32


def _uint64_words(key, n):
    pairs = _bits_flat(key, 2 * n).reshape(n, 2).astype(np.uint64)
    return (pairs[:, 0] << np.uint64(32)) | pairs[:, 1]


def permutation(key, n_or_array):
    """A random permutation of ``arange(n)``, or of an array along axis 0.

    Sorts 64-bit random words with a stable sort (ties, of probability ~n**2 / 2**65, keep index order).

    Args:
      key: ``(2,)`` uint32 key.
      n_or_array: an int ``n >= 0`` or an array with at least one dimension.

    Returns:
      int64 array of length ``n``, or the array with its rows permuted (a copy).
    """
    where = "fnnet.random.permutation"
    _check_key(key, where)
    if isinstance(n_or_array, (int, np.integer)) and not isinstance(n_or_array, (bool, np.bool_)):
        n = int(n_or_array)
        if n < 0:
            raise ValueError(f"{where}: n must be >= 0, got {n}")
        return np.argsort(_uint64_words(key, n), kind="stable").astype(np.int64)
    if isinstance(n_or_array, (bool, np.bool_, float)):
        raise TypeError(f"{where}: expected an int or an array, got {_describe(n_or_array)}")
    x = np.asarray(n_or_array)
    if x.ndim == 0:
        raise ValueError(f"{where}: array must have at least one dimension, got a 0-d array")
    return x[np.argsort(_uint64_words(key, x.shape[0]), kind="stable")]


def randint(key, shape, minval: int, maxval: int, dtype=np.int64) -> np.ndarray:
    """Uniform integers in ``[minval, maxval)`` (64 random bits reduced modulo the span; bias < span / 2**64).

    Raises:
      TypeError: bad dtype (not an integer dtype) or non-int bounds. ValueError: empty or unrepresentable range.
    """
    where = "fnnet.random.randint"
    _check_key(key, where)
    shape = _as_shape(shape, where)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "iu":
        raise TypeError(f"{where}: dtype must be an integer dtype such as int64, got {dtype!r}")
    lo, hi = _as_int(minval, where, "minval"), _as_int(maxval, where, "maxval")
    info = np.iinfo(dt)
    if not (lo < hi and info.min <= lo and hi - 1 <= info.max):
        raise ValueError(f"{where}: need minval < maxval within {dt} range [{info.min}, {info.max}], "
                         f"got minval={lo}, maxval={hi}")
    span = hi - lo
    words = _uint64_words(key, math.prod(shape))
    if span < (1 << 64):
        words = words % np.uint64(span)
    with np.errstate(over="ignore"):
        words = words + np.uint64(lo & _MASK64)
    view = np.uint64 if dt.kind == "u" else np.int64
    return words.view(view).astype(dt).reshape(shape)
