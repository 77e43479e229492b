"""Dense kernels on float16 storage: ``linear_fwd``/``linear_bwd`` reading and writing half bits directly.

Arrays in half precision come as ``uint16`` views (Numba cannot compile float16).  Each kernel widens what
a BLAS call reads into a float32 buffer inside the kernel, runs exactly the BLAS calls of :mod:`.dense` on
the same float32 values, with the same blocks (``dense._blocks``) and the same leading dimensions for what
BLAS reads, writes each block's result into a buffer of the block's own (BLAS only writes it: its leading
dimension changes no bit) and narrows it while it is in cache.  The results are therefore bitwise those of widening every input,
running the float32 kernel and narrowing its outputs, without the full-size float32 copies of the inputs
and outputs or a conversion pass (and kernel launch) per array.  Each kernel launches as few parallel
loops as it can (a launch costs more than converting a small matrix, and far more on a busy machine): the
forward widens inside its blocks (only a shared weight first, in the calling thread below
``SERIAL_STREAM`` elements: a pure conversion, see ``SERIAL_STREAM``'s measurements), the backward widens
every row it needs in one loop (split over the threads above ``SERIAL_WORK`` elements: it also masks the
rows as it widens them) and runs the products as ``linear_bwd`` does.

Shapes as in :mod:`.dense`: ``x (n, in)``, ``w (in, out)``, ``b (out,)``, ``y``/``g (n, out)``.
"""

import numpy as np
from numba import prange

from ._jit import SERIAL_STREAM, SERIAL_WORK, helper, kernel
from .blas import gemm
from .dense import SERIAL_PRODUCT, WEIGHT_BLOCKS, _blocks, _span, column_sums
from .half import float_to_half_bits, half_bits_to_float


@helper
def _widen_into(source, target):
    """``target[j]`` = float32 value of the half bits ``source[j]`` (1-D, indexed from 0: vectorises)."""
    for j in range(source.shape[0]):
        target[j] = half_bits_to_float(source[j])


@helper
def _narrow_into(block, out, r0, c0):
    """``out[r0 + i, c0 + j]`` = half bits of ``block[i, j]``."""
    for i in range(block.shape[0]):
        row, target = block[i], out[r0 + i, c0:c0 + block.shape[1]]
        for j in range(row.shape[0]):
            target[j] = float_to_half_bits(row[j])


@kernel
def linear_fwd_half(x, w, b, has_bias, relu):
    """Half bits of ``linear_fwd`` on the widened ``x``, ``w``, ``b`` (all uint16 half bits), narrowed.

    Row blocks share the weight, widened first (in the calling thread below ``SERIAL_STREAM`` elements);
    a column block widens its own columns of the weight and its own copy of ``x``, so each thread multiplies
    what it has just written itself (what another core wrote is read from that core's cache: the ``mlp``
    benchmark's first layer took 0.37 ms, against 0.22 ms in float32, when the calling thread widened both
    at commit 4e34bd5, and 0.31 ms since; ``python tests/tools/time_linear.py --half``)."""
    n, k = x.shape
    m = w.shape[1]
    columns, count, size = _blocks(n, k, m)
    w32 = np.empty((k, m), dtype=np.float32)
    if not columns and k * m < SERIAL_STREAM:
        for i in range(k):
            _widen_into(w[i], w32[i])
    elif not columns:
        for i in prange(k):
            _widen_into(w[i], w32[i])
    b32 = np.zeros(m, dtype=np.float32)
    if has_bias:
        for j in range(m):
            b32[j] = half_bits_to_float(b[j])
    y = np.empty((n, m), dtype=np.uint16)
    if count <= 1:
        _fwd_half_block(x, w, w32, b32, y, columns, size, 0, has_bias, relu)
    else:
        for blk in prange(count):
            _fwd_half_block(x, w, w32, b32, y, columns, size, blk, has_bias, relu)
    return y


@helper
def _fwd_half_block(x, w, w32, b32, y, columns, size, blk, has_bias, relu):
    """Block ``blk`` of :func:`linear_fwd_half`: widen what its BLAS call reads (the block's rows of ``x``,
    and its columns of the weight in a column block), make ``linear_fwd``'s call for the block on the same
    values, into a buffer of the block's own, and narrow it."""
    r0, r1, c0, c1 = _span(columns, size, blk, x.shape[0], w.shape[1])
    x32 = np.empty((r1 - r0, x.shape[1]), dtype=np.float32)
    for i in range(r1 - r0):
        _widen_into(x[r0 + i], x32[i])
    if columns:
        for i in range(w.shape[0]):
            _widen_into(w[i, c0:c1], w32[i, c0:c1])
    block = np.empty((r1 - r0, c1 - c0), dtype=np.float32)
    gemm(x32, w32[:, c0:c1], block)
    bias = b32[c0:c1]
    for i in range(r1 - r0):
        row, out = block[i], y[r0 + i, c0:c1]
        for j in range(row.shape[0]):
            v = row[j]  # linear_fwd's statements, so the same types and roundings
            if has_bias:
                v += bias[j]
            if relu and v < 0:
                v = 0.0
            out[j] = float_to_half_bits(np.float32(v))


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
        _widen_into(g[r], g32[r])
    elif r < n + w32.shape[0]:
        _widen_into(w[r - n], w32[r - n])
    else:
        _widen_into(x[r - n - w32.shape[0]], x32[r - n - w32.shape[0]])


@helper
def _gx_half_block(g32, wt, gx, columns, size, blk):
    """Block ``blk`` of ``gx = g @ w.T`` (``linear_bwd``'s call, into a buffer of the block's own), narrowed."""
    r0, r1, c0, c1 = _span(columns, size, blk, gx.shape[0], gx.shape[1])
    block = np.empty((r1 - r0, c1 - c0), dtype=np.float32)
    gemm(g32[r0:r1], wt[:, c0:c1], block)
    _narrow_into(block, gx, r0, c0)


@helper
def _gw_half_block(x32, g32, gw, w_rows, blk):
    """Block ``blk`` of ``gw = x.T @ g`` (``linear_bwd``'s call, into a buffer of the block's own), narrowed."""
    r0 = blk * w_rows
    r1 = min(gw.shape[0], r0 + w_rows)
    block = np.empty((r1 - r0, gw.shape[1]), dtype=np.float32)
    gemm(x32[:, r0:r1].T, g32, block)
    _narrow_into(block, gw, r0, 0)


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
    columns, x_blocks, size = _blocks(n, m, k)
    x_blocks = x_blocks if need_x else 0
    w_blocks = min(WEIGHT_BLOCKS, k) if need_w else 0
    w_rows = (k + WEIGHT_BLOCKS - 1) // WEIGHT_BLOCKS
    wt = w32.T
    if n * k * m < SERIAL_PRODUCT:  # linear_bwd's blocks, in the calling thread as there
        for blk in range(x_blocks):
            _gx_half_block(g32, wt, gx, columns, size, blk)
        for blk in range(w_blocks):
            _gw_half_block(x32, g32, gw, w_rows, blk)
    else:  # two loops of equal-cost blocks, as linear_bwd's
        for blk in prange(x_blocks):
            _gx_half_block(g32, wt, gx, columns, size, blk)
        for blk in prange(w_blocks):
            _gw_half_block(x32, g32, gw, w_rows, blk)
    gb = np.empty(m if need_b else 0, dtype=np.uint16)
    if need_b:
        sums = column_sums(g32)
        for j in range(m):
            gb[j] = float_to_half_bits(sums[j])
    return gx, gw, gb
