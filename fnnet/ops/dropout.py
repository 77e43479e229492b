"""``dropout`` and ``channel_dropout``: inverted dropout with an explicit random key (the mask comes from
:mod:`fnnet.random`).  Both are one primitive: the keep-mask is drawn in ``mask_shape`` (``x.shape``, or
``(N, C, 1, ...)`` for whole channels) and broadcast over ``x``; only the drawn mask is kept for the backward."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from .. import random as fnrandom
from ..autodiff import primitive, recording
from ._validate import as_number, check_float, contiguous, value

__all__ = ["dropout", "channel_dropout"]

_CALL = "{op}(x, key=fnnet.random.key(0), rate=0.5)"


def _flat_mask(keep, shape):
    """The uint8 keep-mask drawn in a broadcastable shape, as a flat ``prod(shape)`` array."""
    if keep.shape != shape:
        keep = np.broadcast_to(keep, shape)
    return np.ascontiguousarray(keep).view(np.uint8).reshape(-1)


def _dropout_fwd(x, *, key, rate, mask_shape):
    keep = fnrandom.bernoulli(key, mask_shape, 1.0 - rate)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    y = K.dropout_apply(contiguous(x).reshape(-1), _flat_mask(keep, x.shape), scale)
    return y.reshape(x.shape), (keep, scale)


def _dropout_bwd(res, g, *, key, rate, mask_shape):
    keep, scale = res
    return (K.dropout_apply(contiguous(g).reshape(-1), _flat_mask(keep, g.shape), scale).reshape(g.shape),)


_dropout = primitive("dropout", _dropout_fwd, _dropout_bwd, argnames=("x",))


def dropout(x, key=None, rate=0.5, *, train=True):
    """Zero each element with probability ``rate`` and scale the survivors by ``1 / (1 - rate)``.

    ``rate`` is the probability of DROPPING (PyTorch's ``p``).  Inverted scaling keeps the expected value, so
    evaluation needs no rescaling: ``train=False`` (or ``rate == 0``) returns ``x`` itself.  The mask is
    ``fnnet.random.bernoulli(key, x.shape, 1 - rate)``: the same key gives the same mask, and the backward
    multiplies the cotangent by that same mask and scale.

    Args:
        x: any shape, float32 or float64.
        key: ``(2,)`` uint32 key from ``fnnet.random.key``/``split``; required when training with ``rate > 0``.
        rate: probability of dropping, in ``[0, 1)``.
        train: keyword-only; False makes this the identity.

    Returns:
        An array shaped like ``x`` (``x`` itself when nothing is dropped).

    Raises:
        TypeError: non-float ``x``, non-number ``rate``, a key that is not a (2,) uint32 array.
        ValueError: ``rate`` outside ``[0, 1)``, or no key when training (the message shows the call).
    """
    key = _traced_key(key)
    x, active = _active("dropout", x, key, rate, train)
    if not active:
        return x
    return _dropout(x, key=key, rate=float(rate), mask_shape=value(x).shape)


def channel_dropout(x, key=None, rate=0.5, *, train=True):
    """Zero whole channels: each ``(sample, channel)`` slice ``x[n, c]`` is dropped with probability ``rate``
    and the surviving channels are scaled by ``1 / (1 - rate)``, like ``torch.nn.functional.dropout2d`` on
    ``(N, C, H, W)`` (and ``dropout1d`` on ``(N, C, L)``, ``dropout3d`` on ``(N, C, D, H, W)``).

    The mask is ``fnnet.random.bernoulli(key, (N, C, 1, ...), 1 - rate)``: the same key gives the same mask.

    Args:
        x: ``(N, C, *spatial)`` with at least one spatial axis, float32 or float64.
        key, rate, train: as :func:`dropout`.

    Returns:
        An array shaped like ``x`` (``x`` itself when nothing is dropped).

    Raises:
        TypeError, ValueError: as :func:`dropout`; ValueError also when ``x`` has fewer than 3 dimensions.
    """
    op = "channel_dropout"
    key = _traced_key(key)
    x, active = _active(op, x, key, rate, train)
    xs = value(x).shape
    if len(xs) < 3:
        raise ValueError(f"{op}: x must be (N, C, *spatial) with at least 3 dimensions, got shape {xs}; "
                         "use dropout for (N, features) inputs")
    if not active:
        return x
    return _dropout(x, key=key, rate=float(rate), mask_shape=xs[:2] + (1,) * (len(xs) - 2))


def _traced_key(key):
    """A key traced by ``fnnet.jit`` as the plain value its kernels read (the replay passes each call's key)."""
    value = recording.jit_index(key)
    return key if value is None else value


def _active(op, x, key, rate, train):
    """Validate a dropout call: ``(x checked, active)``, ``active`` False when the call is the identity
    (evaluation or ``rate == 0``)."""
    x = check_float(op, "x", x)
    rate = as_number(op, "rate", rate, "a float in [0, 1) (the probability of dropping)")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{op}: rate is the probability of dropping and must be in [0, 1), got {rate}")
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{op}: train expected a bool, got {train!r}")
    if not train or rate == 0.0:
        return x, False
    if key is None:
        raise ValueError(f"{op}: a random key is needed when train=True; call {_CALL.format(op=op)} "
                         "(split a fresh key per step)")
    if not (isinstance(key, np.ndarray) and key.dtype == np.uint32 and key.shape == (2,)):
        got = f"an array of shape {key.shape} and dtype {key.dtype}" if isinstance(key, np.ndarray) else repr(key)
        raise TypeError(f"{op}: key must be a (2,) uint32 array, got {got}; call {_CALL.format(op=op)}")
    return x, True
