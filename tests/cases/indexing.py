"""Indexing and joining: getitem (basic: "getitem"; advanced: "gather_rows"), take, concatenate, stack.

Torch references: tensor indexing (negative steps through ``flip``), torch.index_select, torch.cat,
torch.stack.  Repeated integer indices exercise the accumulating (scatter-add) backward.
"""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch():
    import torch
    return torch


def _t(index):
    """A numpy index with arrays converted to torch tensors."""
    torch = _torch()
    items = index if isinstance(index, tuple) else (index,)
    out = tuple(torch.as_tensor(i) if isinstance(i, np.ndarray) else i for i in items)
    return out if isinstance(index, tuple) else out[0]


_X = rand(4, 5, 3)
_REPEATS = np.array([2, 0, 2, 3, 2])
_MASK = rand(4, 5, seed=3) > 0

# (id, primitive, x, index); the torch reference indexes with the same index (arrays as tensors)
_ROWS = [
    ("int", "getitem", _X, 1),
    ("negative-int", "getitem", _X, -1),
    ("slice", "getitem", _X, slice(1, 3)),
    ("slice-step", "getitem", _X, (slice(None), slice(0, 5, 2))),
    ("int-slice-ellipsis", "getitem", _X, (Ellipsis, 1)),
    ("newaxis", "getitem", _X, (None, slice(None), None, 2)),
    ("batch1-row", "getitem", rand(1, 4), (0,)),
    ("int-array-repeats", "gather_rows", _X, _REPEATS),
    ("int-array-2d", "gather_rows", _X, np.array([[0, 3], [3, 3]])),
    ("int-array-axis1-repeats", "gather_rows", _X, (slice(None), np.array([4, 4, 1]))),
    ("int-arrays-pairs", "gather_rows", _X, (np.array([0, 3, 0]), np.array([1, 1, 1]))),
    ("int-arrays-separated", "gather_rows", _X, (np.array([0, 3, 0]), slice(1, 4), np.array([2, 2, 0]))),
    ("int-and-array", "gather_rows", _X, (1, np.array([0, 0, 4]), slice(None))),
    ("bool-mask", "gather_rows", _X, _MASK),
    ("bool-mask-last", "gather_rows", rand(3, 4), (slice(None), np.array([True, False, True, True]))),
    ("list-index", "gather_rows", _X, ([1, 1, 0],)),
    ("negative-index-array", "gather_rows", _X, np.array([-1, -4, -1])),
]

CASES = [
    OpCase(f"getitem-{name}", (lambda x, index=index: ops.getitem(x, index)), (x,), (prim,),
           numpy_ref=lambda x, index=index: x[index],
           torch_ref=lambda t, index=index: t[_t(index)])
    for name, prim, x, index in _ROWS
]

CASES += [
    OpCase("getitem-negative-step", lambda x: ops.getitem(x, slice(None, None, -2)), (_X,), ("getitem",),
           numpy_ref=lambda x: x[::-2], torch_ref=lambda t: t.flip(0)[::2]),
    OpCase("getitem-negative-step-inner", lambda x: ops.getitem(x, (Ellipsis, slice(2, 0, -1))), (_X,),
           ("getitem",), numpy_ref=lambda x: x[..., 2:0:-1], torch_ref=lambda t: t.flip(-1)[..., 0:2]),
    OpCase("take-axis1-repeats", lambda x: ops.take(x, np.array([3, 3, 0, 1]), axis=1), (_X,), ("gather_rows",),
           numpy_ref=lambda x: np.take(x, [3, 3, 0, 1], axis=1),
           torch_ref=lambda t: t.index_select(1, _torch().tensor([3, 3, 0, 1]))),
    OpCase("take-axis-1-2d-indices", lambda x: ops.take(x, np.array([[2, 0], [2, 2]]), axis=-1), (_X,),
           ("gather_rows",), numpy_ref=lambda x: np.take(x, [[2, 0], [2, 2]], axis=-1),
           torch_ref=lambda t: t[..., _torch().tensor([[2, 0], [2, 2]])]),
    OpCase("concatenate-axis0", lambda a, b: ops.concatenate([a, b]), (rand(2, 3), rand(1, 3, seed=1)),
           ("concatenate",), numpy_ref=lambda a, b: np.concatenate([a, b]),
           torch_ref=lambda a, b: _torch().cat([a, b])),
    OpCase("concatenate-axis-1-three", lambda a, b, c: ops.concatenate((a, b, c), axis=-1),
           (rand(2, 3, 1), rand(2, 3, 4, seed=1), rand(2, 3, 2, seed=2)), ("concatenate",),
           numpy_ref=lambda a, b, c: np.concatenate([a, b, c], axis=-1),
           torch_ref=lambda a, b, c: _torch().cat([a, b, c], dim=-1)),
    OpCase("concatenate-single", lambda a: ops.concatenate([a], axis=1), (rand(2, 3),), ("concatenate",),
           numpy_ref=lambda a: np.concatenate([a], axis=1), torch_ref=lambda a: _torch().cat([a], dim=1)),
    OpCase("stack-axis0", lambda a, b: ops.stack([a, b]), (rand(2, 3), rand(2, 3, seed=1)), ("stack",),
           numpy_ref=lambda a, b: np.stack([a, b]), torch_ref=lambda a, b: _torch().stack([a, b])),
    OpCase("stack-axis-1", lambda a, b, c: ops.stack([a, b, c], axis=-1),
           (rand(2, 1), rand(2, 1, seed=1), rand(2, 1, seed=2)), ("stack",),
           numpy_ref=lambda a, b, c: np.stack([a, b, c], axis=-1),
           torch_ref=lambda a, b, c: _torch().stack([a, b, c], dim=-1)),
    OpCase("stack-middle-batch1", lambda a, b: ops.stack([a, b], axis=1), (rand(1, 3), rand(1, 3, seed=1)),
           ("stack",), numpy_ref=lambda a, b: np.stack([a, b], axis=1),
           torch_ref=lambda a, b: _torch().stack([a, b], dim=1)),
]
