"""Combinators that build graphs from layers: ``Sequential``, ``Parallel``, ``FanOut``, ``FanInSum``,
``FanInConcat`` and ``Residual``.

Children are named ``"0"``, ``"1"``, ... (or by the names given); params and state are dicts keyed by
those names.  A container splits its key once per child, in order, both in ``init`` and in ``apply``,
and threads shapes through ``init`` without touching data.
"""

from __future__ import annotations

import attrs
import numpy as np

from .. import ops
from .. import random as fnrandom
from . import recording
from .base import (USER_ERRORS, Layer, as_shape, check_input, check_params, check_passthrough, child_errors, numel,
                   positive_int, register, with_path)

__all__ = ["Sequential", "Parallel", "FanOut", "FanInSum", "FanInConcat", "Residual"]


def _child_keys(key, n):
    if key is None:
        return [None] * n
    return list(fnrandom.split(key, n)) if n else []


def _check_names(instance, attribute, names):
    if names is None:
        return
    if len(names) != len(instance.layers):
        raise ValueError(f"{type(instance).__name__}: got {len(names)} names for {len(instance.layers)} layers")
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise ValueError(f"{type(instance).__name__}: names must be distinct non-empty strings without '/', got {names!r}")


def _check_layers(instance, attribute, layers):
    for i, layer in enumerate(layers):
        if not (hasattr(layer, "init") and hasattr(layer, "apply") and hasattr(layer, "out_shape")):
            raise TypeError(f"{type(instance).__name__}: layers[{i}] is not a layer (needs init/apply/out_shape), got {layer!r}")


def _tuple_or_none(v):
    return None if v is None else tuple(v)


@attrs.frozen
class _Container(Layer):
    layers: tuple = attrs.field(converter=tuple, validator=_check_layers)
    names: tuple | None = attrs.field(default=None, converter=_tuple_or_none, validator=_check_names)
    child_names: tuple = attrs.field(init=False, eq=False, repr=False)  # derived once, read on every apply

    def __attrs_post_init__(self):
        names = self.names if self.names is not None else tuple(str(i) for i in range(len(self.layers)))
        object.__setattr__(self, "child_names", names)

    @property
    def has_state(self):
        return any(layer.has_state for layer in self.layers)

    def _check(self, params):
        check_params(type(self).__name__, params, self.child_names)

    def children(self):
        return tuple(zip(self.child_names, self.layers))


@register
@attrs.frozen
class Sequential(_Container):
    """Apply ``layers`` one after another: ``y = layers[-1](... layers[0](x))``.

    Args:
        layers: sequence of layers.
        names: optional distinct names for the children (default ``"0"``, ``"1"``, ...).

    A layer directly followed by an activation it can apply inside its own kernel (its
    ``fusable_activations`` holds the activation's ``fused_activation``: ``Linear`` or ``Conv2D`` then
    ``ReLU``) runs as one fused kernel; the result is bit-identical to running them one after the other.
    Fusion is skipped while activations are being recorded, so every layer is observed, and while a
    ``Remat`` block is recomputed in the backward (``fnnet.ops.in_recomputation``) unless the layer says
    its fused backward holds no more than the separate ops (``fuses_when_recomputing``, as ``Conv2D``,
    whose kernels mask the cotangent one sample at a time): for ``Linear`` separate ops free the
    activation's output and incoming cotangent one op earlier, lowering the peak of the block's backward.

    Example::

        model = Sequential([Flatten(), Linear(128), ReLU(), Linear(10)])
        params = model.init(fnnet.random.key(0), (None, 1, 28, 28))
        logits = model.apply(params, x)          # x: (batch, 1, 28, 28) -> (batch, 10)
    """

    _fused_activation: tuple = attrs.field(init=False, eq=False, repr=False)  # per child: fused name or None

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        layers = self.layers
        fused = tuple(_fusable(a, b) for a, b in zip(layers, layers[1:])) + (None,)
        object.__setattr__(self, "_fused_activation", fused[: len(layers)])

    def init(self, key, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "Sequential.init")
        params = {}
        for name, layer, k in zip(self.child_names, self.layers, _child_keys(key, len(self.layers))):
            with child_errors(name, layer):
                params[name] = layer.init(k, shape, dtype)
                shape = layer.out_shape(shape)
        return params

    def init_state(self, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "Sequential.init_state")
        state = {}
        for name, layer in zip(self.child_names, self.layers):
            with child_errors(name, layer):
                state[name] = layer.init_state(shape, dtype)
                shape = layer.out_shape(shape)
        return state

    def out_shape(self, in_shape):
        shape = in_shape
        for name, layer in zip(self.child_names, self.layers):
            with child_errors(name, layer):
                shape = layer.out_shape(shape)
        return shape

    def child_in_shapes(self, in_shape):
        shapes, shape = [], in_shape
        for name, layer in zip(self.child_names, self.layers):
            shapes.append(shape)
            with child_errors(name, layer):
                shape = layer.out_shape(shape)
        return tuple(shapes)

    def apply(self, params, x, *, state=None, key=None, train=False):
        self._check(params)
        check_input(self, x)  # also for a first layer that runs fused, outside its own apply
        rec = recording.current()
        new_state = None if state is None else {}
        fused = False
        for i, (name, layer, k) in enumerate(zip(self.child_names, self.layers, _child_keys(key, len(self.layers)))):
            if fused:  # this activation already ran inside the previous layer's kernel
                fused = False
                if new_state is not None:
                    new_state[name] = {}
                continue
            try:
                if rec is None and self._fused_activation[i] is not None and _fuses_now(layer, x):
                    x = layer.apply_fused(params[name], x, self._fused_activation[i])
                    fused = True
                    self._check_child_params(params, i + 1)
                    if new_state is not None:
                        new_state[name] = {}
                    continue
                if rec is not None:
                    rec.push(name)
                if state is None:
                    x = layer.apply(params[name], x, key=k, train=train)
                else:
                    x, new_state[name] = layer.apply(params[name], x, state=state.get(name, {}), key=k, train=train)
                if rec is not None:
                    x = rec.pop(layer, x)
            except USER_ERRORS as e:
                raise with_path(e, name, layer) from e
        return x if state is None else (x, new_state)

    def _check_child_params(self, params, i):
        name, layer = self.child_names[i], self.layers[i]
        try:
            check_params(type(layer).__name__, params[name])
        except USER_ERRORS as e:
            raise with_path(e, name, layer) from e


