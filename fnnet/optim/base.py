"""The optimizer protocol (``GradientTransformation``), ``apply_updates``, gradient accumulation, and the
leaf-level helpers the transformations share.

An optimizer is a pair of pure functions::

    opt = fnnet.optim.adam(1e-3)
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = fnnet.optim.apply_updates(params, updates)

Optimizer states are ``NamedTuple`` records of trees (so :mod:`fnnet.tree` and :mod:`fnnet.io` see their
arrays); the step counter is a 0-d int64 array inside the state.  Nothing is ever modified in place:
every update returns new arrays.
"""

from __future__ import annotations

import concurrent.futures
import numbers
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import kernels as K
from .. import tree

__all__ = [
    "GradientTransformation", "EmptyState", "apply_updates", "accumulate", "accumulate_gradients",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT_TYPES = (np.float32, np.float64)


class GradientTransformation(NamedTuple):
    """An optimizer (or a building block of one): two pure functions.

    Attributes:
        init: ``init(params) -> opt_state``.
        update: ``update(grads, opt_state, params=None) -> (updates, new_opt_state)``; ``updates`` has
            the structure and dtypes of ``grads`` and is *added* to the params by :func:`apply_updates`.
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple]


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


# ------------------------------------------------------------------------------------------- helpers


def count_init() -> np.ndarray:
    """A fresh step counter: a 0-d int64 array holding 0."""
    return np.zeros((), np.int64)


def count_next(count) -> np.ndarray:
    """``count + 1`` as a new 0-d int64 array."""
    return np.asarray(int(count) + 1, np.int64)


def check_hyper(where: str, name: str, value, *, low=0.0, high=None, low_open=False, high_open=False) -> float:
    """A float hyperparameter in the given range, else ValueError (TypeError when not a number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = not np.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        interval = (f"{'(' if low_open or low is None else '['}{'-inf' if low is None else low}, "
                    f"{'inf' if high is None else high}{')' if high_open or high is None else ']'}")
        raise ValueError(f"{where}: {name} must be a finite number in {interval}, got {value!r}")
    return v


def check_learning_rate(where: str, learning_rate):
    """A non-negative float, or a callable schedule ``step -> float``."""
    if callable(learning_rate):
        return learning_rate
    return check_hyper(where, "learning_rate", learning_rate)


def learning_rate_at(where: str, learning_rate, count) -> float:
    """The learning rate for step ``count`` (a float, or the schedule evaluated at ``int(count)``)."""
    if not callable(learning_rate):
        return learning_rate
    lr = learning_rate(int(count))
    if isinstance(lr, np.ndarray) and lr.shape == ():
        lr = lr.item()
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not np.isfinite(lr):
        raise ValueError(f"{where}: the learning-rate schedule returned {lr!r} at step {int(count)}; "
                         "a schedule must return a finite float")
    return float(lr)


def check_state(where: str, state, cls):
    """Raise TypeError unless ``state`` is a ``cls`` record (the state this transformation's init made)."""
    if not isinstance(state, cls):
        raise TypeError(f"{where}: opt_state must be the {cls.__name__} made by this optimizer's init(params), got "
                        f"{type(state).__name__}; a state made by another optimizer or chain cannot be reused")
    return state


def _path_name(path: str) -> str:
    return repr(path) if path else "the root"


def float_leaves(where: str, name: str, t, dtypes=None):
    """Flatten ``t``; every leaf must be a float32/float64 ndarray (of ``dtypes[i]`` when given).

    Returns ``(leaves, treedef)``.  Raises TypeError naming the leaf's path.
    """
    leaves, treedef = tree.flatten(t)
    _check_float_leaves(where, name, t, leaves, dtypes)
    return leaves, treedef


def _check_float_leaves(where, name, t, leaves, dtypes):
    paths = None
    for i, x in enumerate(leaves):
        if type(x) is np.ndarray and x.dtype.type in _FLOAT_TYPES and (dtypes is None or x.dtype == dtypes[i]):
            continue  # the common case, checked cheaply
        problem = None
        if type(x) is not np.ndarray and not isinstance(x, np.ndarray):
            problem = f"must be a numpy array, got {type(x).__name__}"
        elif x.dtype not in _FLOATS:
            hint = ("; float16 is a storage type: keep float32 master params and grads"
                    if x.dtype == np.float16 else "")
            problem = f"must be a float32 or float64 array, got dtype {x.dtype}{hint}"
        elif dtypes is not None and x.dtype != dtypes[i]:
            problem = (f"has dtype {x.dtype} but the params/grads leaf has dtype {dtypes[i]}; "
                       "fnnet never promotes silently, cast one of them")
        if problem is not None:
            paths = paths or tree.paths(t)
            raise TypeError(f"{where}: {name} leaf at {_path_name(paths[i])} {problem}")


def matching_leaves(where: str, name: str, t, treedef, like_leaves, grads_name="grads"):
    """The leaves of ``t``, which must have structure ``treedef`` and, leaf by leaf, the shape and dtype of
    ``like_leaves``.  Raises ValueError (structure, shape) or TypeError (dtype)."""
    leaves, t_def = tree.flatten(t)
    if t_def != treedef:
        raise ValueError(f"{where}: {name} does not have the structure of {grads_name}: {grads_name} is "
                         f"{treedef!r}, {name} is {t_def!r}; re-create the optimizer state with init(params)")
    _check_float_leaves(where, name, t, leaves, [x.dtype for x in like_leaves])
    for i, (x, ref) in enumerate(zip(leaves, like_leaves)):
        if x.shape != ref.shape:
            path = tree.paths(t)[i]
            raise ValueError(f"{where}: {name} leaf at {_path_name(path)} has shape {x.shape} but the "
                             f"{grads_name} leaf has shape {ref.shape}")
    return leaves


def flat(x: np.ndarray) -> np.ndarray:
    """A 1-D C-contiguous view of ``x`` (a copy only when ``x`` is not contiguous)."""
    return np.ascontiguousarray(x).reshape(-1)


def cast(x, dtype):
    """``x`` as a numpy scalar of ``dtype`` (kernels then compute in the leaves' dtype)."""
    return np.dtype(dtype).type(x)


def leaves_like(where: str, name: str, spec, params, treedef, fix: str) -> list:
    """The leaves of ``spec`` (or of ``spec(params)`` when it is callable), which must have the structure
    ``treedef`` of the params; ``fix`` says how to build a right one.  Raises ValueError."""
    t = spec(params) if callable(spec) else spec
    leaves, t_def = tree.flatten(t)
    if t_def != treedef:
        raise ValueError(f"{where}: {name} must have the structure of the params, one leaf per params leaf: params "
                         f"are {treedef!r}, {name} is {t_def!r}; {fix}")
    return leaves


def mask_leaves(where: str, mask, params, treedef) -> list:
    """One Python bool per params leaf, from ``mask`` (a tree of bools, or a function ``params -> tree``).

    Raises ValueError (structure) or TypeError (a leaf that is not a bool, named by its path)."""
    leaves = leaves_like(where, "mask", mask, params, treedef,
                         "build it with fnnet.tree.map(lambda p: p.ndim > 1, params) or fnnet.layers.decay_mask")
    for i, m in enumerate(leaves):
        if not isinstance(m, (bool, np.bool_)):
            path = tree.paths(tree.unflatten(treedef, leaves))[i]
            raise TypeError(f"{where}: mask leaf at {_path_name(path)} must be a bool (True: the leaf is "
                            f"transformed), got {type(m).__name__} {m!r}")
    return [bool(m) for m in leaves]


def check_mask_argument(where: str, mask):
    """``mask`` as given, unless it is obviously not a tree or a function (a str, a number): TypeError."""
    if isinstance(mask, (str, bytes)) or isinstance(mask, numbers.Number) and not isinstance(mask, bool):
        raise TypeError(f"{where}: mask must be a tree of bools shaped like the params, or a function params -> "
                        f"such a tree, got {type(mask).__name__} {mask!r}")
    return mask


def decay_rates(where: str, weight_decay: float, mask, params, treedef) -> list:
    """The weight decay of each params leaf: ``weight_decay`` where ``mask`` is True (everywhere when it is
    None), 0 elsewhere.  Kernels skip the decay term of a leaf whose rate is 0."""
    if mask is None or weight_decay == 0.0:
        return [weight_decay] * treedef.num_leaves
    return [weight_decay if m else 0.0 for m in mask_leaves(where, mask, params, treedef)]


# ----------------------------------------------------------------------------------------- public API


def apply_updates(params, updates):
    """Return ``params + updates``, leaf by leaf, as new arrays.

    Args:
        params: a tree of float32/float64 arrays.
        updates: a tree with the structure, shapes and dtypes of ``params`` (from an optimizer's update).

    Returns:
        A new tree with the structure of ``params``.

    Raises:
        ValueError: different structures or shapes.
        TypeError: a non-float leaf or a dtype mismatch.
    """
    where = "fnnet.optim.apply_updates"
    p_leaves, treedef = float_leaves(where, "params", params)
    u_leaves = matching_leaves(where, "updates", updates, treedef, p_leaves, grads_name="params")
    return tree.unflatten(treedef, [np.asarray(p + u) for p, u in zip(p_leaves, u_leaves)])  # 0-d stays an array


def accumulate(grads_list, weights=None):
    """Combine per-micro-batch gradient trees: ``sum_i w_i g_i / sum_i w_i`` (plain mean without weights).

    The sum runs in list order, leaf by leaf in each leaf's dtype, so the result does not depend on
    anything but the inputs.

    Args:
        grads_list: a non-empty sequence of gradient trees with one structure, shapes and dtypes.
        weights: optional non-negative numbers, one per tree (e.g. micro-batch sizes), not all zero.

    Returns:
        A gradient tree of the same structure and dtypes.

    Raises:
        ValueError: empty list, bad weights, or trees of different structure/shape.
        TypeError: dtypes.
    """
    where = "fnnet.optim.accumulate"
    grads_list = list(grads_list)
    if not grads_list:
        raise ValueError(f"{where}: grads_list is empty; pass at least one gradient tree")
    if weights is not None:
        weights = [check_hyper(where, f"weights[{i}]", w) for i, w in enumerate(weights)]
        if len(weights) != len(grads_list):
            raise ValueError(f"{where}: got {len(weights)} weights for {len(grads_list)} gradient trees")
        if sum(weights) <= 0:
            raise ValueError(f"{where}: weights must not all be zero, got {weights}")
    acc = _Accumulator(where)
    for i, g in enumerate(grads_list):
        acc.add(g, None if weights is None else weights[i])
    return acc.result()


class _Accumulator:
    """Running ``sum_i w_i g_i`` over gradient trees, in the order they are added, in each leaf's dtype."""

    def __init__(self, where):
        self.where, self.count, self.weight_sum = where, 0, 0.0
        self.treedef = self.first = self.total = None

    def add(self, grads, weight=None):
        name = f"gradient tree {self.count}"
        if self.treedef is None:
            self.first, self.treedef = float_leaves(self.where, name, grads)
            leaves = self.first
        else:
            leaves = matching_leaves(self.where, name, grads, self.treedef, self.first,
                                     grads_name="gradient tree 0")
        terms = leaves if weight is None else [x * cast(weight, x.dtype) for x in leaves]
        self.total = [np.array(t) for t in terms] if self.total is None else [
            a + t for a, t in zip(self.total, terms)]
        self.count += 1
        self.weight_sum += 1.0 if weight is None else weight

    def result(self):
        return tree.unflatten(self.treedef, [t / cast(self.weight_sum, t.dtype) for t in self.total])


def accumulate_gradients(grad_fn, params, batches, weights=None, *, threads=1):
    """Gradient of a mean loss over a large batch, computed one micro-batch at a time.

    Calls ``grad_fn(params, batch)`` for each micro-batch in order and combines the results with
    :func:`accumulate`.  For a loss that is a *mean* over examples, equal-sized micro-batches need no
    weights (the mean of the micro-batch gradients is the full-batch gradient); pass the micro-batch sizes
    as ``weights`` when they differ.

    Args:
        grad_fn: ``grad_fn(params, batch) -> grads`` (e.g. ``fnnet.grad(loss)``), grads shaped like params.
        params: the params tree passed unchanged to every call.
        batches: an iterable of micro-batches (anything ``grad_fn`` accepts, e.g. ``(x, y)`` tuples).
        weights: optional per-micro-batch weights (see :func:`accumulate`).
        threads: compute up to this many micro-batch gradients at once in Python threads.  fnnet's kernels
            release the GIL and each ``grad`` call has its own tape, so the threads run in parallel.  The
            results are still combined in micro-batch index order, so the sum is bit-identical to the
            serial one whatever order the threads finish in.

    Returns:
        The combined gradient tree.

    Raises:
        ValueError: no micro-batches, or see :func:`accumulate`.

    Example::

        grads = fnnet.optim.accumulate_gradients(fnnet.grad(loss), params,
                                                 [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)])
    """
    where = "fnnet.optim.accumulate_gradients"
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{where}: threads must be an int >= 1, got {threads!r}")
    acc = _Accumulator(where)
    weights = None if weights is None else list(weights)
    if threads > 1:
        def work(batch):
            K.share_threads(threads)  # each Python thread's kernels use its share of the cores
            return grad_fn(params, batch)

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            grads_in_order = pool.map(work, list(batches))  # yields in index order
            return _combine(where, acc, grads_in_order, weights)
    return _combine(where, acc, (grad_fn(params, b) for b in batches), weights)


def _combine(where, acc, grads_in_order, weights):
    for i, grads in enumerate(grads_in_order):
        if weights is not None and i >= len(weights):
            raise ValueError(f"{where}: more micro-batches than the {len(weights)} weights given")
        acc.add(grads, None if weights is None else check_hyper(where, f"weights[{i}]", weights[i]))
    if acc.count == 0:
        raise ValueError(f"{where}: batches is empty; pass at least one micro-batch")
    if weights is not None and len(weights) != acc.count:
        raise ValueError(f"{where}: got {len(weights)} weights for {acc.count} micro-batches")
    if acc.weight_sum <= 0:
        raise ValueError(f"{where}: weights must not all be zero, got {weights}")
    return acc.result()
