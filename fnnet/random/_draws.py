"""The draws: ``bits``, ``uniform``, ``normal``, ``truncated_normal``, ``bernoulli``, ``permutation``,
``randint``.

Every draw is made in chunks of ``CHUNK`` values, each computed from its index range alone: a Threefry
kernel gives the random bits, then the chunk goes through the same numpy expressions as a whole array would
(float32 normals through a kernel that provably rounds to the same values, see ``_box_muller_float32``).
So the numbers depend neither on the chunking nor on the thread count, chunks run in parallel, and a draw
needs little memory beyond its result; ``fnnet.init`` scales and converts (to float16) chunk by chunk too.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..autodiff.recording import host_step  # fnnet.jit records each draw as one step

from fnnet.kernels import random as _kernels

from ._keys import MASK64, as_dtype, as_int, as_shape, check_key, describe, float_dtype

CHUNK = 1 << 16                                 # values per work item: a constant, never the thread count


# ------------------------------------------------------------------------------------- chunked generation


def _for_each_chunk(n, work):
    """Call ``work(start, stop)`` on the ranges ``[0, CHUNK), [CHUNK, 2 * CHUNK), ...`` covering ``range(n)``,
    spread over the calling thread's share of the cores.  Each chunk's values depend on its range only."""
    starts = range(0, n, CHUNK)
    workers = min(len(starts), _kernels.thread_count())
    if workers <= 1:
        for start in starts:
            work(start, min(start + CHUNK, n))
        return
    with ThreadPoolExecutor(workers) as pool:        # kernels and numpy release the GIL
        for _ in pool.map(lambda start: work(start, min(start + CHUNK, n)), starts):
            pass


def _generate(shape, dtype, fill, out_dtype=None, scale=None, shift=None):
    """An array of ``shape`` made chunk by chunk: ``fill(start, stop, dest)`` writes the flat values
    ``[start, stop)`` in ``dtype`` into ``dest``; they are then multiplied by ``scale`` and added ``shift``
    (in ``dtype``, when given) and stored as ``out_dtype``.  Memory beyond the result: a few chunks."""
    dtype = np.dtype(dtype)
    out_dtype = dtype if out_dtype is None else np.dtype(out_dtype)
    out = np.empty(math.prod(shape), out_dtype)

    def work(start, stop):
        dest = out[start:stop] if out_dtype == dtype else np.empty(stop - start, dtype)
        fill(start, stop, dest)
        if scale is not None:
            np.multiply(dest, scale, out=dest)
        if shift is not None:
            np.add(dest, shift, out=dest)
        if out_dtype != dtype:
            out[start:stop] = dest

    _for_each_chunk(out.size, work)
    return out.reshape(shape)


def _unit_grid(key, dtype):
    """``fill(start, offset, dest)``: values ``(j + offset) * 2**-b`` of the stream, ``j`` the top 24 bits of
    a word (float32, one word per value) or 53 bits of a counter (float64, one counter per value)."""
    grid = _kernels.unit_float32_grid if dtype == np.float32 else _kernels.unit_float64_grid
    return lambda start, offset, dest: grid(key[0], key[1], start, offset, dest)


def _stream(key, dtype):
    """``fill(start, stop, dest)`` writing stream values ``[start, stop)`` into ``dest``: uint32 words, or
    uint64 ``hi << 32 | lo`` (one counter each)."""
    kernel = _kernels.threefry_words if np.dtype(dtype) == np.uint32 else _kernels.uint64_words
    return lambda start, stop, dest: kernel(key[0], key[1], start, dest)


# ------------------------------------------------------------------------------------------ draws


@host_step
def bits(key: np.ndarray, shape=()) -> np.ndarray:
    """Uniform random uint32 words.

    Args:
      key: ``(2,)`` uint32 key.
      shape: int or tuple of ints.

    Returns:
      uint32 array of ``shape``.
    """
    check_key(key, "fnnet.random.bits")
    shape = as_shape(shape, "fnnet.random.bits")
    return _generate(shape, np.uint32, _stream(key, np.uint32))


@host_step
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
      TypeError: bad key, shape or dtype.
      ValueError: negative dimension or bad bounds.
    """
    return draw_uniform(key, shape, dtype, minval, maxval)


