"""``split`` (numpy's rules) and ``chunk`` (torch's): each piece is scaled by its position before the pieces are
joined again, so a piece in the wrong place or of the wrong size changes the result and its gradient."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _rejoin(pieces, axis, cat):
    return cat([p * float(i + 1) for i, p in enumerate(pieces)], axis)


def _np_chunk(x, chunks, axis):
    """torch.chunk's definition in numpy: pieces of ceil(n / chunks), the last one smaller."""
    size = -(-x.shape[axis] // chunks)
    return np.split(x, list(range(size, x.shape[axis], size)), axis=axis)


def _torch():
    import torch
    return torch


CASES = [
    OpCase("split-sections", lambda x: _rejoin(ops.split(x, 3, axis=1), 1, ops.concatenate), (rand(2, 6, 3),),
           ("getitem", "multiply", "concatenate"),
           numpy_ref=lambda x: _rejoin(np.split(x, 3, axis=1), 1, np.concatenate),
           torch_ref=lambda t: _rejoin(_torch().tensor_split(t, 3, dim=1), 1, _torch().cat)),
    OpCase("split-indices", lambda x: _rejoin(ops.split(x, [1, 4, -1], axis=-1), -1, ops.concatenate),
           (rand(2, 3, 7),), ("getitem", "multiply", "concatenate"),
           numpy_ref=lambda x: _rejoin(np.split(x, [1, 4, -1], axis=-1), -1, np.concatenate),
           torch_ref=lambda t: _rejoin(_torch().tensor_split(t, [1, 4, 6], dim=-1), -1, _torch().cat)),
    OpCase("chunk-uneven", lambda x: _rejoin(ops.chunk(x, 3, axis=0), 0, ops.concatenate), (rand(5, 2),),
           ("getitem", "multiply", "concatenate"),
           numpy_ref=lambda x: _rejoin(_np_chunk(x, 3, 0), 0, np.concatenate),
           torch_ref=lambda t: _rejoin(_torch().chunk(t, 3, dim=0), 0, _torch().cat)),
    OpCase("chunk-fewer-pieces", lambda x: _rejoin(ops.chunk(x, 4, axis=1), 1, ops.concatenate), (rand(2, 6),),
           ("getitem", "multiply", "concatenate"),
           numpy_ref=lambda x: _rejoin(_np_chunk(x, 4, 1), 1, np.concatenate),
           torch_ref=lambda t: _rejoin(_torch().chunk(t, 4, dim=1), 1, _torch().cat)),
    OpCase("chunk-qkv", lambda x: _rejoin(ops.chunk(x, 3, axis=-1), -1, ops.concatenate), (rand(2, 4, 9),),
           ("getitem", "multiply", "concatenate"),
           numpy_ref=lambda x: _rejoin(_np_chunk(x, 3, -1), -1, np.concatenate),
           torch_ref=lambda t: _rejoin(_torch().chunk(t, 3, dim=-1), -1, _torch().cat)),
]
