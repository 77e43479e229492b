"""Flat buffers: where each array leaf of a tree lives in one contiguous buffer per dtype, and the
rank-order sum that makes a reduction deterministic.

A buffer's length is padded to a multiple of the number of ranks so that it splits into one equal chunk
per rank (the deterministic reduction gives each rank one chunk to sum).
"""

from __future__ import annotations

import numpy as np

from .. import tree

FLOAT_KINDS = "f"
NUMBER_KINDS = "fiu"


class Buffer:
    """One dtype's flat buffer: ``slots`` lists ``(leaf_index, offset, shape, size)`` in packing order."""

    __slots__ = ("dtype", "slots", "size", "padded", "data")

    def __init__(self, dtype, slots, ranks):
        self.dtype, self.slots = np.dtype(dtype), slots
        self.size = sum(s[3] for s in slots)
        self.padded = -(-self.size // ranks) * ranks
        self.data = None

    def allocate(self):
        """A fresh ``data`` array; only its padding is zeroed (the slots are all written before use)."""
        self.data = np.empty(self.padded, self.dtype)
        self.data[self.size:] = 0
        return self.data

    def put(self, offset, leaf, scale=None):
        """Copy ``leaf`` into its slot (times the float ``scale``, rounded to the dtype, when given)."""
        view = self.data[offset:offset + leaf.size].reshape(leaf.shape)
        if scale is None:
            view[...] = leaf
        else:
            np.multiply(leaf, self.dtype.type(scale), out=view)

    def views(self):
        """``{leaf_index: view of data shaped like the leaf}`` (no copies)."""
        return {i: self.data[o:o + n].reshape(shape) for i, o, shape, n in self.slots}


def array_leaves(where, name, t, kinds):
    """``(leaves, treedef)`` of ``t``; every leaf must be a numpy array whose dtype kind is in ``kinds``.

    Raises:
        TypeError: naming the first bad leaf's path, its type or dtype, and how to fix it.
    """
    leaves, treedef = tree.flatten(t)
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, np.ndarray) and leaf.dtype.kind in kinds and leaf.dtype.isnative:
            continue
        path = tree.paths(t)[i] or "(the root)"
        got = f"dtype {leaf.dtype}" if isinstance(leaf, np.ndarray) else f"a {type(leaf).__name__}"
        wanted = "float" if kinds == FLOAT_KINDS else "numeric (float, int or uint)"
        raise TypeError(f"{where}: every leaf of {name} must be a native-endian {wanted} numpy array, got {got} at "
                        f"{path!r}; convert it with np.asarray(..., dtype=np.float32) or leave it out of the tree")
    return leaves, treedef


def plan_buffers(leaves, order, ranks, bucket_bytes=None):
    """Group the leaves (taken in ``order``, a list of leaf indices) into buffers of one dtype each.

    Without ``bucket_bytes``: one buffer per dtype, in the order the dtypes first appear.  With it: a dtype's
    buffer is closed once it holds at least ``bucket_bytes`` bytes, and buffers are listed in the order they
    were opened.
    """
    buffers, open_slots, opened = [], {}, []
    for i in order:
        leaf = leaves[i]
        slots = open_slots.get(leaf.dtype)
        if slots is None:
            slots = open_slots[leaf.dtype] = []
            opened.append((leaf.dtype, slots))
        offset = sum(s[3] for s in slots)
        slots.append((i, offset, leaf.shape, leaf.size))
        if bucket_bytes is not None and (offset + leaf.size) * leaf.dtype.itemsize >= bucket_bytes:
            del open_slots[leaf.dtype]
    for dtype, slots in opened:
        buffers.append(Buffer(dtype, slots, ranks))
    return buffers


def rank_order_sum(chunks):
    """``chunks[0] + chunks[1] + ...`` for ``chunks (ranks, n)``, added in rank order in the chunks' dtype:
    the same operations, in the same order, as ``fnnet.optim.accumulate`` over per-rank trees."""
    total = np.array(chunks[0])
    for chunk in chunks[1:]:
        np.add(total, chunk, out=total)
    return total
