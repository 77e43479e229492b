"""Optimizer kernels: one fused pass over each parameter leaf.

Every kernel takes flat (1-D), C-contiguous float32/float64 arrays of equal length (a leaf and its
optimizer buffers, validated and raveled by ``fnnet.optim``) and scalars already cast to the arrays'
dtype, so float32 leaves are computed in float32 end to end.

Each optimizer has one ``*_step`` kernel that writes into output arrays given by the caller: the update
``u`` (``add_params=False``) or the new param ``p + u`` (``add_params=True``, the fused
``update_and_apply``), and the new buffers.  ``p + u`` is rounded exactly as ``apply_updates`` rounds it,
so both routes give the same bits.  An output may be the very array its input came from (buffer
donation): every element is read before it is written, and no element reads another's.  Outputs must not
overlap inputs otherwise.  The ``*_update`` kernels allocate fresh outputs and call their ``*_step``
with ``add_params=False``: their inputs are never modified.

``scale`` multiplies the whole update: ``fnnet.optim``'s fused optimizers pass ``-learning_rate`` (the
update is then added to the params), its ``scale_by_*`` building blocks pass 1.

Unused inputs (``p`` when ``weight_decay == 0`` and ``add_params`` is off, a momentum buffer when momentum
is off) may be any array of the right dtype and length; they are not used.  Unused outputs come back as
empty arrays (``*_update``) or are not written (``*_step``).
"""

import numpy as np
from numba import prange

from ._jit import SERIAL_WORK, helper, kernel

__all__ = [
    "scale_and_decay", "momentum_update", "adam_update", "rmsprop_update", "adagrad_update",
    "scale_and_decay_step", "momentum_step", "adam_step", "rmsprop_step", "adagrad_step",
    "sum_of_squares", "SQUARES_CHUNK",
]

SQUARES_CHUNK = 4096
#: Elements per ``prange`` iteration of the ``*_step`` kernels; leaves below ``SERIAL_WORK`` elements (the
#: biases, a small model's weights) run in one serial call instead of paying a parallel launch.
SPAN = 16384


@helper
def _spans(n):
    """How many ``SPAN``-element pieces a ``*_step`` kernel splits ``n`` elements into (1: run serially)."""
    return 1 if n < SERIAL_WORK else (n + SPAN - 1) // SPAN


@kernel
def scale_and_decay_step(g, p, out, scale, weight_decay, add_params):
    """``u = scale * (g + weight_decay * p)`` (plain SGD, ``scale``, ``add_weight_decay``); ``out = p + u``
    or ``u``."""
    n = g.size
    spans = _spans(n)
    if spans == 1:
        _scale_and_decay_span(g, p, out, scale, weight_decay, add_params)
    else:
        for s in prange(spans):
            lo, hi = s * SPAN, min(n, (s + 1) * SPAN)
            _scale_and_decay_span(g[lo:hi], p[lo:hi], out[lo:hi], scale, weight_decay, add_params)


@helper
def _scale_and_decay_span(g, p, out, scale, weight_decay, add_params):
    use_decay = weight_decay != 0
    for i in range(g.size):  # from 0: a loop from an offset does not vectorise (index wraparound)
        pi = p[i]
        if use_decay:
            u = scale * (g[i] + weight_decay * pi)
        else:
            u = scale * g[i]
        out[i] = pi + u if add_params else u


@kernel(parallel=False)
def scale_and_decay(g, p, scale, weight_decay):
    """The update of :func:`scale_and_decay_step`, in a new array."""
    out = np.empty_like(g)
    scale_and_decay_step(g, p, out, scale, weight_decay, False)
    return out


@kernel
def momentum_step(g, p, buf, out, new_buf, scale, momentum, weight_decay, nesterov, add_params):
    """Heavy-ball / Nesterov momentum, PyTorch's SGD formulation (no dampening).

    ``d = g + weight_decay * p``; ``buf' = momentum * buf + d``;
    ``u = scale * (d + momentum * buf')`` (Nesterov) or ``scale * buf'``; ``out = p + u`` or ``u``.
    """
    n = g.size
    spans = _spans(n)
    if spans == 1:
        _momentum_span(g, p, buf, out, new_buf, scale, momentum, weight_decay, nesterov, add_params)
    else:
        for s in prange(spans):
            lo, hi = s * SPAN, min(n, (s + 1) * SPAN)
            _momentum_span(g[lo:hi], p[lo:hi], buf[lo:hi], out[lo:hi], new_buf[lo:hi], scale,
                momentum, weight_decay, nesterov, add_params)


