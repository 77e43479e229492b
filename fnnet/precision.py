"""Mixed precision: float16 params and activations in the step, float32 master params, dynamic loss scaling.

fnnet stores float16 and computes in float32: every primitive called with float16 arrays widens them to
float32 inside its kernel and narrows its output, its saved residuals and its gradients back to float16
(:mod:`fnnet.autodiff.half`).  A float16 model therefore holds half the parameter and activation memory of a
float32 one, with float32 arithmetic and accumulation inside each op; what float16 loses is range (largest
value 65504, smallest normal 6.1e-5) and precision between ops (11 significant bits, eps = 2**-10).

Two explicit pieces make training work with that:

- :class:`Policy` says which dtype params are kept in (``param_dtype``, float32 master copies for the
  optimizer), which dtype the model runs in (``compute_dtype``) and which dtype its outputs are cast to for
  the loss (``output_dtype``, float32 so the loss and its first cotangents do not lose range).  Casts apply
  to floating leaves only (integer labels and random keys pass through) and are differentiable: under
  ``grad`` the cotangent is cast back to the input's dtype.
- :class:`DynamicLossScale` multiplies the loss by a large power of two before the backward, so that small
  float16 gradients do not flush to zero, divides the (float32) gradients by it afterwards, skips the update
  when a gradient overflowed (inf/NaN), halving the scale, and doubles the scale after ``growth_interval``
  finite steps in a row.  It is a frozen record: ``adjust`` returns a new one.

:func:`make_mixed_precision_train_step` puts them together in a step with the signature of
:func:`fnnet.train.make_train_step`'s, so :func:`fnnet.train.run_epoch` drives it unchanged::

    policy = fnnet.precision.Policy()                       # float32 params, float16 compute, float32 output
    step = fnnet.precision.make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt,
                                                           policy, fnnet.precision.DynamicLossScale())
    opt_state = step.init(params)                           # MixedPrecisionState(opt_state, loss_scale)
    params, state, opt_state, metrics = step(params, state, opt_state, x, y, key)
    metrics["loss_scale"], metrics["skipped"]               # the scale used, 1.0 if the update was skipped
    # evaluation in float16:
    fnnet.train.evaluate(model, policy.cast_to_compute(params), policy.cast_to_compute(state),
                         policy.cast_to_compute(x_test), y_test)

``params`` stay float32 throughout (the optimizer rejects float16 leaves); the step casts them to float16,
computes ``loss * scale`` under ``grad`` on float16 params and activations, casts the gradients to float32,
unscales them, applies the update only when all of them are finite, and returns the adjusted loss scale
inside the optimizer state.  Reference: Micikevicius et al., "Mixed precision training", ICLR 2018.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs
import numpy as np

from . import ops, optim, tree
from .autodiff import Tracer, half, primitive, value_and_grad
from .autodiff.recording import host_step
from .jit import jit as jit_function
from .kernels import half as half_kernels
from .train import accuracy

__all__ = ["Policy", "DynamicLossScale", "MixedPrecisionState", "MixedPrecisionTrainStep", "cast",
           "all_finite", "make_mixed_precision_train_step"]

_FLOAT_TYPES = (np.float16, np.float32, np.float64)


# ------------------------------------------------------------------------------------------------ casts
def _convert(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` as ``dtype``; float16 <-> float32 through the Numba conversion kernels."""
    if a.dtype == dtype:
        return a
    if a.dtype == half.SINGLE and dtype == half.HALF:
        return half.narrow(a)
    if a.dtype == half.HALF and dtype == half.SINGLE:
        return half.widen(a)
    return a.astype(dtype)


def _cast_fwd(x, *, dtype, from_dtype):
    return _convert(x, dtype), None


def _cast_bwd(res, g, *, dtype, from_dtype):
    return (_convert(np.asarray(g), from_dtype),)  # the cotangent goes back to the input's dtype


# raw_dtypes: float16 inputs must reach the cast as float16 (other primitives see them widened).
_cast = primitive("cast", _cast_fwd, _cast_bwd, argnames=("x",), raw_dtypes=True)


