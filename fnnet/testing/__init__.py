"""Tools for testing differentiable code: a gradient checker and a reference comparison.

``check_grads`` runs the dot-product test in float64: for random directions ``v`` (inputs) and ``u``
(output), the forward-difference estimate ``<u, J v>`` from central differences must equal ``<J^T u, v>``
computed by fnnet's VJP.  One scalar comparison checks the whole Jacobian along a random direction, for
any output shape, in two function evaluations.
"""

from __future__ import annotations

import numpy as np

from .. import tree
from ..autodiff import vjp

__all__ = ["check_grads", "assert_close", "GradientCheckError"]


class GradientCheckError(AssertionError):
    """The VJP disagrees with central differences."""


def _as_float64_tree(x):
    return tree.map(lambda v: np.asarray(v, dtype=np.float64) if _is_float(v) else v, x)


def _is_float(v):
    return isinstance(v, (np.ndarray, float, np.floating)) and np.asarray(v).dtype.kind == "f"


def check_grads(f, args, argnums=None, *, eps=1e-6, rtol=1e-5, atol=1e-8, trials=2, seed=0):
    """Assert that ``f``'s VJP matches central differences, by the float64 dot-product test.

    Args:
        f: function of ``*args`` returning an array or a tree of arrays.
        args: tuple of arguments; float arrays (or trees of them) are converted to float64.
        argnums: which arguments to check (default: every argument with a float leaf).
        eps: finite-difference step.
        rtol, atol: tolerance on the two scalars ``<u, J v>`` and ``<J^T u, v>``.
        trials: number of random direction pairs.
        seed: seed of the directions (numpy generator; test-side randomness only).

    Raises:
        GradientCheckError: with both numbers, the argument and the trial, when they differ.
    """
    args = tuple(_as_float64_tree(a) for a in args)
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args) if any(_is_float(l) for l in tree.leaves(a)))
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        for n in argnums:
            leaves, treedef = tree.flatten(args[n])
            directions = [rng.standard_normal(np.shape(l)) if _is_float(l) else None for l in leaves]

            def at(step, n=n, leaves=leaves, treedef=treedef, directions=directions):
                moved = [l + step * d if d is not None else l for l, d in zip(leaves, directions)]
                new_args = list(args)
                new_args[n] = tree.unflatten(treedef, moved)
                return f(*new_args)

            out, vjp_fn = vjp(lambda a, n=n: f(*args[:n], a, *args[n + 1:]), args[n])
            out_leaves, out_def = tree.flatten(out)
            u_leaves = [rng.standard_normal(np.shape(o)) for o in out_leaves]
            (ct,) = vjp_fn(tree.unflatten(out_def, u_leaves))
            ct_leaves = tree.leaves(ct)
            plus, minus = tree.leaves(at(eps)), tree.leaves(at(-eps))
            jv = sum(float(np.sum(u * (p - m) / (2 * eps))) for u, p, m in zip(u_leaves, plus, minus))
            jtu = sum(float(np.sum(c * d)) for c, d in zip(ct_leaves, directions) if d is not None)
            if not np.isclose(jv, jtu, rtol=rtol, atol=atol):
                raise GradientCheckError(
                    f"check_grads: argument {n}, trial {trial}: <u, J v> by central differences = {jv!r}, "
                    f"<J^T u, v> by the VJP = {jtu!r} (difference {abs(jv - jtu):.3g}, rtol={rtol}, atol={atol})"
                )


def assert_close(actual, expected, *, rtol=1e-6, atol=1e-8, what="result"):
    """Compare an fnnet result with a reference: shape first, then dtype, then values.

    ``expected`` may be a numpy array or anything with ``.detach().numpy()`` (a torch tensor).
    """
    if hasattr(expected, "detach"):
        expected = expected.detach().numpy()
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != reference shape {expected.shape}")
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{what}: dtype {actual.dtype} != reference dtype {expected.dtype}")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