@helper
def _momentum_span(g, p, buf, out, new_buf, scale, momentum, weight_decay, nesterov, add_params):
    use_decay = weight_decay != 0
    for i in range(g.size):  # from 0: a loop from an offset does not vectorise (index wraparound)
        pi = p[i]
        d = g[i]
        if use_decay:
            d = d + weight_decay * pi
        b = momentum * buf[i] + d
        new_buf[i] = b
        if nesterov:
            u = scale * (d + momentum * b)
        else:
            u = scale * b
        out[i] = pi + u if add_params else u


@kernel(parallel=False)
def momentum_update(g, p, buf, scale, momentum, weight_decay, nesterov):
    """:func:`momentum_step` into new arrays; returns ``(update, new_buf)``."""
    out = np.empty_like(g)
    new_buf = np.empty_like(g)
    momentum_step(g, p, buf, out, new_buf, scale, momentum, weight_decay, nesterov, False)
    return out, new_buf


@kernel
def adam_step(g, p, m, v, out, new_m, new_v, scale, b1, b2, eps, bias_correction1, bias_correction2, weight_decay,
              add_params):
    """Adam's moments and step, with optional decoupled (AdamW) weight decay.

    ``m' = b1 m + (1 - b1) g``; ``v' = b2 v + (1 - b2) g^2``;
    ``u = scale * ((m' / bc1) / (sqrt(v') / sqrt(bc2) + eps) + weight_decay * p)``
    (``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``: eps is added after the bias correction, as in PyTorch);
    ``out = p + u`` or ``u``.
    """
    n = g.size
    spans = _spans(n)
    if spans == 1:
        _adam_span(g, p, m, v, out, new_m, new_v, scale, b1, b2, eps, bias_correction1, bias_correction2,
                   weight_decay, add_params)
    else:
        for s in prange(spans):
            lo, hi = s * SPAN, min(n, (s + 1) * SPAN)
            _adam_span(g[lo:hi], p[lo:hi], m[lo:hi], v[lo:hi], out[lo:hi], new_m[lo:hi], new_v[lo:hi],
                scale, b1, b2, eps, bias_correction1, bias_correction2, weight_decay, add_params)


@helper
def _adam_span(g, p, m, v, out, new_m, new_v, scale, b1, b2, eps, bias_correction1, bias_correction2, weight_decay,
               add_params):
    one = np.float32(1.0)  # exact; float32 - float32 stays float32, float32 - float64 is float64
    c1 = one - b1
    c2 = one - b2
    step = scale / bias_correction1
    root2 = np.sqrt(bias_correction2)
    decay = scale * weight_decay
    use_decay = weight_decay != 0
    for i in range(g.size):  # from 0: a loop from an offset does not vectorise (index wraparound)
        pi = p[i]
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        new_m[i] = mi
        new_v[i] = vi
        u = step * (mi / (np.sqrt(vi) / root2 + eps))
        if use_decay:
            u = u + decay * pi
        out[i] = pi + u if add_params else u


@kernel(parallel=False)
def adam_update(g, p, m, v, scale, b1, b2, eps, bias_correction1, bias_correction2, weight_decay):
    """:func:`adam_step` into new arrays; returns ``(update, new_m, new_v)``."""
    out = np.empty_like(g)
    new_m = np.empty_like(g)
    new_v = np.empty_like(g)
    adam_step(g, p, m, v, out, new_m, new_v, scale, b1, b2, eps, bias_correction1, bias_correction2, weight_decay,
              False)
    return out, new_m, new_v


@kernel
def rmsprop_step(g, p, square_avg, momentum_buf, grad_avg, out, new_sq, new_buf, new_avg, scale, alpha, eps, momentum,
                 use_momentum, centered, add_params):
    """RMSprop, PyTorch's formulation: eps is added *outside* the square root.

    ``s' = alpha s + (1 - alpha) g^2``; centered: ``a' = alpha a + (1 - alpha) g`` and
    ``den = sqrt(s' - a'^2) + eps``, else ``den = sqrt(s') + eps``; with momentum
    ``buf' = momentum buf + g / den`` and ``u = scale * buf'``, else ``u = scale * g / den``;
    ``out = p + u`` or ``u``.  ``new_buf`` / ``new_avg`` are written only when ``use_momentum`` /
    ``centered``.
    """
    n = g.size
    spans = _spans(n)
    if spans == 1:
        _rmsprop_span(g, p, square_avg, momentum_buf, grad_avg, out, new_sq, new_buf, new_avg, scale, alpha,
                      eps, momentum, use_momentum, centered, add_params)
    else:
        for s in prange(spans):
            lo, hi = s * SPAN, min(n, (s + 1) * SPAN)
            _rmsprop_span(g[lo:hi], p[lo:hi], square_avg[lo:hi], momentum_buf[lo:hi], grad_avg[lo:hi],
                out[lo:hi], new_sq[lo:hi], new_buf[lo:hi], new_avg[lo:hi], scale, alpha, eps, momentum, use_momentum,
                centered, add_params)


