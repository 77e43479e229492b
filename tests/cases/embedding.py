"""embedding rows: repeated indices check the scatter-add of the table gradient."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch_embedding(i, t):
    import torch
    return torch.nn.functional.embedding(i, t)


_IDX = np.array([[0, 5, 2, 5], [1, 5, 0, 3], [5, 2, 2, 0]], dtype=np.int64)

CASES = [
    OpCase("embedding-2d-repeats", ops.embedding, (_IDX, rand(6, 5)), ("embedding",),
           numpy_ref=lambda i, t: t[i], torch_ref=_torch_embedding),
    OpCase("embedding-int32-1d", ops.embedding, (np.array([3, 0, 3, 3, 1], dtype=np.int32), rand(4, 3)),
           ("embedding",), numpy_ref=lambda i, t: t[i],
           torch_ref=lambda i, t: _torch_embedding(i.long(), t)),
    OpCase("embedding-many-repeats", ops.embedding, (np.arange(200, dtype=np.int64) % 7, rand(9, 2)),
           ("embedding",), numpy_ref=lambda i, t: t[i], torch_ref=_torch_embedding),
]
