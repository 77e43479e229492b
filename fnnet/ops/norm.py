"""Normalisation: ``batch_norm`` (with running statistics as explicit state), ``layer_norm``, ``rms_norm``
and ``group_norm`` (instance norm is ``group_norm`` with one group per channel).

Running statistics are state: ``batch_norm`` takes them as arguments and returns the updated ones as plain
arrays next to ``y`` (a primitive with ``num_aux=2``: only ``y`` is traced), and never mutates its inputs.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import as_number, check_float, check_optional_floats, check_same_dtype, contiguous, value

__all__ = ["batch_norm", "group_norm", "layer_norm", "rms_norm"]


def _as3(x):
    """``(N, C, *spatial)`` as a contiguous ``(N, C, L)`` view (``L`` = the product of the spatial sizes)."""
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
    v = as_number(op, name, v, "a float")
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

    with ``M = N*L`` (or ``N*H*W``) values per channel.  Evaluation (``train=False``) normalises with the
    running statistics and returns them unchanged; its gradient is that of the affine map (including the
    exact gradient with respect to the running statistics, should they be differentiated).  In training the
    running statistics do not influence ``y``: their gradient is zero.

    Args:
        x: ``(N, C, *spatial)``: ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)``...; float32 or float64.
        gamma, beta: ``(C,)`` scale and shift, or None (``affine=False``: 1 and 0).
        running_mean, running_var: ``(C,)`` state; may be None in training only (no running statistics
            are tracked: the returned ones are None too).
        train: bool, keyword-only.
        momentum: in ``[0, 1]``.
        eps: positive, added to the variance.

    Returns:
        ``(y, new_running_mean, new_running_var)``: ``y`` like ``x`` (traced under ``grad``), the statistics as
        plain ``(C,)`` arrays of ``x``'s dtype.

    Raises:
        TypeError: non-float or mismatched dtypes, non-bool ``train``.
        ValueError: wrong rank or ``(C,)`` shapes, bad momentum/eps, missing running statistics in
            evaluation, or a single value per channel in training ("Expected more than 1 value per channel
            when training").
    """
    op = "batch_norm"
    x = check_float(op, "x", x)
    gamma, beta, running_mean, running_var = check_optional_floats(
        op, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    names = (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var))
    check_same_dtype(op, x=x, **{name: arr for name, arr in names})
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{op}: train expected a bool, got {train!r}")
    xs = value(x).shape
    if len(xs) < 2:
        raise ValueError(f"{op}: x must have at least 2 dimensions (N, C, *spatial), got shape {xs}")
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
        if math.prod(xs) == c:
            raise ValueError(
                f"{op}: Expected more than 1 value per channel when training, got input shape {xs}; use a batch "
                "of at least 2 (or more than one pixel), or train=False"
            )
    elif running_mean is None:
        raise ValueError(f"{op}: train=False normalises with running_mean and running_var, which are None; pass them")
    return _batch_norm(x, gamma, beta, running_mean, running_var, train=bool(train), momentum=momentum, eps=eps)


# ------------------------------------------------------------------------------------------ layer norm


def _rows(x, k):
    """``x`` as a contiguous ``(R, D)`` view: its last ``k`` axes folded into ``D``, the others into ``R``."""
    return contiguous(x).reshape(-1, math.prod(x.shape[x.ndim - k:]))


def _flat_or(param, d, dtype, fill):
    return np.full(d, fill, dtype) if param is None else contiguous(param).reshape(-1)


def _layer_norm_fwd(x, gamma, beta, *, eps, normalized_ndim):
    x2 = _rows(x, normalized_ndim)
    gam = _flat_or(gamma, x2.shape[1], x.dtype, 1.0)
    bet = _flat_or(beta, x2.shape[1], x.dtype, 0.0)
    y, mean, rstd = K.layer_norm_fwd(x2, gam, bet, eps)
    return y.reshape(x.shape), (x2, x.shape, mean, rstd, gam, gamma is not None, beta is not None)


def _layer_norm_bwd(res, g, *, eps, normalized_ndim):
    x2, shape, mean, rstd, gam, has_gamma, has_beta = res
    dx, dgamma, dbeta = K.layer_norm_bwd(x2, contiguous(g).reshape(x2.shape), mean, rstd, gam)
    affine_shape = shape[len(shape) - normalized_ndim:]
    return (dx.reshape(shape), dgamma.reshape(affine_shape) if has_gamma else None,
            dbeta.reshape(affine_shape) if has_beta else None)


