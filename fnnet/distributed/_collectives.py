"""Collectives over whole trees: all-reduce (sum, mean), broadcast, and the check that every rank holds
a tree of the same structure, shapes and dtypes.

Every rank must call a collective, in the same order, with a tree of the same structure, shapes and
dtypes (:func:`check_consistent` verifies this once, e.g. at the first training step).
"""

from __future__ import annotations

import numpy as np

from .. import tree
from . import _comm
from ._packing import FLOAT_KINDS, NUMBER_KINDS, array_leaves, plan_buffers, rank_order_sum

__all__ = ["allreduce_sum", "allreduce_mean", "broadcast", "check_consistent"]

#: Bytes packed and reduced per ``Allreduce`` call: small enough to stay in cache between the packing and
#: MPI's read of it, large enough that per-call latency does not count.
CHUNK_BYTES = 4 << 20


def reduce_buffer(comm, buffer, deterministic):
    """Sum ``buffer.data`` over the ranks, in place, blocking."""
    if not deterministic:
        comm.Allreduce(_comm.import_mpi().IN_PLACE, buffer.data)
        return
    ranks = comm.Get_size()
    chunks = np.empty((ranks, buffer.padded // ranks), buffer.dtype)
    comm.Alltoall(buffer.data, chunks)  # chunks[j]: rank j's part of the chunk this rank sums
    comm.Allgather(rank_order_sum(chunks), buffer.data)


def pack_and_reduce(comm, buffer, leaves, scale=None):
    """Pack ``leaves`` (times ``scale``) into ``buffer.data`` and sum it over the ranks in place, one chunk of
    ``CHUNK_BYTES`` at a time, so that MPI reads each chunk while the packing has just left it in cache."""
    step = max(1, CHUNK_BYTES // buffer.dtype.itemsize)
    in_place = _comm.import_mpi().IN_PLACE
    for start in range(0, buffer.padded, step):
        end = min(buffer.padded, start + step)
        buffer.put_range(leaves, start, end, scale)
        comm.Allreduce(in_place, buffer.data[start:end])


def _allreduce(where, t, mean, deterministic):
    kinds = FLOAT_KINDS if mean else NUMBER_KINDS
    leaves, treedef = array_leaves(where, "the tree", t, kinds)
    comm = _comm.communicator()
    ranks = comm.Get_size()
    out = list(leaves)
    for buffer in plan_buffers(leaves, range(len(leaves)), ranks):
        buffer.allocate()
        if deterministic:
            buffer.put_range(leaves, 0, buffer.size)
            reduce_buffer(comm, buffer, deterministic)
            if mean:
                np.divide(buffer.data, buffer.dtype.type(ranks), out=buffer.data)
        else:
            pack_and_reduce(comm, buffer, leaves, 1.0 / ranks if mean else None)
        for i, view in buffer.views().items():
            out[i] = view
    return tree.unflatten(treedef, out)


def allreduce_sum(t, *, deterministic: bool = False):
    """The elementwise sum over all ranks of a tree of numpy arrays, returned on every rank.

    The leaves are packed into one contiguous buffer per dtype and each buffer is reduced by a single
    in-place all-reduce (never one message per leaf).

    Args:
        t: a tree of float, int or uint numpy arrays (float16 included), with the same structure, shapes and
            dtypes on every rank.
        deterministic: sum the ranks' contributions in rank order (``r0 + r1 + ...``), so the bits depend
            only on the inputs; otherwise MPI's all-reduce picks the order (results agree to float rounding,
            and are the same on every rank).

    Returns:
        A new tree of the same structure, shapes and dtypes (the leaves are views into the packed buffers).

    Raises:
        TypeError: a leaf that is not a numeric numpy array (the message names its path).
        ImportError: mpi4py is not installed.
    """
    return _allreduce("fnnet.distributed.allreduce_sum", t, False, deterministic)


def allreduce_mean(t, *, deterministic: bool = False):
    """The elementwise mean over all ranks of a tree of float arrays, returned on every rank.

    Packs and reduces like :func:`allreduce_sum`.  Without ``deterministic`` each leaf is scaled by
    ``1 / size()`` while it is packed and the scaled values are summed (one pass fewer); with it the sum
    runs in rank order and is then divided by ``size()`` in the leaf's dtype, which gives the same bits as
    ``fnnet.optim.accumulate`` of the ranks' trees in rank order.

    Args:
        t: a tree of float16/32/64 numpy arrays, the same structure, shapes and dtypes on every rank.
        deterministic: see :func:`allreduce_sum`.

    Raises:
        TypeError: a leaf that is not a float numpy array (the message names its path).
        ImportError: mpi4py is not installed.
    """
    return _allreduce("fnnet.distributed.allreduce_mean", t, True, deterministic)


def broadcast(t, root: int = 0):
    """Rank ``root``'s tree, returned on every rank (what the other ranks pass is ignored; None is fine).

    The structure and the non-array leaves travel once, pickled; the array leaves are packed into one
    buffer per dtype and sent by one ``Bcast`` each.

    Raises:
        ValueError: ``root`` is not a rank.
        ImportError: mpi4py is not installed.
    """
    comm = _comm.communicator()
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < comm.Get_size():
        raise ValueError(f"fnnet.distributed.broadcast: root must be a rank in 0..{comm.Get_size() - 1}, got "
                         f"{root!r}")
    leaves, treedef = tree.flatten(t) if comm.Get_rank() == root else (None, None)
    description = None
    if leaves is not None:
        description = (treedef, [(x.shape, x.dtype) if _is_packable(x) else (None, x) for x in leaves])
    treedef, described = comm.bcast(description, root=root)
    packed = [i for i, (shape, _) in enumerate(described) if shape is not None]
    if leaves is not None:
        arrays = {i: leaves[i] for i in packed}
    else:
        arrays = {i: np.empty(*described[i]) for i in packed}
    out = [value for _, value in described]
    for buffer in plan_buffers(arrays, list(arrays), 1):
        buffer.allocate()
        if leaves is not None:
            for i, offset, _, _ in buffer.slots:
                buffer.put(offset, arrays[i])
        comm.Bcast(buffer.data, root=root)
        for i, view in buffer.views().items():
            out[i] = view
    return tree.unflatten(treedef, out)


def _is_packable(x):
    return isinstance(x, np.ndarray) and x.dtype.kind in "fiub" and x.dtype.isnative


def _signature(t):
    leaves, treedef = tree.flatten(t)
    described = [(x.shape, x.dtype.str) if isinstance(x, np.ndarray) else type(x).__name__ for x in leaves]
    return repr(treedef), tree.paths(t), described


def check_consistent(t, name: str = "params") -> None:
    """Check that every rank holds a tree of the same structure, leaf shapes and dtypes (one small
    all-gather); call it once, before the first collective on such trees.

    Raises:
        ValueError: on every rank, naming the first rank that differs from rank 0 and the first difference.
    """
    comm = _comm.communicator()
    signatures = comm.allgather(_signature(t))
    for r, signature in enumerate(signatures[1:], start=1):
        if signature != signatures[0]:
            raise ValueError(f"fnnet.distributed: the {name} trees differ between ranks: "
                             f"{_difference(signatures[0], signature, r)}; every rank must build the same model "
                             "for the same input shape (and load the same checkpoint)")


def _difference(first, other, r):
    (def0, paths0, leaves0), (def1, paths1, leaves1) = first, other
    if paths0 != paths1 or def0 != def1:
        set0, set1 = set(paths0), set(paths1)
        only0 = [p for p in paths0 if p not in set1][:3]
        only1 = [p for p in paths1 if p not in set0][:3]
        return (f"rank 0 has structure {def0}, rank {r} has {def1} (only on rank 0: {only0}, only on rank {r}: "
                f"{only1})")
    for path, a, b in zip(paths0, leaves0, leaves1):
        if a != b:
            return f"the leaf {path!r} is {_leaf_text(a)} on rank 0 but {_leaf_text(b)} on rank {r}"
    return "they differ"  # unreachable: equal paths and leaves make equal signatures


def _leaf_text(described):
    if isinstance(described, tuple):
        return f"shape {described[0]} dtype {np.dtype(described[1]).name}"
    return f"a {described}"