def _cast_leaf(x, dtype):
    v = x.value if type(x) is Tracer else x
    if isinstance(v, np.ndarray) and v.dtype.type in _FLOAT_TYPES:
        return x if v.dtype == dtype else _cast(x, dtype=dtype, from_dtype=v.dtype)
    if isinstance(v, np.floating):
        return dtype.type(v)
    return x


def cast(t, dtype):
    """Cast every floating leaf of tree ``t`` (arrays, numpy float scalars, tracers) to ``dtype``.

    Integer, boolean and key leaves, Python numbers and ``None`` pass through unchanged.  Under ``grad``
    the cast is differentiable: the cotangent is cast back to the leaf's original dtype.

    Args:
        t: a tree (nested dict/list/tuple) or a single array.
        dtype: ``np.float16``, ``np.float32`` or ``np.float64``.

    Returns:
        A tree of the same structure; leaves already of ``dtype`` are returned as they are (no copy).

    Raises:
        TypeError: ``dtype`` is not a float16/32/64 type.
    """
    dtype = np.dtype(_float_type(dtype))
    return tree.map(lambda x: _cast_leaf(x, dtype), t)


def _float_type(value):
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.type not in _FLOAT_TYPES:
        raise TypeError(f"fnnet.precision: expected np.float16, np.float32 or np.float64, got {value!r}")
    return dtype.type


# ----------------------------------------------------------------------------------------------- policy
@attrs.frozen
class Policy:
    """Which dtype params are stored in, which the model computes in, and which its outputs are cast to.

    Args:
        param_dtype: the master params and the state returned by the step (float32: the optimizer's).
        compute_dtype: params, state and inputs are cast to it before the forward (float16: half memory).
        output_dtype: model outputs (and float targets) are cast to it before the loss.

    Example::

        policy = Policy()                                   # float32 / float16 / float32
        logits = policy.cast_to_output(model.apply(policy.cast_to_compute(params), policy.cast_to_compute(x)))
    """

    param_dtype: type = attrs.field(default=np.float32, converter=_float_type)
    compute_dtype: type = attrs.field(default=np.float16, converter=_float_type)
    output_dtype: type = attrs.field(default=np.float32, converter=_float_type)

    def cast_to_compute(self, t):
        """``t`` with its floating leaves cast to ``compute_dtype`` (differentiable; see :func:`cast`)."""
        return cast(t, self.compute_dtype)

    def cast_to_param(self, t):
        """``t`` with its floating leaves cast to ``param_dtype``."""
        return cast(t, self.param_dtype)

    def cast_to_output(self, t):
        """``t`` with its floating leaves cast to ``output_dtype``."""
        return cast(t, self.output_dtype)


# ------------------------------------------------------------------------------------- loss scaling
def all_finite(t) -> bool:
    """True when no floating leaf of tree ``t`` holds a NaN or an infinity (one Numba pass per leaf, via
    :func:`fnnet.ops.summarize`; stops at the first non-finite leaf)."""
    for leaf in tree.leaves(t):
        if isinstance(leaf, Tracer):
            leaf = leaf.value
        if isinstance(leaf, np.ndarray) and leaf.dtype.type in _FLOAT_TYPES and leaf.size:
            stats = ops.summarize(leaf)
            if stats["nan_count"] or stats["inf_count"]:
                return False
        elif isinstance(leaf, (float, np.floating)) and not np.isfinite(leaf):
            return False
    return True


def _positive(instance, attribute, value):
    if not value > 0:
        raise ValueError(f"DynamicLossScale: {attribute.alias or attribute.name} must be > 0, got {value!r}")


def _factor(instance, attribute, value):
    if not value > 1:
        raise ValueError(f"DynamicLossScale: factor must be > 1, got {value!r}")


def _interval(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"DynamicLossScale: growth_interval must be a positive int, got {value!r}")


