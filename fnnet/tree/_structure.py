"""Tree structure: flatten / unflatten, treedefs, map, paths and lookup (see the package docstring)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._compiled import DICT as _DICT, LEAF as _LEAF, NONE as _NONE, SEQ as _SEQ, builder, extractor

__all__ = [
    "TreeDef", "PathKeyError", "flatten", "flatten_like", "unflatten", "leaves", "structure", "map",
    "map_with_path", "paths", "get",
]

#: Uses of a structure (rebuilt or matched) before its straight-line code is generated (``_compiled``).
GENERATE_AFTER = 3


def _sorted_keys(d):
    """Dict keys in flatten order: sorted, or by (type name, repr) when the keys are not comparable."""
    try:
        return tuple(sorted(d))
    except TypeError:
        return tuple(sorted(d, key=lambda k: (type(k).__name__, repr(k))))


class TreeDef:
    """The structure of a tree without its leaves: hashable, comparable with ``==``, readable repr.

    Attributes:
      kind: one of ``"leaf"``, ``"none"``, ``"dict"``, ``"seq"`` (list or tuple).
      node_type: the container type (``dict``, ``list``, ``tuple``, a namedtuple class, ...) or None.
      keys: the sorted dict keys (dict nodes) or ``()``.
      children: the child treedefs, in flatten order.
      num_leaves: the number of leaves below this node.
    """

    __slots__ = ("kind", "node_type", "keys", "children", "num_leaves", "_hash", "_uses", "_build", "_extract")

    def __init__(self, kind, node_type=None, keys=(), children=()):
        self.kind, self.node_type, self.keys, self.children = kind, node_type, tuple(keys), tuple(children)
        if kind == _LEAF:
            self.num_leaves = 1
        else:
            n = 0
            for c in self.children:
                n += c.num_leaves
            self.num_leaves = n
        self._hash = None  # computed on first use: flatten is on every step's hot path
        self._uses, self._build, self._extract = 0, None, None  # generated code, see _generated

    def _generated(self, slot, make):
        """The generated function in ``slot`` (made by ``make``) once this structure has been used
        ``GENERATE_AFTER`` times; None before, or when it is not generated."""
        fn = getattr(self, slot)
        if fn is None:
            self._uses += 1
            if self._uses < GENERATE_AFTER:
                return None
            fn = make(self) or False
            setattr(self, slot, fn)
        return fn or None

    def __eq__(self, other):
        if self is other:
            return True
        return (isinstance(other, TreeDef) and hash(self) == hash(other) and self.kind == other.kind
                and self.node_type is other.node_type and self.keys == other.keys
                and self.children == other.children)

    def __reduce__(self):  # the structure only (the generated functions stay behind), interned on load
        return _treedef, (self.kind, self.node_type, self.keys, self.children)

    def __hash__(self):
        if self._hash is None:
            self._hash = hash((self.kind, self.node_type, self.keys, self.children))
        return self._hash

    def __repr__(self):
        if self.kind == _LEAF:
            return "*"
        if self.kind == _NONE:
            return "None"
        if self.kind == _DICT:
            body = "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children)) + "}"
            return body if self.node_type is dict else f"{self.node_type.__name__}({body})"
        items = [repr(c) for c in self.children]
        if hasattr(self.node_type, "_fields"):
            fields = ", ".join(f"{f}={c}" for f, c in zip(self.node_type._fields, items))
            return f"{self.node_type.__name__}({fields})"
        if issubclass(self.node_type, list):
            body = "[" + ", ".join(items) + "]"
        else:
            body = "(" + ", ".join(items) + (",)" if len(items) == 1 else ")")
        return body if self.node_type in (list, tuple) else f"{self.node_type.__name__}({body})"

    def describe(self):
        """A short phrase for error messages, e.g. "a dict with keys ['bias', 'weight']"."""
        if self.kind == _LEAF:
            return "a leaf"
        if self.kind == _NONE:
            return "None"
        if self.kind == _DICT:
            return f"a {self.node_type.__name__} with keys {list(self.keys)}"
        return f"a {self.node_type.__name__} of length {len(self.children)}"


_LEAF_DEF = TreeDef(_LEAF)
_NONE_DEF = TreeDef(_NONE)


def _children(node):
    """(kind, keys, children) of a container node, or None for a leaf."""
    if node is None:
        return _NONE, (), ()
    if isinstance(node, dict):
        keys = _sorted_keys(node)
        return _DICT, keys, [node[k] for k in keys]
    if isinstance(node, (list, tuple)):
        return _SEQ, (), list(node)
    return None


def _build(treedef, children):
    """Rebuild a container node of ``treedef`` from its children."""
    typ = treedef.node_type
    if treedef.kind == _DICT:
        return typ(zip(treedef.keys, children))
    if hasattr(typ, "_fields"):
        return typ(*children)
    return typ(children)


_INTERNED = {}  # (kind, node type, keys, children) -> the one TreeDef of that structure
_INTERN_LIMIT = 100_000


def _treedef(kind, node_type, keys, children):
    """The shared TreeDef of a structure: flattening the same structure again allocates nothing, and
    comparing two treedefs of one structure is an identity check (plan caches compare them per call)."""
    key = (kind, node_type, keys, children)
    td = _INTERNED.get(key)
    if td is None:
        if len(_INTERNED) >= _INTERN_LIMIT:
            _INTERNED.clear()
        td = _INTERNED[key] = TreeDef(kind, node_type, keys, children)
    return td


def _flatten(node, out, is_leaf):
    t = type(node)
    if is_leaf is None:  # fast paths for the common node types
        if t is dict:
            try:
                keys = tuple(sorted(node))
            except TypeError:
                keys = _sorted_keys(node)
            return _treedef(_DICT, dict, keys, tuple([_flatten(node[k], out, None) for k in keys]))
        if t is np.ndarray:
            out.append(node)
            return _LEAF_DEF
        if t is list or t is tuple:
            return _treedef(_SEQ, t, (), tuple([_flatten(c, out, None) for c in node]))
    elif node is not None and is_leaf(node):
        out.append(node)
        return _LEAF_DEF
    split = _children(node)
    if split is None:
        out.append(node)
        return _LEAF_DEF
    kind, keys, kids = split
    if kind == _NONE:
        return _NONE_DEF
    return _treedef(kind, type(node), tuple(keys), tuple([_flatten(c, out, is_leaf) for c in kids]))


def flatten(tree, is_leaf: Callable[[Any], bool] | None = None):
    """Flatten a tree into its leaves and its structure.

    Args:
      tree: a nested dict/list/tuple of leaves (``None`` counts as an empty subtree).
      is_leaf: optional predicate; a node for which it returns True is treated as a leaf.

    Returns:
      ``(leaves, treedef)``: the leaves in flatten order (dict keys sorted) and a :class:`TreeDef`.
    """
    out = []
    return out, _flatten(tree, out, is_leaf)


def flatten_like(treedef: TreeDef, tree):
    """The leaves of ``tree`` when its structure is ``treedef`` (as :func:`flatten` would find it), else None.

    A structure matched again and again (a jitted function's arguments) is matched by generated code,
    several times faster than :func:`flatten`.
    """
    extract = treedef._generated("_extract", extractor)
    if extract is not None:
        return extract(tree)
    leaves, found = flatten(tree)
    return leaves if found == treedef else None


def unflatten(treedef: TreeDef, leaves):
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (the inverse of :func:`flatten`).

    Args:
      treedef: a :class:`TreeDef` from :func:`flatten` or :func:`structure`.
      leaves: an iterable of exactly ``treedef.num_leaves`` leaves, in flatten order.

    Returns:
      The rebuilt tree.

    Raises:
      TypeError: ``treedef`` is not a TreeDef.
      ValueError: the number of leaves does not match ``treedef.num_leaves``.
    """
    if not isinstance(treedef, TreeDef):
        raise TypeError(f"tree.unflatten: treedef must be a TreeDef from tree.flatten, got {type(treedef).__name__}")
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree.unflatten: treedef {treedef!r} has {treedef.num_leaves} leaves, "
                         f"got {len(leaves)} leaves")
    build = treedef._generated("_build", builder)
    return build(leaves) if build is not None else _unflatten(treedef, iter(leaves))


