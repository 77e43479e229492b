"""Loss functions: ``softmax_cross_entropy`` (integer labels), ``softmax_cross_entropy_with_probs``,
``mse``, ``binary_cross_entropy_with_logits``, and the non-differentiable ``accuracy``.

Every loss takes ``reduction``: ``"mean"`` (default; the mean over all loss terms, which for the
cross-entropies is the mean over the batch), ``"sum"``, or ``"none"`` (the unreduced terms).

The two softmax cross-entropies are single fused primitives over Numba kernels (one pass computes the
per-row losses and saves the softmax/log-softmax the backward needs; the batch sum is taken serially in row
order, so it is deterministic).  ``mse`` and ``binary_cross_entropy_with_logits`` are compositions of ops.
"""

from __future__ import annotations

import functools

import numpy as np

from . import kernels as K
from . import ops
from .autodiff import Batched, Tracer, primitive, recording
from .ops._validate import check_array, check_float, check_same_dtype, contiguous, indices_in_range, value

__all__ = [
    "softmax_cross_entropy", "softmax_cross_entropy_with_probs", "mse", "binary_cross_entropy_with_logits",
    "accuracy",
]

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction expected one of 'mean', 'sum', 'none', got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _reduced_output(losses, total, reduction, dtype):
    """The fused forward's output for ``reduction``, and the per-row scale of the backward."""
    n = losses.shape[0]
    if reduction == "none":
        return losses, 1.0
    if reduction == "sum":
        return np.asarray(total, dtype=dtype), 1.0
    scale = 1.0 / n if n else np.nan
    return np.asarray(total * scale, dtype=dtype), scale


# ------------------------------------------------------------------------ softmax cross-entropy, labels

def _softmax_cross_entropy_fwd(logits, labels, reduction):
    losses, total, probs = K.softmax_cross_entropy_fwd(contiguous(logits), labels)
    out, scale = _reduced_output(losses, total, reduction, logits.dtype)
    return out, (probs, labels, scale)


def _softmax_cross_entropy_bwd(res, g, reduction):
    probs, labels, scale = res
    g = contiguous(g).reshape(-1)
    stride = 1 if reduction == "none" else 0
    return K.softmax_cross_entropy_bwd(probs, labels, g, stride, g.dtype.type(scale)), None


_softmax_cross_entropy = primitive(
    "softmax_cross_entropy", _softmax_cross_entropy_fwd, _softmax_cross_entropy_bwd, argnames=("logits", "labels")
)


def _check_logits(op, logits):
    """``logits`` checked (see ``check_float``) and 2-D."""
    logits = check_float(op, "logits", logits)
    if value(logits).ndim != 2:
        raise ValueError(
            f"{op}: logits expected 2 dimensions (batch, classes), got shape {value(logits).shape}; "
            "flatten extra axes with logits.reshape(-1, num_classes)"
        )
    return logits


def _check_labels(op, labels, n, num_classes):
    """``labels`` as a plain int32/int64 array of ``n`` class indices (see ``check_array``)."""
    if type(labels) is Tracer:
        plain = recording.jit_index(labels)  # fnnet.jit's traced labels: checked now and on every replay
        if plain is None:
            raise TypeError(f"{op}: labels must be a plain integer numpy array, got a traced array")
        _check_labels(op, plain, n, num_classes)
        # dtype and shape are fixed by the plan's signature: a replay needs only the range checked again
        check = functools.partial(_check_label_range, op, num_classes)
        check.fnnet_quick_check = functools.partial(indices_in_range, num_classes)
        recording.check(check, plain)
        return plain
    if type(labels) is Batched:  # fnnet.vmap: example 0 as usual, then every example's labels as one array
        _check_labels(op, labels.value[0], n, num_classes)
        flat = _check_labels(op, labels.value.reshape(-1), labels.value.size, num_classes)
        return Batched(flat.reshape(labels.value.shape))
    labels = check_array(op, "labels", labels)
    if type(labels) is not np.ndarray or labels.dtype not in (np.int32, np.int64):
        got = labels.dtype if type(labels) is np.ndarray else type(labels).__name__
        raise TypeError(
            f"{op}: labels expected an int32 or int64 array of class indices, got {got}; convert with "
            "labels.astype(np.int64) (for one-hot or probability targets use softmax_cross_entropy_with_probs)"
        )
    if labels.shape != (n,):
        raise ValueError(f"{op}: labels expected shape ({n},) (one class index per row of logits), got {labels.shape}")
    _check_label_range(op, num_classes, labels)
    return labels


def _check_label_range(op, num_classes, labels):
    """IndexError naming the first label outside ``[0, num_classes)`` (an int32/int64 vector)."""
    if not indices_in_range(num_classes, labels):
        i = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
        raise IndexError(
            f"{op}: labels[{i}] = {int(labels[i])} is out of range for {num_classes} classes; labels must be "
            f"in 0..{num_classes - 1}"
        )


