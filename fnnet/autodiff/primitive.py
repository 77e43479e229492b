"""Differentiable primitives: a forward function and its VJP rule, registered together.

The how-to (the contract and a worked example) is the docstring of :func:`primitive`, so that
``help(fnnet.primitive)`` shows it.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from . import batching, half, recording
from .batching import Batched
from .tape import Tracer

__all__ = ["Primitive", "primitive", "registered_primitives", "get_primitive", "NON_DIFFERENTIABLE",
           "check_finite", "UnexpectedTracerError"]

_REGISTRY: dict[str, "Primitive"] = {}

NON_DIFFERENTIABLE = ("argmax", "argmin", "one_hot", "comparisons (==, <, ...)", "random draws")
"""Operations that return integer or boolean results and therefore have no VJP by design."""


#: The process-wide default of the finite check, from ``FNNET_CHECK_FINITE``; a ``check_finite`` block
#: overrides it for its own thread only.
_CHECK_FINITE_DEFAULT = os.environ.get("FNNET_CHECK_FINITE", "") not in ("", "0")
_debug = threading.local()


def _check_finite_on() -> bool:
    return getattr(_debug, "check_finite", _CHECK_FINITE_DEFAULT)


@contextlib.contextmanager
def check_finite(enabled: bool = True):
    """Debug mode: inside the block every primitive checks its float inputs and outputs for NaN/inf and
    raises a ValueError naming the op and the argument at the first one.

    The setting belongs to the calling thread: blocks in other threads, overlapping in any order, neither
    see nor change it (threads started inside the block do not inherit it).  The environment variable
    ``FNNET_CHECK_FINITE=1`` turns it on for every thread of the process.  Off by default (it costs a
    pass over every array)."""
    previous = _check_finite_on()
    _debug.check_finite = enabled
    try:
        yield
    finally:
        _debug.check_finite = previous


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
        changes_dtype: when True, the output's dtype may differ from the float inputs' dtype; otherwise a
            forward returning, say, float64 from float32 inputs is rejected on its first call.

    ``fnnet.vmap`` runs a primitive once on the whole batch when it has a batching rule (:meth:`defbatch`);
    without one, ``vmap`` calls the function once per example.
    """

    __slots__ = ("name", "fwd", "bwd", "argnames", "num_aux", "input_mask", "raw_dtypes", "changes_dtype",
                 "_fwd_checked", "_bwd_checked", "batch_rule")

    def __init__(self, name, fwd, bwd=None, *, argnames=None, num_aux=0, input_mask=False, raw_dtypes=False,
                 changes_dtype=False):
        self.name = name
        self.fwd = fwd
        self.bwd = bwd
        self.argnames = tuple(argnames) if argnames is not None else None
        self.num_aux = num_aux
        self.input_mask = input_mask
        self.raw_dtypes = raw_dtypes
        self.changes_dtype = changes_dtype
        self._fwd_checked = False  # the contract is checked on the first forward and the first backward
        self._bwd_checked = False
        self.batch_rule = None  # fnnet.vmap's rule, see defbatch

    def defvjp(self, bwd):
        """Set the VJP rule ``bwd(residuals, g, **params) -> tuple of cotangents``; returns ``bwd``."""
        self.bwd = bwd
        return bwd

    def defbatch(self, fwd, vjp):
        """Set the batching rule ``fnnet.vmap`` uses (see ``fnnet.autodiff.batching.BatchRule`` for the
        contract; ``batching.elementwise_batching`` and ``axis_batching`` build the common ones)."""
        self.batch_rule = batching.BatchRule(fwd, vjp)

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
            grads = self.bwd(residuals, g, needs=tuple(p >= 0 for p in parents), **params)
        else:
            grads = self.bwd(residuals, g, **params)
        if not self._bwd_checked:
            _check_bwd_result(self, grads, len(parents))
            self._bwd_checked = True
        return grads

    def __call__(self, *args, **params):
        if _check_finite_on():
            _assert_finite(self, "input", args)
            out = self._call(*args, **params)
            _assert_finite(self, "output", out[:1] if self.num_aux else (out,))
            return out
        return self._call(*args, **params)

    def _call(self, *args, **params):
        tape = None
        is_half = False
        is_batched = False
        for a in args:
            t = type(a)
            if t is Tracer:
                tape = a.tape
                is_half = is_half or a.value.dtype == half.HALF
            elif t is np.ndarray and a.dtype == half.HALF:
                is_half = True
            elif t is Batched:
                is_batched = True
        if tape is not None and tape.jit is not None or tape is None and recording.current() is not None:
            return self._recorded_call(tape, args, params)
        if is_batched or tape is not None and tape.batch_size:  # under fnnet.vmap
            if tape is not None:
                _check_tapes(self.name, tape, args)
            return batching.call(self, tape, args, params)
        if is_half and not self.raw_dtypes:
            if tape is not None:
                _check_tapes(self.name, tape, args)
            return half.call(self, tape, args, params)
        if tape is None:
            result = self.fwd(*args, **params)
            if not self._fwd_checked:
                self._check_first_forward(result, args)
            return result[0]
        return self._traced_call(tape, args, params)

    def _recorded_call(self, tape, args, params):
        """Under ``fnnet.jit``'s trace: record the call when a traced value reaches it (otherwise it is
        computed from constants and runs as usual)."""
        recorder = recording.current()
        if tape is not None and (tape.jit is not recorder or not tape.active):
            raise UnexpectedTracerError(
                f"{self.name}: got a value traced by a fnnet.jit call that has returned (it leaked out, e.g. "
                "through a global or a closure) or that runs in another thread; return plain values from "
                "jitted functions"
            )
        if tape is None and not any(recorder.is_dynamic(a) for a in (*args, *params.values())):
            with recording.suspended():
                return self._call(*args, **params)
        if any(type(a) is Batched for a in args) or tape is not None and tape.batch_size:
            raise NotImplementedError(f"{self.name}: fnnet.vmap inside fnnet.jit is not supported yet; jit the "
                                      "function that calls vmap from outside, or drop jit")
        return recorder.call_primitive(self, args, params)

    def _check_first_forward(self, result, values):
        _check_fwd_result(self, result, values)
        self._fwd_checked = True

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
        result = self.fwd(*values, **params)
        if not self._fwd_checked:
            self._check_first_forward(result, values)
        out, residuals = result
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


