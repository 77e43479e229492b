"""Buffer donation for ``update_and_apply(..., donate=True)``: where a fused step writes its results, and the
registry that makes the optimizer refuse an array it was given up.

Donating the params and the optimizer state lets the step write the new params and buffers over the old
ones, so a step holds params + gradients + state and nothing more.  The old arrays then hold the new values
(or, in the middle of a step, a mixture), so using them again is a bug.  NumPy cannot make reading an
array raise, so the registry catches what it can:

- **caught**: a donated array object passed again to any ``fnnet.optim`` entry point (``update``,
  ``update_and_apply``, ``apply_updates``, ``init``, ``accumulate``, ``global_norm``): the old ``params``
  or ``opt_state`` tree reused after a donating call (ValueError naming the leaf).  Donating two leaves
  that share memory, or gradients that share memory with a donated leaf, is refused before any kernel
  runs.
- **not caught**: reading a donated array with anything else (NumPy, ``fnnet.io.save``, a forward pass),
  and views or copies made from it (``p[...]``, ``p.copy()``): they see the overwritten memory.

The registry holds weak references only, keyed by the array object's identity: the new params returned
by a donating call are new array objects over the same memory (same data pointer and shape), which must
stay usable, so the pointer alone cannot tell a stale array from its successor.
"""

from __future__ import annotations

import weakref

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .. import tree

__all__ = ["LeafOutputs", "check_not_donated", "check_disjoint", "mark_donated", "output_for"]

_donated = weakref.WeakValueDictionary()  # id(array) -> the array, for every array a donating call gave up

_STALE_FIX = ("pass the params and opt_state that call returned: "
              "params, opt_state = opt.update_and_apply(grads, opt_state, params, donate=True)")


def check_not_donated(where: str, name: str, t, leaves) -> None:
    """Raise ValueError when a leaf of ``t`` (flattened: ``leaves``) was given up by a donating call."""
    if not _donated:
        return
    for i, x in enumerate(leaves):
        if _donated.get(id(x), _donated) is x:  # (the registry itself as the default: never a leaf)
            raise ValueError(f"{where}: {name} leaf at {_path(t, i)} was donated to an earlier "
                             f"update_and_apply(..., donate=True) call, which may have overwritten its memory; "
                             f"{_STALE_FIX}")


def mark_donated(leaves) -> None:
    """Record the arrays of ``leaves`` as given up (non-arrays are skipped)."""
    for x in leaves:
        if isinstance(x, np.ndarray):
            _donated[id(x)] = x


def _path(t, i) -> str:
    path = tree.paths(t)[i]
    return repr(path) if path else "the root"


def _spans(groups, donated):
    """``(low, high, donated, name, tree, index, array)`` for every non-empty array of ``groups``
    (``{name: (tree, leaves)}``)."""
    out = []
    for name, (t, leaves) in groups.items():
        for i, x in enumerate(leaves):
            if isinstance(x, np.ndarray) and x.size:
                low, high = byte_bounds(x)
                out.append((low, high, donated, name, t, i, x))
    return out


def check_disjoint(where: str, donated: dict, kept: dict) -> None:
    """Raise ValueError when two arrays of ``donated``, or one of ``donated`` and one of ``kept``, share
    memory (both: ``{name: (tree, leaves)}``).  Runs in ``O(n log n)`` for leaves that do not overlap."""
    spans = sorted(_spans(donated, True) + _spans(kept, False), key=lambda s: s[0])
    active = []
    for span in spans:
        active = [a for a in active if a[1] > span[0]]
        for other in active:
            if (other[2] or span[2]) and np.shares_memory(other[6], span[6]):
                raise ValueError(_overlap_message(where, other, span))
        active.append(span)


def _overlap_message(where, a, b) -> str:
    if not a[2]:
        a, b = b, a  # a is donated
    names = [f"{s[3]} leaf at {_path(s[4], s[5])}" for s in (a, b)]
    if b[2]:
        return (f"{where}: {names[0]} and {names[1]} share memory, so donate=True would write two results into "
                "one buffer; pass separate arrays (e.g. fnnet.tree.map(np.copy, params)) or donate=False")
    return (f"{where}: {names[1]} shares memory with {names[0]}, which donate=True overwrites; pass "
            f"{b[3]} that do not alias the params or optimizer state (copy them) or donate=False")


def _writable_in_place(x) -> bool:
    """A plain, C-contiguous, aligned, native-endian, writeable ndarray (a memmap is never written: that
    would change its file)."""
    flags = x.flags
    return (type(x) is np.ndarray and flags.c_contiguous and flags.aligned and flags.writeable
            and x.dtype.isnative)


def output_for(x, donate: bool) -> np.ndarray:
    """The flat array the new value of leaf ``x`` is written into: ``x``'s own memory when donated and
    writable in place, else a new array."""
    if donate and _writable_in_place(x):
        return x.reshape(-1)
    return np.empty(x.size, x.dtype)


class LeafOutputs:
    """Where one pass of a fused optimizer writes, leaf by leaf, as flat arrays: ``"out"`` (the update, or
    the new param when ``apply``) and each new buffer (named like the state's fields).

    With ``donate`` (only with ``apply``), the params and buffers are checked for shared memory against
    each other and the gradients, their memory is reused where it can be written in place (new arrays
    elsewhere: memmaps, read-only, non-contiguous, unaligned or byte-swapped leaves), and :meth:`trees`
    records them all as given up.

    Args:
        where: the caller, for error messages.
        treedef: the structure shared by every tree.
        grads, params: leaves (``params`` may be ``grads`` when not applying and no decay is needed).
        buffers: ``{state field: leaves or None}``; None fields get no output.
    """

    def __init__(self, where, treedef, grads, params, buffers, *, apply: bool, donate: bool):
        self.treedef, self.donate, self.apply = treedef, donate, apply
        self.sources = {"out": params if apply else grads}
        self.sources.update((name, leaves) for name, leaves in buffers.items() if leaves is not None)
        if donate:
            labelled = {("params" if name == "out" else f"opt_state.{name}"): (tree.unflatten(treedef, leaves), leaves)
                        for name, leaves in self.sources.items()}
            check_disjoint(where, labelled, {"grads": (tree.unflatten(treedef, grads), grads)})
        self.flat = {name: [output_for(x, donate) for x in leaves] for name, leaves in self.sources.items()}

    def __call__(self, i: int, name: str) -> np.ndarray:
        """The flat output of leaf ``i`` for ``name``."""
        return self.flat[name][i]

    def trees(self) -> dict:
        """``{name: tree}`` of the outputs, shaped like the inputs (None for a buffer field without
        outputs); marks the donated inputs as given up."""
        if self.donate:
            for leaves in self.sources.values():
                mark_donated(leaves)
        return {name: tree.unflatten(self.treedef, [o.reshape(x.shape) for o, x in zip(self.flat[name], leaves)])
                for name, leaves in self.sources.items()}
