"""Mutation classes: each turns a canonical call into a mutated one plus the oracle that judges it.

A mutation picks one argument (or the whole call) and returns a :class:`Plan`: the mutated arguments, the
arguments of the reference run, and the ``mode`` of comparison (judged in ``classify.py``):

* ``same``: the meaning is unchanged (layout, byte order, subclass, ...), so forward and gradient must be
  bitwise those of the reference run (NaN equal to NaN);
* ``cast``: a dtype change; if accepted, the result must match fnnet in float64 on the same values;
* ``promote``: float64 everywhere; the result must match the float32 canonical run within float32 error;
* ``shape``: a shape change; if accepted, it must match the NumPy reference (when the spec has one) and
  fnnet in float64, and a layer's ``out_shape``;
* ``values``: NaN/inf/denormal/huge data; forward against the NumPy reference (or NaN propagation),
  gradient against fnnet in float64;
* ``reject``: there is no meaning (None); acceptance is a failure;
* ``leak`` / ``mixed``: tracer mutations; the traced positions must get the reference's gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ... import ops, tree
from ...autodiff import grad
from . import layouts
from .layouts import axis as _axis
from .specs import draw

__all__ = ["Plan", "Mutation", "MUTATIONS", "by_name"]

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
#: Relative to the largest value of the compared outputs (or gradients).  float16 keeps the residuals of
#: the backward in half precision (docs/design.md), so a gradient that cancels (RMSNorm's rows of small
#: values) is off by a few percent of the largest gradient.
TOL = {F16: 5e-2, F32: 1e-4, F64: 1e-9}


@dataclass
class Plan:
    args: list
    mode: str
    arg: int
    note: str
    ref_args: list | None = None
    diff: tuple | None = None
    tol: float = 0.0
    out_dtype: np.dtype | None = None
    special: str = ""
    warmup: Callable | None = None


@dataclass(frozen=True)
class Mutation:
    name: str
    group: str
    applies: Callable          # (instance, position) -> bool
    make: Callable             # (rng, instance, position) -> Plan


def _is_array(a):
    return type(a) is np.ndarray


def _float(inst, k):
    return inst.meta[k].kind == "float"


def _replace(inst, k, v):
    args = list(inst.args)
    args[k] = v
    return args


def _layout(name, fn, applies=lambda a: True):
    def make(rng, inst, k):
        return Plan(_replace(inst, k, fn(rng, inst.args[k])), "same", k, name)
    return Mutation(name, "layout", lambda inst, k: _is_array(inst.args[k]) and applies(inst.args[k]), make)


def _broadcast_view(rng, inst, k):
    a = inst.args[k]
    ax = _axis(rng, a)
    row = np.take(a, [0], axis=ax)
    view = np.broadcast_to(row, a.shape)
    return Plan(_replace(inst, k, view), "same", k, f"broadcast-view (axis {ax})",
                ref_args=_replace(inst, k, view.copy()))


def _broadcast_huge(rng, inst, k):
    a = inst.args[k]
    view = np.broadcast_to(a, (max(2, 2**16 // max(a.size, 1)), *a.shape))
    return Plan(_replace(inst, k, view), "same", k, f"broadcast-huge {view.shape}",
                ref_args=_replace(inst, k, np.ascontiguousarray(view)))


def _scalar(kind):
    def make(rng, inst, k):
        a = inst.args[k]
        v = a.flat[0]
        mutated = v if kind == "numpy" else v.item()
        return Plan(_replace(inst, k, mutated), "same", k, f"{kind} scalar {mutated!r} (ref: 0-d {a.dtype})",
                    ref_args=_replace(inst, k, np.asarray(v, dtype=a.dtype)))
    return make


def _as_list(rng, inst, k):
    return Plan(_replace(inst, k, inst.args[k].tolist()), "cast", k, "list", tol=TOL[F32])


# ------------------------------------------------------------------------------------------ dtypes

def _retyped(kind):
    converters = {"int": lambda a: np.rint(a).astype(np.int64), "bool": lambda a: a > 0,
                  "complex": lambda a: a + np.complex64(0.5j), "object": lambda a: a.astype(object)}

    def make(rng, inst, k):
        return Plan(_replace(inst, k, converters[kind](inst.args[k])), "cast", k, f"{kind} array", tol=TOL[F32])
    return make


def _all_floats(inst, dtype):
    return [a.astype(dtype) if _float(inst, i) and _is_array(a) else a for i, a in enumerate(inst.args)]


def _whole(dtype):
    def make(rng, inst, k):
        args = _all_floats(inst, dtype)
        if dtype == F64:
            return Plan(args, "promote", -1, "all float arguments float64", tol=TOL[F32], out_dtype=F64)
        return Plan(args, "cast", -1, "all float arguments float16", tol=TOL[F16], out_dtype=F16)
    return make


def _mixed(dtype):
    def make(rng, inst, k):
        return Plan(_replace(inst, k, inst.args[k].astype(dtype)), "cast", k, f"{dtype} among float32",
                    tol=TOL[min(dtype, F32, key=lambda d: d.itemsize)])
    return make


def _reused(dtype):
    def make(rng, inst, k):
        args = _all_floats(inst, dtype)
        fresh = draw(rng, inst.meta[k]).astype(dtype)

        def warmup():
            out = inst.call(*args)
            like = [y for y in tree.leaves(out) if _is_array(y) and y.shape == fresh.shape and y.dtype == dtype
                    and y.flags.writeable]
            buffer = like[0] if like else args[k]
            buffer[...] = fresh
            args[k] = buffer

        ref = list(args)
        ref[k] = fresh.copy()
        return Plan(args, "same", k, f"{dtype} buffer reused: output of a first call overwritten in place",
                    ref_args=ref, warmup=warmup)
    return make


def _int_as(dtype, mode):
    def make(rng, inst, k):
        return Plan(_replace(inst, k, inst.args[k].astype(dtype)), mode, k, f"indices as {np.dtype(dtype)}",
                    ref_args=None if mode == "cast" else list(inst.args), tol=TOL[F32])
    return make


# ------------------------------------------------------------------------------------------ shapes

def _reshaped(kind):
    def make(rng, inst, k):
        a = inst.args[k]
        if kind == "rank+1":
            ax = int(rng.integers(0, a.ndim + 1))
            b, note = np.expand_dims(a, ax), f"new axis {ax}"
        elif kind == "rank-1":
            ax = _axis(rng, a)
            b, note = np.ascontiguousarray(np.take(a, 0, axis=ax)), f"axis {ax} dropped"
        elif kind == "zero-d":
            b, note = np.asarray(a.flat[0], dtype=a.dtype), "0-d array"
        else:
            ax = _axis(rng, a, 1 if kind == "zero-size" else 2)
            stop = 0 if kind == "zero-size" else 1
            b, note = np.ascontiguousarray(a[(slice(None),) * ax + (slice(0, stop),)]), f"axis {ax} size {stop}"
        return Plan(_replace(inst, k, b), "shape", k, f"{kind}: {note} -> shape {b.shape}", tol=TOL[F32])
    return make


# ------------------------------------------------------------------------------------------ values

def _specials(name):
    def make(rng, inst, k):
        a = inst.args[k].copy()
        n = int(rng.integers(1, 3))
        where = rng.choice(a.size, size=min(n, a.size), replace=False)
        sign = rng.choice([-1.0, 1.0], size=where.size)
        if name == "nan":
            v = np.full(where.size, np.nan)
        elif name in ("inf", "-inf"):
            v = np.full(where.size, -np.inf if name == "-inf" else np.inf)
        elif name == "denormal":
            v = sign * rng.integers(1, 1000, size=where.size) * float(np.finfo(np.float32).smallest_subnormal)
        else:
            v = sign * rng.choice([1e5, 1e6, 3e6], size=where.size)
        a.flat[where] = v
        return Plan(_replace(inst, k, a), "values", k, f"{name} at flat {sorted(int(w) for w in where)}", special=name)
    return make


# ------------------------------------------------------------------------------------------ tracers, None

def _leak(value):
    box = []
    grad(lambda a: (box.append(a), ops.sum(a))[1])(value)
    return box[0]


def _leaked(rng, inst, k):
    diff = tuple(p for p in inst.diff_positions() if p != k)
    return Plan(_replace(inst, k, _leak(inst.args[k])), "leak", k, "tracer leaked from a finished grad", diff=diff)


def _mixed_tracers(rng, inst, k):
    positions = inst.diff_positions()
    n = int(rng.integers(1, len(positions)))
    chosen = tuple(sorted(int(p) for p in rng.choice(positions, size=n, replace=False)))
    return Plan(list(inst.args), "mixed", -1, f"only arguments {chosen} traced", diff=chosen)


def _none(rng, inst, k):
    return Plan(_replace(inst, k, None), "reject", k, "None")


# ------------------------------------------------------------------------------------------ the table

def _kind(*kinds, size=1, ndim=0, itemsize=1):
    def applies(inst, k):
        a = inst.args[k]
        return (_is_array(a) and inst.meta[k].kind in kinds and a.size >= size and a.ndim >= ndim
                and a.dtype.itemsize >= itemsize)
    return applies


def _first_float(inst, k, min_floats=1):
    floats = [i for i in range(len(inst.args)) if _float(inst, i)]
    return len(floats) >= min_floats and k == floats[0]


_ANY = ("float", "int", "bool", "key")
_F = _kind("float")

MUTATIONS = [
    _layout("byteorder", layouts.byteorder, lambda a: a.dtype.itemsize > 1),
    _layout("strided", layouts.strided, lambda a: a.ndim >= 1),
    _layout("transposed", layouts.transposed, lambda a: a.ndim >= 2),
    _layout("negative-stride", layouts.negative_stride, lambda a: a.ndim >= 1 and a.size >= 2),
    _layout("fortran", lambda rng, a: np.asfortranarray(a), lambda a: a.ndim >= 2),
    _layout("readonly", layouts.readonly),
    _layout("unaligned", layouts.unaligned, lambda a: a.dtype.itemsize > 1),
    _layout("memmap", layouts.memmap, lambda a: a.ndim >= 1 and a.size >= 1),
    _layout("masked", lambda rng, a: np.ma.masked_array(a, mask=np.zeros(a.shape, bool))),
    _layout("matrix", lambda rng, a: np.matrix(a), lambda a: a.ndim == 2),
    Mutation("broadcast-view", "layout", _kind(*_ANY, ndim=1), _broadcast_view),
    Mutation("broadcast-huge", "layout", _kind(*_ANY), _broadcast_huge),
    Mutation("numpy-scalar", "scalar", _kind(*_ANY), _scalar("numpy")),
    Mutation("python-scalar", "scalar", _kind(*_ANY), _scalar("python")),
    Mutation("list", "scalar", _F, _as_list),
    Mutation("int", "dtype", _F, _retyped("int")),
    Mutation("bool", "dtype", _F, _retyped("bool")),
    Mutation("complex", "dtype", _F, _retyped("complex")),
    Mutation("object", "dtype", _F, _retyped("object")),
    Mutation("float16", "dtype", _first_float, _whole(F16)),
    Mutation("float64", "dtype", _first_float, _whole(F64)),
    Mutation("mixed-float64", "dtype", lambda i, k: _F(i, k) and _first_float(i, 0, 2), _mixed(F64)),
    Mutation("mixed-float16", "dtype", lambda i, k: _F(i, k) and _first_float(i, 0, 2), _mixed(F16)),
    Mutation("reused-float16", "dtype", _F, _reused(F16)),
    Mutation("reused-float32", "dtype", _F, _reused(F32)),
    Mutation("indices-int32", "dtype", _kind("int"), _int_as(np.int32, "same")),
    Mutation("indices-float", "dtype", _kind("int"), _int_as(np.float64, "cast")),
    Mutation("rank+1", "shape", _kind(*_ANY, size=0), _reshaped("rank+1")),
    Mutation("rank-1", "shape", _kind(*_ANY, ndim=1), _reshaped("rank-1")),
    Mutation("zero-size", "shape", _kind(*_ANY, ndim=1), _reshaped("zero-size")),
    Mutation("size-one", "shape", lambda i, k: _kind(*_ANY, ndim=1)(i, k) and max(i.args[k].shape) > 1,
             _reshaped("size-one")),
    Mutation("zero-d", "shape", _kind(*_ANY, ndim=1), _reshaped("zero-d")),
    *[Mutation(v, "values", _F, _specials(v)) for v in ("nan", "inf", "-inf", "denormal", "huge")],
    Mutation("none", "special", lambda i, k: not i.meta[k].optional, _none),
    Mutation("leaked-tracer", "tracer", _F, _leaked),
    Mutation("mixed-tracers", "tracer", lambda i, k: len(i.diff_positions()) >= 2 and k == i.diff_positions()[0],
             _mixed_tracers),
]


def by_name(name: str) -> Mutation:
    return next(m for m in MUTATIONS if m.name == name)

