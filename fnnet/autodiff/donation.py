"""Buffer donation: the registry of arrays given up by a donating call, and the checks around it.

A donating call (``opt.update_and_apply(..., donate=True)``, a function jitted with ``donate_argnums``)
may write its results into the memory of the arrays it was given, so the old array objects then hold the
new values (or, in the middle of a call, a mixture) and using them again is a bug.  NumPy cannot make
reading an array raise, so the registry catches what it can:

- **caught**: a donated array object passed again to a jitted function or to any ``fnnet.optim`` entry
  point (ValueError naming the leaf); two donated leaves that share memory, or a kept argument sharing
  memory with a donated one, refused before anything runs.
- **not caught**: reading a donated array with anything else (NumPy, ``fnnet.io.save``, an eager
  forward pass), and views or copies made from it: they see the overwritten memory.

The registry holds weak references only, keyed by the array object's identity: the arrays a donating call
returns are new array objects over the same memory, which must stay usable, so the data pointer alone
cannot tell a stale array from its successor.
"""

from __future__ import annotations

import weakref

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .. import tree

__all__ = ["check_not_donated", "check_disjoint", "mark_donated", "output_for", "writable_in_place"]

_donated = weakref.WeakValueDictionary()  # id(array) -> the array, for every array a donating call gave up

_STALE_FIX = ("pass what that call returned instead (e.g. params, opt_state = opt.update_and_apply(grads, "
              "opt_state, params, donate=True), or the outputs of the jitted step)")


def check_not_donated(where: str, name: str, t, leaves) -> None:
    """Raise ValueError when a leaf of ``t`` (flattened: ``leaves``) was given up by a donating call."""
    if not _donated:
        return
    for i, x in enumerate(leaves):
        if _donated.get(id(x), _donated) is x:  # (the registry itself as the default: never a leaf)
            raise ValueError(f"{where}: {name} leaf at {_path(t, i)} was donated to an earlier "
                             f"call (update_and_apply(..., donate=True) or a jitted function's donate_argnums), which may "
                             f"have overwritten its memory; "
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
        return (f"{where}: {names[0]} and {names[1]} share memory, so donating them would write two results "
                "into one buffer; pass separate arrays (e.g. fnnet.tree.map(np.copy, params)) or do not donate")
    return (f"{where}: {names[1]} shares memory with {names[0]}, which the call may overwrite (donated); "
            f"pass {b[3]}s that do not alias a donated array (copy them) or do not donate")


def writable_in_place(x) -> bool:
    """A plain, C-contiguous, aligned, native-endian, writeable ndarray (a memmap is never written: that
    would change its file)."""
    flags = x.flags
    return (type(x) is np.ndarray and flags.c_contiguous and flags.aligned and flags.writeable
            and x.dtype.isnative)


def output_for(x, donate: bool) -> np.ndarray:
    """The flat array the new value of leaf ``x`` is written into: ``x``'s own memory when donated and
    writable in place, else a new array."""
    if donate and writable_in_place(x):
        return x.reshape(-1)
    return np.empty(x.size, x.dtype)
