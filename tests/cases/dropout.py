"""dropout and channel_dropout rows: the reference applies the same mask (fnnet.random.bernoulli with the same key,
drawn per element, or per (sample, channel) and broadcast over the spatial axes)."""

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


def _channel_keep(shape, rate):
    return fnnet.random.bernoulli(_KEY, shape[:2] + (1,) * (len(shape) - 2), 1.0 - rate).astype(np.float64)


def _channel_case(shape, rate):
    x = rand(*shape, seed=3)
    keep = _channel_keep(shape, rate)
    return OpCase(f"channel_dropout-{len(shape)}d-{rate}", lambda x: ops.channel_dropout(x, _KEY, rate), (x,),
                  ("dropout",), numpy_ref=lambda x: x * keep / (1.0 - rate),
                  torch_ref=lambda t: t * t.new_tensor(keep) / (1.0 - rate))


CASES = [
    OpCase("dropout-0.3", lambda x: ops.dropout(x, _KEY, _RATE), (_X,), ("dropout",),
           numpy_ref=lambda x: x * _KEEP / (1.0 - _RATE), torch_ref=_torch_ref),
    _channel_case((3, 6, 4, 5), 0.5),
    _channel_case((1, 7, 3), 0.25),
    _channel_case((2, 3, 2, 2, 2), 0.6),
]
