"""Running one call (forward, then gradient) and comparing runs: the fuzzer's oracles.

The gradient is ``fnnet.grad`` of ``sum_i sum(out_i * w_i)`` over the float outputs, with fixed random
weights ``w_i`` whose values are exact in float16, so the same weights serve every dtype.

Two comparisons:

* :func:`identical` (metamorphic relations): same shape, same dtype (up to byte order), same values
  bit for bit, NaN equal to NaN.  Bitwise is right because fnnet copies a strided, broadcast, unaligned or
  subclassed input into the same C-contiguous buffer before any kernel runs, and its kernels reduce in a
  fixed order: a change of layout never changes the order of a sum.
* :func:`close` (references in another precision): the same NaN and +-inf positions, finite values within
  ``tol * |ref| + tol * scale``, the scale being the largest value among all outputs (or all gradients).
  ``free_nan`` leaves the positions where the reference is NaN free: an indeterminate form such as
  ``inf - inf`` or ``-inf * 0`` (``gelu(-inf)``) may also be given its limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import ops, tree
from ...autodiff import Tracer, grad

__all__ = ["Run", "Weights", "evaluate", "identical", "close", "magnitude", "compare", "cast64"]


@dataclass
class Run:
    outputs: list | None = None      # forward leaves as arrays; None when the forward raised
    kinds: list = field(default_factory=list)   # per leaf: "array", "number", "tracer" or "other"
    grads: dict | None = None        # position -> gradient (array, or None for an empty tree)
    traced: list | None = None       # the forward leaves computed under grad
    error: BaseException | None = None
    phase: str = ""                  # "forward" or "gradient": where ``error`` was raised
    modified: tuple = ()             # positions of array arguments the call changed in place


class Weights:
    """Cotangent weights per output leaf and shape, reproducible from the case's seed."""

    def __init__(self, seed):
        self.seed = list(seed)
        self.cache = {}

    def __call__(self, i, shape, dtype):
        key = (i, tuple(shape))
        if key not in self.cache:
            rng = np.random.default_rng(self.seed + [i, *shape])
            self.cache[key] = rng.standard_normal(shape).astype(np.float16).astype(np.float64)
        return self.cache[key].astype(dtype)


def _leaf(v):
    if type(v) is Tracer:
        return "tracer", v.value
    if isinstance(v, np.ndarray):
        return "array", np.asarray(v)
    if isinstance(v, (bool, int, float, complex, np.generic)):
        return "number", np.asarray(v)
    return "other", v


def _float_leaf(v):
    """Part of the loss: every traced output (whatever its value), and plain float arrays and scalars."""
    return type(v) is Tracer or (isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind == "f")


def _loss(inst, args, diff, weights):
    def loss(*traced):
        full = list(args)
        for p, t in zip(diff, traced):
            full[p] = t
        out = inst.call(*full)
        total = None
        for i, leaf in enumerate(tree.leaves(out)):
            if _float_leaf(leaf):
                dtype = (leaf.value if type(leaf) is Tracer else leaf).dtype
                term = ops.sum(ops.multiply(leaf, weights(i, np.shape(leaf), dtype)))
                total = term if total is None else ops.add(total, term)
        return (np.zeros(()) if total is None else total), out
    return loss


def _as_grad(g):
    return None if g is None else np.asarray(g)


def evaluate(inst, args, diff, weights) -> Run:
    """Forward outside ``grad``, then the gradient with respect to the positions ``diff``."""
    snapshot = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    try:
        out = inst.call(*args)
    except Exception as e:  # noqa: BLE001  (every exception is data for the classifier)
        return Run(error=e, phase="forward")
    kinds, leaves = zip(*[_leaf(v) for v in tree.leaves(out)]) if tree.leaves(out) else ((), ())
    run = Run(list(leaves), list(kinds))
    if inst.differentiable and diff:
        try:
            grads, aux = grad(_loss(inst, args, diff, weights), argnums=tuple(range(len(diff))), has_aux=True)(
                *[args[p] for p in diff])
            run.grads = {p: _as_grad(g) for p, g in zip(diff, grads)}
            run.traced = [_leaf(v)[1] for v in tree.leaves(aux)]
        except Exception as e:  # noqa: BLE001
            run.error, run.phase = e, "gradient"
    run.modified = tuple(i for i, (a, s) in enumerate(zip(args, snapshot))
                         if s is not None and identical(np.asarray(a), s) is not None)
    return run


