"""Batched values and batching rules: how ``fnnet.vmap`` runs a per-example function once on the whole batch.

A :class:`Batched` value holds every example of one array, the batch axis first, but describes ONE example
(``shape``, ``dtype``, ``ndim``), so an op validates it exactly as it would the loop's example.  A primitive
called with a batched input runs its batching rule (:meth:`Primitive.defbatch`) once on the whole array.
Under ``grad`` inside ``vmap`` the tape is batched (``Tape.batch_size``): every cotangent on it is per
example, ``(batch, *shape)``, so the VJP of an unbatched parameter (a weight) gives one gradient per example
instead of their sum.  Whatever has no rule (a primitive, a numpy function or Python control flow on a
batched value) raises :class:`NoBatchingRule`, and ``vmap`` runs its per-example loop instead.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import NamedTuple

import numpy as np

from .tape import Tracer, unbroadcast

__all__ = ["Batched", "NoBatchingRule", "BatchRule", "batch_scope", "scope_size", "unbroadcast_examples",
           "expand_examples", "elementwise_batching", "axis_batching", "sample_batching", "apply_to_values"]


class NoBatchingRule(Exception):
    """``vmap`` cannot run this on the whole batch at once; it runs the function once per example instead."""


class Batched:
    """Every example of one vmapped array: ``value`` is ``(batch, *shape)``; ``shape``, ``dtype``, ``ndim``
    and ``size`` are those of one example.  Never traced itself: under ``grad`` a tracer wraps it."""

    __slots__ = ("value",)
    __array_ufunc__ = None  # fnnet.ops installs the dispatch, as for Tracer

    def __init__(self, value: np.ndarray):
        self.value = value

    shape = property(lambda self: self.value.shape[1:])
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim - 1)
    size = property(lambda self: math.prod(self.value.shape[1:]))

    def __len__(self):
        if self.value.ndim < 2:
            raise TypeError("len() of a 0-d array (one example of a vmapped 1-D array)")
        return self.value.shape[1]

    def _unbatchable(self, *_args, **_kwargs):
        raise NoBatchingRule("Python control flow or a conversion (bool, float, int, .item()) reads the value "
                             "of each example")

    __bool__ = __float__ = __int__ = __index__ = item = _unbatchable

    def __array__(self, dtype=None, copy=None):
        raise NoBatchingRule("a numpy function (np.asarray, np.sum, ...) was applied to a batched value; use "
                             "fnnet.ops or indexing (x[None]) instead")

    def astype(self, dtype, copy=True):
        return Batched(self.value.astype(dtype, copy=copy))

    def select(self, index) -> "Batched":
        """Basic indexing (ints, slices, None, ...) of each example, for non-float values such as labels."""
        items = index if isinstance(index, tuple) else (index,)
        for item in items:
            if not (item is None or item is Ellipsis or isinstance(item, slice)
                    or isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))):
                raise NoBatchingRule("advanced indexing of a batched integer or boolean array")
        return Batched(self.value[(slice(None),) + items])

    def __repr__(self):
        return f"Batched(batch={self.value.shape[0]}, shape={self.shape}, dtype={self.dtype})"


_scope = threading.local()


@contextlib.contextmanager
def batch_scope(batch_size: int):
    """While ``vmap`` runs a function on batched values, ``grad`` calls in this thread make batched tapes."""
    previous = scope_size()
    _scope.size = batch_size
    try:
        yield
    finally:
        _scope.size = previous


def scope_size() -> int:
    """The batch size of the ``vmap`` running in this thread (0 outside ``vmap``)."""
    return getattr(_scope, "size", 0)


class BatchRule(NamedTuple):
    """``fwd(values, batched, **params) -> (out, residuals)``: the inputs with the batch axis first where
    ``batched[i]``, the output with it first.  ``vjp(residuals, g, batched, needs, **params)``: ``g`` is
    ``(batch, *out_shape)``; one cotangent ``(batch, *in_shape_i)`` per input, the gradient OF EACH EXAMPLE
    for unbatched inputs too (None where ``needs[i]`` is False)."""

    fwd: object
    vjp: object


class _BatchedEntry:
    """What a batched tape records in place of a primitive: its VJP takes and gives per-example cotangents."""

    __slots__ = ("prim", "batched", "in_shapes")

    def __init__(self, prim, batched, in_shapes):
        self.prim, self.batched, self.in_shapes = prim, batched, in_shapes

    name = property(lambda self: self.prim.name)

    def argname(self, i):
        return self.prim.argname(i)

    def vjp(self, residuals, g, params, parents):
        needs = tuple(p >= 0 for p in parents)
        if any(self.batched):
            return self.prim.batch_rule.vjp(residuals, g, self.batched, needs, **params)
        # no input was batched: the primitive's own VJP, once per example's cotangent
        grads = [self.prim.vjp(residuals, gi, params, parents) for gi in g]
        return tuple(None if not need or grads[0][i] is None else
                     np.stack([unbroadcast(gs[i], self.in_shapes[i]) for gs in grads])
                     for i, need in enumerate(needs))


def call(prim, tape, args, params):
    """Run ``prim`` on the whole batch (``Primitive._call`` sends a call here when an input is batched or
    traced on a batched tape; it has checked the tapes)."""
    if prim.num_aux:
        raise NoBatchingRule(f"primitive {prim.name!r} has auxiliary outputs and no batching rule")
    values, batched, parents = [], [], []
    for a in args:
        parents.append(a.node if type(a) is Tracer else -1)
        v = a.value if type(a) is Tracer else a
        batched.append(type(v) is Batched)
        values.append(v.value if type(v) is Batched else v)
        if getattr(values[-1], "dtype", None) == np.float16:
            raise NoBatchingRule(f"{prim.name}: float16 inputs are not batched")
    batched = tuple(batched)
    n = next((v.shape[0] for v, b in zip(values, batched) if b), 0)
    if tape is not None and (not tape.batch_size or n and n != tape.batch_size):
        raise NoBatchingRule(f"{prim.name}: a batched value met a value traced by grad or vjp outside this vmap")
    if not any(batched):  # a batched tape, but nothing here differs between examples
        out, residuals = prim.fwd(*values, **params)
    elif prim.batch_rule is None:
        raise NoBatchingRule(f"primitive {prim.name!r} has no batching rule (see {prim.name}.defbatch)")
    else:
        out, residuals = prim.batch_rule.fwd(values, batched, **params)
    if tape is None:
        return Batched(out)
    in_shapes = tuple(v.shape[1:] if b else np.shape(v) for v, b in zip(values, batched))
    shapes = tuple((tape.batch_size,) + s for s in in_shapes)
    node = tape.record(_BatchedEntry(prim, batched, in_shapes), residuals, params, tuple(parents), shapes)
    return Tracer(Batched(out) if any(batched) else out, tape, node)


# ------------------------------------------------------------------------------- helpers for rules

def unbroadcast_examples(g, shape):
    """Sum a per-example cotangent ``(batch, *broadcast_shape)`` to ``(batch, *shape)``, never over the batch."""
    if g is None:
        return None
    lead = g.ndim - 1 - len(shape)
    if lead:  # in the order of the tape's ``unbroadcast``, so elementwise gradients match the loop bit for bit
        g = g.sum(axis=tuple(range(1, 1 + lead)))
    axes = tuple(1 + i for i, s in enumerate(shape) if s == 1 and g.shape[1 + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape((g.shape[0],) + tuple(shape))


def expand_examples(v, batched, ndim):
    """A batched ``(batch, *s)`` as ``(batch, 1, ..., *s)`` with ``ndim`` axes per example, so numpy
    broadcasting (right-aligned) pairs each example's axes with an unbatched operand's."""
    if not batched or v.ndim - 1 == ndim:
        return v
    return v.reshape(v.shape[:1] + (1,) * (ndim - v.ndim + 1) + v.shape[1:])


def elementwise_batching(prim):
    """Give ``prim`` the batching rule of an op that broadcasts its inputs elementwise (numpy's rules) and
    whose VJP returns cotangents in the output's shape: the forward and VJP run once on the whole batch."""

    def fwd(values, batched, **params):
        shapes = tuple(v.shape[1:] if b else np.shape(v) for v, b in zip(values, batched))
        ndim = max(len(s) for s in shapes)
        out, res = prim.fwd(*(expand_examples(v, b, ndim) for v, b in zip(values, batched)), **params)
        return out, (res, shapes)

    def vjp(residuals, g, batched, needs, **params):
        res, shapes = residuals
        grads = prim.vjp(res, g, params, tuple(0 if need else -1 for need in needs))
        return tuple(unbroadcast_examples(gi, s) if need else None for gi, s, need in zip(grads, shapes, needs))

    prim.defbatch(fwd, vjp)
    return prim


def axis_batching(prim, shift):
    """Give ``prim`` (whose inputs share their axes, such as a reduction, a reshape or ``concatenate``) the
    batching rule that runs it once with ``shift(params, batch_size)``: its parameters for inputs with the
    batch axis first (axis ``a`` becomes ``a + 1``).  Unbatched inputs are repeated along the batch axis."""

    def fwd(values, batched, **params):
        n = next(v.shape[0] for v, b in zip(values, batched) if b)
        full = (v if b else np.broadcast_to(v, (n, *np.shape(v))) for v, b in zip(values, batched))
        return prim.fwd(*full, **shift(params, n))

    def vjp(residuals, g, batched, needs, **params):
        return prim.vjp(residuals, g, shift(params, g.shape[0]), tuple(0 if need else -1 for need in needs))

    prim.defbatch(fwd, vjp)
    return prim


def sample_batching(prim):
    """Give a one-input ``prim`` whose first axis holds independent samples (pooling) the batching rule that
    joins every example's samples into one batch of ``batch * samples``."""

    def fwd(values, batched, **params):
        (x,) = values
        y, res = prim.fwd(x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), **params)
        return y.reshape(x.shape[0], x.shape[1], *y.shape[1:]), res

    def vjp(residuals, g, batched, needs, **params):
        (gx,) = prim.vjp(residuals, g.reshape(g.shape[0] * g.shape[1], *g.shape[2:]), params, (0,))
        return (gx.reshape(g.shape[0], g.shape[1], *gx.shape[1:]),)

    prim.defbatch(fwd, vjp)
    return prim


def apply_to_values(fn, *inputs):
    """``fn`` (a comparison, ``np.isnan``, ...: no gradient) of each example's values, as a Batched result."""
    values = [x.value if type(x) is Tracer else x for x in inputs]
    ndim = max(np.ndim(v) for v in values)
    return Batched(fn(*(expand_examples(v.value, True, ndim) if type(v) is Batched else v for v in values)))