@attrs.frozen
class DynamicLossScale:
    """Dynamic loss scaling as a frozen record; every method is pure.

    Args:
        scale: the current loss scale (stored as ``value``; powers of two keep scaling exact).
        growth_interval: after this many finite steps in a row the scale is multiplied by ``factor``.
        factor: growth and back-off factor (> 1).
        counter: finite steps since the scale last changed.
        min_scale: the scale never drops below this.

    Example::

        ls = DynamicLossScale()                       # 2**15
        scaled_loss, grads = fnnet.value_and_grad(lambda p: ls.scale(loss(p)))(params16)
        grads = ls.unscale(policy.cast_to_param(grads))
        finite = all_finite(grads)
        ls = ls.adjust(finite)                        # not finite: skip the update, scale / 2
    """

    value: float = attrs.field(default=2.0 ** 15, alias="scale", converter=float, validator=_positive)
    growth_interval: int = attrs.field(default=2000, validator=_interval)
    factor: float = attrs.field(default=2.0, converter=float, validator=_factor)
    counter: int = 0
    min_scale: float = attrs.field(default=1.0, converter=float, validator=_positive)

    def scale(self, loss):
        """``loss * scale`` in ``loss``'s dtype (a traced scalar under ``grad``).  Scale a float32 loss:
        2**15 times a float16 loss overflows."""
        return ops.multiply(loss, np.asarray(self.value, dtype=_dtype_of(loss)))

    def unscale(self, grads):
        """``grads / scale``, leafwise, in each leaf's dtype (cast float16 gradients to float32 first)."""
        inv = 1.0 / self.value
        return tree.map(lambda g: g * g.dtype.type(inv) if isinstance(g, np.ndarray) and g.dtype.type in
                        _FLOAT_TYPES else g, grads)

    def adjust(self, grads_finite: bool) -> "DynamicLossScale":
        """The loss scale for the next step: back off (``scale / factor``, at least ``min_scale``) when the
        gradients were not finite, grow (``scale * factor``) after ``growth_interval`` finite steps."""
        if not grads_finite:
            return self._replace(max(self.value / self.factor, self.min_scale), 0)
        counter = self.counter + 1
        if counter >= self.growth_interval:
            return self._replace(self.value * self.factor, 0)
        return self._replace(self.value, counter)

    def _replace(self, scale, counter):
        return DynamicLossScale(scale=scale, growth_interval=self.growth_interval, factor=self.factor,
                                counter=counter, min_scale=self.min_scale)


def _dtype_of(x):
    return (x.value if type(x) is Tracer else np.asarray(x)).dtype


# --------------------------------------------------------------------------------------- train step
class MixedPrecisionState(NamedTuple):
    """The optimizer state of a mixed-precision step: the optimizer's own state and the loss scale.
    (To save it with ``fnnet.io.save``, save ``opt_state`` and ``attrs.asdict(loss_scale)`` as metadata.)"""

    opt_state: Any
    loss_scale: DynamicLossScale