def softmax_cross_entropy(logits, labels, reduction="mean"):
    """Cross-entropy between ``softmax(logits)`` and integer class labels, fused in one kernel.

    ``loss_i = logsumexp(logits[i]) - logits[i, labels[i]]`` (``torch.nn.functional.cross_entropy``).
    The backward is ``(softmax(logits) - onehot(labels)) * g`` (divided by the batch size for "mean").

    Args:
        logits: ``(batch, classes)`` float16/float32/float64.
        labels: ``(batch,)`` int32/int64 class indices in ``[0, classes)``.
        reduction: "mean" (over the batch), "sum" or "none".

    Returns:
        A scalar ``()`` for "mean"/"sum", ``(batch,)`` for "none"; ``logits``'s dtype.

    Raises:
        TypeError: non-float logits; labels not an int32/int64 array.
        ValueError: wrong ndim or shapes; an unknown reduction.
        IndexError: a label out of range (the message names the value and its position).
    """
    op = "softmax_cross_entropy"
    logits = _check_logits(op, logits)
    n, c = value(logits).shape
    labels = _check_labels(op, labels, n, c)
    _check_reduction(op, reduction)
    return _softmax_cross_entropy(logits, labels.astype(np.int64, copy=False), reduction=reduction)


# ------------------------------------------------------------------ softmax cross-entropy, probabilities

def _softmax_cross_entropy_probs_fwd(logits, targets, reduction):
    t = contiguous(targets)
    losses, total, logp = K.softmax_cross_entropy_probs_fwd(contiguous(logits), t)
    out, scale = _reduced_output(losses, total, reduction, logits.dtype)
    return out, (logp, t, scale)


def _softmax_cross_entropy_probs_bwd(res, g, reduction):
    logp, t, scale = res
    g = contiguous(g).reshape(-1)
    stride = 1 if reduction == "none" else 0
    return K.softmax_cross_entropy_probs_bwd(logp, t, g, stride, g.dtype.type(scale))


_softmax_cross_entropy_with_probs = primitive(
    "softmax_cross_entropy_with_probs", _softmax_cross_entropy_probs_fwd, _softmax_cross_entropy_probs_bwd,
    argnames=("logits", "targets"),
)


def softmax_cross_entropy_with_probs(logits, targets, reduction="mean"):
    """Cross-entropy between ``softmax(logits)`` and target distributions (one-hot or soft labels).

    ``loss_i = -sum_j targets[i, j] * log_softmax(logits)[i, j]`` (``torch.nn.functional.cross_entropy``
    with probability targets).  Targets are not required to sum to 1; both arguments are differentiable.

    Args:
        logits: ``(batch, classes)`` float16/float32/float64.
        targets: ``(batch, classes)``, the same dtype.
        reduction: "mean" (over the batch), "sum" or "none".

    Returns:
        A scalar ``()`` for "mean"/"sum", ``(batch,)`` for "none".

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: shapes differ; an unknown reduction.
    """
    op = "softmax_cross_entropy_with_probs"
    logits = _check_logits(op, logits)
    targets = check_float(op, "targets", targets)
    check_same_dtype(op, logits=logits, targets=targets)
    if value(targets).shape != value(logits).shape:
        raise ValueError(
            f"{op}: targets expected the shape of logits {value(logits).shape}, got {value(targets).shape}; "
            "for integer class indices use softmax_cross_entropy"
        )
    _check_reduction(op, reduction)
    return _softmax_cross_entropy_with_probs(logits, targets, reduction=reduction)


# -------------------------------------------------------------------------------- elementwise losses

def _check_pair(op, a_name, a, b_name, b, reduction):
    check_float(op, a_name, a)
    check_float(op, b_name, b)
    check_same_dtype(op, **{a_name: a, b_name: b})
    if value(a).shape != value(b).shape:
        raise ValueError(
            f"{op}: {b_name} expected the shape of {a_name} {value(a).shape}, got {value(b).shape}; "
            "losses do not broadcast, reshape one of them"
        )
    _check_reduction(op, reduction)


