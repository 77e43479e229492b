"""Softmax family: softmax, log_softmax, logsumexp (torch.softmax / log_softmax / logsumexp)."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch():
    import torch
    return torch


def _np_logsumexp(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_log_softmax(x, axis):
    return x - _np_logsumexp(x, axis, keepdims=True)


_EXTREME = np.array([[1000.0, -1000.0, 0.5, 999.0], [-1000.0, -1000.5, -999.0, -1001.0]])

# (id, x, axis)
_SETTINGS = [
    ("last", rand(3, 5), -1),
    ("axis0", rand(4, 3), 0),
    ("middle-3d", rand(2, 4, 3), 1),
    ("batch1", rand(1, 6), -1),
    ("size1-axis", rand(3, 1), -1),
    ("vector", rand(5), 0),
    ("extreme-logits", _EXTREME, -1),
    ("extreme-logits-axis0", _EXTREME.T.copy(), 0),
]

CASES = []
for name, x, axis in _SETTINGS:
    CASES += [
        OpCase(f"softmax-{name}", lambda x, axis=axis: ops.softmax(x, axis=axis), (x,), ("softmax",),
               numpy_ref=lambda x, axis=axis: np.exp(_np_log_softmax(x, axis)),
               torch_ref=lambda t, axis=axis: _torch().softmax(t, dim=axis)),
        OpCase(f"log_softmax-{name}", lambda x, axis=axis: ops.log_softmax(x, axis=axis), (x,), ("log_softmax",),
               numpy_ref=lambda x, axis=axis: _np_log_softmax(x, axis),
               torch_ref=lambda t, axis=axis: _torch().log_softmax(t, dim=axis)),
        OpCase(f"logsumexp-{name}", lambda x, axis=axis: ops.logsumexp(x, axis=axis), (x,), ("logsumexp",),
               numpy_ref=lambda x, axis=axis: _np_logsumexp(x, axis),
               torch_ref=lambda t, axis=axis: _torch().logsumexp(t, dim=axis)),
    ]

CASES += [
    OpCase("logsumexp-keepdims-axis0", lambda x: ops.logsumexp(x, axis=0, keepdims=True), (rand(3, 4),),
           ("logsumexp",), numpy_ref=lambda x: _np_logsumexp(x, 0, keepdims=True),
           torch_ref=lambda t: _torch().logsumexp(t, dim=0, keepdim=True)),
    OpCase("logsumexp-keepdims-last", lambda x: ops.logsumexp(x, axis=-1, keepdims=True), (rand(2, 3, 4),),
           ("logsumexp",), numpy_ref=lambda x: _np_logsumexp(x, -1, keepdims=True),
           torch_ref=lambda t: _torch().logsumexp(t, dim=-1, keepdim=True)),
]
