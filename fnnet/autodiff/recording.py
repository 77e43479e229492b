"""What ``fnnet.jit`` records while a function runs once: a list of steps that can run again without it.

While a :class:`Recorder` is active in a thread, every array that depends on the jitted function's inputs is
a :class:`~fnnet.autodiff.tape.Tracer` whose tape carries the recorder (``Tape.jit``).  Values outside any
``grad`` live on the recorder's *root* tape, where a tracer's node is its *slot*: its index in the list of
values a replay fills in.  Tracers of a ``grad`` tape inside the jitted function map their nodes to slots
through ``Tape.slots``.

Every computation on such values goes through one of four doors, and each door both computes the value now
(the trace is an ordinary eager run) and appends a *step* that computes it again from slots:

- a primitive's forward (:meth:`Recorder.call_primitive`), saving its residuals in a slot under ``grad``;
- the backward walk of a ``grad`` tape (``recording_backward``): each VJP, unbroadcast and accumulation;
- a *host step* (:func:`host_step`): a pure function of arrays outside the primitives, such as a random
  draw or an optimizer update, recorded whole;
- a *check* (:func:`check`): validation that depends on values (label ranges, a finite loss), run again
  on every replay so that a bad batch still raises instead of reaching a kernel or the update.

A step is ``(fn, input slots, static keyword arguments, dynamic keyword slots, output slots)``.  Running
the steps in order on new inputs calls the same functions on the same kinds of values as the eager run, so
its results are bitwise the eager ones.  Python that reads an array's value (``bool``, ``float``, ``.item``)
would freeze a decision into the steps, so under a recorder it raises :class:`ConcretizationError`.
"""

from __future__ import annotations

import functools
import os
import sys
import threading

import numpy as np

from .. import tree
from . import half
from . import recorded_steps as steps
from .tape import Tape, Tracer

__all__ = ["Recorder", "ConcretizationError", "current", "using", "suspended", "host_step", "check", "jit_index",
           "is_host_step"]

_state = threading.local()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def current():
    """The recorder active in this thread, or None (outside ``fnnet.jit``'s trace, and inside a step)."""
    return getattr(_state, "recorder", None)


class using:
    """Make ``recorder`` this thread's recorder for the block (None: no recorder, e.g. while a step's
    function runs at trace time as the eager code would)."""

    __slots__ = ("recorder", "previous")

    def __init__(self, recorder):
        self.recorder = recorder

    def __enter__(self):
        self.previous = getattr(_state, "recorder", None)
        _state.recorder = self.recorder

    def __exit__(self, *exc):
        _state.recorder = self.previous


def suspended() -> using:
    """No recorder in this thread for the block."""
    return using(None)


class ConcretizationError(TypeError):
    """A jitted function read a traced array's value in Python (``if x > 0``, ``float(loss)``, ``.item()``),
    which a replay could not repeat."""


