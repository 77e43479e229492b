"""Composable building blocks of optimizers: small ``GradientTransformation`` s chained with :func:`chain`.

Each block turns incoming updates (at first, the gradients) into new ones.  Blocks that need a direction
(``scale_by_adam``, ``scale_by_rms``, ``scale_by_momentum``, ``scale_by_adagrad``) return it unscaled; the
learning rate comes last, with a minus sign, from :func:`scale_by_learning_rate`::

    adam = chain(scale_by_adam(0.9, 0.999, 1e-8), scale_by_learning_rate(1e-3))

The per-leaf arithmetic runs in the same Numba kernels (``fnnet/kernels/optim.py``) as the fused
optimizers of :mod:`fnnet.optim.alias`; a chain makes one pass per block, a fused optimizer one pass in all.

Conventions (PyTorch's, so that the aliases match ``torch.optim``): RMS-style denominators add ``eps``
*outside* the square root; Adam adds it after the bias correction; momentum buffers start at zero, which
with no dampening equals PyTorch's "first buffer = first gradient".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels import optim as K
from .. import tree
from .base import (
    EmptyState, GradientTransformation, cast, check_hyper, check_mask_argument, check_state, check_learning_rate,
    count_init, count_next, decay_rates, flat, float_leaves, learning_rate_at, matching_leaves,
)

__all__ = [
    "ScaleByScheduleState", "ScaleByAdamState", "ScaleByRmsState", "TraceState", "ScaleByAdagradState",
    "scale", "scale_by_schedule", "scale_by_learning_rate", "scale_by_adam", "scale_by_rms",
    "scale_by_momentum", "trace", "scale_by_adagrad", "add_weight_decay", "clip_by_global_norm", "chain",
    "global_norm",
]


class ScaleByScheduleState(NamedTuple):
    """The state of :func:`scale_by_schedule`.

    Attributes:
        count: ``()`` int64, the number of updates done.
    """

    count: np.ndarray


class ScaleByAdamState(NamedTuple):
    """The state of :func:`scale_by_adam`.

    Attributes:
        count: ``()`` int64, the number of updates done.
        mu: first-moment estimates, a tree like params.
        nu: second-moment estimates, a tree like params.
    """

    count: np.ndarray
    mu: Any
    nu: Any


class ScaleByRmsState(NamedTuple):
    """The state of :func:`scale_by_rms`.

    Attributes:
        nu: running mean of ``g**2``, a tree like params.
        mu: running mean of ``g`` (centered only), or None.
    """

    nu: Any
    mu: Any


class TraceState(NamedTuple):
    """The state of :func:`scale_by_momentum` (also called :data:`trace`).

    Attributes:
        trace: the momentum buffer, a tree like params.
    """

    trace: Any


class ScaleByAdagradState(NamedTuple):
    """The state of :func:`scale_by_adagrad`.

    Attributes:
        sum_of_squares: running sum of ``g**2``, a tree like params.
    """

    sum_of_squares: Any


def _zeros(params, where):
    leaves, treedef = float_leaves(where, "params", params)
    return tree.unflatten(treedef, [np.zeros(x.shape, x.dtype) for x in leaves])


def _full(params, value, where):
    leaves, treedef = float_leaves(where, "params", params)
    return tree.unflatten(treedef, [np.full(x.shape, value, x.dtype) for x in leaves])


def _scaled(where, updates, factor):
    """``factor * updates`` leaf by leaf (one kernel pass per leaf)."""
    leaves, treedef = float_leaves(where, "updates", updates)
    out = [K.scale_and_decay(flat(g), flat(g), cast(factor, g.dtype), cast(0.0, g.dtype)).reshape(g.shape)
           for g in leaves]
    return tree.unflatten(treedef, out)


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by a constant: ``u -> step_size * u``.

    Args:
        step_size: any finite float (negative for descent, e.g. ``-learning_rate``).

    Returns:
        A stateless :class:`GradientTransformation` (state ``EmptyState()``).
    """
    where = "fnnet.optim.scale"
    step_size = check_hyper(where, "step_size", step_size, low=None)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        return _scaled(where, updates, step_size), state

    return GradientTransformation(init, update)


