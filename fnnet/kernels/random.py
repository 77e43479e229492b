"""Counter-based random kernels: the Threefry-2x32 block cipher (20 rounds) and the streams built on it.

A key's *stream* is the encryption of the 64-bit counters ``0, 1, 2, ...``: counter ``c`` (split into the
words ``c >> 32`` and ``c & 0xFFFFFFFF``) encrypts to the two words ``(hi, lo)``.  Every stream kernel
writes the values ``start, start + 1, ...`` of one view of that stream into ``out``, so any slice of a
stream can be computed on its own, in any thread; each value depends only on the key and its index.
Kernels are serial: ``fnnet.random`` runs them over fixed-size chunks.  ``box_muller_float32`` turns a
chunk's uniforms into float32 normals.

Arguments: ``k0, k1`` the key's two uint32 words; ``start`` an int64 index; ``out`` 1-D, C-contiguous.
The word-based kernels (``threefry_words``, ``unit_float32_grid``) need an even ``start``.
"""

import math

import numba
import numpy as np

from ._jit import helper, kernel

__all__ = ["threefry_blocks", "threefry_words", "uint64_words", "unit_float32_grid", "unit_float64_grid",
           "box_muller_float32", "thread_count"]

_PARITY = np.uint32(0x1BD11BDA)        # Threefish key-schedule parity constant
_LOW_WORD = 0xFFFFFFFF
_INV_2_POW_24 = 2.0 ** -24
_INV_2_POW_53 = 2.0 ** -53

# Box-Muller in float32 (see box_muller_float32)
_TWO_PI = 2.0 * math.pi
_TWO_OVER_PI = 2.0 / math.pi
_PIO2_HIGH = 1.5707963267341256        # pi/2 cut to 33 significant bits, so k * _PIO2_HIGH is exact for k <= 4
_PIO2_LOW = 6.077100506506192e-11      # pi/2 - _PIO2_HIGH, rounded (the rest is below 4e-27)
_LN2 = math.log(2.0)
_MANTISSA = (1 << 52) - 1
_SQRT2_MANTISSA = 0x6A09E667F3BCD      # mantissa bits of sqrt(2)
_SIN_TAYLOR = tuple((-1) ** i / math.factorial(2 * i + 1) for i in range(9))   # sin x = x * sum c_i x**2i
_COS_TAYLOR = tuple((-1) ** i / math.factorial(2 * i) for i in range(10))      # cos x = sum c_i x**2i
_ATANH_TAYLOR = tuple(1.0 / (2 * i + 1) for i in range(11))   # log((1 + s) / (1 - s)) = 2s * sum c_i s**2i
_UNSURE = 2.0 ** -36                   # bound on |fast - numpy| / |value| (measured below 2**-50)
_NEAR_AXIS = 2.0 ** -20                # reduced angles this small lose relative accuracy: recompute


@helper(inline=True)
def _round(x0, x1, rotation):
    """One Threefry round: add, rotate left, xor (32-bit words)."""
    x0 = np.uint32(x0 + x1)
    x1 = np.uint32((x1 << rotation) | (x1 >> (32 - rotation)))
    return x0, x1 ^ x0


@helper(inline=True)
def _encrypt(k0, k1, c0, c1):
    """Threefry-2x32-20 of the counter ``(c0, c1)`` under the key ``(k0, k1)``: 5 groups of 4 rounds, the
    key schedule ``(k0, k1, k0 ^ k1 ^ parity)`` injected after each group."""
    k2 = np.uint32(k0 ^ k1 ^ _PARITY)
    x0, x1 = np.uint32(c0 + k0), np.uint32(c1 + k1)
    for group in range(5):
        if group % 2 == 0:
            x0, x1 = _round(x0, x1, 13)
            x0, x1 = _round(x0, x1, 15)
            x0, x1 = _round(x0, x1, 26)
            x0, x1 = _round(x0, x1, 6)
        else:
            x0, x1 = _round(x0, x1, 17)
            x0, x1 = _round(x0, x1, 29)
            x0, x1 = _round(x0, x1, 16)
            x0, x1 = _round(x0, x1, 24)
        s = (group + 1) % 3
        first = k0 if s == 0 else (k1 if s == 1 else k2)
        second = k1 if s == 0 else (k2 if s == 1 else k0)
        x0 = np.uint32(x0 + first)
        x1 = np.uint32(x1 + second + np.uint32(group + 1))
    return x0, x1


