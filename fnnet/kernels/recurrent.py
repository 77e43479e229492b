"""Recurrent kernels: a whole GRU or LSTM sequence, forward and backward, one kernel call each.

The ops (``fnnet.ops.gru_sequence``, ``lstm_sequence``) make one call per direction.  The batch rows are split
into fixed blocks (``_row_blocks``, a function of the batch size only, so the bits never depend on the
thread count), and each block runs the whole time loop on its own thread: the rows of a recurrence never
meet, so the blocks need no synchronisation between steps.  Per step a block makes one single-threaded BLAS
product (:func:`.blas.gemm`) and one fused pass of the gate math over its rows; the backward then forms the
weight gradient of all steps as one product (``dense.transposed_product``) and the bias gradient as
fixed-chunk column sums.

Shapes (batch first, ``G = 3H``): ``x_proj (n, t, G)`` the input projections ``x W_ih^T + b_ih`` of every
step, ``w_hh (G, H)`` the recurrent weight, ``b_hh (G,)``, ``hs (n, t, H)`` every step's state,
``gates (n, t, 4H)`` the saved ``[r, z, n, h W_hn^T + b_hn]``, ``d_pre (t, n, G)`` the time-major cotangent of
``h W_hh^T`` and ``h_prev (t, n, H)`` the state each step started from.  LSTM kernels use ``G = 4H``, the cell
states ``c``/``cs`` like ``h``/``hs``, and save ``gates = [i, f, g, o]``.  ``reverse`` walks time from the
last step; outputs stay at their step.  The sigmoid and tanh are ``_vmath``'s branch-free ones, so the
loops over a row vectorise.
"""

import numpy as np
from numba import prange

from . import _vmath as vm
from ._jit import helper, kernel
from .blas import gemm
from .dense import column_sums, transposed_product

__all__ = ["gru_sequence_fwd", "gru_sequence_bwd", "lstm_sequence_fwd", "lstm_sequence_bwd", "SEQUENCE_ROWS",
           "SEQUENCE_BLOCKS"]

#: Each row block of a sequence kernel has at least this many rows, and there are at most
#: ``SEQUENCE_BLOCKS`` blocks: batch 32 runs as two 16-row blocks, one per core.
SEQUENCE_ROWS = 16
SEQUENCE_BLOCKS = 8


def _vmath_kernel(fn):
    """A parallel ``kernel`` calling ``_vmath``: its source stamp is part of the Numba cache key."""
    return kernel(vm.cache_key_suffix(fn))


