"""Buffer donation in ``update_and_apply(..., donate=True)``: where a fused step writes its results.

Donating the params and the optimizer state lets the step write the new params and buffers over the old
ones, so a step holds params + gradients + state and nothing more.  The registry of given-up arrays and
the shared-memory checks live in :mod:`fnnet.autodiff.donation` (``fnnet.jit``'s ``donate_argnums`` uses
them too), which also says what is and is not caught.
"""

from __future__ import annotations

import numpy as np

from .. import tree
from ..autodiff.donation import check_disjoint, check_not_donated, mark_donated, output_for

__all__ = ["LeafOutputs", "check_not_donated", "check_disjoint", "mark_donated", "output_for"]


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