def mse(pred, target, reduction="mean"):
    """Squared error ``(pred - target)**2``, reduced (``torch.nn.functional.mse_loss``).

    Args:
        pred, target: float arrays of one shape and dtype (both differentiable).
        reduction: "mean" (over every element), "sum" or "none".

    Returns:
        A scalar for "mean"/"sum", ``pred``'s shape for "none".

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: shapes differ; an unknown reduction.
    """
    _check_pair("mse", "pred", pred, "target", target, reduction)
    d = ops.subtract(pred, target)
    return _reduce(ops.multiply(d, d), reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``targets`` in [0, 1], without overflow.

    ``loss = max(x, 0) - x * t + log1p(exp(-|x|))``, written as ``softplus(x) - x * t`` (fnnet's softplus
    kernel evaluates exactly that stable formula, and its derivative ``sigmoid(x)`` is exact at 0).
    Matches ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Args:
        logits, targets: float arrays of one shape and dtype (both differentiable).
        reduction: "mean" (over every element), "sum" or "none".

    Returns:
        A scalar for "mean"/"sum", ``logits``'s shape for "none".

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: shapes differ; an unknown reduction.
    """
    _check_pair("binary_cross_entropy_with_logits", "logits", logits, "targets", targets, reduction)
    loss = ops.subtract(ops.softplus(logits), ops.multiply(logits, targets))
    return _reduce(loss, reduction)


# ------------------------------------------------------------------------------------------- metrics

def accuracy(logits, labels) -> float:
    """Fraction of rows whose arg-max of ``logits`` equals ``labels`` (not differentiable).

    Args:
        logits: ``(batch, classes)`` array (or traced array).
        labels: ``(batch,)`` integer class indices.

    Returns:
        A Python float in [0, 1]; NaN for an empty batch.

    Raises:
        TypeError: labels not integers.
        ValueError: wrong ndim or shapes.
    """
    x = np.asarray(value(logits))
    y = np.asarray(value(labels))
    if x.ndim != 2:
        raise ValueError(f"accuracy: logits expected 2 dimensions (batch, classes), got shape {x.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"accuracy: labels expected integer class indices, got dtype {y.dtype}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"accuracy: labels expected shape ({x.shape[0]},), got {y.shape}")
    if x.shape[0] == 0:
        return float("nan")
    if x.shape[1] == 0:
        raise ValueError(f"accuracy: logits expected at least 1 class, got shape {x.shape}; there is no arg-max "
                         "over 0 classes")
    return float(np.mean(np.argmax(x, axis=1) == y))


# ---------------------------------------------------------------------- fnnet.vmap batching rules
# Each example's (rows, classes) logits: every example's rows go through the fused kernels at once.

def _example_rows(v, batched, n):
    """``v (rows, ...)`` of every example as one ``(n * rows, ...)`` array (an unbatched ``v`` repeated)."""
    v = v if batched else np.broadcast_to(v, (n, *v.shape))
    return contiguous(v).reshape(n * v.shape[1], *v.shape[2:])


def _example_totals(losses, reduction, n):
    """Each example's reduced loss from the per-row ``losses``, and the per-row scale of the backward."""
    per_example = losses.reshape(n, -1)
    rows = per_example.shape[1]
    if reduction == "none":
        return per_example, 1.0
    scale = 1.0 if reduction == "sum" else (1.0 / rows if rows else np.nan)
    # summed serially in float64 in row order, as the kernel sums one example's rows
    totals = np.cumsum(per_example, axis=1, dtype=np.float64)[:, -1] if rows else np.zeros(n)
    return (totals * scale).astype(losses.dtype), scale


def _row_cotangent(g, reduction, rows):
    """The per-row cotangent of the example losses' cotangent ``g``."""
    return contiguous(g).reshape(-1) if reduction == "none" else np.repeat(g, rows)


def _batched_rows(values, batched):
    """``(examples, rows per example, logits rows, target rows)`` of a batched cross-entropy's inputs."""
    logits, targets = values
    n = (logits if batched[0] else targets).shape[0]
    return n, logits.shape[-2], _example_rows(logits, batched[0], n), _example_rows(targets, batched[1], n)


def _softmax_cross_entropy_batch_fwd(values, batched, reduction):
    n, rows, logit_rows, label_rows = _batched_rows(values, batched)
    losses, _, probs = K.softmax_cross_entropy_fwd(logit_rows, label_rows)
    out, scale = _example_totals(losses, reduction, n)
    return out, (probs, label_rows, scale, rows)


def _softmax_cross_entropy_batch_vjp(res, g, batched, needs, reduction):
    probs, labels, scale, rows = res
    g_rows = _row_cotangent(g, reduction, rows)
    d_logits = K.softmax_cross_entropy_bwd(probs, labels, g_rows, 1, g.dtype.type(scale))
    return d_logits.reshape(g.shape[0], rows, -1), None


_softmax_cross_entropy.defbatch(_softmax_cross_entropy_batch_fwd, _softmax_cross_entropy_batch_vjp)


def _softmax_cross_entropy_probs_batch_fwd(values, batched, reduction):
    n, rows, logit_rows, t = _batched_rows(values, batched)
    losses, _, logp = K.softmax_cross_entropy_probs_fwd(logit_rows, t)
    out, scale = _example_totals(losses, reduction, n)
    return out, (logp, t, scale, rows)


def _softmax_cross_entropy_probs_batch_vjp(res, g, batched, needs, reduction):
    logp, t, scale, rows = res
    d_logits, d_targets = K.softmax_cross_entropy_probs_bwd(logp, t, _row_cotangent(g, reduction, rows), 1,
                                                            g.dtype.type(scale))
    return d_logits.reshape(g.shape[0], rows, -1), d_targets.reshape(g.shape[0], rows, -1)


_softmax_cross_entropy_with_probs.defbatch(_softmax_cross_entropy_probs_batch_fwd,
                                           _softmax_cross_entropy_probs_batch_vjp)
