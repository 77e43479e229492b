"""The vocabulary of the fuzz table: argument descriptors, op specs, layer specs, and the coverage check.

A spec is one short entry.  An op spec names the op, gives a function of the arrays and the arrays'
descriptors (shape, kind, value domain) and, optionally, a NumPy float64 reference.  A layer spec gives
the layer and a valid input shape.  ``build(rng)`` turns a spec into an :class:`Instance`: the canonical
arguments (native float32, C-contiguous, plain ``ndarray``) and one ``call(*args)`` that every mutation
drives in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ... import layers as fnlayers
from ... import losses, ops, tree
from ... import random as fnrandom

__all__ = ["Arg", "F", "I", "B", "KEY", "Instance", "OpSpec", "LayerSpec", "uncovered"]


@dataclass(frozen=True)
class Arg:
    """One positional argument: ``kind`` is "float" (differentiated when ``diff``), "int", "bool" or "key".

    ``domain`` picks float values ("normal", "positive" = |N(0,1)| + 0.5, "unit" = U(0.05, 0.95));
    int values are drawn from ``[0, high)``.  ``optional`` arguments may legally be None.
    """

    shape: tuple
    kind: str = "float"
    diff: bool = True
    domain: str = "normal"
    high: int = 0
    optional: bool = False


def F(*shape, domain="normal", diff=True, optional=False) -> Arg:
    return Arg(tuple(shape), "float", diff, domain, optional=optional)


def I(*shape, high) -> Arg:  # noqa: E743  (the int counterpart of F)
    return Arg(tuple(shape), "int", False, high=high)


def B(*shape) -> Arg:
    return Arg(tuple(shape), "bool", False)


KEY = Arg((2,), "key", False)


def draw(rng, arg: Arg) -> np.ndarray:
    """Canonical value of ``arg``: native, C-contiguous, a plain ndarray."""
    if arg.kind == "key":
        return fnrandom.key(int(rng.integers(0, 2**31)))
    if arg.kind == "int":
        return rng.integers(0, arg.high, size=arg.shape).astype(np.int64)
    if arg.kind == "bool":
        return rng.random(arg.shape) < 0.5
    if arg.domain == "positive":
        return (np.abs(rng.standard_normal(arg.shape)) + 0.5).astype(np.float32)
    if arg.domain == "unit":
        return rng.uniform(0.05, 0.95, size=arg.shape).astype(np.float32)
    return rng.standard_normal(arg.shape).astype(np.float32)


@dataclass
class Instance:
    """A spec made concrete.  ``call(*args)`` returns the output tree; ``names`` are the words a clean error
    message may start with (the op, or the layer classes and the ops they call)."""

    target: str
    names: tuple
    call: Callable
    args: list
    meta: tuple
    ref: Callable | None = None
    differentiable: bool = True
    layer: object = None
    n_inputs: int = 1

    def diff_positions(self) -> tuple:
        return tuple(i for i, m in enumerate(self.meta) if m.kind == "float" and m.diff)


@dataclass(frozen=True)
class OpSpec:
    """``fn(*args)`` calls the op; ``ref(*args)`` is the same computation in NumPy on float64 copies of the
    float arguments (other arguments unchanged).  ``covers`` is the public name (default: ``name`` up to
    a ``[variant]`` suffix)."""

    name: str
    fn: Callable
    args: tuple
    ref: Callable | None = None
    differentiable: bool = True
    covers: str | None = None

    @property
    def public(self) -> str:
        return self.covers or self.name.split("[")[0]

    def build(self, rng) -> Instance:
        args = [draw(rng, a) for a in self.args]
        short = self.public.split(".")[-1]
        return Instance(self.name, (short,), self.fn, args, tuple(self.args), self.ref, self.differentiable)


def _layer_classes(layer) -> set:
    return {type(visit.layer).__name__ for visit in fnlayers.walk(layer)}


@dataclass(frozen=True)
class LayerSpec:
    """A layer with a valid input shape (a tuple of shapes for multi-input layers).  ``int_input > 0``: the
    input is integer indices in ``[0, int_input)``; ``key``: pass a fixed random key."""

    name: str
    layer: object
    in_shape: tuple
    train: bool = False
    int_input: int = 0
    key: bool = False

    def build(self, rng) -> Instance:
        layer = self.layer
        multi = bool(self.in_shape) and isinstance(self.in_shape[0], tuple)
        shapes = self.in_shape if multi else (self.in_shape,)
        x_meta = tuple(I(*s, high=self.int_input) if self.int_input else F(*s) for s in shapes)
        params = layer.init(fnrandom.key(0), self.in_shape if multi else shapes[0])
        state = layer.init_state(self.in_shape if multi else shapes[0]) if layer.has_state else None
        p_leaves, p_def = tree.flatten(params)
        s_leaves, s_def = tree.flatten(state) if state is not None else ([], None)
        n_x, n_p = len(shapes), len(p_leaves)
        key = fnrandom.key(1) if self.key else None
        train = self.train

        def call(*args):
            x = tuple(args[:n_x]) if multi else args[0]
            p = tree.unflatten(p_def, list(args[n_x:n_x + n_p]))
            if s_def is None:
                return layer.apply(p, x, key=key, train=train)
            return layer.apply(p, x, state=tree.unflatten(s_def, list(args[n_x + n_p:])), key=key, train=train)

        meta = x_meta + tuple(F(*np.shape(v)) for v in p_leaves)
        meta += tuple(F(*np.shape(v), diff=False) for v in s_leaves)
        args = [draw(rng, m) for m in x_meta] + [np.array(v) for v in p_leaves] + [np.array(v) for v in s_leaves]
        names = tuple(sorted(_layer_classes(layer))) + tuple(ops.__all__)
        return Instance(self.name, names, call, args, meta, None, True, layer, n_x)


#: Public names that take no arrays, so there is nothing to fuzz (with the reason).
EXCLUDED = {
    "ops.conv2d_output_shape": "shape arithmetic on tuples of ints; no arrays",
    "ops.conv_output_size": "shape arithmetic on ints; no arrays",
    "ops.pool2d_output_shape": "shape arithmetic on tuples of ints; no arrays",
    "layers.Layer": "the abstract base class; every concrete layer has its own spec",
}


def public_targets() -> list:
    """Every public op (``fnnet.ops.__all__``, ``fnnet.losses.__all__``) and every layer class of fnnet
    (registered, or exported by ``fnnet.layers``); layers that users or tests register are not fnnet's."""
    names = [f"ops.{n}" for n in ops.__all__] + [f"losses.{n}" for n in losses.__all__]
    classes = list(fnlayers.registered_layers().values())
    classes += [c for c in (getattr(fnlayers, n) for n in fnlayers.__all__)
                if isinstance(c, type) and issubclass(c, fnlayers.Layer)]
    layer_names = {c.__name__ for c in classes if c.__module__.startswith("fnnet.")}
    return names + [f"layers.{n}" for n in sorted(layer_names)]


def uncovered(op_specs, layer_specs) -> list:
    """Public targets with neither a spec nor an entry in :data:`EXCLUDED`."""
    covered = {s.public if "." in s.public else f"ops.{s.public}" for s in op_specs}
    for spec in layer_specs:
        covered |= {f"layers.{n}" for n in _layer_classes(spec.layer)}
    return [n for n in public_targets() if n not in covered and n not in EXCLUDED]
