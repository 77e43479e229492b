"""Per-rank data and keys: a disjoint slice of each epoch's permutation, and a key per rank."""

from __future__ import annotations

import numbers

import numpy as np

from .. import random as fnrandom
from . import _comm

__all__ = ["shard", "rank_key"]


def _rank_and_size(where, rank, size):
    if size is None:
        size = _comm.size()
    if rank is None:
        rank = _comm.rank()
    for name, value in (("size", size), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"{where}: need size >= 1 and 0 <= rank < size, got rank={rank}, size={size}")
    return int(rank), int(size)


def shard(key, n: int, *, rank=None, size=None, shuffle: bool = True):
    """This rank's examples for one epoch: a disjoint slice of one permutation of ``range(n)``.

    Every rank passes the same ``key`` (e.g. ``fnnet.random.fold_in(key, epoch)``) and so draws the same
    permutation; rank ``r`` takes its ``r``-th slice of ``n // size`` indices.  The slices are disjoint,
    equally long (so every rank runs the same number of steps, as the collectives need) and reproducible;
    the ``n % size`` examples left over change from epoch to epoch with the permutation.

    Args:
        key: a ``fnnet.random`` key, the same on every rank (unused when ``shuffle=False``).
        n: the number of examples.
        rank, size: default to this process's :func:`~fnnet.distributed.rank` and
            :func:`~fnnet.distributed.size`; pass them to compute any rank's shard without MPI.
        shuffle: slice a random permutation (else ``0 .. n - 1`` in order).

    Returns:
        int64 indices, shape ``(n // size,)``.

    Raises:
        TypeError / ValueError: bad ``rank``/``size``, ``n`` or key.
    """
    where = "fnnet.distributed.shard"
    rank, size = _rank_and_size(where, rank, size)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"{where}: n must be an int >= 0, got {n!r}")
    order = fnrandom.permutation(key, int(n)) if shuffle else np.arange(int(n), dtype=np.int64)
    per = int(n) // size
    return order[rank * per:(rank + 1) * per]


def rank_key(key, *, rank=None):
    """``fnnet.random.fold_in(key, rank)``: the key a rank uses for its own randomness (dropout masks)
    when every rank got the same ``key``.  Rank ``r`` of a data-parallel step uses the key that
    micro-batch ``r`` gets in the single-process reference (see docs/distributed.md)."""
    if rank is None:
        rank = _comm.rank()
    return fnrandom.fold_in(key, rank)
