"""Normalisation: ``batch_norm`` (with running statistics as explicit state) and ``layer_norm``.

Running statistics are state: ``batch_norm`` takes them as arguments and returns the updated ones as plain
arrays next to ``y`` (a primitive with ``num_aux=2``: only ``y`` is traced), and never mutates its inputs.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, check_same_dtype, contiguous, value

__all__ = ["batch_norm", "layer_norm"]


def _as3(x):
    """``(N, C)`` or ``(N, C, H, W)`` as a contiguous ``(N, C, L)`` view."""
    x = contiguous(x)
    return x.reshape(x.shape[0], x.shape[1], -1)


def _affine(gamma, beta, c):
    """gamma and beta as float64 ``(C,)`` arrays (1 and 0 when absent)."""
    g = np.ones(c, np.float64) if gamma is None else gamma.astype(np.float64)
    b = np.zeros(c, np.float64) if beta is None else beta.astype(np.float64)
    return g, b


# ------------------------------------------------------------------------------------------ batch norm


def _batch_norm_fwd(x, gamma, beta, running_mean, running_var, *, train, momentum, eps):
    x3 = _as3(x)
    c = x3.shape[1]
    g64, b64 = _affine(gamma, beta, c)
    if train:
        mean, var = K.batch_norm_stats(x3)
        m = x3.shape[0] * x3.shape[2]
        if running_mean is None:
            new_mean = new_var = None
        else:
            new_mean = ((1.0 - momentum) * running_mean + momentum * mean).astype(x.dtype)
            new_var = ((1.0 - momentum) * running_var + momentum * var * (m / (m - 1))).astype(x.dtype)
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
        new_mean, new_var = running_mean, running_var
    invstd = 1.0 / np.sqrt(var + eps)
    y = K.batch_norm_apply(x3, mean, g64 * invstd, b64).reshape(x.shape)
    return (y, new_mean, new_var), (x3, x.shape, mean, invstd, g64, gamma is not None, beta is not None)


def _batch_norm_bwd(res, g, *, train, momentum, eps):
    x3, shape, mean, invstd, g64, has_gamma, has_beta = res
    g3 = _as3(g)
    sum_g, sum_gx = K.batch_norm_bwd_sums(x3, g3, mean)
    k_g = g64 * invstd
    dgamma = (sum_gx * invstd).astype(x3.dtype) if has_gamma else None
    dbeta = sum_g.astype(x3.dtype) if has_beta else None
    if train:
        # y depends on x through the batch mean and variance too:
        # dx = gamma*invstd * (g - mean(g) - xhat * mean(g * xhat)); running stats do not influence y.
        m = x3.shape[0] * x3.shape[2]
        k_x = -k_g * invstd * invstd * sum_gx / m
        k_0 = -k_g * sum_g / m
        dx = K.batch_norm_bwd_input(x3, g3, mean, k_g, k_x, k_0).reshape(shape)
        zeros = np.zeros(x3.shape[1], x3.dtype)
        return dx, dgamma, dbeta, zeros, zeros.copy()
    # eval: y = (x - rm) * gamma / sqrt(rv + eps) + beta, an affine map of x.
    zero = np.zeros_like(k_g)
    dx = K.batch_norm_bwd_input(x3, g3, mean, k_g, zero, zero).reshape(shape)
    d_mean = (-k_g * sum_g).astype(x3.dtype)
    d_var = (-0.5 * k_g * invstd * invstd * sum_gx).astype(x3.dtype)
    return dx, dgamma, dbeta, d_mean, d_var


_batch_norm = primitive("batch_norm", _batch_norm_fwd, _batch_norm_bwd,
                        argnames=("x", "gamma", "beta", "running_mean", "running_var"), num_aux=2)


def _number(op, name, v, lo, hi, lo_open=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{op}: {name} expected a float, got {v!r}")
    v = float(v)
    if not (lo < v if lo_open else lo <= v) or not v <= hi:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise ValueError(f"{op}: {name} must be in {interval}, got {v}")
    return v


def batch_norm(x, gamma, beta, running_mean, running_var, *, train, momentum=0.1, eps=1e-5):
    """Batch normalisation over every axis but the channel axis 1, like ``torch.nn.functional.batch_norm``.

    Training (``train=True``) normalises with the batch mean and the biased batch variance and returns updated
    running statistics, PyTorch's convention::

        new_running_mean = (1 - momentum) * running_mean + momentum * batch_mean
        new_running_var  = (1 - momentum) * running_var  + momentum * batch_var * M / (M - 1)   # unbiased

    with ``M = N*H*W`` values per channel.  Evaluation (``train=False``) normalises with the running statistics
    and returns them unchanged; its gradient is that of the affine map (including the exact gradient with
    respect to the running statistics, should they be differentiated).  In training the running statistics
    do not influence ``y``: their gradient is zero.

    Args:
        x: ``(N, C)`` or ``(N, C, H, W)``, float32 or float64.
        gamma, beta: ``(C,)`` scale and shift, or None (``affine=False``: 1 and 0).
        running_mean, running_var: ``(C,)`` state; may be None in training only (no running statistics
            are tracked: the returned ones are None too).
        train: bool, keyword-only.
        momentum: in ``[0, 1]``.  eps: positive, added to the variance.

    Returns:
        ``(y, new_running_mean, new_running_var)``: ``y`` like ``x`` (traced under ``grad``), the statistics as
        plain ``(C,)`` arrays of ``x``'s dtype.

    Raises:
        TypeError: non-float or mismatched dtypes, non-bool ``train``.  ValueError: wrong rank or ``(C,)``
        shapes, bad momentum/eps, missing running statistics in evaluation, or a single value per channel in
        training ("Expected more than 1 value per channel when training").
    """
    op = "batch_norm"
    check_float(op, "x", x)
    names = (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var))
    for name, arr in names:
        if arr is not None:
            check_float(op, name, arr)
    check_same_dtype(op, x=x, **{name: arr for name, arr in names})
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{op}: train expected a bool, got {train!r}")
    xs = value(x).shape
    if len(xs) not in (2, 4):
        raise ValueError(f"{op}: x must have 2 dimensions (N, C) or 4 (N, C, H, W), got shape {xs}")
    if min(xs) == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {xs}")
    c = xs[1]
    for name, arr in names:
        if arr is not None and value(arr).shape != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) (the channels of x.shape={xs}), got {value(arr).shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: pass both running_mean and running_var, or neither (training only)")
    momentum = _number(op, "momentum", momentum, 0.0, 1.0)
    eps = _number(op, "eps", eps, 0.0, float("inf"), lo_open=True)
    if train:
        per_channel = xs[0] * (xs[2] * xs[3] if len(xs) == 4 else 1)
        if per_channel == 1:
            raise ValueError(
                f"{op}: Expected more than 1 value per channel when training, got input shape {xs}; use a batch "
                "of at least 2 (or more than one pixel), or train=False"
            )
    elif running_mean is None:
        raise ValueError(f"{op}: train=False normalises with running_mean and running_var, which are None; pass them")
    return _batch_norm(x, gamma, beta, running_mean, running_var, train=bool(train), momentum=momentum, eps=eps)


# ------------------------------------------------------------------------------------------ layer norm


def _layer_norm_fwd(x, gamma, beta, *, eps):
    x2 = contiguous(x).reshape(-1, x.shape[-1])
    d = x.shape[-1]
    gam = np.ones(d, x.dtype) if gamma is None else contiguous(gamma)
    bet = np.zeros(d, x.dtype) if beta is None else contiguous(beta)
    y, mean, rstd = K.layer_norm_fwd(x2, gam, bet, eps)
    return y.reshape(x.shape), (x2, x.shape, mean, rstd, gam, gamma is not None, beta is not None)


def _layer_norm_bwd(res, g, *, eps):
    x2, shape, mean, rstd, gam, has_gamma, has_beta = res
    dx, dgamma, dbeta = K.layer_norm_bwd(x2, contiguous(g).reshape(x2.shape), mean, rstd, gam)
    return dx.reshape(shape), (dgamma if has_gamma else None), (dbeta if has_beta else None)


_layer_norm = primitive("layer_norm", _layer_norm_fwd, _layer_norm_bwd, argnames=("x", "gamma", "beta"))


def layer_norm(x, gamma, beta, *, eps=1e-5):
    """Normalise over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta`` (biased variance), like
    ``torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, eps)``.

    Args:
        x: ``(..., D)``, float32 or float64, at least 1-D.
        gamma, beta: ``(D,)`` or None (1 and 0).
        eps: positive.

    Returns:
        ``(..., D)``, like ``x``.

    Raises:
        TypeError: non-float or mismatched dtypes.  ValueError: 0-d or empty ``x``, ``gamma``/``beta`` not
        ``(D,)``, non-positive eps.
    """
    op = "layer_norm"
    check_float(op, "x", x)
    for name, arr in (("gamma", gamma), ("beta", beta)):
        if arr is not None:
            check_float(op, name, arr)
    check_same_dtype(op, x=x, gamma=gamma, beta=beta)
    xs = value(x).shape
    if len(xs) == 0 or min(xs) == 0:
        raise ValueError(f"{op}: x must be at least 1-D and non-empty, got shape {xs}")
    for name, arr in (("gamma", gamma), ("beta", beta)):
        if arr is not None and value(arr).shape != (xs[-1],):
            raise ValueError(f"{op}: {name} must have shape ({xs[-1]},) (the last axis of x.shape={xs}), "
                             f"got {value(arr).shape}")
    eps = _number(op, "eps", eps, 0.0, float("inf"), lo_open=True)
    return _layer_norm(x, gamma, beta, eps=eps)
