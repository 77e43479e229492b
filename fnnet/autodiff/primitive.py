"""Differentiable primitives: a forward function and its VJP rule, registered together.

Every built-in op is defined with :func:`primitive`, and so is any op a user adds::

    import numpy as np
    import fnnet

    def _cube_fwd(x):                      # -> (output, residuals for the backward)
        return x * x * x, (x,)

    def _cube_bwd(residuals, g):           # -> one cotangent per positional input
        (x,) = residuals
        return (3.0 * x * x * g,)

    cube = fnnet.primitive("cube", _cube_fwd, _cube_bwd)
    fnnet.grad(lambda x: fnnet.ops.sum(cube(x)))(np.arange(3.0))   # -> [0., 3., 12.]

The forward receives plain numpy arrays (never tracers) and keyword parameters; the backward receives
the residuals, the output cotangent ``g`` and the same keyword parameters, and returns one cotangent per
positional input (``None`` where the input is not differentiable).  A cotangent may have the broadcast
shape of the output: the tape sums it back to the input's shape.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from . import half
from .tape import Tracer

__all__ = ["Primitive", "primitive", "registered_primitives", "get_primitive", "NON_DIFFERENTIABLE",
           "check_finite"]

_REGISTRY: dict[str, "Primitive"] = {}

#: Operations that return integer or boolean results and therefore have no VJP by design.
NON_DIFFERENTIABLE = ("argmax", "argmin", "one_hot", "comparisons (==, <, ...)", "random draws")


_debug = {"check_finite": os.environ.get("FNNET_CHECK_FINITE", "") not in ("", "0")}


@contextlib.contextmanager
def check_finite(enabled: bool = True):
    """Debug mode: inside the block every primitive checks its float inputs and outputs for NaN/inf and
    raises a ValueError naming the op and the argument at the first one.  Also turned on for a whole
    process by the environment variable ``FNNET_CHECK_FINITE=1``.  Off by default (it costs a pass over
    every array)."""
    previous = _debug["check_finite"]
    _debug["check_finite"] = enabled
    try:
        yield
    finally:
        _debug["check_finite"] = previous


def _assert_finite(prim, what, arrays):
    for i, a in enumerate(arrays):
        a = a.value if type(a) is Tracer else a
        if type(a) is np.ndarray and a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = ~np.isfinite(a)
            first = tuple(int(j) for j in np.argwhere(bad)[0])
            label = f"argument {i} ({prim.argname(i)!r})" if what == "input" else "its output"
            raise ValueError(
                f"{prim.name}: {label} contains {int(np.isnan(a).sum())} NaN and {int(np.isinf(a).sum())} inf "
                f"value(s), the first at index {first} (fnnet.check_finite is on); look at what produced it, "
                "e.g. a log of 0, an overflow in exp, or a learning rate that is too large"
            )


class Primitive:
    """A named op: ``fwd(*arrays, **params) -> (out, residuals)`` plus ``bwd(residuals, g, **params)``.

    Args:
        name: unique name, used in error messages and by the test coverage registry.
        fwd: forward function on plain numpy arrays.
        bwd: VJP rule; may be given later with :meth:`defvjp`.
        argnames: names of the positional inputs, for error messages.
        num_aux: when > 0, ``fwd`` returns ``((y, aux_1, ..., aux_k), residuals)``; only ``y`` is
            differentiable, the aux outputs come back as plain arrays (e.g. batch statistics).
        input_mask: when True, ``bwd`` also receives ``needs``, a tuple of bools (one per positional
            input, True where a cotangent is wanted), so it can skip work for inputs that are not traced
            (e.g. the input gradient of a network's first layer).  Unneeded cotangents may be None.
        raw_dtypes: when True, float16 inputs reach ``fwd`` as they are instead of being widened to float32
            (for ops that handle dtypes themselves, such as casts; see ``fnnet.autodiff.half``).
    """

    __slots__ = ("name", "fwd", "bwd", "argnames", "num_aux", "input_mask", "raw_dtypes")

    def __init__(self, name, fwd, bwd=None, *, argnames=None, num_aux=0, input_mask=False, raw_dtypes=False):
        self.name = name
        self.fwd = fwd
        self.bwd = bwd
        self.argnames = tuple(argnames) if argnames is not None else None
        self.num_aux = num_aux
        self.input_mask = input_mask
        self.raw_dtypes = raw_dtypes

    def defvjp(self, bwd):
        """Set the VJP rule ``bwd(residuals, g, **params) -> tuple of cotangents``; returns ``bwd``."""
        self.bwd = bwd
        return bwd

    def argname(self, i: int) -> str:
        if self.argnames is not None and i < len(self.argnames):
            return self.argnames[i]
        return f"arg{i}"

    def vjp(self, residuals, g, params, parents=()):
        if self.bwd is None:
            raise NotImplementedError(
                f"no VJP registered for {self.name!r}; define one with {self.name}.defvjp(rule)"
            )
        if self.input_mask:
            return self.bwd(residuals, g, needs=tuple(p >= 0 for p in parents), **params)
        return self.bwd(residuals, g, **params)

    def __call__(self, *args, **params):
        if _debug["check_finite"]:
            _assert_finite(self, "input", args)
            out = self._call(*args, **params)
            _assert_finite(self, "output", out[:1] if self.num_aux else (out,))
            return out
        return self._call(*args, **params)

    def _call(self, *args, **params):
        tape = None
        is_half = False
        for a in args:
            t = type(a)
            if t is Tracer:
                tape = a.tape
                is_half = is_half or a.value.dtype == half.HALF
            elif t is np.ndarray and a.dtype == half.HALF:
                is_half = True
        if is_half and not self.raw_dtypes:
            if tape is not None:
                _check_tapes(self.name, tape, args)
            return half.call(self, tape, args, params)
        if tape is None:
            return self.fwd(*args, **params)[0]
        return self._traced_call(tape, args, params)

    def _traced_call(self, tape, args, params):
        values = []
        parents = []
        shapes = []
        for a in args:
            if type(a) is Tracer:
                if a.tape is not tape or not tape.active:
                    _raise_foreign_tracer(self.name, a, tape)
                values.append(a.value)
                parents.append(a.node)
                shapes.append(a.value.shape)
            else:
                values.append(a)
                parents.append(-1)
                shapes.append(None)
        out, residuals = self.fwd(*values, **params)
        if self.num_aux:
            y, *aux = out
            node = tape.record(self, residuals, params, tuple(parents), tuple(shapes))
            return (Tracer(y, tape, node), *aux)
        node = tape.record(self, residuals, params, tuple(parents), tuple(shapes))
        return Tracer(out, tape, node)

    def __repr__(self):
        return f"<fnnet primitive {self.name!r}>"


def _check_tapes(name, tape, args):
    for a in args:
        if type(a) is Tracer and (a.tape is not tape or not tape.active):
            _raise_foreign_tracer(name, a, tape)


def _raise_foreign_tracer(name, tracer, tape):
    if not tracer.tape.active:
        raise RuntimeError(
            f"{name}: got a traced value from a grad call that has already returned (it leaked out, e.g. "
            "through a global or a closure); return plain values from differentiated functions"
        )
    raise NotImplementedError(
        f"{name}: inputs come from two different grad calls; nested differentiation (grad of grad) "
        "is not supported, because VJP rules are compiled kernels that are not themselves traced"
    )


def primitive(name: str, fwd, bwd=None, *, argnames=None, num_aux=0, input_mask=False, raw_dtypes=False,
              override=False) -> Primitive:
    """Create and register a differentiable op.  See the module docstring for an example.

    Raises:
        ValueError: when ``name`` is already registered and ``override`` is False.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"fnnet.primitive: name must be a non-empty str, got {name!r}")
    if name in _REGISTRY and not override:
        raise ValueError(
            f"fnnet.primitive: an op named {name!r} is already registered; choose another name or pass "
            "override=True"
        )
    prim = Primitive(name, fwd, bwd, argnames=argnames, num_aux=num_aux, input_mask=input_mask,
                     raw_dtypes=raw_dtypes)
    _REGISTRY[name] = prim
    return prim


def registered_primitives() -> dict:
    """A copy of the registry: ``{name: Primitive}``."""
    return dict(_REGISTRY)


def get_primitive(name: str) -> Primitive:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no primitive named {name!r}; registered: {sorted(_REGISTRY)}") from None
