"""``fnnet.jit``: trace a function of arrays once per signature, then replay the recorded kernel calls.

See :func:`jit`, and docs/design.md ("jit") for how a trace is recorded and replayed.
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from typing import NamedTuple

import numpy as np

from .. import tree
from ..autodiff import Tracer, UnexpectedTracerError
from ..autodiff import recording
from ..autodiff.arrays import plain_array
from ..autodiff.donation import check_disjoint, check_not_donated, mark_donated
from ..autodiff.primitive import _check_finite_on
from ..autodiff.recording import ConcretizationError
from ._plan import Plan, describe_leaf

__all__ = ["jit", "Jitted", "CacheInfo", "ConcretizationError"]


class CacheInfo(NamedTuple):
    """What a jitted function's plan cache holds: ``hits`` (replays), ``misses`` (traces), ``size``
    (plans kept), ``maxsize`` and ``trace_seconds`` (of the plans kept, in insertion order)."""

    hits: int
    misses: int
    size: int
    maxsize: int
    trace_seconds: tuple


class Jitted:
    """A function wrapped by :func:`jit`; call it like the function."""

    def __init__(self, fn, static_argnums, static_argnames, max_plans, donate_argnums=()):
        self.fn = fn
        self.donate_argnums = donate_argnums
        self.static_argnums = static_argnums
        self.static_argnames = static_argnames
        self.max_plans = max_plans
        self.where = f"jit({getattr(fn, '__qualname__', type(fn).__name__)})"
        self._plans = collections.OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = 0
        self._last_def = None  # the structure of the last call's dynamic arguments
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        static, dynamic = self._split(args, kwargs)
        treedef = self._last_def  # calls repeat one structure: matched by generated code (tree.flatten_like)
        leaves = None if treedef is None else tree.flatten_like(treedef, dynamic)
        if leaves is None:
            leaves, treedef = tree.flatten(dynamic)
            self._last_def = treedef
        if recording.current() is not None or any(type(leaf) is Tracer for leaf in leaves) or _check_finite_on():
            # inside another trace or a grad: just part of it; under fnnet.check_finite (a debugging mode that
            # checks every op's values): eager, so that every call is checked
            return self.fn(*args, **kwargs)
        check_not_donated(self.where, "argument", dynamic, leaves)
        given_up = self._donated(args, kwargs) if self.donate_argnums else None
        out = self._run(leaves, treedef, static, args, kwargs, given_up)
        if given_up:  # (a call that raised gave nothing up: its checks run before any update)
            returned = {id(x) for x in tree.leaves(out)}
            mark_donated([x for x in given_up if id(x) not in returned])  # an input returned as it is stays usable
        return out

    def _donated(self, args, kwargs):
        """The array leaves of the donated arguments, after checking that none shares memory with another
        leaf of the call."""
        given = {str(n): args[n] for n in self.donate_argnums if n < len(args)}
        donated = tree.leaves(given)
        ids = {id(x) for x in donated}
        others = {str(n): a for n, a in enumerate(args) if n not in self.donate_argnums
                  and n not in self.static_argnums}
        others.update((k, v) for k, v in kwargs.items() if k not in self.static_argnames)
        kept = [x if id(x) not in ids else None for x in tree.leaves(others)]
        check_disjoint(self.where, {"donated argument": (given, donated)}, {"argument": (others, kept)})
        return [x for x in donated if isinstance(x, np.ndarray)]

    def _run(self, leaves, treedef, static, args, kwargs, given_up):
        signature = []
        for i, a in enumerate(leaves):
            if isinstance(a, np.ndarray):
                if not (type(a) is np.ndarray and a.flags.writeable and a.flags.aligned and a.dtype.isnative):
                    a = leaves[i] = plain_array(self.where, f"input leaf {i}", a)
                signature.append((a.shape, a.dtype))
            else:
                signature.append(describe_leaf(a))
        key = (treedef, tuple(signature), static)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                self._hits += 1
        if plan is None:
            plan, out = self._trace(args, kwargs, leaves, treedef, given_up)
            with self._lock:
                self._misses += 1
                self._plans[key] = plan
                while len(self._plans) > self.max_plans:
                    self._plans.popitem(last=False)
            return out  # the trace ran the function: its results are this call's
        return tree.unflatten(plan.out_def, plan.run([leaf for leaf in leaves if type(leaf) is np.ndarray]))

    def _split(self, args, kwargs):
        """``(static part, dynamic part)`` of a call; the static part must be hashable."""
        static = []
        for n in self.static_argnums:
            if n >= len(args):
                raise TypeError(f"{self.where}: static_argnums has {n}, but the call passed {len(args)} positional "
                                "argument(s)")
            static.append(("arg", n, args[n]))
        for name in self.static_argnames:
            if name in kwargs:
                static.append(("kw", name, kwargs[name]))
        static = tuple(static)
        try:
            hash(static)
        except TypeError:
            raise TypeError(f"{self.where}: static arguments must be hashable (they select the plan); got "
                            f"{[type(v).__name__ for *_, v in static]}") from None
        dynamic_args = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
        dynamic_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return static, (dynamic_args, dynamic_kwargs)

    def _trace(self, args, kwargs, leaves, treedef, given_up):
        start = time.perf_counter()
        recorder = recording.Recorder(self.where)
        traced = [recorder.input(leaf) if isinstance(leaf, np.ndarray) else leaf for leaf in leaves]
        input_slots = [t.node for t in traced if type(t) is Tracer]
        donated_ids = {id(x) for x in given_up or ()}
        donated_slots = frozenset(t.node for t, leaf in zip(traced, leaves)
                                  if type(t) is Tracer and id(leaf) in donated_ids)
        dyn_args, dyn_kwargs = tree.unflatten(treedef, traced)
        call_args, it = [], iter(dyn_args)
        for i in range(len(args)):
            call_args.append(args[i] if i in self.static_argnums else next(it))
        call_kwargs = {k: (kwargs[k] if k in self.static_argnames else dyn_kwargs[k]) for k in kwargs}
        try:
            with recording.using(recorder):
                out = self.fn(*call_args, **call_kwargs)
        finally:
            recorder.root.active = False
        out_leaves, out_def = tree.flatten(out)
        for leaf in out_leaves:
            if type(leaf) is Tracer and leaf.tape is not recorder.root:
                raise UnexpectedTracerError(
                    f"{self.where}: the function returned a value that is being differentiated (a tracer of a grad "
                    "call inside it); return grad's results, or fnnet.stop_gradient(x)"
                )
        plan = Plan(recorder, input_slots, out_leaves, out_def, time.perf_counter() - start, donated_slots)
        values = [leaf.value if type(leaf) is Tracer else leaf for leaf in out_leaves]
        return plan, tree.unflatten(out_def, values)

    def cache_info(self) -> CacheInfo:
        """Counts of replays and traces, and the plans kept (see :class:`CacheInfo`)."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._plans), self.max_plans,
                             tuple(p.trace_seconds for p in self._plans.values()))

    def plans(self) -> list:
        """The cached plans, least recently used first (each has ``num_steps``, ``trace_seconds``, ``source``)."""
        with self._lock:
            return list(self._plans.values())

    def clear_cache(self) -> None:
        """Drop every plan: the next call of each signature traces again."""
        with self._lock:
            self._plans.clear()


