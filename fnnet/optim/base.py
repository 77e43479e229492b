"""The optimizer protocol (``GradientTransformation``), ``apply_updates`` and the leaf-level helpers the
transformations share.

An optimizer is a pair of pure functions::

    opt = fnnet.optim.adam(1e-3)
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = fnnet.optim.apply_updates(params, updates)

or, in one pass per leaf without the ``updates`` tree, optionally writing over the old params and state
(:meth:`GradientTransformation.update_and_apply`, :mod:`fnnet.optim.donation`)::

    params, opt_state = opt.update_and_apply(grads, opt_state, params, donate=True)

Optimizer states are ``NamedTuple`` records of trees (so :mod:`fnnet.tree` and :mod:`fnnet.io` see their
arrays); the step counter is a 0-d int64 array inside the state.  Nothing is ever modified in place
unless the caller donates it: every update returns new arrays.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from .. import tree
from . import donation
from ..autodiff.recording import host_step, is_host_step

__all__ = ["GradientTransformation", "EmptyState", "apply_updates"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT_TYPES = (np.float32, np.float64)


class _TransformationRecord(NamedTuple):
    """The fields of a :class:`GradientTransformation` (which is built through its own ``__new__``)."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple]
    fused_step: Optional[Callable[..., tuple]] = None


class GradientTransformation(_TransformationRecord):
    """An optimizer (or a building block of one): two pure functions, and optionally a fused step.

    Attributes:
        init: ``init(params) -> opt_state``.
        update: ``update(grads, opt_state, params=None) -> (updates, new_opt_state)``; ``updates`` has
            the structure and dtypes of ``grads`` and is *added* to the params by :func:`apply_updates`.
        fused_step: ``fused_step(grads, opt_state, params, donate) -> (new_params, new_opt_state)``, one
            kernel pass per leaf (the optimizers of :mod:`fnnet.optim.alias`), or None: then
            :meth:`update_and_apply` runs ``update`` and adds the updates.
    """

    __slots__ = ()

    def __new__(cls, init, update, fused_step=None):
        # Under fnnet.jit each update is recorded as one step (its kernels, schedules and checks run on replay).
        return super().__new__(cls, init, _recorded(update), None if fused_step is None else _recorded(fused_step))

    def update_and_apply(self, grads, opt_state, params, *, donate: bool = False):
        """One optimizer step: ``update`` followed by :func:`apply_updates`, without the ``updates`` tree.

        Args:
            grads: a tree of float32/float64 arrays shaped like ``params``.
            opt_state: this optimizer's state (from ``init`` or the previous step).
            params: the current params tree.
            donate: give up ``params`` and ``opt_state``: the new params and buffers may be written into
                their memory, so a step holds params + grads + state and nothing more.  Passing a donated
                array to ``fnnet.optim`` again raises ValueError; see :mod:`fnnet.optim.donation` for what
                is and is not caught.  Leaves that cannot be written in place (read-only, non-contiguous,
                memmaps) get new arrays.  Without a fused step (chains, ``masked``, ``multi_transform``)
                only the params are written in place.

        Returns:
            ``(new_params, new_opt_state)``, bitwise equal to ``update`` + ``apply_updates`` with or
            without donation.

        Raises:
            ValueError: no params; a donated array passed again; with ``donate``, two donated leaves that
                share memory, or gradients sharing memory with a donated leaf.
            TypeError: ``donate`` is not a bool; see ``update`` for the leaves.

        Example::

            params, opt_state = opt.update_and_apply(grads, opt_state, params, donate=True)
        """
        where = "fnnet.optim.update_and_apply"
        if not isinstance(donate, (bool, np.bool_)):
            raise TypeError(f"{where}: donate must be a bool, got {type(donate).__name__} {donate!r}")
        if params is None:
            raise ValueError(f"{where}: params is None; pass the current params: "
                             "update_and_apply(grads, opt_state, params)")
        if self.fused_step is not None:
            return self.fused_step(grads, opt_state, params, bool(donate))
        return _update_then_apply(self, grads, opt_state, params, bool(donate))


def _recorded(fn):
    return fn if is_host_step(fn) else host_step(fn)


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
    donation.check_not_donated(where, name, t, leaves)
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
    """``x`` as a numpy scalar of ``dtype`` (kernels then compute in the leaves' dtype).  Memoised: a fused
    step converts each hyperparameter for every leaf on every step (Adam: seven per leaf), and a lookup
    costs about half a conversion (0.2-0.36 against 0.5-0.8 us, ``timeit``)."""
    try:  # -0.0 == 0.0 as a key: the sign of a zero is part of it (it can reach an update's bits)
        return _cast_memo(x, dtype, x == 0 and math.copysign(1.0, x) < 0)
    except TypeError:  # an unhashable value (a 0-d array)
        return np.dtype(dtype).type(x)


@functools.lru_cache(maxsize=1024)
def _cast_memo(x, dtype, negative_zero):
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


@host_step
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


@host_step  # under fnnet.jit one recorded step, like a fused step
def _update_then_apply(transformation, grads, opt_state, params, donate):
    """``update_and_apply`` of a transformation without a fused step; with ``donate``, the params are
    written in place and the state leaves that ``update`` replaced are given up."""
    where = "fnnet.optim.update_and_apply"
    p_leaves, treedef = float_leaves(where, "params", params)
    s_leaves = [x for x in tree.leaves(opt_state) if isinstance(x, np.ndarray)]
    donation.check_not_donated(where, "opt_state", opt_state, tree.leaves(opt_state))
    if donate:
        donation.check_disjoint(where, {"params": (params, p_leaves), "opt_state": (opt_state, tree.leaves(opt_state))},
                                {"grads": (grads, tree.leaves(grads))})
    updates, new_state = transformation.update(grads, opt_state, params)
    u_leaves = matching_leaves(where, "updates", updates, treedef, p_leaves, grads_name="params")
    new = []
    for p, u in zip(p_leaves, u_leaves):
        out = donation.output_for(p, donate)
        np.add(flat(p), flat(u), out=out)
        new.append(out.reshape(p.shape))
    if donate:
        kept = {id(x) for x in tree.leaves(new_state)}  # a buffer the update passed on unchanged stays valid
        donation.mark_donated(p_leaves + [x for x in s_leaves if id(x) not in kept])
    return tree.unflatten(treedef, new), new_state