def _where(mask):
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()


def _mismatch(a, b, bad):
    at = _where(bad)
    return (f"{int(bad.sum())} of {bad.size} values differ, first at {at}: got {a[at]!r}, "
            f"expected {b[at]!r}")


def identical(a, b) -> str | None:
    """None when ``a`` and ``b`` are the same array bit for bit (NaN == NaN); else what differs."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return f"shape {a.shape}, expected {b.shape}"
    if a.dtype.newbyteorder("=") != b.dtype.newbyteorder("="):  # an identity may return a big-endian input
        return f"dtype {a.dtype.str}, expected {b.dtype.str}"
    if a.dtype.kind in "fc":
        bad = (a != b) & ~(np.isnan(a) & np.isnan(b))
    elif a.dtype.kind == "O":
        bad = np.array([x is not y and x != y for x, y in zip(a.flat, b.flat)]).reshape(a.shape)
    else:
        bad = a != b
    return _mismatch(a, b, bad) if bad.any() else None


def magnitude(arrays) -> float:
    """The largest finite absolute value among ``arrays`` (at least 1): the scale of a computation's terms."""
    finite = [np.abs(np.asarray(a, dtype=np.float64)) for a in arrays
              if a is not None and np.asarray(a).dtype.kind in "fiub"]
    return max([1.0] + [float(np.max(v[np.isfinite(v)], initial=0.0)) for v in finite])


def close(a, ref, tol, free_nan=False, scale=1.0) -> str | None:
    """None when ``a`` matches ``ref`` (rounded to ``a``'s dtype): same non-finite positions, finite values
    within ``tol * (|ref| + max(scale, max|ref|))``; else what differs.  ``scale`` is the magnitude of the
    whole computation (see :func:`magnitude`): a gradient that cancels to about 0 in float64 is float32's
    rounding of large terms in float32."""
    a, ref = np.asarray(a), np.asarray(ref)
    if a.shape != ref.shape:
        return f"shape {a.shape}, expected {ref.shape}"
    if a.dtype.kind not in "fiub" or ref.dtype.kind not in "fiub":
        return f"dtype {a.dtype}, expected a real number like the reference's {ref.dtype}"
    with np.errstate(all="ignore"):
        r = ref.astype(a.dtype).astype(np.float64) if a.dtype.kind == "f" else ref.astype(np.float64)
        x = a.astype(np.float64)
        finite = np.isfinite(x) & np.isfinite(r)
        scale = max(scale, np.max(np.abs(r[np.isfinite(r)]), initial=1.0))
        bad = np.where(finite, np.abs(x - r) > tol * (np.abs(r) + scale), ~((x == r) | (np.isnan(x) & np.isnan(r))))
    if free_nan:
        bad &= ~np.isnan(r)
    return _mismatch(a, r, bad) if bad.any() else None


def compare(got, expected, check, what="output") -> str | None:
    """Apply ``check(g, e)`` leaf by leaf; the first difference, prefixed with the leaf's index."""
    if len(got) != len(expected):
        return f"{len(got)} {what}s, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        if g is None or e is None:
            if g is not e:
                return f"{what} {i}: got {type(g).__name__}, expected {type(e).__name__}"
            continue
        message = check(g, e)
        if message:
            return f"{what} {i}: {message}"
    return None


def cast64(inst, args) -> list:
    """The reference arguments in float64: float positions as float64 arrays (the real part of complex
    values, lists and object arrays converted), integer positions as int64, others unchanged."""
    out = []
    for meta, a in zip(inst.meta, args):
        if a is None or type(a) is Tracer:
            out.append(a)
            continue
        v = np.asarray(a)
        if meta.kind == "float":
            out.append(np.array(v.real if v.dtype.kind == "c" else v, dtype=np.float64))
        elif meta.kind == "int":
            out.append(np.array(v, dtype=np.int64))
        else:
            out.append(a)
    return out