def jit(fn=None, *, static_argnums=(), static_argnames=(), donate_argnums=(), max_plans: int = 32):
    """Compile ``fn`` into a replay of its kernel calls: trace once per signature, then run without Python
    per op.

    The first call with a given *signature* (the arguments' tree structure, each array's shape and dtype,
    the values of non-array leaves and of the static arguments) runs ``fn`` once, as it would run eagerly,
    and records every kernel call it makes, including those of ``grad``/``value_and_grad`` (forward and
    backward), random draws and optimizer updates.  Later calls with that signature run the recording: no
    validation of shapes, no tracers, no tape; results are bitwise the eager ones.  Value checks that
    guard the kernels (label and index ranges) still run on every call.

    Python control flow on shapes and static arguments is fine.  Reading an array's *value* in Python
    (``if loss > 0``, ``float(x)``, ``x.item()``) raises :class:`ConcretizationError` naming the line:
    make that argument static, compute it with ``fnnet.ops``, or keep that code outside ``jit``.

    Args:
        fn: a function of pytrees of numpy arrays (and Python values), returning a pytree.
        static_argnums: positions of arguments that select the plan by value (hashable), e.g. ``train``.
        static_argnames: keyword arguments of the same kind.
        donate_argnums: positions of arguments whose arrays the call may overwrite (as JAX's): an
            optimizer update inside writes the new params and buffers into the donated ones' memory,
            so a training step holds params + gradients + optimizer state and no second copy.  The
            donated arrays must not be used afterwards: passing one to a jitted function or to
            ``fnnet.optim`` again raises ValueError (see :mod:`fnnet.autodiff.donation` for what is not
            caught).  Results are bitwise those without donation.
        max_plans: plans kept per function (least recently used dropped first).

    Returns:
        A :class:`Jitted` callable; ``cache_info()``, ``plans()`` and ``clear_cache()`` inspect its cache.

    Raises:
        ConcretizationError: (at the trace) Python read a traced array's value.
        TypeError: a static argument is not hashable.
        ValueError: a donated array passed again; two donated arrays, or a donated and a kept one,
            sharing memory.

    What does not depend on the arguments is a constant of the plan, computed once by the trace: arrays
    the function closes over (pass values that change between calls as arguments), ``np.random`` draws
    and other NumPy work on untraced values (use ``fnnet.random`` with a key argument for fresh noise).
    Non-array leaves (Python floats, ints, strings) are part of the signature: a new value traces again.
    Inside a ``fnnet.check_finite()`` block (or with ``FNNET_CHECK_FINITE=1``) calls run eagerly, so that
    every op's values are checked.
    Random keys are arrays, so a new key draws new bits.  Arrays a call returns are new arrays, never
    overwritten by a later call.  Calls from several threads at once are safe.  ``vmap`` inside ``jit`` runs
    its per-example loop; ``value_and_grad(on_gradient=...)`` and ``fnnet.vjp`` inside ``jit`` are not
    supported (a clear error).

    Example::

        @fnnet.jit
        def step(params, x, y):
            loss, grads = fnnet.value_and_grad(loss_fn)(params, x, y)
            return fnnet.tree.map(lambda p, g: p - 0.1 * g, params, grads), loss
    """
    if fn is None:
        return functools.partial(jit, static_argnums=static_argnums, static_argnames=static_argnames,
                                 donate_argnums=donate_argnums, max_plans=max_plans)
    if not callable(fn):
        raise TypeError(f"fnnet.jit: expected a function, got {type(fn).__name__}")
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in nums):
        raise TypeError(f"fnnet.jit: static_argnums must be non-negative ints, got {static_argnums!r}")
    if not isinstance(max_plans, int) or max_plans < 1:
        raise ValueError(f"fnnet.jit: max_plans must be a positive int, got {max_plans!r}")
    donated = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in donated):
        raise TypeError(f"fnnet.jit: donate_argnums must be non-negative ints, got {donate_argnums!r}")
    if set(donated) & set(nums):
        raise ValueError(f"fnnet.jit: argument(s) {sorted(set(donated) & set(nums))} are both static and donated; "
                         "a static argument is a hashable Python value, not an array to give up")
    return Jitted(fn, nums, names, max_plans, donated)