def _user_line() -> str:
    """``file:line`` of the innermost frame outside the fnnet package (the user's code that asked)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


class Recorder:
    """The trace of one call of a jitted function: slots, constants, steps (see the module docstring)."""

    def __init__(self, where: str):
        self.where = where
        self.root = Tape()
        self.root.jit = self
        self.values = []   # slot -> the value it had in the trace (kept alive: ids below stay unique)
        self.constants = {}  # slot -> value, for slots no step computes (closures, np.ones seeds, None)
        self.steps = []
        self.alias = {}    # id(plain array) -> slot, for values handed out unwrapped (index arrays)
        self.entries = {}  # (id(grad tape), first out node) -> (residual slot, dynamic keyword slots)

    # ------------------------------------------------------------------------------------ slots

    def new_slot(self, value) -> int:
        slot = self.root.num_nodes
        self.root.num_nodes += 1
        self.values.append(value)
        return slot

    def input(self, value) -> Tracer:
        """A traced input: a root tracer of a new slot."""
        return Tracer(value, self.root, self.new_slot(value))

    def constant(self, value) -> int:
        slot = self.alias.get(id(value))
        if slot is None:
            slot = self.new_slot(value)
            self.constants[slot] = value
            self.alias[id(value)] = slot
        return slot

    def slot_of(self, x) -> int:
        """The slot holding ``x``: a tracer's, an aliased array's, or a new constant's."""
        if type(x) is Tracer:
            tape = x.tape
            if tape is self.root:
                return x.node
            if tape.jit is self:  # a grad tape of this trace (its values are exported after it returns)
                return tape.slots[x.node]
            raise _foreign(self.where)
        return self.constant(x)

    def is_dynamic(self, x) -> bool:
        if type(x) is Tracer:
            return x.tape.jit is self
        slot = self.alias.get(id(x))
        return slot is not None and slot not in self.constants

    def export(self, x):
        """``x`` as a root tracer (a grad tracer's value leaving its tape), or ``x`` when it is not traced."""
        if type(x) is not Tracer:
            return x
        if x.tape is self.root:
            return x
        return Tracer(x.value, self.root, self.slot_of(x))

    def unwrap(self, x):
        """The concrete value of a root tracer, aliased so that later steps that receive it find its slot
        (index arrays: ops validate and pass them on as plain arrays)."""
        if type(x) is not Tracer:
            return x
        slot = self.slot_of(x)
        self.alias[id(x.value)] = slot
        return x.value

    def concretized(self, what: str):
        raise ConcretizationError(
            f"{self.where}: {what} of a traced array at {_user_line()}: jit records the function once and "
            "replays it, so a Python decision on an array's value would be frozen at the first call's value. "
            "Pass the value as a static argument (static_argnums/static_argnames), compute it with fnnet.ops "
            "(e.g. fnnet.ops.where instead of if), or keep this code outside the jitted function"
        )

    # ------------------------------------------------------------------------------------ steps

    def step(self, fn, ins, outs, kwargs=None, dynamic_kwargs=()):
        """Append a step; ``outs`` is a slot, a tuple of slots (-1: output dropped), or None (a check)."""
        self.steps.append((fn, tuple(ins), kwargs or {}, tuple(dynamic_kwargs), outs))

    def run(self, fn, args, kwargs=None):
        """Run ``fn(*args, **kwargs)`` now, on values, with recording suspended."""
        with suspended():
            return fn(*args, **(kwargs or {}))

    def call_host(self, fn, args, kwargs):
        """A pure function of arrays recorded whole (see :func:`host_step`)."""
        leaves, treedef = tree.flatten((args, kwargs))
        dynamic = [i for i, leaf in enumerate(leaves) if self.is_dynamic(leaf)]
        if not dynamic:
            return self.run(fn, args, kwargs)
        for i in dynamic:
            leaf = leaves[i]
            if type(leaf) is Tracer and leaf.tape is not self.root:
                raise TypeError(
                    f"{getattr(fn, '__qualname__', fn)}: got an array being differentiated; this function is not "
                    "differentiable, pass fnnet.stop_gradient(x)"
                )
        values = [leaf.value if type(leaf) is Tracer else leaf for leaf in leaves]
        call_args, call_kwargs = tree.unflatten(treedef, values)
        out = self.run(fn, call_args, call_kwargs)
        out_leaves, out_def = tree.flatten(out)
        out_leaves = [np.asarray(o) if isinstance(o, np.generic) else o for o in out_leaves]  # 0-d results too
        positions = tuple(i for i, o in enumerate(out_leaves) if isinstance(o, np.ndarray))
        slots = tuple(self.new_slot(out_leaves[i]) for i in positions)
        step = self._specialized(fn, call_args, call_kwargs, values, tuple(dynamic), [out_leaves[i] for i in positions])
        if step is None:
            step = steps.HostCall(fn, treedef, values, tuple(dynamic), positions)
        self.step(step, [self.slot_of(leaves[i]) for i in dynamic], slots)
        wrapped = list(out_leaves)
        for i, slot in zip(positions, slots):
            wrapped[i] = Tracer(out_leaves[i], self.root, slot)
        return tree.unflatten(out_def, wrapped)

    def _specialized(self, fn, args, kwargs, values, dynamic, outputs):
        """The step of a host function that offers a flat specialisation (``fn.fnnet_specialize(*args,
        **kwargs) -> fast(leaves) -> array outputs``, or None), when it gives bitwise the trace's outputs."""
        specialize = getattr(fn, "fnnet_specialize", None)
        fast = None if specialize is None else self.run(specialize, args, kwargs)
        if fast is None:
            return None
        with suspended():
            again = fast(list(values))
        same = len(again) == len(outputs) and all(
            type(a) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
            for a, b in zip(again, outputs))
        return steps.FlatHostCall(fast, values, dynamic) if same else None

    def call_primitive(self, prim, args, params):
        """``prim(*args, **params)`` with traced arguments: run it now and record it (under ``grad`` also
        the tape entry, whose residuals get a slot)."""
        grad_tape = None
        for a in args:
            if type(a) is Tracer and a.tape is not self.root:
                if grad_tape is None:
                    grad_tape = a.tape
                if a.tape is not grad_tape or a.tape.jit is not self or not a.tape.active:
                    raise _foreign(prim.name)
        values = [a.value if type(a) is Tracer else a for a in args]
        ins = [self.slot_of(a) for a in args]
        static, dynamic, full = {}, [], dict(params)
        for k, v in params.items():
            if self.is_dynamic(v):
                dynamic.append((k, self.slot_of(v)))
                full[k] = v.value if type(v) is Tracer else v
            else:
                static[k] = v
        is_half = not prim.raw_dtypes and any(type(v) is np.ndarray and v.dtype == half.HALF for v in values)
        if grad_tape is None:
            fn = steps.HalfForward(prim) if is_half else steps.Forward(prim)
            out = self.run(fn, values, full)
            if prim.num_aux:
                slots = tuple(self.new_slot(o) for o in out)
                self.step(fn, ins, slots, static, dynamic)
                return tuple(Tracer(o, self.root, s) for o, s in zip(out, slots))
            slot = self.new_slot(out)
            self.step(fn, ins, slot, static, dynamic)
            return Tracer(out, self.root, slot)
        return self._record_traced(prim, grad_tape, args, values, ins, static, dynamic, full, is_half)

    def _record_traced(self, prim, tape, args, values, ins, static, dynamic, full, is_half):
        fn = steps.HalfTracedForward(prim) if is_half else steps.TracedForward(prim)
        outputs = self.run(fn, values, full)  # (y, *aux, residuals)
        slots = tuple(self.new_slot(o) for o in outputs)
        self.step(fn, ins, slots, static, dynamic)
        y, residuals = outputs[0], outputs[-1]
        entry_prim, entry_params = (half._HalfVJP(prim), fn.params32(full)) if is_half else (prim, full)
        if is_half:
            static = fn.params32(static)
        parents, shapes = [], []
        for a in args:
            traced = type(a) is Tracer and a.tape is tape
            parents.append(a.node if traced else -1)
            shapes.append(a.value.shape if traced else None)
        node = tape.record(entry_prim, residuals, entry_params, tuple(parents), tuple(shapes))
        tape.slots[node] = slots[0]
        self.entries[(id(tape), node)] = (slots[-1], static, dynamic)
        if prim.num_aux:
            aux = tuple(Tracer(o, self.root, s) for o, s in zip(outputs[1:-1], slots[1:-1]))
            return (Tracer(y, tape, node), *aux)
        return Tracer(y, tape, node)


