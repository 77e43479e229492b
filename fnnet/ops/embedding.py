"""``embedding``: look rows of a table up by integer index (differentiable with respect to the table)."""

from __future__ import annotations

import functools

import numpy as np

from .. import kernels as K
from ..autodiff import Tracer, primitive, recording
from ._validate import check_array, check_float, check_ndim, contiguous, indices_in_range, value

__all__ = ["embedding"]

_INDEX_DTYPES = (np.int32, np.int64)


def _embedding_fwd(indices, table, *, padding_idx):
    flat = contiguous(indices).reshape(-1)
    out = K.embedding_fwd(flat, contiguous(table))
    return out.reshape(*indices.shape, table.shape[1]), (flat, table.shape[0])


def _embedding_bwd(res, g, *, padding_idx):
    flat, num = res
    g2 = contiguous(g).reshape(flat.shape[0], g.shape[-1])
    gt = K.embedding_bwd(flat, g2, num)
    if padding_idx is not None:
        gt[padding_idx] = 0.0  # the padding row is not trained
    return None, gt


_embedding = primitive("embedding", _embedding_fwd, _embedding_bwd, argnames=("indices", "table"))


def embedding(indices, table, *, padding_idx=None):
    """Gather rows: ``out[..., :] = table[indices[...], :]``, like ``torch.nn.functional.embedding``.

    The gradient with respect to ``table`` adds the output cotangents of every occurrence of an index into
    that row (repeated indices accumulate, deterministically, in index order), except for the row
    ``padding_idx``, whose gradient is zero.  ``indices`` is not differentiable.

    Args:
        indices: int32 or int64 array of any shape ``S``, values in ``[0, num)`` (negative values are not
            wrapped around).
        table: ``(num, features)``, float32 or float64.
        padding_idx: None, or an int in ``[-num, num)`` (negative values count from the end, as in
            PyTorch): the row that receives no gradient.

    Returns:
        ``S + (features,)``, the dtype of ``table``.

    Raises:
        TypeError: ``indices`` not an int32/int64 array (floats included), ``table`` not float.
        ValueError: ``table`` not 2-D, ``padding_idx`` out of range.
        IndexError: an index outside ``[0, num)``; names the value, its position and the table size.
    """
    op = "embedding"
    traced = recording.jit_index(indices)  # fnnet.jit's traced indices: checked now and on every replay
    if traced is not None:
        indices = traced
    if type(indices) is Tracer or not isinstance(indices, np.ndarray) or indices.dtype.type not in _INDEX_DTYPES:
        got = f"dtype {value(indices).dtype}" if isinstance(value(indices), np.ndarray) else type(indices).__name__
        raise TypeError(
            f"{op}: indices must be an int32 or int64 array, got {got}; convert with indices.astype(np.int64) "
            "(after checking float indices hold whole numbers)"
        )
    indices = check_array(op, "indices", indices)
    table = check_float(op, "table", table)
    check_ndim(op, "table", table, 2, "(num_embeddings, features)")
    num = value(table).shape[0]
    check = functools.partial(_check_rows, op, num=num)
    check.fnnet_quick_check = functools.partial(indices_in_range, num)
    recording.check(check, indices)  # and on every jit replay
    return _embedding(indices, table, padding_idx=_padding_row(op, padding_idx, num))


def _check_rows(op, indices, num):
    """IndexError naming the first index outside ``[0, num)``."""
    if not indices_in_range(num, indices):
        bad = (indices < 0) | (indices >= num)
        pos = tuple(int(p) for p in np.argwhere(bad)[0])
        raise IndexError(
            f"{op}: indices[{', '.join(map(str, pos))}] = {int(indices[pos])} is out of range for a table of {num} rows "
            f"(valid indices are 0..{num - 1}; negative indices are not wrapped)"
        )


def _padding_row(op, padding_idx, num):
    """``padding_idx`` as a row number in ``[0, num)`` (negative values wrap once), or None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
        raise TypeError(f"{op}: padding_idx expected None or an int, got {padding_idx!r}")
    if not -num <= padding_idx < num:
        raise ValueError(f"{op}: padding_idx={int(padding_idx)} is out of range for a table of {num} rows; "
                         f"use a row in [{-num}, {num - 1}] (negative values count from the end)")
    return int(padding_idx) % num
