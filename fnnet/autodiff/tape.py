"""The tape and the tracer: what a ``grad`` call records while the user's function runs.

A :class:`Tracer` wraps a concrete numpy value together with the tape it was recorded on and its node
number.  Because every value is concrete, Python ``if``/``for``/``while`` on tracers just work: the tape is
built dynamically, one entry per primitive call.  Each ``grad`` call owns a fresh tape, and tracers carry a
reference to it, so gradients computed in several Python threads at once never share state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Tape", "Tracer", "unbroadcast", "value_of", "is_tracer"]


class Tape:
    """An append-only record of primitive calls, walked backwards by :meth:`backward`.

    Each entry is ``(primitive, residuals, params, parent_nodes, parent_shapes, out_nodes)``;
    ``parent_nodes[i]`` is ``-1`` for an argument that was not traced.  ``out_nodes`` is an int for a
    single-output entry or a tuple of ints for a multi-output one.

    A tape with ``batch_size > 0`` belongs to a ``grad`` inside ``fnnet.vmap``: every cotangent on it holds
    one per example, ``(batch_size, *shape)`` (see ``fnnet.autodiff.batching``).  A tape with
    ``recomputation`` records a checkpointed block re-run during the backward (``transforms.checkpoint``).
    """

    __slots__ = ("entries", "num_nodes", "active", "residual_bytes", "peak_residual_bytes", "batch_size", "jit",
                 "slots", "recomputation")

    def __init__(self, batch_size: int = 0, recomputation: bool = False):
        self.entries = []
        self.num_nodes = 0
        self.active = True
        self.residual_bytes = 0
        self.peak_residual_bytes = 0
        self.batch_size = batch_size
        self.jit = None  # the fnnet.jit recorder tracing this tape (autodiff/recording.py), if any
        self.slots = None  # under jit: {node: slot}
        self.recomputation = recomputation  # the tape of a checkpointed block re-run for its backward

    def cotangent_shape(self, shape: tuple) -> tuple:
        """The shape of a cotangent of a value of ``shape`` (one example's) on this tape."""
        return (self.batch_size, *shape) if self.batch_size else tuple(shape)

    def new_node(self) -> int:
        node = self.num_nodes
        self.num_nodes += 1
        return node

    def record(self, prim, residuals, params, parents, shapes, num_outputs=1, nbytes=None):
        """Append one entry and return its output node (or tuple of nodes when ``num_outputs > 1``)."""
        if num_outputs == 1:
            out = self.num_nodes
            self.num_nodes += 1
        else:
            out = tuple(range(self.num_nodes, self.num_nodes + num_outputs))
            self.num_nodes += num_outputs
        if nbytes is None:
            nbytes = _residual_nbytes(residuals)
        self.residual_bytes += nbytes
        if self.residual_bytes > self.peak_residual_bytes:
            self.peak_residual_bytes = self.residual_bytes
        self.entries.append((prim, residuals, params, parents, shapes, out, nbytes))
        return out

    def backward(self, seeds: dict, keep: bool = False, watch=(), on_final=None) -> dict:
        """Propagate cotangents from ``seeds`` ({node: array}) to every node; return what reaches nodes
        that no entry produced (the inputs).  Residuals are released as they are used unless ``keep``.

        ``on_final(node, cotangent_or_None)``, when given, is called for each node of ``watch`` that some
        entry uses, right after the walk has run the earliest-recorded such entry (the last one it reaches):
        no later entry of the walk can change that cotangent, so it may be sent away while the walk goes on."""
        if self.jit is not None:
            if on_final is not None:
                raise NotImplementedError(
                    "fnnet.jit: value_and_grad(on_gradient=...) (overlapped gradient reduction) cannot be "
                    "traced; keep the distributed step outside jit"
                )
            from .recorded_backward import backward
            return backward(self.jit, self, seeds, keep)
        cotangents = dict(seeds)
        owned = set()  # nodes whose cotangent array we allocated, so it may be updated in place
        entries = self.entries
        order = reversed(entries) if keep else pop_all(entries)
        if on_final is not None:
            order = _notify_final(order, _first_uses(entries, watch), cotangents, on_final)
        for prim, residuals, params, parents, shapes, out, nbytes in order:
            if type(out) is int:
                g = cotangents.pop(out, None)
                if g is None:
                    continue
            else:
                gs = tuple(cotangents.pop(o, None) for o in out)
                if all(x is None for x in gs):
                    continue
                g = gs
            grads = prim.vjp(residuals, g, params, parents)
            if not keep:
                self.residual_bytes -= nbytes
                del residuals
            for i, node in enumerate(parents):
                if node < 0:
                    continue
                gi = grads[i]
                if gi is None:
                    raise missing_vjp(prim, i)
                if gi.shape != shapes[i]:
                    gi = unbroadcast(gi, shapes[i])
                previous = cotangents.get(node)
                if previous is None:
                    cotangents[node] = gi
                elif node in owned:
                    np.add(previous, gi, out=previous)
                else:
                    cotangents[node] = np.asarray(previous + gi)  # 0-d + 0-d is a numpy scalar
                    owned.add(node)
        return cotangents


def missing_vjp(prim, i) -> NotImplementedError:
    """The error for a VJP that returned no cotangent for a traced argument ``i``."""
    return NotImplementedError(
        f"no VJP for {prim.name!r} w.r.t. argument {i} ({prim.argname(i)!r}); register one with "
        f"{prim.name}.defvjp(...) or pass this argument through fnnet.stop_gradient"
    )


def pop_all(entries):
    """The entries, last first, each removed from the list as it is reached (so its residuals can go)."""
    while entries:
        yield entries.pop()


def _first_uses(entries, watch) -> dict:
    """``{out of an entry: [watched nodes first used, in recording order, by that entry]}``: the backward
    walk reaches that entry last among the node's users, so the node's cotangent is final after it."""
    watch = set(watch)
    first = {}
    for entry in entries:
        for node in entry[3]:
            if node in watch and node not in first:
                first[node] = entry[5]
    ready = {}
    for node, out in first.items():
        ready.setdefault(out, []).append(node)
    return ready


def _notify_final(order, ready_after, cotangents, on_final):
    """Yield the entries of ``order``; once the walk asks for the next one (the previous entry has been
    fully processed, or skipped), report the watched nodes whose last use it was."""
    for entry in order:
        yield entry
        for node in ready_after.get(entry[5], ()):
            on_final(node, cotangents.get(node))


def _residual_nbytes(residuals) -> int:
    total = 0
    if type(residuals) is tuple:
        for r in residuals:
            if type(r) is np.ndarray:
                total += r.nbytes
    elif type(residuals) is np.ndarray:
        total = residuals.nbytes
    return total


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a cotangent of a broadcast result back to the operand's ``shape`` (the one place this is done)."""
    extra = g.ndim - len(shape)
    if extra:
        g = np.asarray(g.sum(axis=tuple(range(extra))))  # a full sum is a numpy scalar
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


class Tracer:
    """A concrete array value being differentiated: ``value`` plus its ``node`` on ``tape``.

    Tracers behave like read-only numpy arrays for the operations fnnet knows how to differentiate
    (operators, indexing, ``reshape``, ``.T``, ``sum``, ``mean``, ``max``; installed by :mod:`fnnet.ops`).
    Comparisons return plain boolean arrays, and ``bool``/``float``/``int`` read the concrete value, so
    Python control flow works.  NumPy ufuncs (``np.exp(t)``) run the fnnet op when there is one and raise a
    TypeError naming the ``fnnet.ops`` alternative otherwise; other numpy functions are an error.
    """

    __slots__ = ("value", "tape", "node")
    __array_ufunc__ = None  # fnnet.ops installs the dispatch: a ufunc runs its fnnet op or raises naming it

    def __init__(self, value, tape, node):
        self.value = value
        self.tape = tape
        self.node = node

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)

    def __len__(self):
        return len(self.value)

    def __bool__(self):
        if self.tape.jit is not None:
            self.tape.jit.concretized("bool()")
        return bool(self.value)

    def __float__(self):
        if self.tape.jit is not None:
            self.tape.jit.concretized("float()")
        return float(self.value)

    def __int__(self):
        if self.tape.jit is not None:
            self.tape.jit.concretized("int()")
        return int(self.value)

    def __index__(self):
        if self.tape.jit is not None:
            self.tape.jit.concretized("use as an index")
        return self.value.__index__()

    def item(self):
        if self.tape.jit is not None:
            self.tape.jit.concretized(".item()")
        return self.value.item()

    def tolist(self):
        if self.tape.jit is not None:
            self.tape.jit.concretized(".tolist()")
        return self.value.tolist()

    def __array__(self, dtype=None, copy=None):
        if self.tape.jit is not None:
            raise TypeError(
                f"{self.tape.jit.where}: a traced array was passed to a numpy function, whose result the replay "
                "could not recompute; use the array's own methods (x.reshape, x.T, x[i]) or fnnet.ops inside "
                "the jitted function, or compute it outside"
            )
        raise TypeError(
            "a traced array was passed to a numpy function, which would silently drop its gradient; "
            "use the fnnet.ops equivalent, or fnnet.stop_gradient(x) if no gradient should flow"
        )

    def __repr__(self):
        return f"Tracer(node={self.node}, shape={self.shape}, dtype={self.dtype})"


def is_tracer(x) -> bool:
    """True when ``x`` is a :class:`Tracer`: a value being differentiated inside ``grad``."""
    return type(x) is Tracer


def value_of(x):
    """The concrete numpy value of ``x`` (a tracer's value, or ``x`` itself)."""
    return x.value if type(x) is Tracer else x
