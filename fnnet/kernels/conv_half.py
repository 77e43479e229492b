"""2-D convolution kernels on float16 storage: :mod:`.conv`'s three kernels reading and writing half bits.

Arrays in half precision come as ``uint16`` views (Numba cannot compile float16).  Each kernel runs the
scheme of its float32 twin in :mod:`.conv` (the same ``prange`` over samples or fixed sample chunks, the same
``_im2col``/``_col2im_add`` helpers, the same BLAS calls with the same shapes and leading dimensions, the
same summation order), but widens what it reads into small private float32 buffers, one sample at a time,
and narrows each result while it is in cache: the input plane ``(C, H, W)``, the output cotangent (masked by
the fused ReLU there, as ``_cotangent`` does) and the sample's output or input gradient.  The weight is
widened once, serially (it is small).  The results are therefore bitwise those of widening every input,
running the float32 kernel and narrowing its outputs, without the full-size float32 copies of the inputs,
outputs and cotangents or a conversion pass (and kernel launch) per array.

Shapes as in :mod:`.conv`: ``x (N, C, H, W)``, ``w3 (groups, O/groups, C/groups*kh*kw)``, ``b (O,)`` (a
dummy ``(0,)`` array when there is no bias), ``y``/``gy (N, O, oh, ow)``; all uint16 half bits.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel
from .blas import gemm
from .conv import WEIGHT_GRAD_CHUNKS, _add_sample, _bias_relu, _col2im_add, _combine_chunks, _im2col
from .half import float_to_half_bits, half_bits_to_float

__all__ = ["conv2d_fwd_half", "conv2d_bwd_input_half", "conv2d_bwd_weight_half"]


@helper
def _widen(src, dst):
    """``dst[i]`` = float32 value of the half bits ``src[i]`` (both 1-D)."""
    for i in range(src.shape[0]):
        dst[i] = half_bits_to_float(src[i])


@helper
def _narrow(src, dst):
    """``dst[i]`` = half bits of the float32 ``src[i]`` (both 1-D)."""
    for i in range(src.shape[0]):
        dst[i] = float_to_half_bits(src[i])


@helper
def _widen_cotangent(gy, y, relu, dst):
    """``gy``'s widened values into ``dst`` (all 1-D); with ``relu`` 0 where the widened ``y`` is <= 0 (NaN
    passes), as :func:`.conv._cotangent` masks."""
    if not relu:
        _widen(gy, dst)
        return
    zero = np.float32(0.0)
    for i in range(gy.shape[0]):  # both values first: a select, not a branch mispredicted half the time
        value = half_bits_to_float(gy[i])
        dst[i] = zero if half_bits_to_float(y[i]) <= 0 else value


@helper
def _widened_weight(w3):
    """``w3`` (uint16 half bits) widened to a new float32 array of its shape, serially."""
    w32 = np.empty(w3.shape, dtype=np.float32)
    _widen(w3.reshape(w3.size), w32.reshape(w32.size))
    return w32


@kernel
def conv2d_fwd_half(x, w3, b, has_bias, relu, sh, sw, pad_top, pad_left, dh, dw, kh, kw, oh, ow):
    """Half bits of ``conv2d_fwd`` on the widened ``x``, ``w3``, ``b``, narrowed: ``(N, O, oh, ow)``."""
    N, C, H, W = x.shape
    groups, og, kg = w3.shape
    L = oh * ow
    w32 = _widened_weight(w3)
    b32 = np.empty(b.shape[0], dtype=np.float32)
    _widen(b, b32)
    y = np.empty((N, groups * og * L), dtype=np.uint16)
    direct = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pad_top == 0 and pad_left == 0 and oh == H and ow == W
    x2 = x.reshape(N, C * H * W)
    for n in prange(N):
        xn = np.empty((C, H, W), dtype=np.float32)
        _widen(x2[n], xn.reshape(C * H * W))
        if direct:
            cols = xn.reshape(C, H * W)
        else:
            cols = np.empty((C * kh * kw, L), dtype=np.float32)
            _im2col(xn, cols, kh, kw, sh, sw, pad_top, pad_left, dh, dw, oh, ow)
        cols3 = cols.reshape(groups, kg, L)
        yn = np.empty((groups, og, L), dtype=np.float32)
        for g in range(groups):
            gemm(w32[g], cols3[g], yn[g])
            if has_bias or relu:
                _bias_relu(yn[g], b32, g, has_bias, relu)
        _narrow(yn.reshape(groups * og * L), y[n])
    return y.reshape(N, groups * og, oh, ow)


@kernel
def conv2d_bwd_input_half(gy, y, relu, w3, H, W, sh, sw, pad_top, pad_left, dh, dw, kh, kw):
    """Half bits of ``conv2d_bwd_input`` on the widened ``gy``, ``y`` (read only when ``relu``) and ``w3``,
    narrowed: ``(N, C, H, W)``."""
    N, O, oh, ow = gy.shape
    groups, og, kg = w3.shape
    C = groups * (kg // (kh * kw))
    L = oh * ow
    w32 = _widened_weight(w3)
    gy2 = gy.reshape(N, O * L)
    y2 = y.reshape(N, O * L)
    gx = np.empty((N, C * H * W), dtype=np.uint16)
    direct = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pad_top == 0 and pad_left == 0 and oh == H and ow == W
    for n in prange(N):
        gyn = np.empty((groups, og, L), dtype=np.float32)
        _widen_cotangent(gy2[n], y2[n], relu, gyn.reshape(O * L))
        gxn = np.zeros((C, H, W), dtype=np.float32)
        if direct:
            dcols = gxn.reshape(C, H * W)
        else:
            dcols = np.empty((C * kh * kw, L), dtype=np.float32)
        dcols3 = dcols.reshape(groups, kg, L)
        for g in range(groups):
            gemm(w32[g].T, gyn[g], dcols3[g])
        if not direct:
            _col2im_add(dcols, gxn, kh, kw, sh, sw, pad_top, pad_left, dh, dw, oh, ow)
        _narrow(gxn.reshape(C * H * W), gx[n])
    return gx.reshape(N, C, H, W)


@kernel
def conv2d_bwd_weight_half(x, gy, y, relu, groups, sh, sw, pad_top, pad_left, dh, dw, kh, kw, need_bias):
    """Half bits of ``conv2d_bwd_weight`` on the widened ``x``, ``gy`` and ``y`` (read only when ``relu``):
    the weight cotangent ``(groups, O/groups, C/groups*kh*kw)`` and the bias cotangent ``(O,)`` (empty unless
    ``need_bias``; summed in float64, cast to float32, then narrowed), in ``conv2d_bwd_weight``'s chunks and
    order."""
    N, C, H, W = x.shape
    _, O, oh, ow = gy.shape
    og = O // groups
    kg = (C // groups) * kh * kw
    L = oh * ow
    x2 = x.reshape(N, C * H * W)
    gy2 = gy.reshape(N, O * L)
    y2 = y.reshape(N, O * L)
    direct = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pad_top == 0 and pad_left == 0 and oh == H and ow == W
    nchunks = min(N, WEIGHT_GRAD_CHUNKS)
    partial = np.zeros((nchunks, groups, og, kg), dtype=np.float32)
    partial_b = np.zeros((nchunks, O), dtype=np.float64)
    for ch in prange(nchunks):
        start = (ch * N) // nchunks
        stop = ((ch + 1) * N) // nchunks
        xn = np.empty((C, H, W), dtype=np.float32)
        gyn = np.empty((groups, og, L), dtype=np.float32)
        if direct:
            cols = xn.reshape(C, H * W)
        else:
            cols = np.empty((C * kh * kw, L), dtype=np.float32)
        for n in range(start, stop):
            _widen(x2[n], xn.reshape(C * H * W))
            if not direct:
                _im2col(xn, cols, kh, kw, sh, sw, pad_top, pad_left, dh, dw, oh, ow)
            _widen_cotangent(gy2[n], y2[n], relu, gyn.reshape(O * L))
            _add_sample(gyn, cols.reshape(groups, kg, L), partial, partial_b, ch, n == start, need_bias)
    gw, gb64 = _combine_chunks(partial, partial_b, need_bias)
    gw_bits = np.empty((groups, og, kg), dtype=np.uint16)
    _narrow(gw.reshape(gw.size), gw_bits.reshape(gw_bits.size))
    gb_bits = np.empty(gb64.shape[0], dtype=np.uint16)
    _narrow(gb64.astype(np.float32), gb_bits)
    return gw_bits, gb_bits