_layer_norm = primitive("layer_norm", _layer_norm_fwd, _layer_norm_bwd, argnames=("x", "gamma", "beta"))


def _check_trailing(op, x, normalized_ndim, eps, **affine):
    """Validate ``x``, the affine arrays (shape ``x.shape[-normalized_ndim:]``) and eps; returns ``(x, *affine,
    eps)``, checked (see ``check_float``), eps as a float."""
    x = check_float(op, "x", x)
    affine = dict(zip(affine, check_optional_floats(op, **affine)))
    check_same_dtype(op, x=x, **affine)
    xs = value(x).shape
    if isinstance(normalized_ndim, bool) or not isinstance(normalized_ndim, numbers.Integral):
        raise TypeError(f"{op}: normalized_ndim expected an int (how many trailing axes to normalise), "
                        f"got {normalized_ndim!r}")
    if not 1 <= normalized_ndim <= max(len(xs), 1):
        raise ValueError(f"{op}: normalized_ndim must be in [1, x.ndim={len(xs)}], got {normalized_ndim}")
    if len(xs) == 0 or min(xs) == 0:
        raise ValueError(f"{op}: x must be at least 1-D and non-empty, got shape {xs}")
    trailing = xs[len(xs) - normalized_ndim:]
    for name, arr in affine.items():
        if arr is not None and value(arr).shape != trailing:
            raise ValueError(f"{op}: {name} must have shape {trailing} (the last {normalized_ndim} axes of "
                             f"x.shape={xs}), got {value(arr).shape}")
    return (x, *affine.values(), _number(op, "eps", eps, 0.0, float("inf"), lo_open=True))


def layer_norm(x, gamma, beta, *, eps=1e-5, normalized_ndim=1):
    """Normalise over the last ``normalized_ndim`` axes together: ``(x - mean) / sqrt(var + eps) * gamma + beta``
    (biased variance), like ``torch.nn.functional.layer_norm(x, x.shape[-normalized_ndim:], gamma, beta, eps)``.

    Args:
        x: ``(..., *S)`` with ``S`` its last ``normalized_ndim`` axes; float32 or float64, non-empty.
        gamma, beta: shaped ``S``, or None (1 and 0).
        eps: positive.
        normalized_ndim: int in ``[1, x.ndim]``, default 1 (the last axis).

    Returns:
        An array like ``x``.

    Raises:
        TypeError: non-float or mismatched dtypes, non-int ``normalized_ndim``.
        ValueError: 0-d or empty ``x``, ``gamma``/``beta`` not shaped ``S``, non-positive eps,
            ``normalized_ndim`` out of range.
    """
    x, gamma, beta, eps = _check_trailing("layer_norm", x, normalized_ndim, eps, gamma=gamma, beta=beta)
    return _layer_norm(x, gamma, beta, eps=eps, normalized_ndim=int(normalized_ndim))


# ------------------------------------------------------------------------------------------ RMS norm


def _rms_norm_fwd(x, gamma, *, eps, normalized_ndim):
    x2 = _rows(x, normalized_ndim)
    gam = _flat_or(gamma, x2.shape[1], x.dtype, 1.0)
    y, rstd = K.rms_norm_fwd(x2, gam, eps)
    return y.reshape(x.shape), (x2, x.shape, rstd, gam, gamma is not None)


def _rms_norm_bwd(res, g, *, eps, normalized_ndim):
    x2, shape, rstd, gam, has_gamma = res
    dx, dgamma = K.rms_norm_bwd(x2, contiguous(g).reshape(x2.shape), rstd, gam)
    return dx.reshape(shape), (dgamma.reshape(shape[len(shape) - normalized_ndim:]) if has_gamma else None)


_rms_norm = primitive("rms_norm", _rms_norm_fwd, _rms_norm_bwd, argnames=("x", "gamma"))


