"""Recurrences as single ops: ``gru_sequence`` and ``lstm_sequence`` run the hidden-state half of a GRU or an
LSTM over every time step as one tape entry (the input projections of all steps come before, as one GEMM).

The forward and the backward are one kernel call each (``fnnet.kernels.recurrent``): the batch rows run in
fixed blocks, one thread per block, each walking every step with one BLAS product and one fused gate pass
per step; the backward then forms the weight gradient of all steps as one GEMM.  ``reverse`` walks time
from the end, outputs staying at their step.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, check_same_dtype, contiguous, value
from .indexing import getitem

__all__ = ["gru_sequence", "lstm_sequence"]


def _gru_sequence_fwd(x_proj, h0, weight_hh, bias_hh, reverse=False):
    hs, gates = K.gru_sequence_fwd(contiguous(x_proj), contiguous(h0), contiguous(weight_hh), contiguous(bias_hh),
                                   reverse)
    return hs, (h0, hs, gates, weight_hh)


def _gru_sequence_bwd(res, g, reverse=False):
    h0, hs, gates, weight_hh = res
    return K.gru_sequence_bwd(contiguous(g), contiguous(h0), hs, gates, contiguous(weight_hh), reverse)


_gru_sequence = primitive("gru_sequence", _gru_sequence_fwd, _gru_sequence_bwd,
                          argnames=("x_proj", "h0", "weight_hh", "bias_hh"))


def _lstm_sequence_fwd(x_proj, h0, c0, weight_hh, bias_hh, reverse=False, cell=False):
    """``hs (n, t, H)``; with ``cell``, ``(n, t + 1, H)``: ``hs`` and then the final cell state, one array so
    that one cotangent reaches both (a primitive has one differentiable output)."""
    hs, cs, gates = K.lstm_sequence_fwd(contiguous(x_proj), contiguous(h0), contiguous(c0), contiguous(weight_hh),
                                        contiguous(bias_hh), reverse)
    residuals = (h0, c0, hs, cs, gates, weight_hh)
    if not cell:
        return hs, residuals
    n, count, hidden = hs.shape
    out = np.empty((n, count + 1, hidden), hs.dtype)
    out[:, :count] = hs
    out[:, count] = cs[:, 0 if reverse else count - 1]
    return out, residuals


def _lstm_sequence_bwd(res, g, reverse=False, cell=False):
    h0, c0, hs, cs, gates, weight_hh = res
    if cell:
        count = hs.shape[1]
        g_hs, g_c = np.ascontiguousarray(g[:, :count]), np.ascontiguousarray(g[:, count])
    else:
        g_hs, g_c = contiguous(g), np.zeros((hs.shape[0], hs.shape[2]), hs.dtype)
    return K.lstm_sequence_bwd(g_hs, g_c, contiguous(h0), contiguous(c0), hs, cs, gates, contiguous(weight_hh),
                               reverse)


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


def lstm_sequence(x_proj, h0, c0, weight_hh, bias_hh, *, reverse=False, return_cell=False):
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
        return_cell: also return the cell state after the last step processed (step ``time - 1``, or step 0
            with ``reverse``), differentiable like ``h``: what an ``LSTMCell`` stepped in a loop carries.

    Returns:
        ``(batch, time, H)``: ``h`` after every step; with ``return_cell``, the pair ``(h of every step,
        c (batch, H))``.

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: shapes that do not fit together, or ``time == 0``.
    """
    args = _checked("lstm_sequence", 4, x_proj=x_proj, h0=h0, c0=c0, weight_hh=weight_hh, bias_hh=bias_hh)
    if not return_cell:
        return _lstm_sequence(*args, reverse=bool(reverse))
    out = _lstm_sequence(*args, reverse=bool(reverse), cell=True)
    count = value(args[0]).shape[1]
    return getitem(out, (slice(None), slice(0, count))), getitem(out, (slice(None), count))


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
