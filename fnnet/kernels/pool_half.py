"""Max-pooling kernels on float16 storage: ``max_pool2d_fwd_half``/``max_pool2d_bwd_half`` reading and
writing half bits directly.

Arrays in half precision come as ``uint16`` views (Numba cannot compile float16).  The forward compares the
widened values with :func:`.pool.max_pool2d_fwd`'s rules (row-major scan, first maximum wins, NaN
propagates, the same 2x2 fast path) and writes the winner's bits as narrowing its widened value gives them
(:func:`_round_trip`), so its output is bitwise the widening path's and its index array identical.  The
backward sums each plane's cotangents in a float32 buffer in :func:`.pool.max_pool2d_bwd`'s order and
narrows once.  Both work plane by plane, serially when the whole call is under ``SERIAL_WORK`` elements and
in ``prange`` otherwise: the same planes either way, so the same bits.

Shapes as in :mod:`.pool`: ``x (N, C, H, W)``, ``y``/``g``/``idx (N, C, oh, ow)``.
"""

import numpy as np
from numba import prange

from ._jit import SERIAL_WORK, helper, kernel
from .half import float_to_half_bits, half_bits_to_float
from .pool import _taps

__all__ = ["max_pool2d_fwd_half", "max_pool2d_bwd_half"]


@kernel
def max_pool2d_fwd_half(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Half bits of ``max_pool2d_fwd`` on the widened ``x`` (uint16 half bits), narrowed, and its int32
    index array (-1, with -inf, for a window with no tap inside the input)."""
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow), dtype=np.uint16)
    idx = np.empty((N, C, oh, ow), dtype=np.int32)
    two_by_two = kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0 and dh == 1 and dw == 1 \
        and 2 * oh <= H and 2 * ow <= W
    if N * C * oh * ow * kh * kw < SERIAL_WORK:
        for p in range(N * C):
            _max_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, two_by_two, y, idx)
    else:
        for p in prange(N * C):
            _max_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, two_by_two, y, idx)
    return y, idx


@helper
def _max_plane(x, p, kh, kw, sh, sw, ph, pw, dh, dw, two_by_two, y, idx):
    """Plane ``p`` (of the N*C) of :func:`max_pool2d_fwd_half`."""
    C = x.shape[1]
    n = p // C
    c = p - n * C
    if two_by_two:
        _max_plane_2x2(x[n, c], y[n, c], idx[n, c])
    else:
        _max_plane_general(x[n, c], kh, kw, sh, sw, ph, pw, dh, dw, y[n, c], idx[n, c])


@helper
def _max_plane_general(xp, kh, kw, sh, sw, ph, pw, dh, dw, yp, ip):
    """One plane of ``max_pool2d_fwd``'s general loop on widened values: ``xp (H, W)``, ``yp``/``ip (oh, ow)``."""
    H, W = xp.shape
    oh, ow = yp.shape
    for a in range(oh):
        h0 = a * sh - ph
        i_lo, i_hi = _taps(h0, dh, kh, H)
        for b in range(ow):
            w0 = b * sw - pw
            j_lo, j_hi = _taps(w0, dw, kw, W)
            if i_lo == i_hi or j_lo == j_hi:
                yp[a, b] = float_to_half_bits(np.float32(-np.inf))
                ip[a, b] = -1
                continue
            best_bits = xp[h0 + i_lo * dh, w0 + j_lo * dw]
            best = half_bits_to_float(best_bits)
            best_i = (h0 + i_lo * dh) * W + w0 + j_lo * dw
            for i in range(i_lo, i_hi):
                h = h0 + i * dh
                for j in range(j_lo, j_hi):
                    w = w0 + j * dw
                    v = half_bits_to_float(xp[h, w])
                    if v > best or v != v:
                        best, best_bits = v, xp[h, w]
                        best_i = h * W + w
            yp[a, b] = _round_trip(best_bits)
            ip[a, b] = best_i


@helper
def _max_plane_2x2(xp, yp, ip):
    """One plane of ``_max_pool_2x2`` (2x2 windows, stride 2, no padding) on widened values."""
    W = xp.shape[1]
    oh, ow = yp.shape
    for a in range(oh):
        r0 = xp[2 * a]
        r1 = xp[2 * a + 1]
        for b in range(ow):
            w0 = 2 * b
            best_bits = r0[w0]
            best = half_bits_to_float(best_bits)
            best_i = 2 * a * W + w0
            v = half_bits_to_float(r0[w0 + 1])
            if v > best or v != v:
                best, best_bits = v, r0[w0 + 1]
                best_i = 2 * a * W + w0 + 1
            v = half_bits_to_float(r1[w0])
            if v > best or v != v:
                best, best_bits = v, r1[w0]
                best_i = (2 * a + 1) * W + w0
            v = half_bits_to_float(r1[w0 + 1])
            if v > best or v != v:
                best, best_bits = v, r1[w0 + 1]
                best_i = (2 * a + 1) * W + w0 + 1
            yp[a, b] = _round_trip(best_bits)
            ip[a, b] = best_i


@helper(inline=True)
def _round_trip(bits):
    """The bits of half ``bits`` widened to float32 and narrowed back: the same, except that a signalling
    NaN comes back quiet (both conversions are IEEE operations, which quiet it).  Written on the bits
    because LLVM folds ``fptrunc(fpext(h))`` to ``h`` where it sees both (it did in the 2x2 loop), which
    would keep the signalling NaN that the widening path's separate conversion passes quiet."""
    if bits & 0x7C00 == 0x7C00 and bits & 0x03FF != 0:
        return np.uint16(bits | 0x0200)
    return bits


@kernel
def max_pool2d_bwd_half(g, idx, H, W):
    """Half bits of ``max_pool2d_bwd`` on the widened ``g`` (uint16 half bits): ``(N, C, H, W)``."""
    N, C, oh, ow = g.shape
    gx = np.empty((N * C, H * W), dtype=np.uint16)
    if g.size + gx.size < SERIAL_WORK:
        for p in range(N * C):
            _route_plane(g, idx, p, gx)
    else:
        for p in prange(N * C):
            _route_plane(g, idx, p, gx)
    return gx.reshape(N, C, H, W)


@helper
def _route_plane(g, idx, p, gx):
    """Plane ``p`` of :func:`max_pool2d_bwd_half`: float32 sums from zero in ``max_pool2d_bwd``'s order,
    then narrowed.  A sum that is NaN stays as it is: ``max_pool2d_bwd``'s compiled ``sum + g`` returns its
    first operand when both are NaN (x86), a payload LLVM would be free to swap here (it did)."""
    C, oh, ow = g.shape[1:]
    n = p // C
    c = p - n * C
    sums = np.zeros(gx.shape[1], dtype=np.float32)
    for a in range(oh):
        for b in range(ow):
            i = idx[n, c, a, b]
            if i >= 0 and sums[i] == sums[i]:
                sums[i] += half_bits_to_float(g[n, c, a, b])
    for i in range(sums.size):
        gx[p, i] = float_to_half_bits(sums[i])
