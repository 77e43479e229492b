"""The common optimizers: ``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``adagrad``.

Each is, mathematically, a one-line chain of the building blocks in :mod:`fnnet.optim.transforms`, and
``fused=False`` returns exactly that chain.  The default ``fused=True`` returns a dedicated transformation
that does the same arithmetic in *one* Numba pass per parameter leaf (``fnnet/kernels/optim.py``): it
reads the gradient, the param (for weight decay) and the buffers once, and writes the update and the new
buffers, with no numpy temporaries.  The two forms agree to rounding (tested); their states differ
(one record vs a tuple of records), so a state from one cannot be used with the other.

All optimizers follow ``torch.optim``'s update rules (tested against it in float64, rtol 1e-6):

- SGD: ``d = g + wd p``; momentum ``buf = mu buf + d`` (a zero-initialised buffer equals PyTorch's
  "first buffer = first d" because fnnet has no dampening); Nesterov ``d + mu buf``; ``p -= lr * ...``.
- Adam: eps added to ``sqrt(v) / sqrt(1 - b2^t)``, i.e. after the bias correction.
- AdamW: decoupled decay ``p -= lr * wd * p`` computed from the params before the step (PyTorch
  multiplies ``p`` by ``1 - lr wd`` first; the results agree to rounding).
- RMSprop: ``den = sqrt(s) + eps`` (eps outside the root, unlike optax), the momentum buffer accumulates
  ``g / den``; ``centered`` subtracts the squared mean gradient inside the root.
- Adagrad: ``acc += g^2``; ``p -= lr g / (sqrt(acc) + eps)``, eps outside the root; no ``lr_decay``
  (use a schedule instead).

The learning rate may be a float or a schedule ``step -> float`` (see :mod:`fnnet.optim.schedules`); the
step counter lives in the state and the schedule is evaluated at the number of updates already made.

Each fused optimizer also has a ``fused_step`` (``opt.update_and_apply(grads, opt_state, params,
donate=...)``): the same kernel pass writes the new params (``p + u``, rounded as ``apply_updates``
rounds it) instead of the update, so its results are bitwise those of ``update`` + ``apply_updates``;
with ``donate=True`` it writes them over the old params and buffers (:mod:`fnnet.optim.donation`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels import optim as K
from .. import tree
from .base import (
    GradientTransformation, cast, check_hyper, check_learning_rate, check_mask_argument, count_init, decay_rates,
    flat, float_leaves, learning_rate_at,
)
from .fused import fused_transformation
from .transforms import (
    add_weight_decay, chain, scale_by_adagrad, scale_by_adam, scale_by_learning_rate, scale_by_momentum,
    scale_by_rms,
)

__all__ = ["SgdState", "AdamState", "RmspropState", "AdagradState", "sgd", "adam", "adamw", "rmsprop", "adagrad"]


class SgdState(NamedTuple):
    """The state of :func:`sgd` (fused).

    Attributes:
        count: ``()`` int64, the number of updates done.
        momentum_buffer: a tree like params, or None without momentum.
    """

    count: np.ndarray
    momentum_buffer: Any


class AdamState(NamedTuple):
    """The state of :func:`adam` and :func:`adamw` (fused).

    Attributes:
        count: ``()`` int64, the number of updates done.
        mu: first-moment estimates, a tree like params.
        nu: second-moment estimates, a tree like params.
    """

    count: np.ndarray
    mu: Any
    nu: Any


class RmspropState(NamedTuple):
    """The state of :func:`rmsprop` (fused).

    Attributes:
        count: ``()`` int64, the number of updates done.
        square_avg: running mean of ``g**2``, a tree like params.
        momentum_buffer: a tree like params, or None without momentum.
        grad_avg: running mean of ``g`` (``centered=True``), or None.
    """

    count: np.ndarray
    square_avg: Any
    momentum_buffer: Any
    grad_avg: Any


class AdagradState(NamedTuple):
    """The state of :func:`adagrad` (fused).

    Attributes:
        count: ``()`` int64, the number of updates done.
        sum_of_squares: running sum of ``g**2``, a tree like params.
    """

    count: np.ndarray
    sum_of_squares: Any


# ------------------------------------------------------------------------------------------ helpers


def _zeros(where, params, value=0.0):
    leaves, treedef = float_leaves(where, "params", params)
    return tree.unflatten(treedef, [np.full(x.shape, value, x.dtype) for x in leaves])


# ------------------------------------------------------------------------------------------ optimizers


def sgd(learning_rate, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
        *, fused: bool = True) -> GradientTransformation:
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    ``d = g + weight_decay * p``; without momentum ``p -= lr * d``; with momentum
    ``buf = momentum * buf + d`` and ``p -= lr * buf`` (Nesterov: ``p -= lr * (d + momentum * buf)``).

    Equivalent chain: ``chain(add_weight_decay(wd), scale_by_momentum(momentum, nesterov),
    scale_by_learning_rate(lr))`` (blocks with a zero hyperparameter left out).

    Args:
        learning_rate: a float ``>= 0`` or a schedule ``step -> float``.
        momentum: in ``[0, 1]``.
        nesterov: Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 coefficient ``>= 0`` (added to the gradient, as ``torch.optim.SGD`` does).
        fused: one kernel pass per leaf (default) or the equivalent chain of building blocks.

    Returns:
        A :class:`GradientTransformation` with state :class:`SgdState` (fused).

    Raises:
        ValueError: a hyperparameter out of range, or ``nesterov`` without momentum.

    Example::

        opt = fnnet.optim.sgd(0.1, momentum=0.9)
        state = opt.init(params)
        updates, state = opt.update(grads, state, params)
        params = fnnet.optim.apply_updates(params, updates)

    Reference: Sutskever et al., "On the importance of initialization and momentum in deep learning", 2013.
    """
    where = "fnnet.optim.sgd"
    learning_rate = check_learning_rate(where, learning_rate)
    momentum = check_hyper(where, "momentum", momentum, high=1.0)
    weight_decay = check_hyper(where, "weight_decay", weight_decay)
    nesterov = bool(nesterov)
    if nesterov and momentum == 0.0:
        raise ValueError(f"{where}: nesterov=True needs momentum > 0, got momentum={momentum}")
    if not fused:
        blocks = [add_weight_decay(weight_decay)] if weight_decay else []
        blocks += [scale_by_momentum(momentum, nesterov)] if momentum else []
        return chain(*blocks, scale_by_learning_rate(learning_rate))

    def init(params):
        return SgdState(count_init(), _zeros(where, params) if momentum else None)

    def kernels(where, count, gs, ps, bufs, outs, extra):
        lr = learning_rate_at(where, learning_rate, count)
        for i, (g, p) in enumerate(zip(gs, ps)):
            c = lambda x: cast(x, g.dtype)  # noqa: E731
            if momentum:
                K.momentum_step(flat(g), flat(p), flat(bufs["momentum_buffer"][i]), outs(i, "out"),
                                outs(i, "momentum_buffer"), c(-lr), c(momentum), c(weight_decay), nesterov,
                                outs.apply)
            else:
                K.scale_and_decay_step(flat(g), flat(p), outs(i, "out"), c(-lr), c(weight_decay), outs.apply)

    return fused_transformation(where, init, SgdState, {"momentum_buffer": bool(momentum)}, kernels,
                                decay_reads_params=weight_decay != 0)


