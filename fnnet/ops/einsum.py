"""``einsum`` for one or two operands, lowered to ``sum``, ``transpose``, ``reshape`` and ``matmul``.

For two operands each index is one of:

* a *batch* index (in both operands and the output): a batch axis of the matmul;
* a *contracted* index (in both operands, not the output): the inner axis of the matmul;
* a *free* index of ``a`` or ``b`` (in that operand and the output): rows of ``a``, columns of ``b``;
* a *summed* index (in one operand only, not the output): summed out of that operand first.

So ``'bhqd,bhkd->bhqk'`` is ``matmul(a, transpose(b))`` with batch ``bh``, and ``'bi,bj->bij'`` an outer
product per ``b`` (a matmul with an inner size of 1).  Axes are only transposed and reshaped when they
are not already in the order the matmul needs.  The gradient flows through those ops.
"""

from __future__ import annotations

import math
import string

from ._validate import check_float, check_same_dtype, value
from .linalg import matmul
from .reduce import sum as reduce_sum
from .shape import reshape, transpose

__all__ = ["einsum"]

_LETTERS = set(string.ascii_letters)


def _parse(subscripts, shapes):
    """``(input terms, output term)`` after checking every rule; sizes of shared indices must agree."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts expected a str such as 'ij,jk->ik', got {subscripts!r}")
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise ValueError(f"einsum: ellipsis ('...') is not supported, got {subscripts!r}; name every axis with a "
                         "letter, e.g. 'bhqd,bhkd->bhqk'")
    lhs, arrow, out = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: subscripts {subscripts!r} name {len(terms)} operand(s), got {len(shapes)}")
    for term in [*terms, out]:
        bad = sorted(set(term) - _LETTERS)
        if bad:
            raise ValueError(f"einsum: subscripts {subscripts!r} contain {bad[0]!r}; indices must be letters a-z, A-Z")
    sizes = _index_sizes(subscripts, terms, shapes)
    if not arrow:  # numpy's implicit output: the indices that appear once, in alphabetical order
        out = "".join(sorted(i for i in sizes if lhs.count(i) == 1))
    for i in out:
        if out.count(i) > 1:
            raise ValueError(f"einsum: output index {i!r} appears twice in {subscripts!r}")
        if i not in sizes:
            raise ValueError(f"einsum: output index {i!r} of {subscripts!r} is in no operand")
    return terms, out, sizes


def _index_sizes(subscripts, terms, shapes) -> dict:
    sizes, first = {}, {}
    for n, (term, shape) in enumerate(zip(terms, shapes)):
        if len(term) != len(shape):
            raise ValueError(f"einsum: operand {n} has {len(shape)} axes (shape {shape}) but its subscripts "
                             f"{term!r} name {len(term)}")
        for i, size in zip(term, shape):
            if term.count(i) > 1:
                raise ValueError(f"einsum: index {i!r} appears twice in operand {n}'s subscripts {term!r}; "
                                 "diagonals are not supported")
            if i in sizes and sizes[i] != size:
                m = first[i]
                raise ValueError(f"einsum: index {i!r} has size {sizes[i]} in operand {m} (shape {shapes[m]}) but "
                                 f"{size} in operand {n} (shape {shape}); sizes of one index must be equal (no "
                                 "broadcasting of size 1)")
            sizes.setdefault(i, size)
            first.setdefault(i, n)
    return sizes


def _reshaped(x, shape):
    """``x`` reshaped to ``shape``, or ``x`` itself when it has that shape already (no tape entry)."""
    return x if value(x).shape == tuple(shape) else reshape(x, tuple(shape))


def _arrange(x, term, order, shape):
    """``x`` (axes named by ``term``) with its axes in ``order``, then reshaped to ``shape`` if that differs."""
    perm = tuple(term.index(i) for i in order)
    if perm != tuple(range(len(perm))):
        x = transpose(x, perm)
    return _reshaped(x, shape)


def _sum_out(x, term, keep):
    """Sum ``x`` over the indices of ``term`` not in ``keep``; returns ``(x, remaining term)``."""
    axes = tuple(n for n, i in enumerate(term) if i not in keep)
    if not axes:
        return x, term
    return reduce_sum(x, axis=axes), "".join(i for i in term if i in keep)


def einsum(subscripts: str, *operands):
    """Einstein summation over one or two operands, e.g. ``einsum('bhqd,bhkd->bhqk', q, k)``.

    Supported: any two-operand contraction without repeated indices inside one operand (batch indices,
    contracted indices, free indices, indices summed out of one operand, any output order), and
    one-operand transposes and sums (``'ij->ji'``, ``'ijk->k'``).  Without ``->`` the output is the
    indices that appear once, in alphabetical order (numpy's rule).

    Args:
        subscripts: letters naming each operand's axes, comma-separated, optionally ``-> output``.
        *operands: one or two float arrays (or tracers) of one dtype.

    Returns:
        The result, with the axes of the output subscripts.

    Raises:
        TypeError: non-float or mixed dtypes, ``subscripts`` not a str.
        ValueError: an ellipsis, more than two operands, a repeated index within one operand (diagonals),
            an output index in no operand or repeated, subscripts that do not match an operand's ndim, or one
            index with two different sizes (size-1 axes are not broadcast).

    Example::

        scores = fnnet.ops.einsum("bhqd,bhkd->bhqk", q, k)     # (B, H, Tq, Tk)
        out = fnnet.ops.einsum("bhqk,bhkd->bhqd", weights, v)
    """
    if not 1 <= len(operands) <= 2:
        raise ValueError(f"einsum: supports one or two operands, got {len(operands)}; contract them pairwise")
    operands = [check_float("einsum", f"operand {n}", x) for n, x in enumerate(operands)]
    check_same_dtype("einsum", **{f"operand {n}": x for n, x in enumerate(operands)})
    terms, out, sizes = _parse(subscripts, [value(x).shape for x in operands])
    if len(operands) == 1:
        x, term = _sum_out(operands[0], terms[0], out)
        return _arrange(x, term, out, [sizes[i] for i in out])
    return _contract(operands, terms, out, sizes)


def _contract(operands, terms, out, sizes):
    (a, ta), (b, tb) = (_sum_out(x, t, set(out) | set(other))
                        for x, t, other in zip(operands, terms, terms[::-1]))
    batch = [i for i in out if i in ta and i in tb]
    a_free = [i for i in out if i in ta and i not in tb]
    b_free = [i for i in out if i in tb and i not in ta]
    inner = [i for i in ta if i in tb and i not in out]
    size = lambda idx: math.prod(sizes[i] for i in idx)  # noqa: E731
    batch_shape = [sizes[i] for i in batch]
    a = _arrange(a, ta, batch + a_free + inner, batch_shape + [size(a_free), size(inner)])
    b = _arrange(b, tb, batch + inner + b_free, batch_shape + [size(inner), size(b_free)])
    y = _reshaped(matmul(a, b), batch_shape + [sizes[i] for i in a_free + b_free])
    return _arrange(y, "".join(batch + a_free + b_free), out, [sizes[i] for i in out])
