"""float16 as a storage type: primitives called with float16 arrays compute in float32.

Numba kernels cannot do float16 arithmetic, so when any input of a primitive is a float16 array the call
is routed here: float16 inputs are widened to float32, the primitive's float32 forward runs, and its float
outputs and the residuals it saves are narrowed back to float16.  The backward widens the residuals and
the cotangent, runs the float32 VJP, and narrows the input cotangents.  Activations, parameters, saved
residuals and gradients are therefore stored in half precision (half the memory), while every kernel
computes and accumulates in float32.

The conversions default to numpy's ``astype``; ``fnnet.ops`` installs Numba conversion kernels that are
several times faster (``set_converters``).
"""

from __future__ import annotations

import threading

import numpy as np

from .tape import Tracer

HALF = np.dtype(np.float16)
SINGLE = np.dtype(np.float32)

_convert = {
    "widen": lambda a: a.astype(np.float32),
    "narrow": lambda a: a.astype(np.float16),
    "narrow_both": lambda a: (lambda h: (h, h.astype(np.float32)))(a.astype(np.float16)),
}

# The last array this thread narrowed, with its exact float32 widening: the next primitive usually widens
# that very array (a layer's output is the next layer's input), and then needs no conversion pass.
_recent = threading.local()


def set_converters(widen, narrow, narrow_both) -> None:
    """Install ``widen(half) -> float32``, ``narrow(float32) -> half`` and ``narrow_both(float32) ->
    (half, float32 of that half)`` (one pass producing both)."""
    _convert["widen"], _convert["narrow"], _convert["narrow_both"] = widen, narrow, narrow_both


def widen(x):
    if type(x) is not np.ndarray or x.dtype != HALF:
        return x
    recent = getattr(_recent, "pair", None)
    if recent is not None and recent[0] is x:
        return recent[1]
    return _convert["widen"](x)


def narrow(x):
    return _convert["narrow"](x) if type(x) is np.ndarray and x.dtype == SINGLE else x


def narrow_remembered(x):
    """``narrow(x)``, remembering the exact widening of the result for the next :func:`widen`."""
    if type(x) is not np.ndarray or x.dtype != SINGLE:
        return x
    h, back = _convert["narrow_both"](x)
    _recent.pair = (h, back)
    return h


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
        grads = self.prim.vjp(_map_arrays(widen, residuals), widen(g), params, parents)
        # the first input is the activation whose cotangent the next VJP reads
        return tuple(narrow_remembered(x) if i == 0 else narrow(x) for i, x in enumerate(grads))


def call(prim, tape, args, params):
    """Run ``prim`` on arguments of which at least one is a float16 array (or a tracer of one)."""
    values = [a.value if type(a) is Tracer else a for a in args]
    params32 = {k: _param32(v) for k, v in params.items()}
    wide = [widen(v) for v in values]
    out32, residuals = prim.fwd(*wide, **params32)
    if prim.num_aux:
        out = (narrow_remembered(out32[0]), *(narrow(o) for o in out32[1:]))
        main32, main16 = out32[0], out[0]
    else:
        out = narrow_remembered(out32)
        main32, main16 = out32, out
    if tape is None:
        return out
    adaptor = _HalfVJP(prim)
    parents, shapes = [], []
    for a in args:
        if type(a) is Tracer:
            parents.append(a.node)
            shapes.append(a.value.shape)
        else:
            parents.append(-1)
            shapes.append(None)
    # A residual that is one of the widened inputs is stored as the original float16 array (no new pass).
    originals = {id(w): v for w, v in zip(wide, values) if w is not v}
    originals[id(main32)] = main16  # a saved output is stored as the half output itself

    def store(r):
        original = originals.get(id(r))
        return original if original is not None else narrow(r)

    node = tape.record(adaptor, _map_arrays(store, residuals), params32, tuple(parents), tuple(shapes))
    if prim.num_aux:
        return (Tracer(out[0], tape, node), *out[1:])
    return Tracer(out, tape, node)