@helper
def _rmsprop_span(g, p, square_avg, momentum_buf, grad_avg, out, new_sq, new_buf, new_avg, scale, alpha, eps,
                  momentum, use_momentum, centered, add_params):
    one = np.float32(1.0)
    c = one - alpha
    for i in range(g.size):  # from 0: a loop from an offset does not vectorise (index wraparound)
        pi = p[i]
        gi = g[i]
        si = alpha * square_avg[i] + c * gi * gi
        new_sq[i] = si
        if centered:
            ai = alpha * grad_avg[i] + c * gi
            new_avg[i] = ai
            den = np.sqrt(si - ai * ai) + eps
        else:
            den = np.sqrt(si) + eps
        if use_momentum:
            b = momentum * momentum_buf[i] + gi / den
            new_buf[i] = b
            u = scale * b
        else:
            u = scale * (gi / den)
        out[i] = pi + u if add_params else u


@kernel(parallel=False)
def rmsprop_update(g, square_avg, momentum_buf, grad_avg, scale, alpha, eps, momentum, use_momentum, centered):
    """:func:`rmsprop_step` into new arrays; returns ``(update, new_square_avg, new_momentum_buf,
    new_grad_avg)``, the last two empty when ``use_momentum`` / ``centered`` is False."""
    n = g.size
    out = np.empty_like(g)
    new_sq = np.empty_like(g)
    new_buf = np.empty(n if use_momentum else 0, dtype=g.dtype)
    new_avg = np.empty(n if centered else 0, dtype=g.dtype)
    rmsprop_step(g, g, square_avg, momentum_buf, grad_avg, out, new_sq, new_buf, new_avg, scale, alpha, eps, momentum,
                 use_momentum, centered, False)
    return out, new_sq, new_buf, new_avg


@kernel
def adagrad_step(g, p, acc, out, new_acc, scale, eps, add_params):
    """Adagrad, PyTorch's formulation: ``acc' = acc + g^2``; ``u = scale * g / (sqrt(acc') + eps)``;
    ``out = p + u`` or ``u``."""
    n = g.size
    spans = _spans(n)
    if spans == 1:
        _adagrad_span(g, p, acc, out, new_acc, scale, eps, add_params)
    else:
        for s in prange(spans):
            lo, hi = s * SPAN, min(n, (s + 1) * SPAN)
            _adagrad_span(g[lo:hi], p[lo:hi], acc[lo:hi], out[lo:hi], new_acc[lo:hi], scale, eps,
                add_params)


@helper
def _adagrad_span(g, p, acc, out, new_acc, scale, eps, add_params):
    for i in range(g.size):  # from 0: a loop from an offset does not vectorise (index wraparound)
        pi = p[i]
        gi = g[i]
        a = acc[i] + gi * gi
        new_acc[i] = a
        u = scale * (gi / (np.sqrt(a) + eps))
        out[i] = pi + u if add_params else u


@kernel(parallel=False)
def adagrad_update(g, acc, scale, eps):
    """:func:`adagrad_step` into new arrays; returns ``(update, new_acc)``."""
    out = np.empty_like(g)
    new_acc = np.empty_like(g)
    adagrad_step(g, g, acc, out, new_acc, scale, eps, False)
    return out, new_acc


@kernel(reduction=True)
def sum_of_squares(x):
    """``sum(x**2)`` accumulated in float64; deterministic: fixed chunks of ``SQUARES_CHUNK`` elements,
    whose count does not depend on the thread count, combined in index order."""
    n = x.size
    nchunks = (n + SQUARES_CHUNK - 1) // SQUARES_CHUNK
    partial = np.zeros(max(nchunks, 1), dtype=np.float64)
    for c in prange(nchunks):
        chunk = x[c * SQUARES_CHUNK:min(n, (c + 1) * SQUARES_CHUNK)]
        s = 0.0
        for i in range(chunk.size):  # from 0 over a slice: vectorises (an offset loop would not)
            v = np.float64(chunk[i])
            s += v * v
        partial[c] = s
    total = 0.0
    for c in range(nchunks):
        total += partial[c]
    return total
