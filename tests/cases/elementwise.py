import math

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch():
    import torch
    return torch


def _erf(x):
    return np.vectorize(math.erf)(x)


def _erfc(x):
    return np.vectorize(math.erfc)(x)


_X = rand(4, 5, away_from=(0.0,))
_ROWS = [
    ("negative", ops.negative, np.negative, lambda t: -t, _X),
    ("exp", ops.exp, np.exp, lambda t: t.exp(), _X),
    ("log", ops.log, np.log, lambda t: t.log(), rand(4, 5, positive=True)),
    ("sqrt", ops.sqrt, np.sqrt, lambda t: t.sqrt(), rand(4, 5, positive=True)),
    ("abs", ops.abs, np.abs, lambda t: t.abs(), _X),
    ("relu", ops.relu, lambda x: np.maximum(x, 0), lambda t: _torch().relu(t), _X),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda t: _torch().sigmoid(t), _X * 5),
    ("tanh", ops.tanh, np.tanh, lambda t: t.tanh(), _X),
    ("softplus", ops.softplus, lambda x: np.logaddexp(0, x), lambda t: _torch().nn.functional.softplus(t), _X * 5),
    ("gelu", ops.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), lambda t: _torch().nn.functional.gelu(t), _X),
    ("erf", ops.erf, _erf, lambda t: t.erf(), _X),
]

CASES = [OpCase(name, fn, (x,), (name,), numpy_ref=np_fn, torch_ref=t_fn) for name, fn, np_fn, t_fn, x in _ROWS]
CASES += [
    OpCase("gelu-tanh", lambda x: ops.gelu(x, approximate=True), (_X,), ("gelu",),
           torch_ref=lambda t: _torch().nn.functional.gelu(t, approximate="tanh")),
    OpCase("gelu-approximate-tanh-string", lambda x: ops.gelu(x, approximate="tanh"), (_X * 3,), ("gelu",),
           torch_ref=lambda t: _torch().nn.functional.gelu(t, approximate="tanh")),
    OpCase("gelu-approximate-none-string-tails", lambda x: ops.gelu(x, approximate="none"),
           (np.array([-9.0, -5.5, -3.0, -0.9, -0.5, 0.3, 0.8, 2.5, 6.0]),), ("gelu",),
           numpy_ref=lambda x: 0.5 * x * _erfc(-x / np.sqrt(2)),
           torch_ref=lambda t: _torch().nn.functional.gelu(t, approximate="none")),
    OpCase("erf-tails", ops.erf, (np.array([-6.5, -3.0, -1.2, -0.6, 0.4, 0.99, 1.01, 2.5, 5.0]),), ("erf",),
           numpy_ref=_erf, torch_ref=lambda t: t.erf()),
    OpCase("leaky_relu", lambda x: ops.leaky_relu(x, 0.2), (_X,), ("leaky_relu",),
           numpy_ref=lambda x: np.where(x > 0, x, 0.2 * x),
           torch_ref=lambda t: _torch().nn.functional.leaky_relu(t, 0.2)),
    OpCase("elu", lambda x: ops.elu(x, 0.7), (_X,), ("elu",),
           torch_ref=lambda t: _torch().nn.functional.elu(t, 0.7)),
    OpCase("clip", lambda x: ops.clip(x, -0.5, 0.8), (rand(4, 5, away_from=(-0.5, 0.8)),), ("clip",),
           numpy_ref=lambda x: np.clip(x, -0.5, 0.8), torch_ref=lambda t: t.clamp(-0.5, 0.8)),
    OpCase("softplus-large", ops.softplus, (np.array([-800.0, -30.0, 0.3, 30.0, 800.0]),), ("softplus",),
           numpy_ref=lambda x: np.logaddexp(0, x)),
    OpCase("sigmoid-large", ops.sigmoid, (np.array([-800.0, -30.0, 0.3, 30.0, 800.0]),), ("sigmoid",),
           torch_ref=lambda t: _torch().sigmoid(t)),
]
