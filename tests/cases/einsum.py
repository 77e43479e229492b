"""``einsum``: the contractions attention and bilinear layers use, against ``np.einsum`` and ``torch.einsum``."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch():
    import torch
    return torch


def _row(subscripts, shapes, covers):
    args = tuple(rand(*shape, seed=i) for i, shape in enumerate(shapes))
    return OpCase(f"einsum-{subscripts}", lambda *xs: ops.einsum(subscripts, *xs), args, covers,
                  numpy_ref=lambda *xs: np.einsum(subscripts, *xs),
                  torch_ref=lambda *ts: _torch().einsum(subscripts, *ts))


CASES = [
    _row("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)], ("matmul", "transpose")),   # attention scores
    _row("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)], ("matmul",)),               # attention output
    _row("bi,ij->bj", [(3, 4), (4, 5)], ("matmul",)),
    _row("bi,bj->bij", [(3, 4), (3, 5)], ("matmul", "reshape")),                        # outer product per row
    _row("ij,kj->ik", [(3, 4), (5, 4)], ("matmul", "transpose")),
    _row("ij,jk->ki", [(3, 4), (4, 5)], ("matmul", "transpose")),                       # permuted output
    _row("bi,bij->bj", [(3, 4), (3, 4, 5)], ("matmul", "reshape")),                    # bilinear, one side
    _row("ijk,ikl->lj", [(2, 3, 4), (2, 4, 5)], ("matmul", "transpose", "reshape")),  # batch index summed out
    _row("abc,cd->bd", [(2, 3, 4), (4, 5)], ("sum", "matmul")),                        # index only in a, summed
    _row("ij,kl->ijkl", [(2, 3), (4, 5)], ("matmul", "reshape")),
    _row("i,i->", [(4,)] * 2, ("matmul", "reshape")),
    _row("ij,jk", [(3, 4), (4, 5)], ("matmul",)),                                       # implicit output 'ik'
    _row("ij->ji", [(3, 4)], ("transpose",)),
    _row("ijk->ki", [(2, 3, 4)], ("sum", "transpose")),
]
