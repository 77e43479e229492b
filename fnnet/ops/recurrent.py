"""Recurrences as single ops: ``gru_sequence`` and ``lstm_sequence`` run the hidden-state half of a GRU or an
LSTM over every time step as one tape entry (the input projections of all steps come before, as one GEMM).

Per step the forward makes one BLAS product ``h @ W_hh^T`` and one fused gate kernel; the backward walks the
steps in reverse with one fused gate kernel and one product ``d_pre @ W_hh`` each, then forms the weight
gradient of all steps as one GEMM.  ``reverse`` walks time from the end, outputs staying at their step.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, check_same_dtype, contiguous, value

__all__ = ["gru_sequence", "lstm_sequence"]


def _steps(count, reverse):
    return range(count - 1, -1, -1) if reverse else range(count)


def _previous(h0, hs, order, s):
    """The state before processing step ``order[s]``."""
    return h0 if s == 0 else hs[:, order[s - 1]]


def _weight_grads(d_pre, h_prev):
    """``(d_weight_hh, d_bias_hh)`` of all steps at once, from time-major ``d_pre (t, n, G)`` and ``h_prev``."""
    count, n, g = d_pre.shape
    d_pre = d_pre.reshape(count * n, g)
    return d_pre.T @ h_prev.reshape(count * n, h_prev.shape[2]), K.column_sums(d_pre)


def _gru_sequence_fwd(x_proj, h0, weight_hh, bias_hh, reverse=False):
    n, count, g = x_proj.shape
    x_proj, bias_hh, w_hh_t = contiguous(x_proj), contiguous(bias_hh), np.ascontiguousarray(weight_hh.T)
    hs = np.empty((n, count, g // 3), x_proj.dtype)
    gates = np.empty((n, count, 4 * (g // 3)), x_proj.dtype)
    h, hp = np.array(h0, order="C", copy=True), np.empty((n, g), x_proj.dtype)
    for t in _steps(count, reverse):
        np.dot(h, w_hh_t, out=hp)
        K.gru_step_fwd(x_proj, hp, bias_hh, h, hs, gates, t)
    return hs, (h0, hs, gates, weight_hh)


def _gru_sequence_bwd(res, g, reverse=False):
    h0, hs, gates, weight_hh = res
    n, count, hidden = hs.shape
    g, w_hh = contiguous(g), contiguous(weight_hh)
    d_x_proj = np.empty((n, count, 3 * hidden), hs.dtype)
    d_pre = np.empty((count, n, 3 * hidden), hs.dtype)   # time major: each step's slice is contiguous
    h_prev = np.empty((count, n, hidden), hs.dtype)
    dh = np.zeros((n, hidden), hs.dtype)
    order = list(_steps(count, reverse))
    for s in range(count - 1, -1, -1):
        t = order[s]
        h_prev[t] = _previous(h0, hs, order, s)
        K.gru_step_bwd(g, dh, h_prev[t], gates, t, d_x_proj, d_pre[t])
        dh += d_pre[t] @ w_hh
    return (d_x_proj, dh, *_weight_grads(d_pre, h_prev))


_gru_sequence = primitive("gru_sequence", _gru_sequence_fwd, _gru_sequence_bwd,
                          argnames=("x_proj", "h0", "weight_hh", "bias_hh"))


def _lstm_sequence_fwd(x_proj, h0, c0, weight_hh, bias_hh, reverse=False):
    n, count, g = x_proj.shape
    x_proj, bias_hh, w_hh_t = contiguous(x_proj), contiguous(bias_hh), np.ascontiguousarray(weight_hh.T)
    hs, cs = (np.empty((n, count, g // 4), x_proj.dtype) for _ in range(2))
    gates = np.empty((n, count, g), x_proj.dtype)
    h, c = np.array(h0, order="C", copy=True), np.array(c0, order="C", copy=True)
    hp = np.empty((n, g), x_proj.dtype)
    for t in _steps(count, reverse):
        np.dot(h, w_hh_t, out=hp)
        K.lstm_step_fwd(x_proj, hp, bias_hh, h, c, hs, cs, gates, t)
    return hs, (h0, c0, hs, cs, gates, weight_hh)


def _lstm_sequence_bwd(res, g, reverse=False):
    h0, c0, hs, cs, gates, weight_hh = res
    n, count, hidden = hs.shape
    g, w_hh, c0 = contiguous(g), contiguous(weight_hh), contiguous(c0)
    d_x_proj = np.empty((n, count, 4 * hidden), hs.dtype)
    d_pre = np.empty((count, n, 4 * hidden), hs.dtype)
    h_prev = np.empty((count, n, hidden), hs.dtype)
    dh, dc = np.zeros((n, hidden), hs.dtype), np.zeros((n, hidden), hs.dtype)
    order = list(_steps(count, reverse))
    for s in range(count - 1, -1, -1):
        t = order[s]
        h_prev[t] = _previous(h0, hs, order, s)
        c_prev = contiguous(_previous(c0, cs, order, s))
        K.lstm_step_bwd(g, dh, dc, c_prev, cs, gates, t, d_x_proj, d_pre[t])
        dh = d_pre[t] @ w_hh
    return (d_x_proj, dh, dc, *_weight_grads(d_pre, h_prev))


_lstm_sequence = primitive("lstm_sequence", _lstm_sequence_fwd, _lstm_sequence_bwd,
                           argnames=("x_proj", "h0", "c0", "weight_hh", "bias_hh"))


def gru_sequence(x_proj, h0, weight_hh, bias_hh, *, reverse=False):
    """The states of a GRU over a whole sequence, given the input projections of every step.

    Per step (PyTorch's gate order ``r, z, n``), with ``[x_r, x_z, x_n] = x_proj[:, t]``::

        [h_r, h_z, h_n] = h @ weight_hh.T + bias_hh
        r = sigmoid(x_r + h_r);  z = sigmoid(x_z + h_z);  n = tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h

    Args:
        x_proj: ``(batch, time, 3H)``: ``x @ weight_ih.T + bias_ih`` for every step (``fnnet.ops.linear``).
        h0: ``(batch, H)``, the initial state.
        weight_hh: ``(3H, H)``, PyTorch's layout (rows ``[r; z; n]``).
        bias_hh: ``(3H,)``.
        reverse: run from the last step to the first; ``result[:, t]`` is still the state after step ``t``.

    Returns:
        ``(batch, time, H)``: the state after every step.

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: shapes that do not fit together, or ``time == 0``.
    """
    args = _checked("gru_sequence", 3, x_proj=x_proj, h0=h0, weight_hh=weight_hh, bias_hh=bias_hh)
    return _gru_sequence(*args, reverse=bool(reverse))


def lstm_sequence(x_proj, h0, c0, weight_hh, bias_hh, *, reverse=False):
    """The hidden states ``h`` of an LSTM over a whole sequence, given the input projections of every step.

    Per step (PyTorch's gate order ``i, f, g, o``)::

        [i, f, g, o] = x_proj[:, t] + h @ weight_hh.T + bias_hh      (sigmoid, sigmoid, tanh, sigmoid)
        c = f * c + i * g;  h = o * tanh(c)

    Args:
        x_proj: ``(batch, time, 4H)``: ``x @ weight_ih.T + bias_ih`` for every step.
        h0, c0: ``(batch, H)`` each, the initial hidden and cell states.
        weight_hh: ``(4H, H)``, PyTorch's layout (rows ``[i; f; g; o]``).
        bias_hh: ``(4H,)``.
        reverse: run from the last step to the first; ``result[:, t]`` is still the state after step ``t``.

    Returns:
        ``(batch, time, H)``: ``h`` after every step (the cell states are not returned).

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: shapes that do not fit together, or ``time == 0``.
    """
    args = _checked("lstm_sequence", 4, x_proj=x_proj, h0=h0, c0=c0, weight_hh=weight_hh, bias_hh=bias_hh)
    return _lstm_sequence(*args, reverse=bool(reverse))


def _checked(op, gates, **arrays):
    """The float arrays, after checking dtypes and that the shapes fit ``gates`` gate blocks."""
    arrays = {name: check_float(op, name, a) for name, a in arrays.items()}
    check_same_dtype(op, **arrays)
    shapes = {name: value(a).shape for name, a in arrays.items()}
    ws = shapes["weight_hh"]
    if len(ws) != 2 or ws[0] != gates * ws[1]:
        raise ValueError(f"{op}: weight_hh must have shape ({gates}H, H), got {ws}")
    hidden, xs = ws[1], shapes["x_proj"]
    if len(xs) != 3 or xs[2] != gates * hidden or xs[1] == 0:
        raise ValueError(f"{op}: x_proj must have shape (batch, time >= 1, {gates * hidden}) for weight_hh {ws}, "
                         f"got {xs}")
    for name in ("h0", "c0"):
        if name in shapes and shapes[name] != (xs[0], hidden):
            raise ValueError(f"{op}: {name} must have shape {(xs[0], hidden)} (batch, H), got {shapes[name]}")
    if shapes["bias_hh"] != (gates * hidden,):
        raise ValueError(f"{op}: bias_hh must have shape ({gates * hidden},), got {shapes['bias_hh']}")
    return tuple(arrays.values())