class MixedPrecisionTrainStep:
    """``step(params, state, opt_state, x, y, key) -> (params, state, opt_state, metrics)`` in mixed
    precision; ``step.init(params)`` builds the ``opt_state``.  See :func:`make_mixed_precision_train_step`.

    A call casts, runs the forward and backward on the scaled loss, casts the gradients to ``param_dtype``
    and unscales them while checking that all of them are finite (one fused pass per float16 gradient),
    then decides on the host: when the loss and gradients are finite, it keeps the optimizer's fused
    ``update_and_apply``.  All of it is one call (under :func:`fnnet.jit` unless ``jit=False``, one plan,
    whose replay skips the optimizer's per-call tree checks); the update is pure, so a skipped step
    discards it.  With ``donate`` the update writes into the inputs, so it runs as a second call only when
    the step is finite.  The loss scale enters as an array, so a new scale does not trace again.  The results are
    bitwise those of the eager sequence the module docstring describes."""

    def __init__(self, model, loss_fn, optimizer, policy, loss_scale, jit=True, donate=False):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.policy, self.loss_scale, self.donate = policy, loss_scale, donate

        def objective(params, state, x, y, key, scale):
            if model.has_state:
                out, new_state = model.apply(params, x, state=state, key=key, train=True)
            else:
                out, new_state = model.apply(params, x, key=key, train=True), state
            out = policy.cast_to_output(out)
            loss = loss_fn(out, y)
            return ops.multiply(loss, cast(scale, _dtype_of(loss))), (loss, new_state, out)

        loss_and_grad = value_and_grad(objective, has_aux=True)

        def gradients(params, state, x, y, key, scale, inverse_scale):
            (_, (loss, new_state, out)), grads = loss_and_grad(
                policy.cast_to_compute(params), policy.cast_to_compute(state), policy.cast_to_compute(x),
                policy.cast_to_output(y), key, scale)
            grads, finite = _unscaled_gradients(grads, inverse_scale, policy.param_dtype)
            return loss, policy.cast_to_param(new_state), out, grads, finite

        compiled = jit_function if jit else (lambda fn, **_: fn)
        if donate:  # the update writes into its inputs, so it runs only once the step is known to be finite
            def apply(grads, inner, params):  # under jit the plan donates (donate_argnums)
                return optimizer.update_and_apply(grads, inner, params, donate=not jit)

            gradients_fn, apply_fn = compiled(gradients), compiled(apply, donate_argnums=(1, 2))

            def run(params, state, inner, x, y, key, scale, inverse_scale):
                loss, new_state, out, grads, finite = gradients_fn(params, state, x, y, key, scale, inverse_scale)
                return (loss, new_state, out, finite), lambda: apply_fn(grads, inner, params)
        else:  # one plan for the whole step: the update is pure, so a skipped step discards it
            def whole(params, state, inner, x, y, key, scale, inverse_scale):
                loss, new_state, out, grads, finite = gradients(params, state, x, y, key, scale, inverse_scale)
                return (loss, new_state, out, finite), optimizer.update_and_apply(grads, inner, params)

            whole_fn = compiled(whole)

            def run(*args):
                head, updated = whole_fn(*args)
                return head, lambda: updated
        self._run = run

    def init(self, params) -> MixedPrecisionState:
        """``MixedPrecisionState(optimizer.init(params), loss_scale)`` for float32 (``param_dtype``) params."""
        return MixedPrecisionState(self.optimizer.init(params), self.loss_scale)

    def __call__(self, params, state, opt_state, x, y, key):
        if not isinstance(opt_state, MixedPrecisionState):
            raise TypeError("MixedPrecisionTrainStep: opt_state must be a MixedPrecisionState; create it with "
                            f"step.init(params), got {type(opt_state).__name__}")
        scale = opt_state.loss_scale
        (loss, new_state, out, grads_finite), update = self._run(
            params, state, opt_state.opt_state, x, y, key, np.asarray(scale.value), np.asarray(1.0 / scale.value))
        finite = bool(grads_finite) and bool(np.isfinite(loss))
        metrics = {"loss": float(loss), "loss_scale": scale.value, "skipped": 0.0 if finite else 1.0}
        if np.asarray(y).dtype.kind in "iu":
            metrics["accuracy"] = accuracy(out, y)
        if finite:
            params, inner = update()
            state = new_state
        else:  # a skipped step changes nothing but the loss scale
            inner = opt_state.opt_state
        return params, state, MixedPrecisionState(inner, scale.adjust(finite)), metrics


def _unscale_leaf(g, dtype, inverse_scale):
    """``(g`` cast to ``dtype`` and times ``inverse_scale``, whether that is finite)``: one fused kernel pass
    for a float16 gradient of a float32 param; otherwise :func:`cast`, a multiply and :func:`all_finite`."""
    if type(g) is np.ndarray and g.dtype == half.HALF and dtype == half.SINGLE:
        bits = np.ascontiguousarray(g).reshape(-1).view(np.uint16)
        out, nonfinite = half_kernels.half_to_float32_scaled(bits, np.float32(inverse_scale))
        return out.reshape(g.shape), nonfinite == 0
    g = cast(g, dtype)
    if isinstance(g, np.ndarray) and g.dtype.type in _FLOAT_TYPES:
        g = g * g.dtype.type(inverse_scale)
    return g, all_finite(g)