def _fusable(layer, following):
    """The activation name when ``layer``'s kernel can apply ``following`` itself, else None."""
    name = getattr(following, "fused_activation", None)
    return name if name is not None and name in getattr(layer, "fusable_activations", ()) else None


def _fuses_now(layer, x):
    """Whether ``layer`` applies its fused activation itself on this call (see :class:`Sequential`)."""
    return getattr(layer, "fuses_when_recomputing", False) or not ops.in_recomputation(x)


def _shapes(in_shape, n, where):
    if not isinstance(in_shape, (tuple, list)) or len(in_shape) != n or not all(isinstance(s, (tuple, list)) for s in in_shape):
        raise ValueError(f"{where}: expected a tuple of {n} input shapes (one per branch), got {in_shape!r}")
    return [as_shape(s, where) for s in in_shape]


def _inputs(x, n, where):
    if not isinstance(x, (tuple, list)) or len(x) != n:
        raise (ValueError if isinstance(x, (tuple, list)) else TypeError)(f"{where}: expected a tuple of {n} inputs (one per branch), got {type(x).__name__}"
                         f"{'' if not isinstance(x, (tuple, list)) else ' of length ' + str(len(x))}; "
                         "put FanOut(n) before it to copy one input")
    return x


@register
@attrs.frozen
class Parallel(_Container):
    """Apply ``layers[i]`` to input ``i``: ``(x_0, ..., x_n) -> (layers[0](x_0), ..., layers[n](x_n))``.

    With ``FanOut`` before and ``FanInSum``/``FanInConcat`` after, this builds Inception-style blocks::

        Sequential([FanOut(2), Parallel([Conv2D(8, 1), Conv2D(8, 3, padding=1)]), FanInConcat(axis=1)])
    """

    def init(self, key, in_shape, dtype=np.float32):
        shapes = _shapes(in_shape, len(self.layers), "Parallel.init")
        params = {}
        for name, layer, k, s in zip(self.child_names, self.layers, _child_keys(key, len(self.layers)), shapes):
            with child_errors(name, layer):
                params[name] = layer.init(k, s, dtype)
        return params

    def init_state(self, in_shape, dtype=np.float32):
        shapes = _shapes(in_shape, len(self.layers), "Parallel.init_state")
        return {name: layer.init_state(s, dtype) for name, layer, s in zip(self.child_names, self.layers, shapes)}

    def child_in_shapes(self, in_shape):
        return tuple(_shapes(in_shape, len(self.layers), "Parallel"))

    def out_shape(self, in_shape):
        shapes = _shapes(in_shape, len(self.layers), "Parallel.out_shape")
        out = []
        for name, layer, s in zip(self.child_names, self.layers, shapes):
            with child_errors(name, layer):
                out.append(layer.out_shape(s))
        return tuple(out)

    def apply(self, params, x, *, state=None, key=None, train=False):
        self._check(params)
        xs = _inputs(x, len(self.layers), "Parallel.apply")
        rec = recording.current()
        outs, new_state = [], (None if state is None else {})
        for name, layer, k, xi in zip(self.child_names, self.layers, _child_keys(key, len(self.layers)), xs):
            with child_errors(name, layer):
                if rec is not None:
                    rec.push(name)
                if state is None:
                    y = layer.apply(params[name], xi, key=k, train=train)
                else:
                    y, new_state[name] = layer.apply(params[name], xi, state=state.get(name, {}), key=k, train=train)
                outs.append(y if rec is None else rec.pop(layer, y))
        return tuple(outs) if state is None else (tuple(outs), new_state)