@helper(inline=True)
def _encrypt_counters(k0, k1, first, count):
    """The words ``(hi, lo)`` of the counters ``first, ..., first + count - 1``, as two new uint32 arrays
    (a loop of its own so that it vectorises)."""
    hi = np.empty(count, np.uint32)
    lo = np.empty(count, np.uint32)
    for j in range(count):
        counter = first + j
        hi[j], lo[j] = _encrypt(k0, k1, np.uint32(counter >> 32), np.uint32(counter & _LOW_WORD))
    return hi, lo


@helper(inline=True)
def _stream_words(k0, k1, start, count):
    """Words ``start, ..., start + count - 1`` of the stream (``start`` even) as a new uint32 array."""
    hi, lo = _encrypt_counters(k0, k1, start // 2, (count + 1) // 2)
    words = np.empty(2 * hi.size, np.uint32)
    for pair in range(hi.size):
        words[2 * pair] = hi[pair]
        words[2 * pair + 1] = lo[pair]
    return words[:count]


@helper(inline=True)
def _exact_float(word):
    """A uint32 as float64, exactly, via int32 conversions (which vectorise; uint32's do not)."""
    return np.float64(np.int32(word >> 16)) * 65536.0 + np.float64(np.int32(word & 0xFFFF))


@helper(inline=True)
def _polynomial(coefficients, x):
    """``sum coefficients[i] * x**i`` by Horner's rule."""
    total = 0.0
    for i in range(len(coefficients) - 1, -1, -1):
        total = total * x + coefficients[i]
    return total


@helper(inline=True)
def _cos_sin(angle):
    """``(cos(angle), sin(angle), x)`` for ``0 <= angle < 2 pi``: ``x = angle - k pi/2``, ``|x| <= pi/4``
    (``k * _PIO2_HIGH`` is subtracted exactly, so ``x`` is good to ~2**-52 relative unless tiny), then Taylor
    series."""
    k = np.int32(angle * _TWO_OVER_PI + 0.5)
    x = (angle - k * _PIO2_HIGH) - k * _PIO2_LOW
    x2 = x * x
    sin_x, cos_x = x * _polynomial(_SIN_TAYLOR, x2), _polynomial(_COS_TAYLOR, x2)
    quadrant = k & 3
    cos_a = sin_x if quadrant & 1 else cos_x
    sin_a = cos_x if quadrant & 1 else sin_x
    cos_a = -cos_a if quadrant == 1 or quadrant == 2 else cos_a
    sin_a = -sin_a if quadrant >= 2 else sin_a
    return cos_a, sin_a, x


@helper(inline=True)
def _log_of_split(exponent, mantissa):
    """``log(2**exponent * mantissa)`` for ``mantissa`` in ``[sqrt(1/2), sqrt(2))``, by the atanh series."""
    f = mantissa - 1.0
    s = f / (2.0 + f)
    return exponent * _LN2 + 2.0 * s * _polynomial(_ATANH_TAYLOR, s * s)


@helper(inline=True)
def _store_float32(value, out, index):
    """``out[index] = float32(value)``; returns True when ``value``'s error bound straddles a rounding
    boundary, so that the float32 of the exact value may differ."""
    margin = abs(value) * _UNSURE
    low = np.float32(value - margin)
    out[index] = low
    return low != np.float32(value + margin)


@kernel(parallel=False)
def box_muller_float32(u, out, unsure):
    """float32 normals ``out[2p], out[2p + 1] = r cos(a), r sin(a)``, ``r = sqrt(-2 log(1 - u[2p]))``,
    ``a = 2 pi u[2p + 1]``, equal to numpy's float64 Box-Muller rounded to float32.

    Branch-free series replace ``log1p``/``cos``/``sin`` (numpy's scalar libm calls cost ~60 ns a pair).  Their
    float64 results are within ``_UNSURE`` (relative) of numpy's, so they round to the same float32 unless a
    rounding boundary lies within that distance; those pairs (about 1 in 1000), ``u[2p] == 0`` (a zero's
    sign) and angles next to a multiple of pi/2 are flagged in ``unsure`` (bool) for the caller to
    recompute with numpy.  ``u``: ``(2 pairs,)`` float64 on the 2**-24 grid; ``out``: ``(2 pairs,)`` float32.
    """
    pairs = unsure.size
    w = np.empty(pairs)
    for p in range(pairs):
        w[p] = 1.0 - u[2 * p]                       # exact: u has 24 bits
    w_bits = w.view(np.int64)
    mantissa_bits = np.empty(pairs, np.int64)       # 1 - u = 2**e * m, m in [sqrt(1/2), sqrt(2))
    exponent = np.empty(pairs)
    for p in range(pairs):
        high = np.int64((w_bits[p] & _MANTISSA) > _SQRT2_MANTISSA)
        mantissa_bits[p] = (w_bits[p] & _MANTISSA) | ((1023 - high) << 52)
        exponent[p] = np.float64((w_bits[p] >> 52) - 1023 + high)
    mantissa = mantissa_bits.view(np.float64)
    for p in range(pairs):
        radius = np.sqrt(-2.0 * _log_of_split(exponent[p], mantissa[p]))
        cos_a, sin_a, reduced = _cos_sin(_TWO_PI * u[2 * p + 1])
        first = _store_float32(radius * cos_a, out, 2 * p)
        second = _store_float32(radius * sin_a, out, 2 * p + 1)
        unsure[p] = first | second | (u[2 * p] == 0.0) | (abs(reduced) < _NEAR_AXIS)


@kernel(parallel=False)
def threefry_blocks(k0, k1, counter_hi, counter_lo, out_hi, out_lo):
    """``(out_hi[i], out_lo[i])`` = Threefry of the counter ``(counter_hi[i], counter_lo[i])``; uint32 arrays."""
    for i in range(counter_hi.size):
        out_hi[i], out_lo[i] = _encrypt(k0, k1, counter_hi[i], counter_lo[i])


@kernel(parallel=False)
def threefry_words(k0, k1, start, out):
    """uint32 ``out[j]`` = word ``start + j`` of the stream: word ``2c`` is ``hi``, ``2c + 1`` is ``lo`` of
    counter ``c``."""
    words = _stream_words(k0, k1, start, out.size)
    for j in range(out.size):  # a loop, not ``out[:] = words``: that compiles a shape check and the
        out[j] = words[j]      # formatting of its message (compiling this kernel alone: 3.6 s -> 1.5 s)


@kernel(parallel=False)
def uint64_words(k0, k1, start, out):
    """uint64 ``out[j]`` = ``hi << 32 | lo`` of counter ``start + j``."""
    hi, lo = _encrypt_counters(k0, k1, start, out.size)
    for j in range(out.size):
        out[j] = (np.uint64(hi[j]) << np.uint64(32)) | np.uint64(lo[j])


@kernel(parallel=False)
def unit_float32_grid(k0, k1, start, offset, out):
    """``out[j] = ((word_{start+j} >> 8) + offset) * 2**-24``, computed in float64 and stored in ``out``'s
    dtype: 24 random bits per value, one value per word."""
    words = _stream_words(k0, k1, start, out.size)
    for j in range(out.size):
        out[j] = (np.float64(np.int32(words[j] >> 8)) + offset) * _INV_2_POW_24


@kernel(parallel=False)
def unit_float64_grid(k0, k1, start, offset, out):
    """``out[j] = (((hi << 32 | lo) >> 11) + offset) * 2**-53`` of counter ``start + j``, in float64: 53
    random bits per value, one value per counter."""
    hi, lo = _encrypt_counters(k0, k1, start, out.size)
    for j in range(out.size):
        bits53 = _exact_float(hi[j]) * 2097152.0 + np.float64(np.int32(lo[j] >> 11))   # an integer < 2**53
        out[j] = (bits53 + offset) * _INV_2_POW_53


def thread_count() -> int:
    """How many threads the calling thread may use: Numba's count (``NUMBA_NUM_THREADS``, or less after
    ``numba.set_num_threads`` / ``share_threads``)."""
    return numba.get_num_threads()
