"""float16 as a storage type: primitives called with float16 arrays compute in float32.

Numba kernels cannot do float16 arithmetic, so when any input of a primitive is a float16 array the call
is routed here: float16 inputs are widened to float32, the primitive's float32 forward runs, and its float
outputs and the residuals it saves are narrowed back to float16.  The backward widens the residuals and
the cotangent, runs the float32 VJP, and narrows the input cotangents.  Activations, parameters, saved
residuals and gradients are therefore stored in half precision (half the memory), while every kernel
computes and accumulates in float32.

The conversions default to numpy's ``astype``; ``fnnet.ops`` installs Numba conversion kernels that are
several times faster (``set_converters``).

A primitive may also compute float16 natively (``def_native``): kernels that read and write half bits
themselves, bitwise the widen / float32 kernel / narrow sequence above, and saving its residuals exactly as
that sequence stores them, so either backward can run on them.  The fused ``linear`` and ``max_pool2d`` (with
``max_pool1d``) do so, which removes a full-size conversion pass and float32 copy per input, output and
cotangent.

Nothing is cached between calls: every float16 input is widened afresh, so an array changed in place (through
a view, ``fill``, ``out=``, ``/=``) is always read as it is now.  (An earlier one-slot cache of the last
narrowed array, keyed by identity, served stale values after in-place changes.)
"""

from __future__ import annotations

import numpy as np

from .tape import Tracer

HALF = np.dtype(np.float16)
SINGLE = np.dtype(np.float32)

_convert = {
    "widen": lambda a: a.astype(np.float32),
    "narrow": lambda a: a.astype(np.float16),
}


def set_converters(widen, narrow) -> None:
    """Install ``widen(half) -> float32`` and ``narrow(float32) -> half``."""
    _convert["widen"], _convert["narrow"] = widen, narrow


def widen(x):
    if type(x) is not np.ndarray or x.dtype != HALF:
        return x
    return _convert["widen"](x)


def narrow(x):
    return _convert["narrow"](x) if type(x) is np.ndarray and x.dtype == SINGLE else x


#: primitive -> (forward, vjp) computing float16 directly, see ``def_native``.
_native = {}


def def_native(prim, fwd, vjp) -> None:
    """Let ``prim`` run on float16 arrays without widening them.

    ``fwd(*values, **params) -> (float16 output, residuals)`` gets the float16 values (and params with
    float16 scalars as float32) and must save its residuals exactly as :func:`forward` stores the float32
    forward's (the same structure: float16 arrays where the float32 forward saves arrays).  ``vjp`` takes
    ``prim``'s backward arguments (``needs`` when it has an input mask) with a float16 cotangent and returns
    float16 cotangents.  Both must give bitwise the results of the widening path; a cotangent that is not
    float16 takes that path."""
    _native[prim] = (fwd, vjp)


def _map_arrays(fn, res):
    if type(res) is tuple:
        return tuple(fn(r) for r in res)
    if type(res) is list:
        return [fn(r) for r in res]
    return fn(res)


def _param32(v):
    return np.float32(v) if isinstance(v, np.float16) else v


class _HalfVJP:
    """Tape adaptor: the wrapped primitive's VJP on widened residuals and cotangent, narrowed results."""

    __slots__ = ("prim", "name")

    def __init__(self, prim):
        self.prim = prim
        self.name = prim.name

    def argname(self, i):
        return self.prim.argname(i)

    def vjp(self, residuals, g, params, parents=()):
        native = _native.get(self.prim)
        if native is not None and type(g) is np.ndarray and g.dtype == HALF:
            if self.prim.input_mask:
                return tuple(native[1](residuals, g, needs=tuple(p >= 0 for p in parents), **params))
            return tuple(native[1](residuals, g, **params))
        grads = self.prim.vjp(_map_arrays(widen, residuals), widen(g), params, parents)
        return tuple(narrow(x) for x in grads)


def forward(prim, values, params):
    """``prim``'s forward on ``values`` computed in float32: ``(float16 output(s), residuals as a tape stores
    them)`` (a residual that is a widened input, or a reshape of one, is the original float16 array reshaped,
    the saved output or a reshape of it the float16 output, anything else narrowed)."""
    out, residuals, _ = _forward(prim, values, params, keep=True)
    return out, residuals


def _forward(prim, values, params, keep):
    params32 = {k: _param32(v) for k, v in params.items()}
    native = _native.get(prim)
    if native is not None and all(type(v) is not np.ndarray or v.dtype.kind != "f" or v.dtype == HALF
                                  for v in values):
        out, residuals = native[0](*values, **params32)
        return out, residuals if keep else None, params32
    wide = [widen(v) for v in values]
    out32, residuals = prim.fwd(*wide, **params32)
    if prim.num_aux:
        out = tuple(narrow(o) for o in out32)
        main32, main16 = out32[0], out[0]
    else:
        out = narrow(out32)
        main32, main16 = out32, out
    if not keep:
        return out, None, params32
    originals = {id(_whole(w)): v for w, v in zip(wide, values) if w is not v}
    originals[id(_whole(main32))] = main16

    def store(r):
        original = originals.get(id(_whole(r))) if type(r) is np.ndarray else None
        if original is None:
            return narrow(r)
        return original if original.shape == r.shape else original.reshape(r.shape)

    return out, _map_arrays(store, residuals), params32


def _whole(a):
    """The array whose buffer ``a`` covers entirely, C-contiguous (``a`` itself, or the owner of the buffer
    when ``a`` is a reshape of all of it), or ``a`` when it covers part or is strided.  A residual that
    is a reshape of a widened input (``x.reshape(-1, n)``) is then recognised and stored as the original
    float16 array instead of a narrowed copy: the same bits (widening is exact), no copy, no pass."""
    owner = a.base if type(a) is np.ndarray else None
    if type(owner) is np.ndarray and owner.nbytes == a.nbytes and a.flags.c_contiguous \
            and owner.flags.c_contiguous and owner.dtype == a.dtype:
        return owner
    return a


def call(prim, tape, args, params):
    """Run ``prim`` on arguments of which at least one is a float16 array (or a tracer of one)."""
    values = [a.value if type(a) is Tracer else a for a in args]
    out, stored, params32 = _forward(prim, values, params, keep=tape is not None)
    if tape is None:
        return out
    parents, shapes = [], []
    for a in args:
        if type(a) is Tracer:
            parents.append(a.node)
            shapes.append(a.value.shape)
        else:
            parents.append(-1)
            shapes.append(None)
    node = tape.record(_HalfVJP(prim), stored, params32, tuple(parents), tuple(shapes))
    if prim.num_aux:
        return (Tracer(out[0], tape, node), *out[1:])
    return Tracer(out, tape, node)