def _unscale_all(grads, inverse_scale, dtype):
    """``(grads`` cast to ``dtype`` and times ``inverse_scale`` (a 0-d array), ``all finite`` as a 0-d
    bool array)``: :meth:`DynamicLossScale.unscale` of :func:`cast` and :func:`all_finite` in one pass."""
    leaves, treedef = tree.flatten(grads)
    inverse_scale = float(inverse_scale)
    finite = True
    for i, g in enumerate(leaves):
        leaves[i], leaf_finite = _unscale_leaf(g, np.dtype(dtype), inverse_scale)
        finite = finite and leaf_finite
    return tree.unflatten(treedef, leaves), np.asarray(finite)


def _specialize_unscaled_gradients(grads, inverse_scale, dtype):
    """Under ``fnnet.jit``: the flat form of :func:`_unscaled_gradients` when every gradient is float16 and
    ``dtype`` float32 (the mixed-precision step), one kernel call per leaf and nothing else; None otherwise.
    The recorder keeps it only when it gives bitwise the traced call's outputs."""
    leaves = tree.leaves(grads)
    if np.dtype(dtype) != half.SINGLE or not all(type(g) is np.ndarray and g.dtype == half.HALF for g in leaves):
        return None
    n, shapes = len(leaves), [g.shape for g in leaves]

    def fast(values, writable=()):
        factor = np.float32(float(values[n]))
        out, nonfinite = [], 0
        for g, shape in zip(values[:n], shapes):
            widened, bad = half_kernels.half_to_float32_scaled(np.ascontiguousarray(g).reshape(-1).view(np.uint16),
                                                               factor)
            out.append(widened.reshape(shape))
            nonfinite += bad
        out.append(np.asarray(nonfinite == 0))
        return out

    fast.sources = ()
    return fast


_unscale_all.fnnet_specialize = _specialize_unscaled_gradients
_unscaled_gradients = host_step(_unscale_all)


def make_mixed_precision_train_step(model, loss_fn, optimizer, policy=None, loss_scale=None, *, jit=True,
                                    donate=False):
    """A training step in mixed precision, a drop-in for :func:`fnnet.train.make_train_step`'s.

    Args:
        model: a layer.
        loss_fn: ``loss_fn(outputs, y) -> scalar``; it sees outputs cast to ``policy.output_dtype``.
        optimizer: an ``fnnet.optim`` transformation; it sees ``param_dtype`` (float32) params and grads.
        policy: a :class:`Policy` (default: float32 params, float16 compute, float32 outputs).
        loss_scale: the initial :class:`DynamicLossScale` (default ``DynamicLossScale()``).
        jit: when True (the default), the casts, forward, backward and unscaling run through
            :func:`fnnet.jit` (traced once per batch shape, bitwise the eager results); False runs them
            eagerly (the loss function may then read values in Python).
        donate: give up the ``params`` and the optimizer state passed to each call: an applied update
            writes the new params and buffers into theirs (as :func:`fnnet.train.make_train_step`'s
            ``donate``); a skipped step returns them untouched.

    Returns:
        A :class:`MixedPrecisionTrainStep` ``step``: ``opt_state = step.init(params)``, then
        ``params, state, opt_state, metrics = step(params, state, opt_state, x, y, key)`` where ``params`` and
        ``state`` stay in ``param_dtype``, ``opt_state`` is a :class:`MixedPrecisionState` carrying the
        adjusted loss scale, and ``metrics`` has ``loss`` (unscaled), ``accuracy`` (integer ``y``),
        ``loss_scale`` (the scale this step used) and ``skipped`` (1.0 when gradients overflowed and the
        update was skipped).  :mod:`fnnet.precision` shows a full example.
    """
    policy = Policy() if policy is None else policy
    loss_scale = DynamicLossScale() if loss_scale is None else loss_scale
    if not isinstance(policy, Policy):
        raise TypeError(f"make_mixed_precision_train_step: policy must be a Policy, got {type(policy).__name__}")
    if not isinstance(loss_scale, DynamicLossScale):
        raise TypeError("make_mixed_precision_train_step: loss_scale must be a DynamicLossScale, got "
                        f"{type(loss_scale).__name__}")
    if not isinstance(donate, (bool, np.bool_)):
        raise TypeError(f"make_mixed_precision_train_step: donate must be a bool, got {donate!r}")
    return MixedPrecisionTrainStep(model, loss_fn, optimizer, policy, loss_scale, jit=bool(jit), donate=bool(donate))
