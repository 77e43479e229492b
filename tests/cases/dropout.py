"""dropout rows: the reference applies the same mask (fnnet.random.bernoulli with the same key)."""

import numpy as np

import fnnet
import fnnet.ops as ops

from ._case import OpCase, rand

_KEY = fnnet.random.key(7)
_X = rand(4, 6)
_RATE = 0.3
_KEEP = fnnet.random.bernoulli(_KEY, _X.shape, 1.0 - _RATE)


def _torch_ref(t):
    import torch
    return t * torch.tensor(_KEEP.astype(np.float64)) / (1.0 - _RATE)


CASES = [
    OpCase("dropout-0.3", lambda x: ops.dropout(x, _KEY, _RATE), (_X,), ("dropout",),
           numpy_ref=lambda x: x * _KEEP / (1.0 - _RATE), torch_ref=_torch_ref),
]
