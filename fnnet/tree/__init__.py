"""Pytree utilities: nested dict / list / tuple containers of leaves.

A *tree* is a nested structure of ``dict``, ``list`` and ``tuple`` nodes (namedtuples and dict/list/tuple
subclasses are nodes too and keep their type). Everything else (numpy arrays, Python scalars, arbitrary
objects such as autodiff tracers) is a *leaf*. ``None`` is an empty subtree: it has no leaves and is kept
as ``None`` by :func:`map`.

Flatten order is depth first; dict children are visited in sorted key order, so two dicts with the same
keys flatten identically whatever their insertion order. Paths name a leaf by its keys and indices joined
with ``"/"``, e.g. ``"layers/0/weight"`` (a dict key containing ``"/"`` makes :func:`get` ambiguous).

Example::

    >>> params = {"weight": np.ones((2, 3)), "bias": np.zeros(3)}
    >>> structure(params)
    {'bias': *, 'weight': *}
    >>> paths(params)
    ['bias', 'weight']
"""

from ._arithmetic import (
    add, add_scaled, allclose, assert_allclose, astype, full_like, global_norm, mul, nbytes, ones_like, scale,
    size, sub, vdot, zeros_like,
)
from ._structure import (
    PathKeyError, TreeDef, flatten, flatten_like, get, leaves, map, map_with_path, paths, structure, unflatten,
)

__all__ = [
    "TreeDef", "PathKeyError", "flatten", "flatten_like", "unflatten", "leaves", "structure", "map",
    "map_with_path", "paths", "get", "zeros_like", "ones_like", "full_like", "add", "sub", "mul", "scale",
    "add_scaled", "vdot", "global_norm", "size", "nbytes", "astype", "allclose", "assert_allclose",
]