@register
@attrs.frozen
class FanOut(Layer):
    """Copy one input into a tuple of ``num`` identical inputs (no data is copied)."""

    num: int = attrs.field(validator=positive_int)

    def out_shape(self, in_shape):
        return (as_shape(in_shape, "FanOut"),) * self.num

    def forward(self, params, x, *, key=None, train=False):
        return (check_passthrough(self, x),) * self.num

    def flops(self, in_shape):
        return 0

    def tape_bytes(self, in_shape, dtype):
        return 0


def _same_shapes(shapes, where):
    first = shapes[0]
    for i, s in enumerate(shapes[1:], 1):
        if len(s) != len(first) or any(a is not None and b is not None and a != b for a, b in zip(s, first)):
            raise ValueError(f"{where}: input {i} has shape {s}, but input 0 has shape {first}; all inputs must match")


@register
@attrs.frozen
class FanInSum(Layer):
    """Sum a tuple of same-shaped inputs: ``(x_0, ..., x_n) -> x_0 + ... + x_n``."""

    def out_shape(self, in_shape):
        shapes = [as_shape(s, "FanInSum") for s in in_shape]
        _same_shapes(shapes, "FanInSum.out_shape")
        return shapes[0]

    def forward(self, params, x, *, key=None, train=False):
        if not isinstance(x, (tuple, list)) or not x:
            raise TypeError(f"FanInSum: x expected a non-empty tuple of arrays, got {type(x).__name__}; "
                            "feed it the tuple a FanOut or Parallel returns")
        x = [check_passthrough(self, xi, f"x[{i}]") for i, xi in enumerate(x)]
        _same_shapes([tuple(xi.shape) for xi in x], "FanInSum.apply")
        total = x[0]
        for xi in x[1:]:
            total = ops.add(total, xi)
        return total

    def flops(self, in_shape):
        return (len(in_shape) - 1) * numel(in_shape[0])

    def tape_bytes(self, in_shape, dtype):
        return 0  # the VJP of a sum needs no residuals


@register
@attrs.frozen
class FanInConcat(Layer):
    """Concatenate a tuple of inputs along ``axis`` (use ``axis=1`` for the channels of NCHW images)."""

    axis: int = -1

    def out_shape(self, in_shape):
        shapes = [as_shape(s, "FanInConcat") for s in in_shape]
        ndim = len(shapes[0])
        axis = self.axis % ndim
        others = [tuple(d for j, d in enumerate(s) if j != axis) for s in shapes]
        _same_shapes(others, f"FanInConcat.out_shape (all axes but {self.axis})")
        sizes = [s[axis] for s in shapes]
        total = None if any(v is None for v in sizes) else sum(sizes)
        return shapes[0][:axis] + (total,) + shapes[0][axis + 1:]

    def forward(self, params, x, *, key=None, train=False):
        return ops.concatenate(list(x), axis=self.axis)

    def flops(self, in_shape):
        return 0

    def tape_bytes(self, in_shape, dtype):
        return 0  # the VJP slices the cotangent; it keeps only the sizes


@register
@attrs.frozen
class Residual(Layer):
    """``x + block(x)``: a skip connection around ``block`` (whose output shape must equal its input's)."""

    block: Layer = attrs.field(validator=lambda inst, attr, v: _check_layers(inst, attr, (v,)))

    @property
    def has_state(self):
        return self.block.has_state

    def children(self):
        return (("block", self.block),)

    def child_in_shapes(self, in_shape):
        return (in_shape,)

    def init(self, key, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "Residual.init")
        out = self.out_shape(shape)
        del out
        with child_errors("block", self.block):
            return {"block": self.block.init(key, shape, dtype)}

    def init_state(self, in_shape, dtype=np.float32):
        return {"block": self.block.init_state(in_shape, dtype)}

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "Residual.out_shape")
        with child_errors("block", self.block):
            out = self.block.out_shape(shape)
        if tuple(out) != shape:
            raise ValueError(f"Residual: the block maps {shape} to {out}; x + block(x) needs equal shapes")
        return shape

    def apply(self, params, x, *, state=None, key=None, train=False):
        check_params("Residual", params, ("block",))
        rec = recording.current()
        with child_errors("block", self.block):
            if rec is not None:
                rec.push("block")
            if state is None:
                y = self.block.apply(params["block"], x, key=key, train=train)
            else:
                y, block_state = self.block.apply(params["block"], x, state=state.get("block", {}), key=key,
                                                  train=train)
            if rec is not None:
                y = rec.pop(self.block, y)
        return ops.add(x, y) if state is None else (ops.add(x, y), {"block": block_state})
