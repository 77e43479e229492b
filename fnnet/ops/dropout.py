"""``dropout``: inverted dropout with an explicit random key (the mask comes from :mod:`fnnet.random`)."""

from __future__ import annotations

import numbers

import numpy as np

from .. import kernels as K
from .. import random as fnrandom
from ..autodiff import primitive
from ._validate import check_float, contiguous

__all__ = ["dropout"]

_CALL = "dropout(x, key=fnnet.random.key(0), rate=0.5)"


def _dropout_fwd(x, *, key, rate):
    keep = fnrandom.bernoulli(key, x.shape, 1.0 - rate).view(np.uint8).reshape(-1)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    y = K.dropout_apply(contiguous(x).reshape(-1), keep, scale)
    return y.reshape(x.shape), (keep, scale)


def _dropout_bwd(res, g, *, key, rate):
    keep, scale = res
    return (K.dropout_apply(contiguous(g).reshape(-1), keep, scale).reshape(g.shape),)


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
    op = "dropout"
    check_float(op, "x", x)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"{op}: rate expected a float in [0, 1) (the probability of dropping), got {rate!r}")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{op}: rate is the probability of dropping and must be in [0, 1), got {rate}")
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{op}: train expected a bool, got {train!r}")
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError(f"{op}: a random key is needed when train=True; call {_CALL} (split a fresh key per step)")
    if not (isinstance(key, np.ndarray) and key.dtype == np.uint32 and key.shape == (2,)):
        got = f"an array of shape {key.shape} and dtype {key.dtype}" if isinstance(key, np.ndarray) else repr(key)
        raise TypeError(f"{op}: key must be a (2,) uint32 array, got {got}; call {_CALL}")
    return _dropout(x, key=key, rate=rate)
