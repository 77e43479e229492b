"""``gru_sequence`` and ``lstm_sequence``: each recurrence as one op, against the step-by-step definition
written once for NumPy and PyTorch arrays (PyTorch's gate orders r, z, n and i, f, g, o; ``reverse`` keeps
outputs at their input's time index)."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _reference(sigmoid, tanh, stack):
    def run(x_proj, h0, weight_hh, bias_hh, reverse=False):
        hidden = h0.shape[1]
        steps = x_proj.shape[1]
        h, outputs = h0, [None] * steps
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            x, hp = x_proj[:, t], h @ weight_hh.T + bias_hh
            r = sigmoid(x[:, :hidden] + hp[:, :hidden])
            z = sigmoid(x[:, hidden:2 * hidden] + hp[:, hidden:2 * hidden])
            n = tanh(x[:, 2 * hidden:] + r * hp[:, 2 * hidden:])
            h = (1 - z) * n + z * h
            outputs[t] = h
        return stack(outputs, 1)

    return run


def _lstm_reference(sigmoid, tanh, stack):
    def run(x_proj, h0, c0, weight_hh, bias_hh, reverse=False, return_cell=False):
        hidden = h0.shape[1]
        steps = x_proj.shape[1]
        h, c, outputs = h0, c0, [None] * steps
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            pre = x_proj[:, t] + h @ weight_hh.T + bias_hh
            i, f, g, o = (pre[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = sigmoid(f) * c + sigmoid(i) * tanh(g)
            h = sigmoid(o) * tanh(c)
            outputs[t] = h
        if return_cell:  # every h, then the final c, as one (batch, time + 1, H) array
            return stack(outputs + [c], 1)
        return stack(outputs, 1)

    return run


def _with_cell(*args, reverse=False):
    """``lstm_sequence(..., return_cell=True)`` as one array, the references' layout: every h, then c."""
    hs, c = ops.lstm_sequence(*args, reverse=reverse, return_cell=True)
    return ops.concatenate([hs, ops.reshape(c, (c.shape[0], 1, c.shape[1]))], axis=1)


_numpy_gru = _reference(lambda v: 1 / (1 + np.exp(-v)), np.tanh, lambda xs, axis: np.stack(xs, axis))


def _torch_gru(*args, reverse=False):
    import torch
    return _reference(torch.sigmoid, torch.tanh, lambda xs, axis: torch.stack(xs, axis))(*args, reverse=reverse)


_numpy_lstm = _lstm_reference(lambda v: 1 / (1 + np.exp(-v)), np.tanh, lambda xs, axis: np.stack(xs, axis))


def _torch_lstm(*args, reverse=False, return_cell=False):
    import torch
    return _lstm_reference(torch.sigmoid, torch.tanh, lambda xs, axis: torch.stack(xs, axis))(
        *args, reverse=reverse, return_cell=return_cell)


def _lstm_args(n, steps, hidden, seed):
    return (rand(n, steps, 4 * hidden, seed=seed), rand(n, hidden, seed=seed + 1), rand(n, hidden, seed=seed + 2),
            0.5 * rand(4 * hidden, hidden, seed=seed + 3), rand(4 * hidden, seed=seed + 4))


def _args(n, steps, hidden, seed):
    return (rand(n, steps, 3 * hidden, seed=seed), rand(n, hidden, seed=seed + 1),
            0.5 * rand(3 * hidden, hidden, seed=seed + 2), rand(3 * hidden, seed=seed + 3))


CASES = [
    OpCase("gru_sequence", lambda *a: ops.gru_sequence(*a), _args(3, 4, 5, 0), ("gru_sequence",),
           numpy_ref=_numpy_gru, torch_ref=_torch_gru),
    OpCase("gru_sequence-reverse-batch1", lambda *a: ops.gru_sequence(*a, reverse=True), _args(1, 5, 2, 10),
           ("gru_sequence",), numpy_ref=lambda *a: _numpy_gru(*a, reverse=True),
           torch_ref=lambda *a: _torch_gru(*a, reverse=True)),
    OpCase("gru_sequence-one-step", lambda *a: ops.gru_sequence(*a), _args(2, 1, 3, 20), ("gru_sequence",),
           numpy_ref=_numpy_gru, torch_ref=_torch_gru),
    OpCase("lstm_sequence", lambda *a: ops.lstm_sequence(*a), _lstm_args(3, 4, 5, 30), ("lstm_sequence",),
           numpy_ref=_numpy_lstm, torch_ref=_torch_lstm),
    OpCase("lstm_sequence-reverse-batch1", lambda *a: ops.lstm_sequence(*a, reverse=True), _lstm_args(1, 5, 2, 40),
           ("lstm_sequence",), numpy_ref=lambda *a: _numpy_lstm(*a, reverse=True),
           torch_ref=lambda *a: _torch_lstm(*a, reverse=True)),
    OpCase("lstm_sequence-one-step", lambda *a: ops.lstm_sequence(*a), _lstm_args(2, 1, 3, 50), ("lstm_sequence",),
           numpy_ref=_numpy_lstm, torch_ref=_torch_lstm),
    # 35 rows: three row blocks of the sequence kernels (16, 16 and 3 rows), each on a thread of its own
    OpCase("gru_sequence-reverse-row-blocks", lambda *a: ops.gru_sequence(*a, reverse=True), _args(35, 3, 2, 60),
           ("gru_sequence",), numpy_ref=lambda *a: _numpy_gru(*a, reverse=True),
           torch_ref=lambda *a: _torch_gru(*a, reverse=True)),
    OpCase("lstm_sequence-row-blocks", lambda *a: ops.lstm_sequence(*a), _lstm_args(35, 3, 2, 70),
           ("lstm_sequence",), numpy_ref=_numpy_lstm, torch_ref=_torch_lstm),
    # one step (a cell stepped in Python): the transposed weight's view instead of a transposed copy
    OpCase("gru_sequence-one-step-row-blocks", lambda *a: ops.gru_sequence(*a), _args(35, 1, 2, 80),
           ("gru_sequence",), numpy_ref=_numpy_gru, torch_ref=_torch_gru),
    OpCase("lstm_sequence-one-step-row-blocks", lambda *a: ops.lstm_sequence(*a), _lstm_args(35, 1, 2, 90),
           ("lstm_sequence",), numpy_ref=_numpy_lstm, torch_ref=_torch_lstm),
    # return_cell: the final cell state as well, with its own cotangent (LSTMCell's step)
    OpCase("lstm_sequence-return-cell", _with_cell, _lstm_args(3, 4, 5, 100), ("lstm_sequence",),
           numpy_ref=lambda *a: _numpy_lstm(*a, return_cell=True),
           torch_ref=lambda *a: _torch_lstm(*a, return_cell=True)),
    OpCase("lstm_sequence-return-cell-reverse", lambda *a: _with_cell(*a, reverse=True), _lstm_args(2, 3, 4, 110),
           ("lstm_sequence",), numpy_ref=lambda *a: _numpy_lstm(*a, reverse=True, return_cell=True),
           torch_ref=lambda *a: _torch_lstm(*a, reverse=True, return_cell=True)),
    OpCase("lstm_sequence-return-cell-one-step-row-blocks", _with_cell, _lstm_args(35, 1, 2, 120),
           ("lstm_sequence",), numpy_ref=lambda *a: _numpy_lstm(*a, return_cell=True),
           torch_ref=lambda *a: _torch_lstm(*a, return_cell=True)),
]
