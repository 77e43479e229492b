"""Model inspection without allocating parameters: ``eval_shape`` and ``summary``."""

from __future__ import annotations

import numpy as np

from . import init as initializers
from . import tree
from .layers.walking import is_leaf, walk

__all__ = ["eval_shape", "summary", "layer_rows"]


def eval_shape(fn, *args, **kwargs):
    """Run ``fn`` with initializers in abstract mode: every array an ``fnnet.init`` initializer would
    create comes back as a :class:`fnnet.init.ShapeDtype` (shape and dtype), nothing is drawn or allocated.

    Example::

        shapes = fnnet.eval_shape(model.init, fnnet.random.key(0), (None, 784))
        n_params = sum(s.size for s in fnnet.tree.leaves(shapes))
    """
    with initializers.abstract_arrays():
        return fn(*args, **kwargs)


def _estimate(layer, method, *args):
    """``layer.<method>(*args)``, or None when the layer gives no estimate."""
    fn = getattr(layer, method, None)
    return None if fn is None else fn(*args)


def _enclosing(paths, path):
    """The first of ``paths`` that is ``path`` or one of its ancestors (``""`` is everyone's), else None."""
    for p in paths:
        if p == "" or path == p or path.startswith(p + "/"):
            return p
    return None


def layer_rows(model, in_shape, dtype=np.float32):
    """One dict per leaf layer, in params-tree order: ``path``, ``type``, ``in_shape``, ``out_shape``,
    ``params``, ``param_bytes``, ``flops`` and ``tape_bytes`` (None where the layer gives no estimate), and
    ``remat``: the path of the outermost ``Remat`` around the layer, or None."""
    return _inspect(model, in_shape, dtype)[0]


def _inspect(model, in_shape, dtype):
    """(leaf rows, {path of each outermost Remat: the bytes it keeps, its block's input})."""
    rows, kept_by_remat = [], {}
    np_dtype = np.dtype(dtype)
    for path, layer, shape in walk(model, in_shape):
        remat = _enclosing(kept_by_remat, path)
        if remat is None and getattr(layer, "rematerializes", False):
            kept_by_remat[path] = _estimate(layer, "tape_bytes", shape, np_dtype)
            remat = path
        if not is_leaf(layer):
            continue
        leaves = tree.leaves(eval_shape(layer.init, np.zeros(2, np.uint32), shape, dtype))
        rows.append({
            "path": path or "(model)", "type": type(layer).__name__, "in_shape": shape,
            "out_shape": layer.out_shape(shape), "params": sum(s.size for s in leaves),
            "param_bytes": sum(s.nbytes for s in leaves), "flops": _estimate(layer, "flops", shape),
            "tape_bytes": _estimate(layer, "tape_bytes", shape, np_dtype), "remat": remat,
        })
    return rows, kept_by_remat


def _sum(values):
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _totals(rows, kept_by_remat):
    """Totals; ``tape_bytes`` is what the tape holds at the end of the forward (a Remat block counts its
    input, not its layers), ``recompute_tape_bytes`` the most one block's recomputation adds in the backward."""
    recompute = [_sum(r["tape_bytes"] for r in rows if r["remat"] == p) for p in kept_by_remat]
    return {
        "params": sum(r["params"] for r in rows), "param_bytes": sum(r["param_bytes"] for r in rows),
        "flops": _sum(r["flops"] for r in rows),
        "tape_bytes": _sum([r["tape_bytes"] for r in rows if r["remat"] is None] + list(kept_by_remat.values())),
        "recompute_tape_bytes": None if None in recompute else max(recompute, default=0),
        "not_estimated": [r["path"] for r in rows if r["flops"] is None or r["tape_bytes"] is None],
    }


def _fmt_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _fmt_count(n):
    return "?" if n is None else f"{n:,}"


def _fmt_tape(row):
    text = "?" if row["tape_bytes"] is None else _fmt_bytes(row["tape_bytes"])
    return text if row["remat"] is None else f"({text})"


def _table(rows, total):
    # The text columns grow to their longest entry (a path such as "3/block/attention", a type such as
    # LearnedPositionalEmbedding), so every row stays aligned.
    wp = max([22] + [len(r["path"]) + 2 for r in rows])
    wt = max([16] + [len(r["type"]) + 2 for r in rows])
    ws = max([22] + [len(str(r["out_shape"])) + 2 for r in rows])
    header = f"{'path':<{wp}}{'type':<{wt}}{'output shape':<{ws}}{'params':>12}{'param mem':>12}{'FLOPs':>14}{'tape':>12}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['path']:<{wp}}{r['type']:<{wt}}{str(r['out_shape']):<{ws}}{r['params']:>12,}"
                     f"{_fmt_bytes(r['param_bytes']):>12}{_fmt_count(r['flops']):>14}{_fmt_tape(r):>12}")
    lines.append("-" * len(header))
    tape = "?" if total["tape_bytes"] is None else _fmt_bytes(total["tape_bytes"])
    lines.append(f"{'total':<{wp + wt + ws}}{total['params']:>12,}{_fmt_bytes(total['param_bytes']):>12}"
                 f"{_fmt_count(total['flops']):>14}{tape:>12}")
    if any(r["remat"] is not None for r in rows):
        extra = total["recompute_tape_bytes"]
        lines.append(f"(tape): inside Remat, held only while its block is recomputed (up to "
                     f"{'?' if extra is None else _fmt_bytes(extra)} more); the total counts each block's input")
    if total["not_estimated"]:
        lines.append(f"?: not estimated by the layer (define flops() and tape_bytes()): "
                     f"{', '.join(total['not_estimated'])}")
    return "\n".join(lines)


def summary(model, in_shape, dtype=np.float32, *, print_fn=print):
    """Print (and return) a per-layer table: path, type, output shape, parameter count and bytes,
    forward FLOPs and the activation bytes the tape keeps for the backward, with totals.

    Shape inference only: no parameter is allocated.  A ``None`` batch entry counts as 1 (per example).
    FLOPs count a multiply-add as 2.  Each layer gives its own estimates (``Layer.flops``,
    ``Layer.tape_bytes``); a layer that gives none shows ``?``, and the totals it would enter are None.
    Tape bytes are counted per layer (an array two layers both keep, such as ReLU's output that the next
    Linear keeps as its input, is counted by each).

    Checkpointing: the rows of the layers inside a ``Remat`` are those of the plain model (same paths,
    params, FLOPs, and the tape bytes they hold while their block is recomputed, shown in parentheses);
    the total ``tape_bytes`` counts a ``Remat`` block by its input, which is all the tape keeps of it
    through the forward, and ``recompute_tape_bytes`` is the most that recomputing one block adds during
    the backward.  (Training runs each checkpointed block's forward twice; FLOPs count it once.)

    Returns:
        ``{"rows": [...], "total": {"params", "param_bytes", "flops", "tape_bytes", "recompute_tape_bytes",
        "not_estimated"}}`` (rows as :func:`layer_rows`; ``not_estimated``: paths of the layers without
        estimates).
    """
    in_shape = tuple(in_shape.shape) if hasattr(in_shape, "shape") else tuple(in_shape)
    rows, kept_by_remat = _inspect(model, in_shape, dtype)
    total = _totals(rows, kept_by_remat)
    if print_fn is not None:
        print_fn(_table(rows, total))
    return {"rows": rows, "total": total}
