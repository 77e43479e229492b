"""Pooling rows: PyTorch's max_pool1d/2d, avg_pool1d/2d and mean are the references."""

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


def _max_with(shape, k, s=None, p=0, d=1, ceil=False):
    name = "max_pool1d" if len(shape) == 3 else "max_pool2d"
    fn = getattr(ops, name)
    return OpCase(f"{name}-{'x'.join(map(str, shape))}-k{k}-s{s}-p{p}-d{d}-ceil{ceil}",
                  lambda x: fn(x, k, s, p, d, ceil), (rand(*shape, seed=21),), (name,),
                  torch_ref=lambda t: getattr(_F(), name)(t, k, s, p, d, ceil))


def _avg_with(shape, k, s=None, p=0, include=True, ceil=False):
    name = "avg_pool1d" if len(shape) == 3 else "avg_pool2d"
    fn = getattr(ops, name)
    return OpCase(f"{name}-{'x'.join(map(str, shape))}-k{k}-s{s}-p{p}-{'incl' if include else 'excl'}-ceil{ceil}",
                  lambda x: fn(x, k, s, p, include, ceil_mode=ceil), (rand(*shape, seed=22),), (name,),
                  torch_ref=lambda t: getattr(_F(), name)(t, k, s, p, ceil, include))


CASES += [
    _max_with((2, 3, 7, 6), 3, 2, 1, ceil=True),  # a last, partial window on each axis
    _max_with((2, 2, 8, 7), (2, 3), (2, 1), (1, 1), d=(2, 1)),
    _max_with((1, 2, 9, 9), 3, 2, 1, d=2, ceil=True),
    _max_with((2, 3, 9), 3),
    _max_with((2, 3, 8), 3, 2, 1, d=2, ceil=True),
    _max_with((1, 1, 5), 4, 3, 2, ceil=True),  # ceil mode drops a window that would start in the padding
    _avg_with((2, 3, 7, 6), 3, 2, 1, ceil=True),  # clipped windows: the divisor stops at the padded edge
    _avg_with((2, 3, 7, 6), 3, 2, 1, include=False, ceil=True),
    _avg_with((1, 2, 5, 8), (2, 4), (3, 3), (1, 2), ceil=True),
    _avg_with((2, 3, 9), 3),
    _avg_with((2, 3, 8), 4, 3, 2, ceil=True),
    _avg_with((1, 2, 7), 3, 2, 1, include=False),
]
