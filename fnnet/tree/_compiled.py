"""Generated Python for one tree structure: rebuilding a tree from its leaves, and taking the leaves of a
tree that has that structure.

:func:`fnnet.tree.unflatten` and :func:`fnnet.tree.flatten` walk a tree node by node, which costs about a
microsecond per node; a jitted training step pays it for its arguments and its results on every call (a
quarter of a small model's replay).  For a structure used again and again, the walk can be written out
once as straight-line code (``{k0: l[0], k1: l[1]}`` for a dict of two leaves), which runs several times
faster.  The generated functions follow the walk's rules exactly: the same node types, the same sorted
dict keys, the same constructors.  Deep or very large structures keep the walk (the generated expression
would be too deep to compile, or too long to pay for itself).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEAF", "NONE", "DICT", "SEQ", "builder", "extractor"]

LEAF, NONE, DICT, SEQ = "leaf", "none", "dict", "seq"

#: Structures deeper than this, or with more leaves than ``MAX_LEAVES``, are not generated.
MAX_DEPTH = 48
MAX_LEAVES = 4096


def _depth(td) -> int:
    return 1 + max((_depth(c) for c in td.children), default=0)


def _generable(td) -> bool:
    return td.num_leaves <= MAX_LEAVES and _depth(td) <= MAX_DEPTH


class _Namespace(dict):
    """The globals of a generated function: each constant (a key, a node type) under a short name."""

    def name(self, value, prefix) -> str:
        name = f"{prefix}{len(self)}"
        self[name] = value
        return name


def builder(td):
    """``build(leaves) -> tree`` of structure ``td`` (``leaves`` a sequence of ``td.num_leaves`` leaves in
    flatten order), or None when ``td`` is not generated (see the module docstring)."""
    if not _generable(td):
        return None
    ns = _Namespace()
    position = [0]

    def expr(node) -> str:
        if node.kind == LEAF:
            position[0] += 1
            return f"l[{position[0] - 1}]"
        if node.kind == NONE:
            return "None"
        kids = [expr(c) for c in node.children]
        typ = node.node_type
        if node.kind == DICT:
            keys = [ns.name(k, "k") for k in node.keys]
            if typ is dict:
                return "{" + ", ".join(f"{k}: {e}" for k, e in zip(keys, kids)) + "}"
            pairs = "".join(f"({k}, {e}), " for k, e in zip(keys, kids))
            return f"{ns.name(typ, 't')}(({pairs}))"  # as the walk: the type called on (key, child) pairs
        items = "".join(f"{e}, " for e in kids)
        if typ is tuple:
            return f"({items})"
        if typ is list:
            return f"[{items}]"
        if hasattr(typ, "_fields"):  # a namedtuple: its fields as arguments
            return f"{ns.name(typ, 't')}({items})"
        return f"{ns.name(typ, 't')}([{items}])"

    source = f"def build(l):\n    return {expr(td)}\n"
    exec(compile(source, "<fnnet.tree generated unflatten>", "exec"), ns)
    return ns["build"]


def extractor(td):
    """``extract(tree) -> leaves | None``: the leaves of ``tree`` in flatten order when its structure is
    ``td``, else None; None when ``td`` is not generated.  A dict matches when it has exactly ``td``'s keys
    (and type); it is never written to (a ``defaultdict`` is not indexed by a missing key)."""
    if not _generable(td):
        return None
    ns = _Namespace(ndarray=np.ndarray, containers=(dict, list, tuple))
    lines, leaves = [], []

    def visit(node, var):
        if node.kind == LEAF:  # a leaf for the walk: anything but None and the container types
            lines.append(f"if type({var}) is not ndarray and ({var} is None or isinstance({var}, containers)): "
                         "return None")
            leaves.append(var)
            return
        if node.kind == NONE:
            lines.append(f"if {var} is not None: return None")
            return
        typ = ns.name(node.node_type, "t")
        kids = [f"{var}_{i}" for i in range(len(node.children))]
        if node.kind == DICT:
            keys = ns.name(frozenset(node.keys), "ks")
            lines.append(f"if type({var}) is not {typ} or {var}.keys() != {keys}: return None")
            for kid, key in zip(kids, node.keys):
                lines.append(f"{kid} = {var}[{ns.name(key, 'k')}]")
        else:
            lines.append(f"if type({var}) is not {typ} or len({var}) != {len(kids)}: return None")
            if kids:
                lines.append(f"{', '.join(kids)}, = {var}")
        for kid, child in zip(kids, node.children):
            visit(child, kid)

    visit(td, "n")
    body = "".join(f"    {line}\n" for line in lines)
    source = f"def extract(n):\n{body}    return [{', '.join(leaves)}]\n"
    exec(compile(source, "<fnnet.tree generated flatten>", "exec"), ns)
    return ns["extract"]