def rms_norm(x, gamma, *, eps=None, normalized_ndim=1):
    """Root-mean-square normalisation over the last ``normalized_ndim`` axes:
    ``x / sqrt(mean(x**2) + eps) * gamma`` (no centring, no shift), like ``torch.nn.functional.rms_norm``.

    Args:
        x: ``(..., *S)``, float32 or float64 (float16 as storage), non-empty.
        gamma: shaped ``S`` (the last ``normalized_ndim`` axes of ``x``), or None (1).
        eps: positive, or None for ``np.finfo(x.dtype).eps`` (PyTorch's default).
        normalized_ndim: int in ``[1, x.ndim]``, default 1.

    Returns:
        An array like ``x``.

    Raises:
        TypeError / ValueError: as :func:`layer_norm`.
    """
    if eps is None and isinstance(value(x), np.ndarray) and value(x).dtype.kind == "f":
        eps = float(np.finfo(value(x).dtype).eps)
    x, gamma, eps = _check_trailing("rms_norm", x, normalized_ndim, eps, gamma=gamma)
    return _rms_norm(x, gamma, eps=eps, normalized_ndim=int(normalized_ndim))


# ------------------------------------------------------------------------------------------ group norm


def _group_norm_fwd(x, gamma, beta, *, num_groups, eps):
    x3 = _as3(x)
    g64, b64 = _affine(gamma, beta, x3.shape[1])
    y, mean, rstd = K.group_norm_fwd(x3, num_groups, g64, b64, eps)
    return y.reshape(x.shape), (x3, x.shape, mean, rstd, g64, gamma is not None, beta is not None)


def _group_norm_bwd(res, g, *, num_groups, eps):
    x3, shape, mean, rstd, g64, has_gamma, has_beta = res
    dx, dgamma, dbeta = K.group_norm_bwd(x3, _as3(g), mean, rstd, g64)
    return (dx.reshape(shape), dgamma.astype(x3.dtype) if has_gamma else None,
            dbeta.astype(x3.dtype) if has_beta else None)


_group_norm = primitive("group_norm", _group_norm_fwd, _group_norm_bwd, argnames=("x", "gamma", "beta"))


def group_norm(x, num_groups, gamma, beta, *, eps=1e-5):
    """Group normalisation, like ``torch.nn.functional.group_norm``: the channels of each sample are split into
    ``num_groups`` groups of adjacent channels; each group is normalised over its channels and spatial positions
    (biased variance), then a per-channel ``gamma``/``beta`` is applied.  ``num_groups = C`` is instance norm,
    ``num_groups = 1`` normalises each sample over ``(C, *spatial)``.

    Args:
        x: ``(N, C, *spatial)``, float32 or float64, non-empty.
        num_groups: positive int dividing ``C``.
        gamma, beta: ``(C,)`` or None (1 and 0).
        eps: positive.

    Returns:
        An array like ``x``.

    Raises:
        TypeError: non-float or mismatched dtypes, non-int ``num_groups``.
        ValueError: fewer than 2 dimensions or empty ``x``, ``C`` not divisible by ``num_groups`` (or
            ``num_groups <= 0``), ``gamma``/``beta`` not ``(C,)``, non-positive eps.
    """
    op = "group_norm"
    x = check_float(op, "x", x)
    gamma, beta = check_optional_floats(op, gamma=gamma, beta=beta)
    check_same_dtype(op, x=x, gamma=gamma, beta=beta)
    xs = value(x).shape
    if len(xs) < 2 or min(xs) == 0:
        raise ValueError(f"{op}: x must be (N, C, *spatial) with at least 2 dimensions and non-empty, got shape {xs}")
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral):
        raise TypeError(f"{op}: num_groups expected a positive int, got {num_groups!r}")
    if num_groups <= 0 or xs[1] % num_groups:
        raise ValueError(f"{op}: the {xs[1]} channels of x.shape={xs} are not divisible by "
                         f"num_groups={num_groups}; use a num_groups that divides {xs[1]}")
    for name, arr in (("gamma", gamma), ("beta", beta)):
        if arr is not None and value(arr).shape != (xs[1],):
            raise ValueError(f"{op}: {name} must have shape ({xs[1]},) (the channels of x.shape={xs}), "
                             f"got {value(arr).shape}")
    eps = _number(op, "eps", eps, 0.0, float("inf"), lo_open=True)
    return _group_norm(x, gamma, beta, num_groups=int(num_groups), eps=eps)
