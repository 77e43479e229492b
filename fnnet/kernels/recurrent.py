"""Recurrent kernels: the gate math of one GRU or LSTM step, forward and backward, fused into one pass each.

The ops (``fnnet.ops.gru_sequence``, ``lstm_sequence``) run the time loop: per step one BLAS product through NumPy (measured
3-4x faster at these sizes than ``np.dot`` inside a kernel, which goes through SciPy's BLAS) and one of
these kernels, which read and write the step's slice of preallocated whole-sequence arrays in place.

Shapes (batch first, ``G = 3H``): ``x_proj (n, t, G)`` the input projections ``x W_ih^T + b_ih`` of every
step, ``hp (n, G)`` the step's ``h W_hh^T`` (bias not included), ``b_hh (G,)``, ``h (n, H)`` the running
state, ``hs (n, t, H)`` every step's state, ``gates (n, t, 4H)`` the saved ``[r, z, n, h W_hn^T + b_hn]``.
LSTM kernels use ``G = 4H``, the cell states ``c``/``cs`` like ``h``/``hs``, and save ``gates = [i, f, g, o]``.
The sigmoid and tanh are ``_vmath``'s branch-free ones, so the loops over a row vectorise.
"""

import numpy as np

from . import _vmath as vm
from ._jit import helper, kernel

__all__ = ["gru_step_fwd", "gru_step_bwd", "lstm_step_fwd", "lstm_step_bwd"]


def _serial_vmath_kernel(fn):
    """A serial ``kernel`` calling ``_vmath``: its source stamp is part of the Numba cache key."""
    return kernel(vm.cache_key_suffix(fn), parallel=False)


@helper(inline=True)
def _copy_row(src, dst):
    """``dst[j] = src[j]``: a loop, where ``dst[:] = src`` would compile a shape check and the formatting of
    its error message (compiling ``gru_step_fwd`` alone: 6.6 s -> 3.8 s, ``lstm_step_bwd``: 6.3 s -> 2.2 s;
    ``tests/tools/find_kernel_formatting.py``)."""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@_serial_vmath_kernel
def gru_step_fwd(x_proj, hp, b_hh, h, hs, gates, t):
    """Step ``t``: update ``h`` in place to ``(1 - z) n + z h``; write ``hs[:, t]`` and ``gates[:, t]``.

    One short loop per gate over a row's 1-D slices, each writing one array: loops that write several
    arrays at once were measured not to vectorise (4x slower)."""
    n, hidden = h.shape
    for i in range(n):
        x_row, hp_row, gate_row, h_row, hs_row = x_proj[i, t], hp[i], gates[i, t], h[i], hs[i, t]
        for j in range(2 * hidden):
            gate_row[j] = vm.sigmoid(x_row[j] + hp_row[j] + b_hh[j])
        for j in range(hidden):
            gate_row[3 * hidden + j] = hp_row[2 * hidden + j] + b_hh[2 * hidden + j]
        for j in range(hidden):
            gate_row[2 * hidden + j] = vm.tanh(x_row[2 * hidden + j] + gate_row[j] * gate_row[3 * hidden + j])
        for j in range(hidden):
            new = gate_row[2 * hidden + j]
            h_row[j] = new + gate_row[hidden + j] * (h_row[j] - new)
        _copy_row(h_row, hs_row)


@kernel(parallel=False)
def gru_step_bwd(g_hs, dh, h_prev, gates, t, d_x_proj, d_hp):
    """Step ``t`` backward.  ``dh (n, H)``: on entry the cotangent carried from step ``t + 1``, on exit its
    part through ``z * h`` (the op adds ``d_hp @ W_hh``).  Writes ``d_x_proj[:, t]`` and ``d_hp (n, G)``."""
    n, hidden = dh.shape
    one = d_hp.dtype.type(1.0)
    for i in range(n):
        for j in range(hidden):
            r = gates[i, t, j]
            z = gates[i, t, hidden + j]
            new = gates[i, t, 2 * hidden + j]
            d_h = g_hs[i, t, j] + dh[i, j]
            d_new = d_h * (one - z) * (one - new * new)
            d_r = d_new * gates[i, t, 3 * hidden + j] * r * (one - r)
            d_z = d_h * (h_prev[i, j] - new) * z * (one - z)
            d_x_proj[i, t, j] = d_r
            d_x_proj[i, t, hidden + j] = d_z
            d_x_proj[i, t, 2 * hidden + j] = d_new
            d_hp[i, j] = d_r
            d_hp[i, hidden + j] = d_z
            d_hp[i, 2 * hidden + j] = d_new * r
            dh[i, j] = d_h * z


@_serial_vmath_kernel
def lstm_step_fwd(x_proj, hp, b_hh, h, c, hs, cs, gates, t):
    """Step ``t`` of an LSTM (``G = 4H``, gates ``i, f, g, o``): update ``h`` and ``c`` in place; write
    ``hs[:, t]``, ``cs[:, t]`` and the gate values ``gates[:, t] (n, 4H)`` (loops laid out as in the GRU's)."""
    n, hidden = h.shape
    for i in range(n):
        x_row, hp_row, gate_row, h_row, c_row = x_proj[i, t], hp[i], gates[i, t], h[i], c[i]
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
        _copy_row(h_row, hs[i, t])
        _copy_row(c_row, cs[i, t])


@_serial_vmath_kernel
def lstm_step_bwd(g_hs, dh, dc, c_prev, cs, gates, t, d_x_proj, d_pre):
    """Step ``t`` backward.  ``dh``: the cotangent of ``h`` carried from step ``t + 1`` (read only; the op
    sets the next one to ``d_pre @ W_hh``); ``dc`` is carried in place.  Writes ``d_x_proj[:, t]`` and the
    pre-activation cotangent ``d_pre (n, 4H)``.  ``tanh(c)`` goes first into the ``o`` slot of ``d_pre``,
    in a loop of its own so that it vectorises."""
    n, hidden = dh.shape
    one = d_pre.dtype.type(1.0)
    for i in range(n):
        cs_row, d_row = cs[i, t], d_pre[i]
        for j in range(hidden):
            d_row[3 * hidden + j] = vm.tanh(cs_row[j])
        for j in range(hidden):
            gate_i = gates[i, t, j]
            gate_f = gates[i, t, hidden + j]
            gate_g = gates[i, t, 2 * hidden + j]
            gate_o = gates[i, t, 3 * hidden + j]
            tanh_c = d_row[3 * hidden + j]
            d_h = g_hs[i, t, j] + dh[i, j]
            d_c = dc[i, j] + d_h * gate_o * (one - tanh_c * tanh_c)
            dc[i, j] = d_c * gate_f
            d_row[j] = d_c * gate_g * gate_i * (one - gate_i)
            d_row[hidden + j] = d_c * c_prev[i, j] * gate_f * (one - gate_f)
            d_row[2 * hidden + j] = d_c * gate_i * (one - gate_g * gate_g)
            d_row[3 * hidden + j] = d_h * tanh_c * gate_o * (one - gate_o)
        _copy_row(d_row, d_x_proj[i, t])
