"""The steps a :class:`fnnet.autodiff.recording.Recorder` appends: callables that compute one recorded
value again from the values of its input slots (a primitive's forward, a host function, its flat
specialisation).  A replay calls them in order; each returns what the eager call returned.
"""

from __future__ import annotations

import numpy as np

from .. import tree
from . import half

__all__ = ["Forward", "HalfForward", "TracedForward", "HalfTracedForward", "HostCall", "FlatHostCall"]


class Forward:
    """Step: a primitive's forward outside ``grad`` (its output only)."""

    __slots__ = ("prim",)

    def __init__(self, prim):
        self.prim = prim

    def __call__(self, *values, **params):
        result = self.prim.fwd(*values, **params)
        if not self.prim._fwd_checked:
            self.prim._check_first_forward(result, values)
        return result[0]


class HalfForward(Forward):
    """Step: a primitive's forward on float16 arguments outside ``grad`` (``fnnet.autodiff.half``)."""

    __slots__ = ()

    def __call__(self, *values, **params):
        return half.call(self.prim, None, values, params)


class TracedForward(Forward):
    """Step: a primitive's forward under ``grad``: ``(y, *aux, residuals)``."""

    __slots__ = ()

    def __call__(self, *values, **params):
        result = self.prim.fwd(*values, **params)
        if not self.prim._fwd_checked:
            self.prim._check_first_forward(result, values)
        out, residuals = result
        return (*out, residuals) if self.prim.num_aux else (out, residuals)


class HalfTracedForward(Forward):
    """Step: ``TracedForward`` on float16 arguments: float16 outputs, residuals stored as the tape stores them."""

    __slots__ = ()

    def params32(self, params):
        return {k: half._param32(v) for k, v in params.items()}

    def __call__(self, *values, **params):
        out, residuals = half.forward(self.prim, values, params)
        return (*out, residuals) if self.prim.num_aux else (out, residuals)


class HostCall:
    """Step: a host function on the call's leaves with the dynamic ones replaced; its array outputs."""

    __slots__ = ("fn", "treedef", "leaves", "dynamic", "positions")

    def __init__(self, fn, treedef, leaves, dynamic, positions):
        self.fn, self.treedef, self.dynamic, self.positions = fn, treedef, dynamic, positions
        self.leaves = [None if i in dynamic else v for i, v in enumerate(leaves)]

    def __call__(self, *values):
        leaves = list(self.leaves)
        for i, v in zip(self.dynamic, values):
            leaves[i] = v
        args, kwargs = tree.unflatten(self.treedef, leaves)
        out_leaves = tree.leaves(self.fn(*args, **kwargs))
        return tuple(np.asarray(out_leaves[i]) for i in self.positions)


class QuickCheck:
    """Step: a recorded check (:func:`fnnet.autodiff.recording.check`) that first runs its quick test on the
    dynamic leaves and runs the check itself (a :class:`HostCall`, which raises) only when the test fails."""

    __slots__ = ("quick", "full")

    def __init__(self, quick, full):
        self.quick, self.full = quick, full

    def __call__(self, *values):
        if not self.quick(*values):
            self.full(*values)
        return ()


class FlatHostCall:
    """Step: a host function's flat specialisation on the call's leaves with the dynamic ones replaced."""

    __slots__ = ("fast", "leaves", "dynamic", "writable")

    def __init__(self, fast, leaves, dynamic, writable=frozenset()):
        self.fast, self.dynamic, self.writable = fast, dynamic, writable
        self.leaves = [None if i in dynamic else v for i, v in enumerate(leaves)]

    def writing_into(self, positions) -> "FlatHostCall":
        """This step writing its results over the input leaves at ``positions`` (of those it can: the
        leaves its outputs replace, ``fast.sources``), e.g. buffers donated to a jit plan."""
        step = FlatHostCall(self.fast, [], self.dynamic, frozenset(positions) & frozenset(self.fast.sources))
        step.leaves = self.leaves
        return step

    def __call__(self, *values):
        leaves = list(self.leaves)
        for i, v in zip(self.dynamic, values):
            leaves[i] = v
        return tuple(self.fast(leaves, self.writable))