def _adam(where, learning_rate, b1, b2, eps, weight_decay, fused, mask=None):
    learning_rate = check_learning_rate(where, learning_rate)
    b1 = check_hyper(where, "b1", b1, high=1.0, high_open=True)
    b2 = check_hyper(where, "b2", b2, high=1.0, high_open=True)
    eps = check_hyper(where, "eps", eps)
    weight_decay = check_hyper(where, "weight_decay", weight_decay)
    mask = check_mask_argument(where, mask)
    if not fused:
        decay = [add_weight_decay(weight_decay, mask)] if weight_decay else []
        return chain(scale_by_adam(b1, b2, eps), *decay, scale_by_learning_rate(learning_rate))

    def init(params):
        return AdamState(count_init(), _zeros(where, params), _zeros(where, params))

    def kernels(where, count, gs, ps, bufs, outs, rates):
        lr = learning_rate_at(where, learning_rate, count)
        t = int(count) + 1
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        for i, (g, p, m, v, wd) in enumerate(zip(gs, ps, bufs["mu"], bufs["nu"], rates)):
            c = lambda x: cast(x, g.dtype)  # noqa: E731
            K.adam_step(flat(g), flat(p), flat(m), flat(v), outs(i, "out"), outs(i, "mu"), outs(i, "nu"), c(-lr),
                        c(b1), c(b2), c(eps), c(bc1), c(bc2), c(wd), outs.apply)

    def prepare(where, params, treedef):  # 0 for masked-out leaves: the same kernel skips the decay
        return decay_rates(where, weight_decay, mask, params, treedef)

    return fused_transformation(where, init, AdamState, {"mu": True, "nu": True}, kernels,
                                decay_reads_params=weight_decay != 0, prepare=prepare)


def adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, fused: bool = True
         ) -> GradientTransformation:
    """Adam: ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected moment estimates.

    Equivalent chain: ``chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))``.

    Args:
        learning_rate: a float ``>= 0`` or a schedule ``step -> float``.
        b1, b2: moment decay rates in ``[0, 1)``.
        eps: ``>= 0``, added after the bias correction (as ``torch.optim.Adam``).
        fused: one kernel pass per leaf (default) or the equivalent chain.

    Returns:
        A :class:`GradientTransformation` with state :class:`AdamState` (fused).

    Example::

        opt = fnnet.optim.adam(1e-3)

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    return _adam("fnnet.optim.adam", learning_rate, b1, b2, eps, 0.0, fused)


def adamw(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-2,
          *, mask=None, fused: bool = True) -> GradientTransformation:
    """AdamW: Adam plus decoupled weight decay, ``p -= lr * (adam_direction + weight_decay * p)``.

    Equivalent chain: ``chain(scale_by_adam(b1, b2, eps), add_weight_decay(wd, mask), scale_by_learning_rate(lr))``.
    The decay is scaled by the (scheduled) learning rate, as in ``torch.optim.AdamW``.

    Args:
        learning_rate: a float ``>= 0`` or a schedule ``step -> float``.
        b1, b2, eps: as :func:`adam`.
        weight_decay: ``>= 0``; ``update`` then needs ``params``.
        mask: None (decay every leaf), or a tree of bools shaped like the params (decay only where True), or a
            function ``params -> such a tree``.  Masked-out leaves get plain Adam steps, still in the one fused
            pass (their decay rate is 0).
        fused: one kernel pass per leaf (default) or the equivalent chain.

    Returns:
        A :class:`GradientTransformation` with state :class:`AdamState` (fused).

    Example: no decay for biases and normalisation scales::

        opt = fnnet.optim.adamw(1e-3, weight_decay=0.1, mask=fnnet.layers.decay_mask(model, params))

    Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return _adam("fnnet.optim.adamw", learning_rate, b1, b2, eps, weight_decay, fused, mask)


