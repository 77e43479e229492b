"""Dense kernels on float16 storage: ``linear_fwd``/``linear_bwd`` reading and writing half bits directly.

Arrays in half precision come as ``uint16`` views (Numba cannot compile float16).  Each kernel widens what
a BLAS call reads into a float32 buffer inside the kernel (per row block where the call reads a block), runs
exactly the BLAS calls of :mod:`.dense` on the same float32 values, with the same blocks and leading
dimensions, and narrows each result block while it is in cache.  The results are therefore bitwise those of
widening every input, running the float32 kernel and narrowing its outputs, without the full-size float32
copies of the inputs and outputs or a conversion pass (and kernel launch) per array.  Each kernel launches
as few parallel loops as it can (a launch costs more than converting a small matrix, and far more on a busy
machine): the forward widens the weight in the calling thread below ``SERIAL_STREAM`` elements (a pure
conversion, see ``SERIAL_STREAM``'s measurements), the backward widens every row it needs in one loop (split
over the threads above ``SERIAL_WORK`` elements: it also masks the rows as it widens them) and runs both
products in another.

Shapes as in :mod:`.dense`: ``x (n, in)``, ``w (in, out)``, ``b (out,)``, ``y``/``g (n, out)``.
"""

import numpy as np
from numba import prange

from ._jit import SERIAL_STREAM, SERIAL_WORK, helper, kernel
from .blas import gemm
from .dense import WEIGHT_BLOCKS, _row_block, column_sums
from .half import float_to_half_bits, half_bits_to_float


@helper
def _widen_row(src, dst, i):
    """``dst[i, j]`` = float32 value of the half bits ``src[i, j]``."""
    for j in range(src.shape[1]):
        dst[i, j] = half_bits_to_float(src[i, j])


@helper
def _narrow_rows(block, out, r0):
    """``out[r0 + i, j]`` = half bits of ``block[i, j]``."""
    for i in range(block.shape[0]):
        for j in range(block.shape[1]):
            out[r0 + i, j] = float_to_half_bits(block[i, j])


@kernel
def linear_fwd_half(x, w, b, has_bias, relu):
    """Half bits of ``linear_fwd`` on the widened ``x``, ``w``, ``b`` (all uint16 half bits), narrowed."""
    n, k = x.shape
    m = w.shape[1]
    w32 = np.empty((k, m), dtype=np.float32)
    if k * m < SERIAL_STREAM:  # a conversion streams: serial below SERIAL_STREAM
        for i in range(k):
            _widen_row(w, w32, i)
    else:
        for i in prange(k):
            _widen_row(w, w32, i)
    b32 = np.zeros(m, dtype=np.float32)
    if has_bias:
        for j in range(m):
            b32[j] = half_bits_to_float(b[j])
    y = np.empty((n, m), dtype=np.uint16)
    block = _row_block(n)
    for blk in prange((n + block - 1) // block):
        r0 = blk * block
        r1 = min(n, r0 + block)
        x_block = np.empty((r1 - r0, k), dtype=np.float32)
        for i in range(r0, r1):
            for j in range(k):
                x_block[i - r0, j] = half_bits_to_float(x[i, j])
        y_block = np.empty((r1 - r0, m), dtype=np.float32)
        gemm(x_block, w32, y_block)
        for i in range(r1 - r0):
            for j in range(m):
                v = y_block[i, j]  # linear_fwd's statements, so the same types and roundings
                if has_bias:
                    v += b32[j]
                if relu and v < 0:
                    v = 0.0
                y[r0 + i, j] = float_to_half_bits(np.float32(v))
    return y


@helper
def _widen_bwd_row(r, x, w, g, y, relu, x32, w32, g32):
    """Row ``r`` of the rows ``linear_bwd_half`` widens: those of ``g`` (masked by the fused ReLU; NaN
    ``y`` passes ``g``, as ``relu_mask``), then of ``w`` (when ``w32`` has rows), then of ``x``."""
    n = g32.shape[0]
    if r < n and relu:
        zero = np.float32(0.0)
        for j in range(g32.shape[1]):  # both values first: a select, not a branch mispredicted half the time
            value = half_bits_to_float(g[r, j])
            g32[r, j] = zero if half_bits_to_float(y[r, j]) <= 0 else value
    elif r < n:
        _widen_row(g, g32, r)
    elif r < n + w32.shape[0]:
        _widen_row(w, w32, r - n)
    else:
        _widen_row(x, x32, r - n - w32.shape[0])


@kernel
def linear_bwd_half(x, w, g, y, relu, need_x, need_w, need_b):
    """Half bits of ``linear_bwd`` (after ``relu_mask`` when ``relu``) on the widened ``x``, ``w``, ``g``
    and saved output ``y`` (uint16 half bits; ``y`` is read only when ``relu``), each cotangent narrowed.
    Unneeded results come back as empty arrays."""
    n, k = x.shape
    m = g.shape[1]
    g32 = np.empty((n, m), dtype=np.float32)
    w32 = np.empty((k if need_x else 0, m), dtype=np.float32)
    x32 = np.empty((n if need_w else 0, k), dtype=np.float32)
    rows = n + w32.shape[0] + x32.shape[0]
    if g32.size + w32.size + x32.size < SERIAL_WORK:
        for r in range(rows):
            _widen_bwd_row(r, x, w, g, y, relu, x32, w32, g32)
    else:
        for r in prange(rows):
            _widen_bwd_row(r, x, w, g, y, relu, x32, w32, g32)
    gx = np.empty((n if need_x else 0, k), dtype=np.uint16)
    gw = np.empty((k if need_w else 0, m), dtype=np.uint16)
    block = _row_block(n)
    x_blocks = (n + block - 1) // block if need_x else 0
    w_blocks = min(WEIGHT_BLOCKS, k) if need_w else 0
    w_rows = (k + WEIGHT_BLOCKS - 1) // WEIGHT_BLOCKS
    wt = w32.T
    for task in prange(x_blocks + w_blocks):  # linear_bwd's blocks of both products, in one parallel loop
        if task < x_blocks:
            r0 = task * block
            r1 = min(n, r0 + block)
            gx_block = np.empty((r1 - r0, k), dtype=np.float32)
            gemm(g32[r0:r1], wt, gx_block)
            _narrow_rows(gx_block, gx, r0)
        else:
            r0 = (task - x_blocks) * w_rows
            r1 = min(k, r0 + w_rows)
            gw_block = np.empty((r1 - r0, m), dtype=np.float32)
            gemm(x32[:, r0:r1].T, g32, gw_block)
            _narrow_rows(gw_block, gw, r0)
    gb = np.empty(m if need_b else 0, dtype=np.uint16)
    if need_b:
        sums = column_sums(g32)
        for j in range(m):
            gb[j] = float_to_half_bits(sums[j])
    return gx, gw, gb