@helper
def _row_blocks(n):
    """``(count, size)``: the batch's ``n`` rows as ``count`` blocks of ``size`` rows (the last may be short)."""
    size = max(SEQUENCE_ROWS, (n + SEQUENCE_BLOCKS - 1) // SEQUENCE_BLOCKS)
    return (n + size - 1) // size, size


@helper
def _step(s, count, reverse):
    """The time index of the ``s``-th step processed."""
    return count - 1 - s if reverse else s


@helper(inline=True)
def _copy_row(src, dst):
    """``dst[j] = src[j]``: a loop, where ``dst[:] = src`` would compile a shape check and the formatting of
    its error message (compiling the old per-step ``gru_step_fwd`` alone: 6.6 s -> 3.8 s;
    ``tests/tools/find_kernel_formatting.py``)."""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@helper
def _block_start(first, rows, r0, out):
    """``out[i] = first[r0 + i]`` for the block's rows: its part of an initial state."""
    for i in range(rows):
        _copy_row(first[r0 + i], out[i])


@helper
def _block_end(last, r0, out):
    """``out[r0 + i] = last[i]``: the block's part of a final cotangent."""
    for i in range(last.shape[0]):
        _copy_row(last[i], out[r0 + i])


@helper
def _previous_state(first, states, s, count, reverse, r0, r1, out):
    """``out[r0:r1]``: rows ``r0:r1`` of the state before the ``s``-th step processed (``first`` at step 0)."""
    for i in range(r0, r1):
        _copy_row(first[i] if s == 0 else states[i, _step(s - 1, count, reverse)], out[i])


@helper
def _transposed_weight(w_hh, count):
    """``w_hh^T`` as a C-contiguous ``(H, G)`` copy when there are several steps: at 16 rows BLAS multiplies by
    it 1.6x faster per step than through the transposed view (``tests/tools/time_recurrent.py``, GRU forward
    over 32 steps: 0.90 against 1.48 ms).  A single step (a cell stepped in Python) multiplies through the
    view instead of paying for the copy (0.115 against 0.180 ms); it gets an empty array."""
    g, hidden = w_hh.shape
    if count == 1:
        return np.empty((0, 0), w_hh.dtype)
    w_t = np.empty((hidden, g), w_hh.dtype)
    for i in range(g):
        for j in range(hidden):
            w_t[j, i] = w_hh[i, j]
    return w_t


@helper
def _state_product(h, w_hh, w_t, hp):
    """``hp = h @ w_hh^T``, through ``w_t`` when it holds the transposed copy (``_transposed_weight``)."""
    if w_t.shape[0] == 0:
        gemm(h, w_hh.T, hp)
    else:
        gemm(h, w_t, hp)


# ------------------------------------------------------------------------------------------------ GRU
@helper
def _gru_gates_fwd(x_proj, hp, b_hh, h, hs, gates, t, r0):
    """Step ``t`` of the block whose rows start at ``r0``: update its state ``h`` in place to
    ``(1 - z) n + z h``; write ``hs[:, t]`` and ``gates[:, t]``.  One short loop per gate over a row's 1-D
    slices, each writing one array: loops that write several arrays at once were measured not to
    vectorise (4x slower)."""
    rows, hidden = h.shape
    for i in range(rows):
        x_row, hp_row, gate_row, h_row = x_proj[r0 + i, t], hp[i], gates[r0 + i, t], h[i]
        for j in range(2 * hidden):
            gate_row[j] = vm.sigmoid(x_row[j] + hp_row[j] + b_hh[j])
        for j in range(hidden):
            gate_row[3 * hidden + j] = hp_row[2 * hidden + j] + b_hh[2 * hidden + j]
        for j in range(hidden):
            gate_row[2 * hidden + j] = vm.tanh(x_row[2 * hidden + j] + gate_row[j] * gate_row[3 * hidden + j])
        for j in range(hidden):
            new = gate_row[2 * hidden + j]
            h_row[j] = new + gate_row[hidden + j] * (h_row[j] - new)
        _copy_row(h_row, hs[r0 + i, t])


@helper
def _gru_block_fwd(x_proj, h0, w_hh, w_t, b_hh, reverse, hs, gates, r0, r1):
    """Rows ``r0:r1`` over every step."""
    count, g = x_proj.shape[1], x_proj.shape[2]
    h = np.empty((r1 - r0, g // 3), x_proj.dtype)
    hp = np.empty((r1 - r0, g), x_proj.dtype)
    _block_start(h0, r1 - r0, r0, h)
    for s in range(count):
        _state_product(h, w_hh, w_t, hp)
        _gru_gates_fwd(x_proj, hp, b_hh, h, hs, gates, _step(s, count, reverse), r0)


@_vmath_kernel
def gru_sequence_fwd(x_proj, h0, w_hh, b_hh, reverse):
    """``(hs, gates)``: every step's state and the saved gate values."""
    n, count, g = x_proj.shape
    w_t = _transposed_weight(w_hh, count)
    hs = np.empty((n, count, g // 3), x_proj.dtype)
    gates = np.empty((n, count, 4 * (g // 3)), x_proj.dtype)
    blocks, size = _row_blocks(n)
    if blocks == 1:
        _gru_block_fwd(x_proj, h0, w_hh, w_t, b_hh, reverse, hs, gates, 0, n)
    else:
        for blk in prange(blocks):
            _gru_block_fwd(x_proj, h0, w_hh, w_t, b_hh, reverse, hs, gates, blk * size, min(n, (blk + 1) * size))
    return hs, gates


@helper
def _gru_gates_bwd(g_hs, dh, h_prev, gates, t, d_x_proj, d_hp, r0):
    """Step ``t`` backward for the block at ``r0``.  ``dh (rows, H)``: on entry the cotangent carried from
    the next step, on exit its part through ``z * h`` (the caller adds ``d_hp @ W_hh``).  Writes
    ``d_x_proj[:, t]`` and ``d_hp (n, G)``."""
    rows, hidden = dh.shape
    one = d_hp.dtype.type(1.0)
    for i in range(rows):
        gi = r0 + i
        for j in range(hidden):
            r = gates[gi, t, j]
            z = gates[gi, t, hidden + j]
            new = gates[gi, t, 2 * hidden + j]
            d_h = g_hs[gi, t, j] + dh[i, j]
            d_new = d_h * (one - z) * (one - new * new)
            d_r = d_new * gates[gi, t, 3 * hidden + j] * r * (one - r)
            d_z = d_h * (h_prev[gi, j] - new) * z * (one - z)
            d_x_proj[gi, t, j] = d_r
            d_x_proj[gi, t, hidden + j] = d_z
            d_x_proj[gi, t, 2 * hidden + j] = d_new
            d_hp[gi, j] = d_r
            d_hp[gi, hidden + j] = d_z
            d_hp[gi, 2 * hidden + j] = d_new * r
            dh[i, j] = d_h * z


@helper
def _gru_block_bwd(g_hs, h0, hs, gates, w_hh, reverse, d_x_proj, d_pre, h_prev, d_h0, r0, r1):
    """Rows ``r0:r1`` over every step, last processed first."""
    count = hs.shape[1]
    dh = np.zeros((r1 - r0, hs.shape[2]), hs.dtype)
    for s in range(count - 1, -1, -1):
        t = _step(s, count, reverse)
        _previous_state(h0, hs, s, count, reverse, r0, r1, h_prev[t])
        _gru_gates_bwd(g_hs, dh, h_prev[t], gates, t, d_x_proj, d_pre[t], r0)
        gemm(d_pre[t, r0:r1], w_hh, dh, 1.0, 1.0)
    _block_end(dh, r0, d_h0)


@helper
def _weight_gradients(d_pre, h_prev):
    """``(d_weight_hh, d_bias_hh)`` of every step at once: ``d_pre^T h_prev`` and the column sums of ``d_pre``,
    both over the time-major ``(t * n)`` rows."""
    count, n, g = d_pre.shape
    d_pre2 = d_pre.reshape(count * n, g)
    return transposed_product(d_pre2, h_prev.reshape(count * n, h_prev.shape[2])), column_sums(d_pre2)


@_vmath_kernel
def gru_sequence_bwd(g_hs, h0, hs, gates, w_hh, reverse):
    """``(d_x_proj, d_h0, d_weight_hh, d_bias_hh)`` from ``g_hs (n, t, H)``, the cotangent of ``hs``."""
    n, count, hidden = hs.shape
    d_x_proj = np.empty((n, count, 3 * hidden), hs.dtype)
    d_pre = np.empty((count, n, 3 * hidden), hs.dtype)
    h_prev = np.empty((count, n, hidden), hs.dtype)
    d_h0 = np.empty((n, hidden), hs.dtype)
    blocks, size = _row_blocks(n)
    if blocks == 1:
        _gru_block_bwd(g_hs, h0, hs, gates, w_hh, reverse, d_x_proj, d_pre, h_prev, d_h0, 0, n)
    else:
        for blk in prange(blocks):
            _gru_block_bwd(g_hs, h0, hs, gates, w_hh, reverse, d_x_proj, d_pre, h_prev, d_h0, blk * size,
                           min(n, (blk + 1) * size))
    dw, db = _weight_gradients(d_pre, h_prev)
    return d_x_proj, d_h0, dw, db


# ------------------------------------------------------------------------------------------------ LSTM
@helper
def _lstm_gates_fwd(x_proj, hp, b_hh, h, c, hs, cs, gates, t, r0):
    """Step ``t`` of the block at ``r0`` (gates ``i, f, g, o``): update its ``h`` and ``c`` in place; write
    ``hs[:, t]``, ``cs[:, t]`` and ``gates[:, t]`` (loops laid out as in the GRU's)."""
    rows, hidden = h.shape
    for i in range(rows):
        x_row, hp_row, gate_row, h_row, c_row = x_proj[r0 + i, t], hp[i], gates[r0 + i, t], h[i], c[i]
        for j in range(2 * hidden):
            gate_row[j] = vm.sigmoid(x_row[j] + hp_row[j] + b_hh[j])
        for j in range(2 * hidden, 3 * hidden):
            gate_row[j] = vm.tanh(x_row[j] + hp_row[j] + b_hh[j])
        for j in range(3 * hidden, 4 * hidden):
            gate_row[j] = vm.sigmoid(x_row[j] + hp_row[j] + b_hh[j])
        for j in range(hidden):
            c_row[j] = gate_row[hidden + j] * c_row[j] + gate_row[j] * gate_row[2 * hidden + j]
        for j in range(hidden):
            h_row[j] = gate_row[3 * hidden + j] * vm.tanh(c_row[j])
        _copy_row(h_row, hs[r0 + i, t])
        _copy_row(c_row, cs[r0 + i, t])


@helper
def _lstm_block_fwd(x_proj, h0, c0, w_hh, w_t, b_hh, reverse, hs, cs, gates, r0, r1):
    """Rows ``r0:r1`` over every step."""
    count, g = x_proj.shape[1], x_proj.shape[2]
    h = np.empty((r1 - r0, g // 4), x_proj.dtype)
    c = np.empty((r1 - r0, g // 4), x_proj.dtype)
    hp = np.empty((r1 - r0, g), x_proj.dtype)
    _block_start(h0, r1 - r0, r0, h)
    _block_start(c0, r1 - r0, r0, c)
    for s in range(count):
        _state_product(h, w_hh, w_t, hp)
        _lstm_gates_fwd(x_proj, hp, b_hh, h, c, hs, cs, gates, _step(s, count, reverse), r0)


@_vmath_kernel
def lstm_sequence_fwd(x_proj, h0, c0, w_hh, b_hh, reverse):
    """``(hs, cs, gates)``: every step's hidden and cell states and the saved gate values."""
    n, count, g = x_proj.shape
    w_t = _transposed_weight(w_hh, count)
    hs = np.empty((n, count, g // 4), x_proj.dtype)
    cs = np.empty((n, count, g // 4), x_proj.dtype)
    gates = np.empty((n, count, g), x_proj.dtype)
    blocks, size = _row_blocks(n)
    if blocks == 1:
        _lstm_block_fwd(x_proj, h0, c0, w_hh, w_t, b_hh, reverse, hs, cs, gates, 0, n)
    else:
        for blk in prange(blocks):
            _lstm_block_fwd(x_proj, h0, c0, w_hh, w_t, b_hh, reverse, hs, cs, gates, blk * size,
                            min(n, (blk + 1) * size))
    return hs, cs, gates


@helper
def _lstm_gates_bwd(g_hs, dh, dc, c_prev, cs, gates, t, d_x_proj, d_pre, r0):
    """Step ``t`` backward for the block at ``r0``.  ``dh (rows, H)``: the cotangent of ``h`` carried from
    the next step (read only; the caller then sets it to ``d_pre @ W_hh``); ``dc (rows, H)`` is carried in
    place; ``c_prev (n, H)`` the cell state the step started from.  Writes ``d_x_proj[:, t]`` and the
    pre-activation cotangent ``d_pre (n, 4H)``.  ``tanh(c)`` goes first into the ``o`` slot of ``d_pre``, in
    a loop of its own so that it vectorises."""
    rows, hidden = dh.shape
    one = d_pre.dtype.type(1.0)
    for i in range(rows):
        gi = r0 + i
        cs_row, d_row = cs[gi, t], d_pre[gi]
        for j in range(hidden):
            d_row[3 * hidden + j] = vm.tanh(cs_row[j])
        for j in range(hidden):
            gate_i = gates[gi, t, j]
            gate_f = gates[gi, t, hidden + j]
            gate_g = gates[gi, t, 2 * hidden + j]
            gate_o = gates[gi, t, 3 * hidden + j]
            tanh_c = d_row[3 * hidden + j]
            d_h = g_hs[gi, t, j] + dh[i, j]
            d_c = dc[i, j] + d_h * gate_o * (one - tanh_c * tanh_c)
            dc[i, j] = d_c * gate_f
            d_row[j] = d_c * gate_g * gate_i * (one - gate_i)
            d_row[hidden + j] = d_c * c_prev[gi, j] * gate_f * (one - gate_f)
            d_row[2 * hidden + j] = d_c * gate_i * (one - gate_g * gate_g)
            d_row[3 * hidden + j] = d_h * tanh_c * gate_o * (one - gate_o)
        _copy_row(d_row, d_x_proj[gi, t])


@helper
def _lstm_block_bwd(g_hs, g_c, h0, c0, hs, cs, gates, w_hh, reverse, d_x_proj, d_pre, h_prev, c_prev, d_h0, d_c0,
                    r0, r1):
    """Rows ``r0:r1`` over every step, last processed first (``c_prev (n, H)``: the block's rows of the
    cell state each step started from, rewritten per step; ``g_c (n, H)``: the cotangent of the final cell
    state, which the carried ``dc`` starts from)."""
    count = hs.shape[1]
    dh = np.zeros((r1 - r0, hs.shape[2]), hs.dtype)
    dc = g_c[r0:r1].copy()
    for s in range(count - 1, -1, -1):
        t = _step(s, count, reverse)
        _previous_state(h0, hs, s, count, reverse, r0, r1, h_prev[t])
        _previous_state(c0, cs, s, count, reverse, r0, r1, c_prev)
        _lstm_gates_bwd(g_hs, dh, dc, c_prev, cs, gates, t, d_x_proj, d_pre[t], r0)
        gemm(d_pre[t, r0:r1], w_hh, dh)
    _block_end(dh, r0, d_h0)
    _block_end(dc, r0, d_c0)


@_vmath_kernel
def lstm_sequence_bwd(g_hs, g_c, h0, c0, hs, cs, gates, w_hh, reverse):
    """``(d_x_proj, d_h0, d_c0, d_weight_hh, d_bias_hh)`` from ``g_hs (n, t, H)``, the cotangent of ``hs``,
    and ``g_c (n, H)``, that of the cell state after the last step processed (zeros when only ``hs`` is used)."""
    n, count, hidden = hs.shape
    d_x_proj = np.empty((n, count, 4 * hidden), hs.dtype)
    d_pre = np.empty((count, n, 4 * hidden), hs.dtype)
    h_prev = np.empty((count, n, hidden), hs.dtype)
    c_prev = np.empty((n, hidden), hs.dtype)
    d_h0 = np.empty((n, hidden), hs.dtype)
    d_c0 = np.empty((n, hidden), hs.dtype)
    blocks, size = _row_blocks(n)
    if blocks == 1:
        _lstm_block_bwd(g_hs, g_c, h0, c0, hs, cs, gates, w_hh, reverse, d_x_proj, d_pre, h_prev, c_prev, d_h0,
                        d_c0, 0, n)
    else:
        for blk in prange(blocks):
            _lstm_block_bwd(g_hs, g_c, h0, c0, hs, cs, gates, w_hh, reverse, d_x_proj, d_pre, h_prev, c_prev, d_h0,
                            d_c0, blk * size, min(n, (blk + 1) * size))
    dw, db = _weight_gradients(d_pre, h_prev)
    return d_x_proj, d_h0, d_c0, dw, db
