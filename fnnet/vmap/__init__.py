"""``vmap``: map a function over a batch axis of its arguments, and per-example gradients on top of it.

``fnnet.vmap(f)(xs)`` means ``stack([f(x) for x in xs])``.  It first runs ``f`` once on the whole batch:
the batched arguments are ``Batched`` values that ops validate as one example, each primitive runs its
batching rule, and ``grad`` inside ``f`` gives per-example gradients (see ``fnnet.autodiff.batching`` and
docs/design.md, "vmap").  When something in ``f`` has no batching rule (a primitive, a numpy function or
Python control flow on a batched value), ``vmap`` warns once (:class:`FallbackWarning`, naming it) and runs
``f`` once per example instead, which is correct for any function.
"""

from __future__ import annotations

import functools
import warnings

from ..autodiff import NoBatchingRule, grad
from ..autodiff.batching import scope_size
from ._axes import arg_axes, batch_size
from ._batched import run_batched
from ._loop import run_loop

__all__ = ["vmap", "per_example_grads", "FallbackWarning"]


class FallbackWarning(UserWarning):
    """``vmap`` ran the function once per example, because something in it has no batching rule."""


def _warn_fallback(where, reason):
    warnings.warn(f"{where}: {reason}; running the function once per example instead (correct, but a Python "
                  "loop: slower)", FallbackWarning, stacklevel=3)


def vmap(fn, in_axes=0, out_axes=0):
    """Vectorize ``fn`` over a batch axis: ``vmap(fn)(xs)[i] == fn(xs[i])``.

    Args:
        fn: a function of arrays and trees of arrays (it may call ops, ``grad``, layers' ``apply``).
        in_axes: where each positional argument's batch axis is: an int (every leaf of every argument),
            None (not batched: passed whole to every call), or a tuple with one entry per positional argument,
            each an int, None or a tree prefix of that argument (``{"weight": 0, "bias": None}``).
            Keyword arguments are never batched.
        out_axes: where the batch axis goes in each output leaf: an int, or a tree prefix of ``fn``'s output
            (None for an output that is the same for every example).

    Returns:
        ``batched(*args, **kwargs)``: ``fn``'s output tree, each leaf stacked along its ``out_axes``.  ``fn``
        runs once on the whole batch when every primitive it calls has a batching rule: the results equal
        the per-example loop's up to float rounding (one GEMM over every example's rows instead of one per
        example; bit-identical where each example is computed as in the loop: elementwise ops, reshapes,
        indexing, reductions, softmaxes, pooling, convolutions).  Otherwise it warns (``FallbackWarning``,
        naming what has no rule; once per call site) and runs ``fn`` once per example on views of the
        batched leaves, bit-identical to that loop; so does ``grad(vmap(f))`` (traced stacking).  ``fn`` may
        thus run on the batch and then per example: it must be pure, as everything ``grad`` differentiates.

    Raises:
        ValueError: an ``in_axes``/``out_axes`` that is not a prefix of the arguments/output, an axis out of
            range, batched arguments with different batch sizes, no batched argument, batch size 0, or outputs
            whose structure differs between examples.  Each message names the argument or output leaf.

    Example::

        per_example = fnnet.vmap(fnnet.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    """
    where = f"vmap({getattr(fn, '__name__', 'fn')})"

    @functools.wraps(fn)
    def batched(*args, **kwargs):
        axes = arg_axes(where, in_axes, args)
        n = batch_size(where, args, axes)
        if scope_size():  # inside another vmap's batched run: that one runs per example, this one batched
            raise NoBatchingRule("vmap inside a vmapped function")
        try:
            return run_batched(where, fn, args, kwargs, axes, n, out_axes)
        except NoBatchingRule as e:
            _warn_fallback(where, str(e))
            failure = None
        except Exception as e:  # the loop re-raises it if the function itself is at fault
            failure = e
        out = run_loop(where, fn, args, kwargs, axes, n, out_axes)
        if failure is not None:
            _warn_fallback(where, f"the batched run raised {type(failure).__name__}: {failure}")
        return out

    return batched


def per_example_grads(loss, params, *batched_args, **kwargs):
    """Gradients of ``loss(params, *example)`` for each example: ``vmap(grad(loss), in_axes=(None, 0, ...))``.

    Args:
        loss: ``loss(params, *example_args, **kwargs) -> scalar`` for ONE example (no batch axis).
        params: the params tree (not batched).
        *batched_args: arrays (or trees) with the examples along axis 0, e.g. ``x: (batch, ...)``,
            ``y: (batch,)``.
        **kwargs: passed to every call of ``loss`` unchanged.

    Returns:
        The params tree with a leading batch axis on every leaf: ``leaf.shape == (batch, *param.shape)``.
    """
    if not batched_args:
        raise ValueError("per_example_grads: give at least one batched argument after params, e.g. "
                         "per_example_grads(loss, params, x, y)")
    fn = vmap(grad(loss), in_axes=(None,) + (0,) * len(batched_args))
    return fn(params, *batched_args, **kwargs)
