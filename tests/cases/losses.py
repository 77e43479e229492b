"""Losses (fnnet.losses) against torch.nn.functional: cross_entropy (integer labels and probability
targets), mse_loss, binary_cross_entropy_with_logits, for every reduction."""

import numpy as np

import fnnet.losses as losses

from ._case import OpCase, rand


def _F():
    import torch.nn.functional as F
    return F


def _np_log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _np_reduce(v, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](v)


_REDUCED = {"mean": ("mean",), "sum": ("sum",), "none": ()}
_LABELS = np.array([2, 0, 4, 4, 1, 3])
_LOGITS = rand(6, 5)

CASES = []
for reduction in ("mean", "sum", "none"):
    CASES += [
        OpCase(f"softmax_cross_entropy-{reduction}",
               lambda x, y, r=reduction: losses.softmax_cross_entropy(x, y, reduction=r), (_LOGITS, _LABELS),
               ("softmax_cross_entropy",),
               numpy_ref=lambda x, y, r=reduction: _np_reduce(-_np_log_softmax(x)[np.arange(len(y)), y], r),
               torch_ref=lambda x, y, r=reduction: _F().cross_entropy(x, y.long(), reduction=r)),
        OpCase(f"softmax_cross_entropy_with_probs-{reduction}",
               lambda x, t, r=reduction: losses.softmax_cross_entropy_with_probs(x, t, reduction=r),
               (_LOGITS, rand(6, 5, seed=1, low=0.0, high=1.0)), ("softmax_cross_entropy_with_probs",),
               numpy_ref=lambda x, t, r=reduction: _np_reduce(-(t * _np_log_softmax(x)).sum(axis=1), r),
               torch_ref=lambda x, t, r=reduction: _F().cross_entropy(x, t, reduction=r)),
        OpCase(f"mse-{reduction}", lambda p, t, r=reduction: losses.mse(p, t, reduction=r),
               (rand(3, 4), rand(3, 4, seed=1)), ("subtract", "multiply") + _REDUCED[reduction],
               numpy_ref=lambda p, t, r=reduction: _np_reduce((p - t) ** 2, r),
               torch_ref=lambda p, t, r=reduction: _F().mse_loss(p, t, reduction=r)),
        OpCase(f"binary_cross_entropy_with_logits-{reduction}",
               lambda x, t, r=reduction: losses.binary_cross_entropy_with_logits(x, t, reduction=r),
               (rand(3, 4) * 4, rand(3, 4, seed=1, low=0.0, high=1.0)),
               ("softplus", "multiply", "subtract") + _REDUCED[reduction],
               numpy_ref=lambda x, t, r=reduction: _np_reduce(np.logaddexp(0, x) - x * t, r),
               torch_ref=lambda x, t, r=reduction: _F().binary_cross_entropy_with_logits(x, t, reduction=r)),
    ]

CASES += [
    OpCase("softmax_cross_entropy-int32-labels", losses.softmax_cross_entropy,
           (_LOGITS, _LABELS.astype(np.int32)), ("softmax_cross_entropy",),
           torch_ref=lambda x, y: _F().cross_entropy(x, y.long())),
    OpCase("softmax_cross_entropy-batch1", losses.softmax_cross_entropy, (rand(1, 3), np.array([1])),
           ("softmax_cross_entropy",), torch_ref=lambda x, y: _F().cross_entropy(x, y.long())),
    OpCase("softmax_cross_entropy-one-class", losses.softmax_cross_entropy, (rand(4, 1), np.zeros(4, np.int64)),
           ("softmax_cross_entropy",), torch_ref=lambda x, y: _F().cross_entropy(x, y.long())),
    OpCase("softmax_cross_entropy-extreme-logits", losses.softmax_cross_entropy,
           (np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]]), np.array([1, 2])),
           ("softmax_cross_entropy",), torch_ref=lambda x, y: _F().cross_entropy(x, y.long())),
    OpCase("softmax_cross_entropy_with_probs-one-hot-batch1", losses.softmax_cross_entropy_with_probs,
           (rand(1, 4), np.array([[0.0, 0.0, 1.0, 0.0]])), ("softmax_cross_entropy_with_probs",),
           torch_ref=lambda x, t: _F().cross_entropy(x, t)),
    OpCase("binary_cross_entropy_with_logits-extreme", losses.binary_cross_entropy_with_logits,
           (np.array([-800.0, -30.0, 0.3, 30.0, 800.0]), np.array([1.0, 0.0, 0.5, 1.0, 0.0])),
           ("softplus", "multiply", "subtract", "mean"),
           torch_ref=lambda x, t: _F().binary_cross_entropy_with_logits(x, t)),
]
