"""fnnet.random's algorithm written the straightforward way: whole arrays of counters through a numpy Threefry,
then numpy maths on whole arrays.  This was the implementation before draws were made in chunks; the tests
compare the chunked kernels with it bit for bit (small sizes only: it makes many full-size temporaries)."""

import numpy as np

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)


def threefry(key, hi, lo):
    """Threefry-2x32-20 of the uint32 counter arrays ``(hi, lo)`` under ``key``."""
    k0, k1 = (np.uint32(w) for w in key)
    schedule = (k0, k1, np.uint32(k0 ^ k1 ^ np.uint32(0x1BD11BDA)))
    x0, x1 = hi + schedule[0], lo + schedule[1]
    for group in range(5):
        for r in _ROTATIONS[4 * (group % 2): 4 * (group % 2) + 4]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + schedule[(group + 1) % 3]
        x1 = x1 + np.uint32((int(schedule[(group + 2) % 3]) + group + 1) & 0xFFFFFFFF)
    return x0, x1


def bits(key, n):
    counters = np.arange((n + 1) // 2, dtype=np.uint64)
    hi, lo = threefry(key, (counters >> np.uint64(32)).astype(np.uint32),
                      (counters & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    return np.stack([hi, lo], axis=1).reshape(-1)[:n]


def words64(key, n):
    pairs = bits(key, 2 * n).reshape(n, 2).astype(np.uint64)
    return (pairs[:, 0] << np.uint64(32)) | pairs[:, 1]


def unit(key, n, dtype, offset):
    if np.dtype(dtype) == np.float32:
        return ((bits(key, n) >> np.uint32(8)).astype(np.float64) + offset) * 2.0 ** -24
    return ((words64(key, n) >> np.uint64(11)).astype(np.float64) + offset) * 2.0 ** -53


def uniform(key, n, dtype, minval=0.0, maxval=1.0):
    dt = np.dtype(dtype)
    lo, hi = dt.type(minval), dt.type(maxval)
    return np.clip(lo + unit(key, n, dt, 0.0).astype(dt) * (hi - lo), lo, np.nextafter(hi, lo))


def normal(key, n, dtype):
    m = (n + 1) // 2
    u = unit(key, 2 * m, dtype, 0.0).reshape(m, 2)
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 0]))
    angle = 2.0 * np.pi * u[:, 1]
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).reshape(-1)[:n].astype(dtype)


def truncated_normal(key, n, dtype, lower=-2.0, upper=2.0):
    from scipy.special import ndtr, ndtri

    dt = np.dtype(dtype)
    flip = lower > 0.0
    a, b = (-upper, -lower) if flip else (lower, upper)
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    z = ndtri(cdf_a + unit(key, n, dt, 0.5) * (cdf_b - cdf_a))
    z = np.clip(-z if flip else z, lower, upper).astype(dt)
    inside_lo = np.nextafter(dt.type(lower), dt.type(np.inf)) if np.isfinite(lower) else dt.type(-np.inf)
    inside_hi = np.nextafter(dt.type(upper), dt.type(-np.inf)) if np.isfinite(upper) else dt.type(np.inf)
    return np.clip(z, inside_lo, inside_hi)


def bernoulli(key, shape, p):
    words = bits(key, int(np.prod(shape))).reshape(shape).astype(np.float64)
    return words < np.broadcast_to(np.asarray(p, np.float64), shape) * 2.0 ** 32


def randint(key, n, minval, maxval, dtype):
    words = words64(key, n)
    if maxval - minval < (1 << 64):
        words = words % np.uint64(maxval - minval)
    words = words + np.uint64(minval & ((1 << 64) - 1))
    return words.view(np.uint64 if np.dtype(dtype).kind == "u" else np.int64).astype(dtype)


def permutation(key, n):
    return np.argsort(words64(key, n), kind="stable").astype(np.int64)