def _foreign(where):
    from .primitive import UnexpectedTracerError
    return UnexpectedTracerError(
        f"{where}: got a traced value from another trace (a jit or grad call that has returned, or another "
        "thread's); return plain values from jitted and differentiated functions"
    )


def host_step(fn):
    """Decorate a pure function of arrays that is not a primitive (random draws, optimizer updates) so that
    ``fnnet.jit`` records each call as one step.  Outside a trace it costs one thread-local lookup."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        recorder = getattr(_state, "recorder", None)
        if recorder is None:
            return fn(*args, **kwargs)
        return recorder.call_host(fn, args, kwargs)

    wrapper.fnnet_host_step = True
    return wrapper


def is_host_step(fn) -> bool:
    """True when ``fn`` was made by :func:`host_step`."""
    return getattr(fn, "fnnet_host_step", False)


def jit_index(x):
    """The value of ``x`` when it is an integer or boolean array traced by ``fnnet.jit`` (labels, indices,
    masks: ops check and pass those on as plain arrays), aliased to its slot; None for anything else."""
    if type(x) is not Tracer or x.tape.jit is None:
        return None
    recorder = getattr(_state, "recorder", None)
    if x.tape is not getattr(recorder, "root", None) or not x.tape.active:
        raise _foreign("fnnet.jit")
    return recorder.unwrap(x)


def check(fn, *args) -> None:
    """Run ``fn(*args)``, a check that raises on bad values (a label out of range, a non-finite loss), on
    the values of ``args`` (trees of arrays); under a trace, also record it to run again, in this place,
    on every replay.

    A check may offer a quick test of its traced leaves, ``fn.fnnet_quick_check(*leaves) -> bool`` (True:
    the check would pass).  A replay then runs only the test, with no tree to rebuild, and calls ``fn``
    on the rebuilt arguments (which raises its full message) only when the test fails."""
    recorder = getattr(_state, "recorder", None)
    if recorder is None:
        fn(*args)
        return
    leaves, treedef = tree.flatten((args, {}))
    dynamic = tuple(i for i, leaf in enumerate(leaves) if recorder.is_dynamic(leaf))
    values = [leaf.value if type(leaf) is Tracer else leaf for leaf in leaves]
    recorder.run(fn, tree.unflatten(treedef, values)[0])
    if dynamic:
        step = steps.HostCall(fn, treedef, values, dynamic, ())
        quick = getattr(fn, "fnnet_quick_check", None)
        if quick is not None:
            step = steps.QuickCheck(quick, step)
        recorder.step(step, [recorder.slot_of(leaves[i]) for i in dynamic], None)