def rmsprop(learning_rate, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
            *, fused: bool = True) -> GradientTransformation:
    """RMSprop: ``s = alpha s + (1 - alpha) g^2``; ``p -= lr * g / (sqrt(s) + eps)``.

    With momentum the buffer ``buf = momentum * buf + g / (sqrt(s) + eps)`` is applied instead; ``centered``
    uses ``sqrt(s - a^2)`` with ``a`` the running mean of ``g``.

    Equivalent chain: ``chain(scale_by_rms(alpha, eps, centered), scale_by_momentum(momentum),
    scale_by_learning_rate(lr))`` (momentum block left out when ``momentum == 0``).

    Args:
        learning_rate: a float ``>= 0`` or a schedule ``step -> float``.
        alpha: the decay of the running mean of squares, in ``[0, 1)``.
        eps: ``>= 0``, added outside the square root (as ``torch.optim.RMSprop``; optax adds it inside).
        momentum: in ``[0, 1]``.
        centered: normalise by the estimated variance.
        fused: one kernel pass per leaf (default) or the equivalent chain.

    Returns:
        A :class:`GradientTransformation` with state :class:`RmspropState` (fused).

    Reference: Tieleman & Hinton, Coursera lecture 6.5, 2012; Graves, arXiv:1308.0850 (centered form).
    """
    where = "fnnet.optim.rmsprop"
    learning_rate = check_learning_rate(where, learning_rate)
    alpha = check_hyper(where, "alpha", alpha, high=1.0, high_open=True)
    eps = check_hyper(where, "eps", eps)
    momentum = check_hyper(where, "momentum", momentum, high=1.0)
    centered = bool(centered)
    use_momentum = momentum != 0.0
    if not fused:
        mom = [scale_by_momentum(momentum)] if use_momentum else []
        return chain(scale_by_rms(alpha, eps, centered), *mom, scale_by_learning_rate(learning_rate))

    def init(params):
        return RmspropState(count_init(), _zeros(where, params), _zeros(where, params) if use_momentum else None,
                            _zeros(where, params) if centered else None)

    def kernels(where, count, gs, ps, bufs, outs, extra):
        lr = learning_rate_at(where, learning_rate, count)
        for i, (g, p) in enumerate(zip(gs, ps)):
            c = lambda x: cast(x, g.dtype)  # noqa: E731
            unused = np.empty(0, g.dtype)  # the kernel neither reads nor writes a buffer that is off
            buf, new_buf = (bufs["momentum_buffer"][i], outs(i, "momentum_buffer")) if use_momentum else (g, unused)
            avg, new_avg = (bufs["grad_avg"][i], outs(i, "grad_avg")) if centered else (g, unused)
            K.rmsprop_step(flat(g), flat(p), flat(bufs["square_avg"][i]), flat(buf), flat(avg), outs(i, "out"),
                           outs(i, "square_avg"), new_buf, new_avg, c(-lr), c(alpha), c(eps), c(momentum),
                           use_momentum, centered, outs.apply)

    fields = {"square_avg": True, "momentum_buffer": use_momentum, "grad_avg": centered}
    return fused_transformation(where, init, RmspropState, fields, kernels)


def adagrad(learning_rate, initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, fused: bool = True
            ) -> GradientTransformation:
    """Adagrad: ``acc += g^2``; ``p -= lr * g / (sqrt(acc) + eps)``.

    Equivalent chain: ``chain(scale_by_adagrad(initial_accumulator_value, eps), scale_by_learning_rate(lr))``.

    Args:
        learning_rate: a float ``>= 0`` or a schedule ``step -> float``.
        initial_accumulator_value: the starting value of ``acc``, ``>= 0``.
        eps: ``>= 0``, added outside the square root (as ``torch.optim.Adagrad``).
        fused: one kernel pass per leaf (default) or the equivalent chain.

    Returns:
        A :class:`GradientTransformation` with state :class:`AdagradState` (fused).

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods", JMLR 2011.
    """
    where = "fnnet.optim.adagrad"
    learning_rate = check_learning_rate(where, learning_rate)
    initial_accumulator_value = check_hyper(where, "initial_accumulator_value", initial_accumulator_value)
    eps = check_hyper(where, "eps", eps)
    if not fused:
        return chain(scale_by_adagrad(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))

    def init(params):
        return AdagradState(count_init(), _zeros(where, params, initial_accumulator_value))

    def kernels(where, count, gs, ps, bufs, outs, extra):
        lr = learning_rate_at(where, learning_rate, count)
        for i, (g, p, a) in enumerate(zip(gs, ps, bufs["sum_of_squares"])):
            K.adagrad_step(flat(g), flat(p), flat(a), outs(i, "out"), outs(i, "sum_of_squares"), cast(-lr, g.dtype),
                           cast(eps, g.dtype), outs.apply)

    return fused_transformation(where, init, AdagradState, {"sum_of_squares": True}, kernels)