def draw_uniform(key, shape, dtype, minval, maxval, **store):
    """:func:`uniform`; ``store`` (``out_dtype``, ``scale``, ``shift``) as in :func:`_generate`."""
    where = "fnnet.random.uniform"
    check_key(key, where)
    shape, dt = as_shape(shape, where), float_dtype(dtype, where)
    lo, hi = dt.type(minval), dt.type(maxval)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{where}: need finite minval < maxval (in {dt}), got minval={minval}, maxval={maxval}")
    with np.errstate(over="ignore"):
        width = hi - lo
    top, unit = np.nextafter(hi, lo), _unit_grid(key, dt)

    def fill(start, stop, dest):
        unit(start, 0.0, dest)
        with np.errstate(over="ignore"):             # per chunk: worker threads do not inherit errstate
            np.multiply(dest, width, out=dest)
            np.add(dest, lo, out=dest)
        np.clip(dest, lo, top, out=dest)

    return _generate(shape, dt, fill, **store)


@host_step
def normal(key, shape=(), dtype=np.float32) -> np.ndarray:
    """Standard normal floats (Box-Muller on two uniforms in ``(0, 1]`` and ``[0, 1)``, computed in float64).

    Args:
      key: ``(2,)`` uint32 key.
      shape: int or tuple.
      dtype: float32 or float64.

    Returns:
      array of ``shape`` and ``dtype``.
    """
    return draw_normal(key, shape, dtype)


def draw_normal(key, shape, dtype, **store):
    """:func:`normal`; ``store`` (``out_dtype``, ``scale``, ``shift``) as in :func:`_generate`."""
    where = "fnnet.random.normal"
    check_key(key, where)
    shape, dt = as_shape(shape, where), float_dtype(dtype, where)
    unit = _unit_grid(key, dt)
    box_muller = _box_muller_float32 if dt == np.float32 else _box_muller

    def fill(start, stop, dest):                      # values 2i, 2i + 1 come from uniforms 2i, 2i + 1
        u = np.empty(((stop - start + 1) // 2, 2))
        unit(start, 0.0, u.reshape(-1))
        box_muller(u, dest)

    return _generate(shape, dt, fill, **store)


def _box_muller(u, dest):
    """``dest[0::2], dest[1::2] = r cos(a), r sin(a)`` (computed in float64) of the uniform pairs ``u``:
    ``(pairs, 2)``, ``r = sqrt(-2 log(1 - u[:, 0]))``, ``a = 2 pi u[:, 1]``; ``dest`` has ``2 pairs`` or
    ``2 pairs - 1`` values."""
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 0]))    # 1 - u in (0, 1]: log never sees 0
    angle = 2.0 * np.pi * u[:, 1]
    np.multiply(radius, np.cos(angle), out=dest[0::2])
    odd = dest[1::2]
    np.multiply(radius[:odd.size], np.sin(angle[:odd.size]), out=odd)


def _box_muller_float32(u, dest):
    """:func:`_box_muller` into float32 ``dest``, by a kernel whose few unsure pairs numpy recomputes: the
    same float32 values, 5-10x faster."""
    even = dest if dest.size % 2 == 0 else np.empty(dest.size + 1, np.float32)
    unsure = np.empty(len(u), np.bool_)
    _kernels.box_muller_float32(u.reshape(-1), even, unsure)
    redo = np.flatnonzero(unsure)
    if redo.size:
        exact = np.empty(2 * redo.size)
        _box_muller(u[redo], exact)
        even[2 * redo], even[2 * redo + 1] = exact[0::2], exact[1::2]
    if even is not dest:
        dest[...] = even[:dest.size]


@host_step
def truncated_normal(key, shape=(), dtype=np.float32, lower=-2.0, upper=2.0) -> np.ndarray:
    """Standard normal conditioned on ``lower < z < upper`` (exact, by inverting the normal CDF).

    Uses ``scipy.special.ndtr`` / ``ndtri`` (imported on first use). Values are strictly inside
    ``(lower, upper)`` after rounding to ``dtype``. Note the standard deviation is below 1 (about 0.8796
    for the default ``[-2, 2]``).

    Args:
      key: ``(2,)`` uint32 key.
      shape: int or tuple.
      dtype: float32 or float64.
      lower, upper: bounds in standard deviations, ``lower < upper`` (may be infinite).

    Returns:
      array of ``shape`` and ``dtype``.
    """
    return draw_truncated_normal(key, shape, dtype, lower, upper)


