"""The backward walk of a ``grad`` tape under ``fnnet.jit``: the same walk as ``Tape.backward``, recorded.

Each VJP call, each sum of a broadcast cotangent back to its operand's shape and each accumulation of two
cotangents of one node becomes a step, in the order the eager walk does them, so a replay adds the same
numbers in the same order (bitwise the eager gradients).  Residuals live in slots; a replay frees each
one after its VJP step, as the eager walk frees them.
"""

from __future__ import annotations

import numpy as np

from .primitive import Primitive
from .recording import Recorder
from .tape import Tape, Tracer, missing_vjp, pop_all, unbroadcast

__all__ = ["backward", "leaf_gradient"]


def backward(recorder: Recorder, tape: Tape, seeds: dict, keep: bool) -> dict:
    """``tape.backward(seeds, keep)`` recorded; returns ``{node: root tracer}`` for the nodes it reaches
    that no entry produced (the traced inputs)."""
    slots = {node: recorder.constant(g) for node, g in seeds.items()}
    values = dict(seeds)
    owned = set()
    entries = tape.entries
    order = reversed(entries) if keep else pop_all(entries)
    for prim, residuals, params, parents, shapes, out, nbytes in order:
        single = type(out) is int
        if single:
            g_slots = (slots.pop(out, None),)
            if g_slots[0] is None:
                continue
        else:
            g_slots = tuple(slots.pop(o, None) for o in out)
            if all(s is None for s in g_slots):
                continue
        g = values.pop(out) if single else tuple(values.pop(o, None) for o in out)
        res_slot, static, dynamic = recorder.entries[(id(tape), out if single else out[0])]
        present = None if single else tuple(s is not None for s in g_slots)
        fn = _VJP(prim, parents, present)
        grads = recorder.run(fn, (residuals, *((g,) if single else (x for x in g if x is not None))), dict(params))
        if not keep:
            tape.residual_bytes -= nbytes
            del residuals
        outs = tuple(recorder.new_slot(gi) if node >= 0 and gi is not None else -1
                     for node, gi in zip(parents, grads))
        ins = [res_slot, *(s for s in g_slots if s is not None)]
        recorder.step(fn, ins, outs, static, dynamic)
        for i, node in enumerate(parents):
            if node < 0:
                continue
            gi, gi_slot = grads[i], outs[i]
            if gi is None:
                raise missing_vjp(prim, i)
            if gi.shape != shapes[i]:
                gi, gi_slot = _apply(recorder, _Unbroadcast(shapes[i]), gi, gi_slot)
            previous = values.get(node)
            if previous is None:
                values[node], slots[node] = gi, gi_slot
            elif node in owned:
                _apply(recorder, _add_into, previous, slots[node], gi, gi_slot, out=slots[node])
            else:
                values[node], slots[node] = _apply(recorder, _add_new, previous, slots[node], gi, gi_slot)
                owned.add(node)
    return {node: Tracer(values[node], recorder.root, slot) for node, slot in slots.items()}


def leaf_gradient(recorder: Recorder, g, value):
    """``transforms._leaf_gradient`` recorded: zeros for an input no entry used, a cast when dtypes differ."""
    if g is None:
        return _recorded_zeros(recorder, value)
    if g.dtype != value.dtype:
        return recorder.call_host(_astype, (g, value.dtype), {})
    return g


def _recorded_zeros(recorder, value):
    """A fresh zero array on every replay (a caller may keep and modify what a call returns)."""
    out = np.zeros_like(value)
    slot = recorder.new_slot(out)
    recorder.step(_ZerosLike(value.shape, value.dtype), (), slot)
    return Tracer(out, recorder.root, slot)


def _apply(recorder, fn, *operands, out=None):
    """Run ``fn`` on the values among ``operands`` (value, slot pairs) now and record it; (value, slot)."""
    values, ins = operands[0::2], operands[1::2]
    result = recorder.run(fn, values)
    slot = recorder.new_slot(result) if out is None else out
    recorder.step(fn, ins, slot)
    return result, slot


class _VJP:
    """Step: one tape entry's VJP (``present`` marks which outputs of a multi-output entry have a cotangent)."""

    __slots__ = ("prim", "parents", "present", "needs")

    def __init__(self, prim, parents, present):
        self.prim, self.parents, self.present = prim, parents, present
        # Once checked (by the trace's own call), a plain primitive's rule is called directly.
        self.needs = tuple(p >= 0 for p in parents) if getattr(prim, "input_mask", False) else None

    def __call__(self, residuals, *gs, **params):
        if self.present is None:
            g = gs[0]
        else:
            rest = iter(gs)
            g = tuple(next(rest) if p else None for p in self.present)
        prim = self.prim
        if type(prim) is Primitive and prim._bwd_checked:
            if self.needs is not None:
                return prim.bwd(residuals, g, needs=self.needs, **params)
            return prim.bwd(residuals, g, **params)
        return prim.vjp(residuals, g, params, self.parents)


class _Unbroadcast:
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = shape

    def __call__(self, g):
        return unbroadcast(g, self.shape)


class _ZerosLike:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __call__(self):
        return np.zeros(self.shape, self.dtype)


def _add_new(previous, g):
    return np.asarray(previous + g)  # 0-d + 0-d is a numpy scalar


def _add_into(previous, g):
    np.add(previous, g, out=previous)
    return previous


def _astype(a, dtype):
    return a.astype(dtype)