class UnexpectedTracerError(ValueError):
    """A traced value reached an op after its ``grad`` call had returned (it leaked out through a global
    or a closure), or met a traced value of another ``grad`` call (nested differentiation)."""


def _raise_foreign_tracer(name, tracer, tape):
    if not tracer.tape.active:
        raise UnexpectedTracerError(
            f"{name}: got a traced value from a grad call that has already returned (it leaked out, e.g. "
            "through a global or a closure); return plain values from differentiated functions"
        )
    raise UnexpectedTracerError(
        f"{name}: inputs come from two different grad calls; nested differentiation (grad of grad) "
        "is not supported, because VJP rules are compiled kernels that are not themselves traced"
    )


def _check_fwd_result(prim, result, inputs):
    """The forward's contract: ``(out, residuals)``; ``out`` an array (``num_aux``: a tuple of
    ``num_aux + 1`` arrays) of the inputs' float dtype unless ``changes_dtype``."""
    how = "return (output, residuals), e.g. `return x * x, (x,)`; see help(fnnet.primitive)"
    if not (isinstance(result, tuple) and len(result) == 2):
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise TypeError(f"primitive {prim.name!r}: the forward must {how}; it returned {got}")
    out = result[0]
    if prim.num_aux:
        if not (isinstance(out, tuple) and len(out) == prim.num_aux + 1):
            raise TypeError(
                f"primitive {prim.name!r} has num_aux={prim.num_aux}: its output must be a tuple "
                f"(y, aux_1, ..., aux_{prim.num_aux}), got {type(out).__name__}"
            )
        out = out[0]
    if not isinstance(out, np.ndarray):
        raise TypeError(f"primitive {prim.name!r}: the forward's output must be a numpy array, got "
                        f"{type(out).__name__}; {how}")
    floats = [v.dtype for v in inputs if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    expected = np.result_type(*floats) if floats else None
    if expected is not None and expected == half.HALF and not prim.raw_dtypes:
        expected = half.SINGLE  # float16 inputs were widened: the forward computes in float32
    if expected is not None and out.dtype != expected and not (prim.changes_dtype or prim.raw_dtypes):
        raise TypeError(
            f"primitive {prim.name!r}: the forward returned {out.dtype} from {expected} inputs; fnnet never "
            "promotes silently, so compute in the inputs' dtype, or declare primitive(..., changes_dtype=True)"
        )
    return result


def _check_bwd_result(prim, grads, num_inputs):
    """The backward's contract: a tuple (or list) of one cotangent (array or None) per positional input."""
    if not isinstance(grads, (tuple, list)):
        raise TypeError(
            f"primitive {prim.name!r}: the VJP must return a tuple with one cotangent per positional input "
            f"({num_inputs}), e.g. `return (g * 2,)` for one input; it returned {type(grads).__name__}"
        )
    if len(grads) != num_inputs:
        raise TypeError(
            f"primitive {prim.name!r}: the VJP returned {len(grads)} cotangent(s) for {num_inputs} positional "
            "input(s); return one per input, None where an input is not differentiable"
        )
    for i, gi in enumerate(grads):
        if gi is not None and not isinstance(gi, np.ndarray):
            raise TypeError(f"primitive {prim.name!r}: the VJP's cotangent for argument {i} "
                            f"({prim.argname(i)!r}) must be a numpy array or None, got {type(gi).__name__}")


def primitive(name: str, fwd, bwd=None, *, argnames=None, num_aux=0, input_mask=False, raw_dtypes=False,
              changes_dtype=False, override=False) -> Primitive:
    """Create and register a differentiable op: a forward function and its VJP rule.

    Every built-in op is defined this way, and so is any op a user adds::

        import numpy as np
        import fnnet

        def _cube_fwd(x):                      # -> (output, residuals for the backward)
            return x * x * x, (x,)

        def _cube_bwd(residuals, g):           # -> one cotangent per positional input
            (x,) = residuals
            return (3.0 * x * x * g,)

        cube = fnnet.primitive("cube", _cube_fwd, _cube_bwd)
        fnnet.grad(lambda x: fnnet.ops.sum(cube(x)))(np.arange(3.0))   # -> [0., 3., 12.]

    The forward receives plain numpy arrays (never tracers) and keyword parameters, and returns
    ``(output, residuals)`` with the output in the inputs' float dtype.  The backward receives the
    residuals, the output cotangent ``g`` and the same keyword parameters, and returns a tuple of one
    cotangent per positional input (``None`` where the input is not differentiable).  A cotangent may have
    the broadcast shape of the output: the tape sums it back to the input's shape.  Both contracts are
    checked on the first call (a clear ``TypeError`` naming the primitive).  Check the rule numerically
    with ``fnnet.testing.check_grads(cube, (x,))``.

    Args: see :class:`Primitive` for ``argnames``, ``num_aux``, ``input_mask``, ``raw_dtypes`` and
    ``changes_dtype``; ``override`` replaces an op already registered under ``name``.

    Raises:
        TypeError: ``name`` is not a non-empty str, or ``fwd``/``bwd`` is not callable.
        ValueError: when ``name`` is already registered and ``override`` is False.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"fnnet.primitive: name must be a non-empty str, got {name!r}")
    if name in _REGISTRY and not override:
        raise ValueError(
            f"fnnet.primitive: an op named {name!r} is already registered; choose another name or pass "
            "override=True"
        )
    for what, fn in (("fwd", fwd), ("bwd", bwd)):
        if fn is not None and not callable(fn) or what == "fwd" and fn is None:
            raise TypeError(f"fnnet.primitive({name!r}): {what} must be a function, got {type(fn).__name__}")
    prim = Primitive(name, fwd, bwd, argnames=argnames, num_aux=num_aux, input_mask=input_mask,
                     raw_dtypes=raw_dtypes, changes_dtype=changes_dtype)
    _REGISTRY[name] = prim
    return prim


def registered_primitives() -> dict:
    """A copy of the registry: ``{name: Primitive}``."""
    return dict(_REGISTRY)


def get_primitive(name: str) -> Primitive:
    """The registered :class:`Primitive` called ``name``.

    Raises:
        KeyError: no primitive has that name; the message lists the registered names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no primitive named {name!r}; registered: {sorted(_REGISTRY)}") from None
