import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch():
    import torch
    return torch


CASES = [
    OpCase("linear", ops.linear, (rand(5, 3), rand(3, 4, seed=1), rand(4, seed=2)), ("linear",),
           numpy_ref=lambda x, w, b: x @ w + b, torch_ref=lambda x, w, b: x @ w + b),
    OpCase("linear-nobias-3d", ops.linear, (rand(2, 5, 3), rand(3, 4, seed=1)), ("linear",),
           numpy_ref=lambda x, w: x @ w, torch_ref=lambda x, w: x @ w),
    OpCase("linear-relu", lambda x, w, b: ops.linear(x, w, b, activation="relu"),
           (rand(6, 3), rand(3, 4, seed=1), rand(4, seed=2, away_from=(0.0,)) + 0.0), ("linear",),
           numpy_ref=lambda x, w, b: np.maximum(x @ w + b, 0), torch_ref=lambda x, w, b: (x @ w + b).relu()),
    OpCase("linear-batch1", ops.linear, (rand(1, 3), rand(3, 1, seed=1), rand(1, seed=2)), ("linear",),
           numpy_ref=lambda x, w, b: x @ w + b, torch_ref=lambda x, w, b: x @ w + b),
    OpCase("matmul-2d", ops.matmul, (rand(4, 3), rand(3, 5, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-nd-2d", ops.matmul, (rand(2, 4, 3), rand(3, 5, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-batched", ops.matmul, (rand(2, 4, 3), rand(2, 3, 5, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-vec", ops.matmul, (rand(4, 3), rand(3, seed=1)), ("matmul", "reshape"),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-vecvec", ops.matmul, (rand(3), rand(3, seed=1)), ("matmul", "reshape"),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
]

# Batch axes that broadcast (numpy's rules); the VJP sums over the broadcast axes.
CASES += [
    OpCase("matmul-broadcast-batch", ops.matmul, (rand(2, 3, 4, 5), rand(1, 3, 5, 2, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-broadcast-2d-a", ops.matmul, (rand(4, 5), rand(2, 3, 5, 6, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-broadcast-both", ops.matmul, (rand(2, 1, 4, 5), rand(3, 5, 6, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-broadcast-size1-b", ops.matmul, (rand(2, 4, 5), rand(1, 1, 5, 3, seed=1)), ("matmul",),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-vec-batched", ops.matmul, (rand(5), rand(2, 5, 3, seed=1)), ("matmul", "reshape"),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
    OpCase("matmul-batched-vec", ops.matmul, (rand(2, 3, 4, 5), rand(5, seed=1)), ("matmul", "reshape"),
           numpy_ref=np.matmul, torch_ref=lambda a, b: a @ b),
]
