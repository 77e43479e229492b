"""batch_norm, layer_norm, rms_norm and group_norm rows (the table checks ``y``; running statistics are tested
in tests/test_layer_ops_errors.py against torch.nn.BatchNorm2d)."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand

EPS = 1e-5


def _F():
    import torch
    return torch.nn.functional


def _bn_train(x, g, b, rm, rv):
    return ops.batch_norm(x, g, b, rm, rv, train=True)[0]


def _bn_train_numpy(x, g, b, rm, rv):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS) * g.reshape(shape) + b.reshape(shape)


def _bn_train_torch(x, g, b, rm, rv):
    return _F().batch_norm(x, rm.detach().clone(), rv.detach().clone(), g, b, training=True, momentum=0.1, eps=EPS)


def _bn_eval(x, g, b, rm, rv):
    return ops.batch_norm(x, g, b, rm, rv, train=False)[0]


def _bn_eval_ref(x, g, b, rm, rv):  # numpy arrays or torch tensors; differentiable in all five
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - rm.reshape(shape)) / ((rv + EPS) ** 0.5).reshape(shape) * g.reshape(shape) + b.reshape(shape)


def _bn_args(*shape):
    c = shape[1]
    return (rand(*shape) * 2 + 0.5, rand(c, seed=1), rand(c, seed=2), rand(c, seed=3), rand(c, seed=4, positive=True))


def _ln_numpy(x, g=None, b=None, k=1):
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + EPS)
    return y * (1 if g is None else g) + (0 if b is None else b)


def _rms_numpy(x, g=None, k=1, eps=np.finfo(np.float64).eps):
    axes = tuple(range(x.ndim - k, x.ndim))
    return x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps) * (1 if g is None else g)


def _gn_numpy(x, groups, g=None, b=None, eps=EPS):
    n, c = x.shape[:2]
    xg = x.reshape(n, groups, -1)
    y = ((xg - xg.mean(axis=2, keepdims=True)) / np.sqrt(xg.var(axis=2, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * (1 if g is None else g.reshape(shape)) + (0 if b is None else b.reshape(shape))


CASES = [
    OpCase("batch_norm-train-4d", _bn_train, _bn_args(3, 4, 3, 2), ("batch_norm",), numpy_ref=_bn_train_numpy,
           torch_ref=_bn_train_torch, grad_argnums=(0, 1, 2)),
    OpCase("batch_norm-train-2d", _bn_train, _bn_args(5, 3), ("batch_norm",), numpy_ref=_bn_train_numpy,
           torch_ref=_bn_train_torch, grad_argnums=(0, 1, 2)),
    OpCase("batch_norm-train-noaffine", lambda x, rm, rv: ops.batch_norm(x, None, None, rm, rv, train=True)[0],
           (rand(2, 3, 2, 3), rand(3, seed=3), rand(3, seed=4, positive=True)), ("batch_norm",),
           torch_ref=lambda x, rm, rv: _F().batch_norm(x, rm.detach().clone(), rv.detach().clone(), training=True),
           grad_argnums=(0,)),
    OpCase("batch_norm-train-no-running-stats", lambda x, g, b: ops.batch_norm(x, g, b, None, None, train=True)[0],
           (rand(4, 3), rand(3, seed=1), rand(3, seed=2)), ("batch_norm",),
           torch_ref=lambda x, g, b: _F().batch_norm(x, None, None, g, b, training=True)),
    OpCase("batch_norm-eval-4d", _bn_eval, _bn_args(2, 3, 3, 2), ("batch_norm",), numpy_ref=_bn_eval_ref,
           torch_ref=_bn_eval_ref),
    OpCase("layer_norm-3d", lambda x, g, b: ops.layer_norm(x, g, b), (rand(2, 3, 6), rand(6, seed=1), rand(6, seed=2)),
           ("layer_norm",), numpy_ref=_ln_numpy,
           torch_ref=lambda x, g, b: _F().layer_norm(x, (6,), g, b, eps=EPS)),
    OpCase("layer_norm-many-rows-noaffine", lambda x: ops.layer_norm(x, None, None), (rand(70, 5) * 3 + 1,),
           ("layer_norm",), numpy_ref=_ln_numpy, torch_ref=lambda x: _F().layer_norm(x, (5,), eps=EPS)),
    OpCase("layer_norm-many-rows", lambda x, g, b: ops.layer_norm(x, g, b),
           (rand(70, 4), rand(4, seed=1), rand(4, seed=2)), ("layer_norm",), numpy_ref=_ln_numpy,
           torch_ref=lambda x, g, b: _F().layer_norm(x, (4,), g, b, eps=EPS)),
    OpCase("layer_norm-2-trailing-axes", lambda x, g, b: ops.layer_norm(x, g, b, normalized_ndim=2),
           (rand(3, 4, 5) * 2 - 1, rand(4, 5, seed=1), rand(4, 5, seed=2)), ("layer_norm",),
           numpy_ref=lambda x, g, b: _ln_numpy(x, g, b, k=2),
           torch_ref=lambda x, g, b: _F().layer_norm(x, (4, 5), g, b, eps=EPS)),
    OpCase("layer_norm-all-axes-batch1", lambda x, g: ops.layer_norm(x, g, None, normalized_ndim=3),
           (rand(1, 3, 2), rand(1, 3, 2, seed=1)), ("layer_norm",), numpy_ref=lambda x, g: _ln_numpy(x, g, k=3),
           torch_ref=lambda x, g: _F().layer_norm(x, (1, 3, 2), g, eps=EPS)),
    OpCase("batch_norm-train-3d", _bn_train, _bn_args(4, 3, 5), ("batch_norm",), numpy_ref=_bn_train_numpy,
           torch_ref=_bn_train_torch, grad_argnums=(0, 1, 2)),
    OpCase("batch_norm-eval-3d-batch1", _bn_eval, _bn_args(1, 3, 5), ("batch_norm",), numpy_ref=_bn_eval_ref,
           torch_ref=_bn_eval_ref),
    OpCase("rms_norm-default-eps", lambda x, g: ops.rms_norm(x, g), (rand(4, 7), rand(7, seed=1)), ("rms_norm",),
           numpy_ref=_rms_numpy, torch_ref=lambda x, g: _F().rms_norm(x, (7,), g)),
    OpCase("rms_norm-2-trailing-axes-eps", lambda x, g: ops.rms_norm(x, g, eps=1e-3, normalized_ndim=2),
           (rand(2, 3, 4, 5) * 0.3, rand(4, 5, seed=1)), ("rms_norm",),
           numpy_ref=lambda x, g: _rms_numpy(x, g, k=2, eps=1e-3),
           torch_ref=lambda x, g: _F().rms_norm(x, (4, 5), g, eps=1e-3)),
    OpCase("rms_norm-many-rows-noaffine", lambda x: ops.rms_norm(x, None, eps=1e-6), (rand(70, 5) + 1,),
           ("rms_norm",), numpy_ref=lambda x: _rms_numpy(x, eps=1e-6),
           torch_ref=lambda x: _F().rms_norm(x, (5,), eps=1e-6)),
    OpCase("group_norm-4d", lambda x, g, b: ops.group_norm(x, 3, g, b),
           (rand(2, 6, 3, 4) * 2 + 1, rand(6, seed=1), rand(6, seed=2)), ("group_norm",),
           numpy_ref=lambda x, g, b: _gn_numpy(x, 3, g, b), torch_ref=lambda x, g, b: _F().group_norm(x, 3, g, b)),
    OpCase("group_norm-3d-batch1-instance", lambda x, g, b: ops.group_norm(x, 5, g, b),
           (rand(1, 5, 7), rand(5, seed=1), rand(5, seed=2)), ("group_norm",),
           numpy_ref=lambda x, g, b: _gn_numpy(x, 5, g, b),
           torch_ref=lambda x, g, b: _F().instance_norm(x, weight=g, bias=b)),
    OpCase("group_norm-2d-one-group-noaffine", lambda x: ops.group_norm(x, 1, None, None), (rand(3, 5),),
           ("group_norm",), numpy_ref=lambda x: _gn_numpy(x, 1), torch_ref=lambda x: _F().group_norm(x, 1)),
    OpCase("group_norm-5d-gamma-only", lambda x, g: ops.group_norm(x, 2, g, None, eps=1e-3),
           (rand(2, 4, 2, 3, 2), rand(4, seed=1)), ("group_norm",),
           numpy_ref=lambda x, g: _gn_numpy(x, 2, g, eps=1e-3),
           torch_ref=lambda x, g: _F().group_norm(x, 2, g, eps=1e-3)),
]
