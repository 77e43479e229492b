"""Pooling rows: PyTorch's max_pool2d / avg_pool2d / mean are the references."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _F():
    import torch
    return torch.nn.functional


def _max(k, s=None, p=0):
    return OpCase(f"max_pool2d-k{k}-s{s}-p{p}", lambda x: ops.max_pool2d(x, k, s, p), (rand(2, 3, 7, 6),),
                  ("max_pool2d",), torch_ref=lambda t: _F().max_pool2d(t, k, s, p))


def _avg(k, s=None, p=0, include=True):
    return OpCase(f"avg_pool2d-k{k}-s{s}-p{p}-{'incl' if include else 'excl'}",
                  lambda x: ops.avg_pool2d(x, k, s, p, count_include_pad=include), (rand(2, 3, 7, 6),),
                  ("avg_pool2d",), torch_ref=lambda t: _F().avg_pool2d(t, k, s, p, count_include_pad=include))


CASES = [
    _max(2),
    _max(3, 2, 1),
    _max((3, 2), (1, 2), (1, 1)),  # overlapping windows: several outputs route to one input
    _avg(2),
    _avg(3, 2, 1, include=True),
    _avg(3, 2, 1, include=False),
    _avg((2, 3), 1, (1, 1), include=False),
    OpCase("global_avg_pool2d", ops.global_avg_pool2d, (rand(2, 3, 5, 4),), ("global_avg_pool2d",),
           numpy_ref=lambda x: x.mean(axis=(2, 3)), torch_ref=lambda t: t.mean(dim=(2, 3))),
    OpCase("global_avg_pool2d-1x1", ops.global_avg_pool2d, (rand(1, 2, 1, 1),), ("global_avg_pool2d",),
           numpy_ref=lambda x: x.mean(axis=(2, 3)), torch_ref=lambda t: t.mean(dim=(2, 3))),
]
