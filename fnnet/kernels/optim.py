"""Optimizer kernels: one fused pass over each parameter leaf.

Every kernel takes flat (1-D), C-contiguous float32/float64 arrays of equal length (a leaf and its
optimizer buffers, validated and raveled by ``fnnet.optim``) and scalars already cast to the arrays'
dtype, so float32 leaves are computed in float32 end to end.  Results are written into freshly
allocated arrays: inputs are never modified.

``scale`` multiplies the whole update: ``fnnet.optim``'s fused optimizers pass ``-learning_rate`` (the
update is then added to the params), its ``scale_by_*`` building blocks pass 1.

Unused inputs (``p`` when ``weight_decay == 0``, a momentum buffer when momentum is off) may be any
array of the right dtype; they are not read.  Unused outputs come back as empty arrays.
"""

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = [
    "scale_and_decay", "momentum_update", "adam_update", "rmsprop_update", "adagrad_update",
    "sum_of_squares", "SQUARES_CHUNK",
]

SQUARES_CHUNK = 4096


@kernel
def scale_and_decay(g, p, scale, weight_decay):
    """``update = scale * (g + weight_decay * p)`` (plain SGD, ``scale``, ``add_weight_decay``)."""
    out = np.empty_like(g)
    if weight_decay != 0:
        for i in prange(g.size):
            out[i] = scale * (g[i] + weight_decay * p[i])
    else:
        for i in prange(g.size):
            out[i] = scale * g[i]
    return out


@kernel
def momentum_update(g, p, buf, scale, momentum, weight_decay, nesterov):
    """Heavy-ball / Nesterov momentum, PyTorch's SGD formulation (no dampening).

    ``d = g + weight_decay * p``; ``buf' = momentum * buf + d``;
    ``update = scale * (d + momentum * buf')`` (Nesterov) or ``scale * buf'``.

    Returns ``(update, new_buf)``.
    """
    out = np.empty_like(g)
    new_buf = np.empty_like(g)
    use_decay = weight_decay != 0
    for i in prange(g.size):
        d = g[i]
        if use_decay:
            d = d + weight_decay * p[i]
        b = momentum * buf[i] + d
        new_buf[i] = b
        if nesterov:
            out[i] = scale * (d + momentum * b)
        else:
            out[i] = scale * b
    return out, new_buf


@kernel
def adam_update(g, p, m, v, scale, b1, b2, eps, bias_correction1, bias_correction2, weight_decay):
    """Adam's moments and step, with optional decoupled (AdamW) weight decay.

    ``m' = b1 m + (1 - b1) g``; ``v' = b2 v + (1 - b2) g^2``;
    ``update = scale * ((m' / bc1) / (sqrt(v') / sqrt(bc2) + eps) + weight_decay * p)``
    (``bc1 = 1 - b1^t``, ``bc2 = 1 - b2^t``: eps is added after the bias correction, as in PyTorch).

    Returns ``(update, new_m, new_v)``.
    """
    one = np.float32(1.0)  # exact; float32 - float32 stays float32, float32 - float64 is float64
    c1 = one - b1
    c2 = one - b2
    step = scale / bias_correction1
    root2 = np.sqrt(bias_correction2)
    decay = scale * weight_decay
    use_decay = weight_decay != 0
    out = np.empty_like(g)
    new_m = np.empty_like(g)
    new_v = np.empty_like(g)
    for i in prange(g.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        new_m[i] = mi
        new_v[i] = vi
        u = step * (mi / (np.sqrt(vi) / root2 + eps))
        if use_decay:
            u = u + decay * p[i]
        out[i] = u
    return out, new_m, new_v


@kernel
def rmsprop_update(g, square_avg, momentum_buf, grad_avg, scale, alpha, eps, momentum, use_momentum, centered):
    """RMSprop, PyTorch's formulation: eps is added *outside* the square root.

    ``s' = alpha s + (1 - alpha) g^2``; centered: ``a' = alpha a + (1 - alpha) g`` and
    ``den = sqrt(s' - a'^2) + eps``, else ``den = sqrt(s') + eps``; with momentum
    ``buf' = momentum buf + g / den`` and ``update = scale * buf'``, else ``update = scale * g / den``.

    Returns ``(update, new_square_avg, new_momentum_buf, new_grad_avg)``; the last two are empty when
    ``use_momentum`` / ``centered`` is False.
    """
    one = np.float32(1.0)
    c = one - alpha
    n = g.size
    out = np.empty_like(g)
    new_sq = np.empty_like(g)
    new_buf = np.empty(n if use_momentum else 0, dtype=g.dtype)
    new_avg = np.empty(n if centered else 0, dtype=g.dtype)
    for i in prange(n):
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
            out[i] = scale * b
        else:
            out[i] = scale * (gi / den)
    return out, new_sq, new_buf, new_avg


@kernel
def adagrad_update(g, acc, scale, eps):
    """Adagrad, PyTorch's formulation: ``acc' = acc + g^2``; ``update = scale * g / (sqrt(acc') + eps)``.

    Returns ``(update, new_acc)``.
    """
    out = np.empty_like(g)
    new_acc = np.empty_like(g)
    for i in prange(g.size):
        gi = g[i]
        a = acc[i] + gi * gi
        new_acc[i] = a
        out[i] = scale * (gi / (np.sqrt(a) + eps))
    return out, new_acc


@kernel(reduction=True)
def sum_of_squares(x):
    """``sum(x**2)`` accumulated in float64; deterministic: fixed chunks of ``SQUARES_CHUNK`` elements,
    whose count does not depend on the thread count, combined in index order."""
    n = x.size
    nchunks = (n + SQUARES_CHUNK - 1) // SQUARES_CHUNK
    partial = np.zeros(max(nchunks, 1), dtype=np.float64)
    for c in prange(nchunks):
        stop = min(n, (c + 1) * SQUARES_CHUNK)
        s = 0.0
        for i in range(c * SQUARES_CHUNK, stop):
            v = np.float64(x[i])
            s += v * v
        partial[c] = s
    total = 0.0
    for c in range(nchunks):
        total += partial[c]
    return total
