"""embedding rows: repeated indices check the scatter-add of the table gradient.

The ``padding_idx`` rows name a row that ``_IDX`` never looks up (row 4): a looked-up padding row gets a zero
gradient by definition, which central differences cannot confirm; tests/test_norm_embedding_dropout.py and the
layer table check a looked-up padding row against PyTorch."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch_embedding(i, t, padding_idx=None):
    import torch
    return torch.nn.functional.embedding(i, t, padding_idx=padding_idx)


_IDX = np.array([[0, 5, 2, 5], [1, 5, 0, 3], [5, 2, 2, 0]], dtype=np.int64)

CASES = [
    OpCase("embedding-2d-repeats", ops.embedding, (_IDX, rand(6, 5)), ("embedding",),
           numpy_ref=lambda i, t: t[i], torch_ref=_torch_embedding),
    OpCase("embedding-int32-1d", ops.embedding, (np.array([3, 0, 3, 3, 1], dtype=np.int32), rand(4, 3)),
           ("embedding",), numpy_ref=lambda i, t: t[i],
           torch_ref=lambda i, t: _torch_embedding(i.long(), t)),
    OpCase("embedding-many-repeats", ops.embedding, (np.arange(200, dtype=np.int64) % 7, rand(9, 2)),
           ("embedding",), numpy_ref=lambda i, t: t[i], torch_ref=_torch_embedding),
    OpCase("embedding-padding-idx", lambda i, t: ops.embedding(i, t, padding_idx=4), (_IDX, rand(6, 5)), ("embedding",),
           numpy_ref=lambda i, t: t[i], torch_ref=lambda i, t: _torch_embedding(i, t, padding_idx=4)),
    OpCase("embedding-padding-idx-negative", lambda i, t: ops.embedding(i, t, padding_idx=-2), (_IDX, rand(6, 2)),
           ("embedding",), numpy_ref=lambda i, t: t[i], torch_ref=lambda i, t: _torch_embedding(i, t, padding_idx=-2)),
]