def _unflatten(td, it):
    # A module-level function, not a closure: a recursive closure would form a reference cycle that keeps
    # the leaves alive until the cycle collector runs (which defeated checkpointing's memory saving).
    if td.kind == _LEAF:
        return next(it)
    if td.kind == _NONE:
        return None
    return _build(td, [_unflatten(c, it) for c in td.children])


def leaves(tree, is_leaf=None) -> list:
    """Returns the leaves of ``tree`` in flatten order (see :func:`flatten`)."""
    return flatten(tree, is_leaf)[0]


def structure(tree, is_leaf=None) -> TreeDef:
    """Returns the :class:`TreeDef` of ``tree`` (see :func:`flatten`)."""
    return flatten(tree, is_leaf)[1]


def _join(path, key):
    return f"{path}/{key}" if path else str(key)


def _path_repr(path):
    return repr(path) if path else "the root"


class _Mismatch(Exception):
    """Internal: the structures differ at ``path`` (``args = (path, detail)``)."""


def _flatten_up_to(treedef, node, path, out, lenient):
    """Append the leaves of ``node`` at the leaf positions of ``treedef``; raise _Mismatch on a difference."""
    if treedef.kind == _LEAF:
        if not lenient and (node is None or _children(node) is not None):
            raise _Mismatch(path, f"expected a leaf, got {structure(node).describe()}")
        out.append(node)
        return
    split = _children(node)
    if split is None or split[0] == _NONE or treedef.kind == _NONE:
        if treedef.kind == _NONE and node is None:
            return
        got = "a leaf" if split is None else structure(node).describe()
        raise _Mismatch(path, f"expected {treedef.describe()}, got {got}")
    kind, keys, kids = split
    if kind != treedef.kind or type(node) is not treedef.node_type:
        raise _Mismatch(path, f"expected {treedef.describe()}, got {structure(node).describe()}")
    if kind == _DICT and keys != treedef.keys:
        raise _Mismatch(path, f"expected keys {list(treedef.keys)}, got {list(keys)}")
    if len(kids) != len(treedef.children):
        raise _Mismatch(path, f"expected {treedef.describe()}, got length {len(kids)}")
    names = treedef.keys if kind == _DICT else range(len(kids))
    for name, child_def, child in zip(names, treedef.children, kids):
        _flatten_up_to(child_def, child, _join(path, name), out, lenient)