def scale_by_schedule(schedule) -> GradientTransformation:
    """Multiply updates by ``schedule(count)``, ``count`` being the number of previous updates (0 first).

    Args:
        schedule: a callable ``step (int) -> float``, e.g. from :mod:`fnnet.optim.schedules`.

    Returns:
        A :class:`GradientTransformation` with state :class:`ScaleByScheduleState`.
    """
    where = "fnnet.optim.scale_by_schedule"
    if not callable(schedule):
        raise TypeError(f"{where}: schedule must be a callable step -> float, got {type(schedule).__name__}")

    def init(params):
        return ScaleByScheduleState(count_init())

    def update(updates, state, params=None):
        check_state(where, state, ScaleByScheduleState)
        factor = learning_rate_at(where, schedule, state.count)
        return _scaled(where, updates, factor), ScaleByScheduleState(count_next(state.count))

    return GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate) -> GradientTransformation:
    """``u -> -learning_rate * u``: the last block of a descent chain.

    Args:
        learning_rate: a non-negative float or a schedule ``step -> float``.
    """
    learning_rate = check_learning_rate("fnnet.optim.scale_by_learning_rate", learning_rate)
    if callable(learning_rate):
        return scale_by_schedule(lambda step: -learning_rate_at(
            "fnnet.optim.scale_by_learning_rate", learning_rate, step))
    return scale(-learning_rate)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` (Kingma & Ba, 2015).

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)`` with ``t`` the 1-based step.

    Args:
        b1, b2: decay rates of the moments, in ``[0, 1)``.
        eps: added to ``sqrt(v_hat)``, ``>= 0``.

    Returns:
        A :class:`GradientTransformation` with state :class:`ScaleByAdamState` (``mu``/``nu`` like params).
    """
    where = "fnnet.optim.scale_by_adam"
    b1 = check_hyper(where, "b1", b1, high=1.0, high_open=True)
    b2 = check_hyper(where, "b2", b2, high=1.0, high_open=True)
    eps = check_hyper(where, "eps", eps)

    def init(params):
        return ScaleByAdamState(count_init(), _zeros(params, where), _zeros(params, where))

    def update(updates, state, params=None):
        check_state(where, state, ScaleByAdamState)
        g_leaves, treedef = float_leaves(where, "updates", updates)
        m_leaves = matching_leaves(where, "opt_state.mu", state.mu, treedef, g_leaves, "updates")
        v_leaves = matching_leaves(where, "opt_state.nu", state.nu, treedef, g_leaves, "updates")
        t = int(state.count) + 1
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        out, mus, nus = [], [], []
        for g, m, v in zip(g_leaves, m_leaves, v_leaves):
            c = lambda s: cast(s, g.dtype)  # noqa: E731
            u, m2, v2 = K.adam_update(flat(g), flat(g), flat(m), flat(v), c(1.0), c(b1), c(b2), c(eps),
                                      c(bc1), c(bc2), c(0.0))
            out.append(u.reshape(g.shape))
            mus.append(m2.reshape(g.shape))
            nus.append(v2.reshape(g.shape))
        new_state = ScaleByAdamState(count_next(state.count), tree.unflatten(treedef, mus),
                                     tree.unflatten(treedef, nus))
        return tree.unflatten(treedef, out), new_state

    return GradientTransformation(init, update)


def scale_by_rms(decay: float = 0.99, eps: float = 1e-8, centered: bool = False) -> GradientTransformation:
    """RMSprop's direction ``g / (sqrt(s) + eps)`` with ``s = decay s + (1 - decay) g^2`` (Tieleman & Hinton).

    ``centered`` subtracts the squared running mean of ``g``: ``g / (sqrt(s - a^2) + eps)``.  ``s`` starts
    at zero and ``eps`` is added outside the square root (PyTorch's convention; optax adds it inside).

    Args:
        decay: in ``[0, 1)`` (PyTorch's ``alpha``).
        eps: ``>= 0``.
        centered: normalise by an estimate of the variance instead of the second moment.

    Returns:
        A :class:`GradientTransformation` with state :class:`ScaleByRmsState`.
    """
    where = "fnnet.optim.scale_by_rms"
    decay = check_hyper(where, "decay", decay, high=1.0, high_open=True)
    eps = check_hyper(where, "eps", eps)
    centered = bool(centered)

    def init(params):
        return ScaleByRmsState(_zeros(params, where), _zeros(params, where) if centered else None)

    def update(updates, state, params=None):
        check_state(where, state, ScaleByRmsState)
        g_leaves, treedef = float_leaves(where, "updates", updates)
        s_leaves = matching_leaves(where, "opt_state.nu", state.nu, treedef, g_leaves, "updates")
        a_leaves = (matching_leaves(where, "opt_state.mu", state.mu, treedef, g_leaves, "updates")
                    if centered else g_leaves)
        out, nus, mus = [], [], []
        for g, s, a in zip(g_leaves, s_leaves, a_leaves):
            c = lambda x: cast(x, g.dtype)  # noqa: E731
            u, s2, _, a2 = K.rmsprop_update(flat(g), flat(s), flat(g), flat(a), c(1.0), c(decay), c(eps),
                                            c(0.0), False, centered)
            out.append(u.reshape(g.shape))
            nus.append(s2.reshape(g.shape))
            if centered:
                mus.append(a2.reshape(g.shape))
        new_state = ScaleByRmsState(tree.unflatten(treedef, nus),
                                    tree.unflatten(treedef, mus) if centered else None)
        return tree.unflatten(treedef, out), new_state

    return GradientTransformation(init, update)


def scale_by_momentum(momentum: float = 0.9, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``buf = momentum * buf + u``; the update is ``buf`` (or ``u + momentum * buf``, Nesterov).

    Args:
        momentum: in ``[0, 1]``.
        nesterov: use Nesterov's look-ahead form (Sutskever et al., 2013), as PyTorch's SGD does.

    Returns:
        A :class:`GradientTransformation` with state :class:`TraceState` (the buffer starts at zero).
    """
    where = "fnnet.optim.scale_by_momentum"
    momentum = check_hyper(where, "momentum", momentum, high=1.0)
    nesterov = bool(nesterov)

    def init(params):
        return TraceState(_zeros(params, where))

    def update(updates, state, params=None):
        check_state(where, state, TraceState)
        g_leaves, treedef = float_leaves(where, "updates", updates)
        b_leaves = matching_leaves(where, "opt_state.trace", state.trace, treedef, g_leaves, "updates")
        out, bufs = [], []
        for g, b in zip(g_leaves, b_leaves):
            c = lambda x: cast(x, g.dtype)  # noqa: E731
            u, b2 = K.momentum_update(flat(g), flat(g), flat(b), c(1.0), c(momentum), c(0.0), nesterov)
            out.append(u.reshape(g.shape))
            bufs.append(b2.reshape(g.shape))
        return tree.unflatten(treedef, out), TraceState(tree.unflatten(treedef, bufs))

    return GradientTransformation(init, update)


trace = scale_by_momentum
"""Another name for :func:`scale_by_momentum` (optax's name)."""


def scale_by_adagrad(initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> GradientTransformation:
    """Adagrad's direction ``g / (sqrt(acc) + eps)`` with ``acc = acc + g^2`` (Duchi et al., 2011).

    Args:
        initial_accumulator_value: the starting value of ``acc``, ``>= 0``.
        eps: added outside the square root, ``>= 0`` (PyTorch's convention).

    Returns:
        A :class:`GradientTransformation` with state :class:`ScaleByAdagradState`.
    """
    where = "fnnet.optim.scale_by_adagrad"
    initial_accumulator_value = check_hyper(where, "initial_accumulator_value", initial_accumulator_value)
    eps = check_hyper(where, "eps", eps)

    def init(params):
        return ScaleByAdagradState(_full(params, initial_accumulator_value, where))

    def update(updates, state, params=None):
        check_state(where, state, ScaleByAdagradState)
        g_leaves, treedef = float_leaves(where, "updates", updates)
        a_leaves = matching_leaves(where, "opt_state.sum_of_squares", state.sum_of_squares, treedef, g_leaves,
                                   "updates")
        out, accs = [], []
        for g, a in zip(g_leaves, a_leaves):
            u, a2 = K.adagrad_update(flat(g), flat(a), cast(1.0, g.dtype), cast(eps, g.dtype))
            out.append(u.reshape(g.shape))
            accs.append(a2.reshape(g.shape))
        return tree.unflatten(treedef, out), ScaleByAdagradState(tree.unflatten(treedef, accs))

    return GradientTransformation(init, update)


def add_weight_decay(weight_decay: float, mask=None) -> GradientTransformation:
    """``u -> u + weight_decay * params`` (on the leaves where ``mask`` is True).

    Placed before a ``scale_by_*`` block it is L2 regularisation (PyTorch's ``weight_decay`` of SGD);
    placed after ``scale_by_adam`` and before the learning rate it is AdamW's decoupled decay.

    Args:
        weight_decay: ``>= 0``.
        mask: None (decay every leaf), a tree of bools with the structure of the params (decay where
            True; other leaves pass through unchanged), or a function ``params -> such a tree``, e.g.
            ``functools.partial(fnnet.layers.decay_mask, model)``.

    Returns:
        A stateless :class:`GradientTransformation`; its ``update`` requires ``params``.
    """
    where = "fnnet.optim.add_weight_decay"
    weight_decay = check_hyper(where, "weight_decay", weight_decay)
    mask = check_mask_argument(where, mask)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"{where}: update needs the current params: call update(grads, opt_state, params)")
        g_leaves, treedef = float_leaves(where, "updates", updates)
        p_leaves = matching_leaves(where, "params", params, treedef, g_leaves, "updates")
        rates = decay_rates(where, weight_decay, mask, params, treedef)
        out = [K.scale_and_decay(flat(g), flat(p), cast(1.0, g.dtype), cast(wd, g.dtype)).reshape(g.shape)
               for g, p, wd in zip(g_leaves, p_leaves, rates)]
        return tree.unflatten(treedef, out), state

    return GradientTransformation(init, update)


def global_norm(updates) -> float:
    """The Euclidean norm of all leaves together, accumulated in float64 with a deterministic order.

    Args:
        updates: a tree of float32/float64 arrays.

    Returns:
        A Python float.
    """
    leaves, _ = float_leaves("fnnet.optim.global_norm", "updates", updates)
    total = 0.0
    for x in leaves:
        total += K.sum_of_squares(flat(x))
    return float(np.sqrt(total))


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescale all updates together so that their global norm is at most ``max_norm``.

    ``u -> u * max_norm / norm`` when ``norm > max_norm``, else ``u`` unchanged (the same arrays are
    returned).  Unlike ``torch.nn.utils.clip_grad_norm_``, no 1e-6 is added to the norm.

    Args:
        max_norm: ``> 0``.

    Returns:
        A stateless :class:`GradientTransformation`.
    """
    where = "fnnet.optim.clip_by_global_norm"
    max_norm = check_hyper(where, "max_norm", max_norm, low_open=True)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        norm = global_norm(updates)
        if norm > max_norm:
            return _scaled(where, updates, max_norm / norm), state
        return updates, state

    return GradientTransformation(init, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations one after another; the state is the tuple of their states.

    Args:
        *transforms: :class:`GradientTransformation` s, applied left to right.

    Returns:
        A :class:`GradientTransformation` whose state is a tuple with one state per transform.

    Example::

        opt = chain(clip_by_global_norm(1.0), scale_by_adam(), scale_by_learning_rate(1e-3))
    """
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(f"fnnet.optim.chain: argument {i} must be a GradientTransformation, got "
                            f"{type(t).__name__}; call the factory, e.g. scale_by_adam() not scale_by_adam")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(f"fnnet.optim.chain: opt_state must be a tuple of {len(transforms)} states "
                             f"(one per transform), got {type(state).__name__}; create it with init(params)")
        new_states = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new_states.append(s)
        return updates, tuple(new_states)

    return GradientTransformation(init, update)