def draw_truncated_normal(key, shape, dtype, lower=-2.0, upper=2.0, **store):
    """:func:`truncated_normal`; ``store`` (``out_dtype``, ``scale``, ``shift``) as in :func:`_generate`."""
    from scipy.special import ndtr, ndtri

    where = "fnnet.random.truncated_normal"
    check_key(key, where)
    shape, dt = as_shape(shape, where), float_dtype(dtype, where)
    lower, upper = float(lower), float(upper)
    if not lower < upper:
        raise ValueError(f"{where}: need lower < upper, got lower={lower}, upper={upper}")
    flip = lower > 0.0                      # invert in the lower tail, where the CDF is accurate
    a, b = (-upper, -lower) if flip else (lower, upper)
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    inside_lo = np.nextafter(dt.type(lower), dt.type(np.inf)) if np.isfinite(lower) else dt.type(-np.inf)
    inside_hi = np.nextafter(dt.type(upper), dt.type(-np.inf)) if np.isfinite(upper) else dt.type(np.inf)
    unit = _unit_grid(key, dt)

    def fill(start, stop, dest):
        u = np.empty(stop - start)
        unit(start, 0.5, u)                           # strictly inside (0, 1)
        z = ndtri(cdf_a + u * (cdf_b - cdf_a))
        dest[...] = np.clip(-z if flip else z, lower, upper)
        np.clip(dest, inside_lo, inside_hi, out=dest)

    return _generate(shape, dt, fill, **store)


@host_step
def bernoulli(key, shape=(), p=0.5) -> np.ndarray:
    """Booleans that are True with probability ``p`` (a float or an array broadcastable to ``shape``).

    Raises:
      ValueError: ``p`` outside ``[0, 1]`` or not broadcastable to ``shape``.
    """
    where = "fnnet.random.bernoulli"
    check_key(key, where)
    shape = as_shape(shape, where)
    p = np.asarray(p, np.float64)
    if np.any(~((p >= 0.0) & (p <= 1.0))):
        raise ValueError(f"{where}: p must be in [0, 1], got {p if p.ndim == 0 else 'an array outside it'}")
    try:
        p = np.broadcast_to(p, shape) if p.ndim else p
    except ValueError:
        raise ValueError(f"{where}: p of shape {p.shape} does not broadcast to shape {shape}") from None

    stream = _stream(key, np.uint32)

    def fill(start, stop, dest):                      # word < p * 2**32, compared exactly in float64
        words = np.empty(stop - start, np.uint32)
        stream(start, stop, words)
        np.less(words, p * 2.0 ** 32 if p.ndim == 0 else p.flat[start:stop] * 2.0 ** 32, out=dest)

    return _generate(shape, np.bool_, fill)


@host_step
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
    check_key(key, where)
    if isinstance(n_or_array, (int, np.integer)) and not isinstance(n_or_array, (bool, np.bool_)):
        n = int(n_or_array)
        if n < 0:
            raise ValueError(f"{where}: n must be >= 0, got {n}")
        words = _generate((n,), np.uint64, _stream(key, np.uint64))
        return np.argsort(words, kind="stable").astype(np.int64, copy=False)
    if isinstance(n_or_array, (bool, np.bool_, float)):
        raise TypeError(f"{where}: expected an int or an array, got {describe(n_or_array)}")
    x = np.asarray(n_or_array)
    if x.ndim == 0:
        raise ValueError(f"{where}: array must have at least one dimension, got a 0-d array")
    return x[permutation(key, x.shape[0])]


@host_step
def randint(key, shape, minval: int, maxval: int, dtype=np.int64) -> np.ndarray:
    """Uniform integers in ``[minval, maxval)`` (64 random bits reduced modulo the span; bias < span / 2**64).

    Raises:
      TypeError: bad dtype (not an integer dtype) or non-int bounds.
      ValueError: empty or unrepresentable range.
    """
    where = "fnnet.random.randint"
    check_key(key, where)
    shape = as_shape(shape, where)
    dt = as_dtype(dtype, where, lambda d: d.kind in "iu", "an integer dtype such as int64")
    lo, hi = as_int(minval, where, "minval"), as_int(maxval, where, "maxval")
    info = np.iinfo(dt)
    if not (lo < hi and info.min <= lo and hi - 1 <= info.max):
        raise ValueError(f"{where}: need minval < maxval within {dt} range [{info.min}, {info.max}], "
                         f"got minval={lo}, maxval={hi}")
    span = hi - lo
    view = np.uint64 if dt.kind == "u" else np.int64

    stream = _stream(key, np.uint64)

    def fill(start, stop, dest):
        words = np.empty(stop - start, np.uint64)
        stream(start, stop, words)
        if span < (1 << 64):
            np.remainder(words, np.uint64(span), out=words)
        np.add(words, np.uint64(lo & MASK64), out=words)      # wraps modulo 2**64, as intended
        dest[...] = words.view(view)

    return _generate(shape, dt, fill)