def _flatten_all(where, tree, rest, is_leaf):
    """Flatten ``tree`` and every tree of ``rest`` to the structure of ``tree``; ValueError on mismatch."""
    first, treedef = flatten(tree, is_leaf)
    columns = [first]
    for i, other in enumerate(rest):
        out = flatten_like(treedef, other) if is_leaf is None else None
        if out is not None:
            columns.append(out)
            continue
        out = []
        try:
            _flatten_up_to(treedef, other, "", out, lenient=is_leaf is not None)
        except _Mismatch as e:
            raise ValueError(
                f"{where}: structure mismatch at {_path_repr(e.args[0])}: {e.args[1]}; "
                f"first tree: {treedef!r}, tree {i + 2}: {structure(other, is_leaf)!r}") from None
        columns.append(out)
    return treedef, columns


def map(f: Callable, tree, *rest, is_leaf=None):
    """Apply ``f`` leafwise: ``f(leaf, *corresponding leaves of rest)``, keeping the structure of ``tree``.

    Args:
      f: a function of ``1 + len(rest)`` leaves.
      tree: the tree whose structure the result has.
      *rest: trees with the same structure as ``tree``.
      is_leaf: optional predicate marking nodes of ``tree`` as leaves; the corresponding nodes of ``rest``
        are then passed to ``f`` whole, whatever they are.

    Returns:
      A tree with the structure of ``tree`` and leaves ``f(...)``.

    Raises:
      ValueError: a tree of ``rest`` has another structure; the message shows the first differing path and
        both structures.
    """
    treedef, columns = _flatten_all("tree.map", tree, rest, is_leaf)
    return unflatten(treedef, [f(*xs) for xs in zip(*columns)])


def _leaf_paths(treedef, path=""):
    """The path of every leaf of ``treedef``, in flatten order."""
    if treedef.kind == _LEAF:
        return [path]
    names = treedef.keys if treedef.kind == _DICT else range(len(treedef.children))
    return [p for name, child in zip(names, treedef.children) for p in _leaf_paths(child, _join(path, name))]


def paths(tree, is_leaf=None) -> list[str]:
    """Returns the path of every leaf in flatten order, e.g. ``["layers/0/bias", "layers/0/weight"]``.

    Keys and list/tuple indices are joined with ``"/"``; a leaf at the root has path ``""``.
    """
    return _leaf_paths(structure(tree, is_leaf))


def map_with_path(f: Callable, tree, *rest, is_leaf=None):
    """Like :func:`map`, but ``f(path, leaf, *rest_leaves)`` also receives the leaf's path string.

    Raises:
      ValueError: as :func:`map`.
    """
    treedef, columns = _flatten_all("tree.map_with_path", tree, rest, is_leaf)
    return unflatten(treedef, [f(p, *xs) for p, *xs in zip(_leaf_paths(treedef), *columns)])


class PathKeyError(KeyError):
    """KeyError raised by :func:`get`; prints its message without KeyError's quoting."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def get(tree, path: str):
    """Fetch the subtree at ``path`` (``"layers/1/weight"``; ``""`` is the whole tree).

    Args:
      tree: a tree.
      path: keys and list/tuple indices joined with ``"/"`` (or a list/tuple of them).

    Returns:
      The subtree (or leaf) at ``path``.

    Raises:
      KeyError: a key or index does not exist; the message lists the keys available at that level.
    """
    parts = [p for p in path.split("/") if p != ""] if isinstance(path, str) else list(path)
    node, here = tree, ""
    for part in parts:
        split = _children(node)
        if split is None or split[0] == _NONE:
            what = "None" if node is None else f"a leaf of type {type(node).__name__}"
            raise PathKeyError(f"tree.get: cannot look up {str(part)!r} at {_path_repr(here)} in path {path!r}: "
                               f"it is {what}, not a container")
        if isinstance(node, dict):
            match = [k for k in split[1] if k == part or str(k) == str(part)]
            if not match:
                raise PathKeyError(f"tree.get: no key {str(part)!r} at {_path_repr(here)} in path {path!r}; "
                                   f"available keys: {[str(k) for k in split[1]]}")
            node = node[match[0]]
        else:
            try:
                index = int(part)
                node = node[index]
            except (ValueError, IndexError):
                raise PathKeyError(f"tree.get: no index {str(part)!r} at {_path_repr(here)} in path {path!r}; "
                                   f"available indices: 0..{len(node) - 1} ({type(node).__name__} of "
                                   f"length {len(node)})") from None
        here = _join(here, part)
    return node
