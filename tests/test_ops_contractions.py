"""Broadcasting ``matmul``, ``split``/``chunk``, ``einsum`` and numpy ufuncs on tracers: bad inputs
(``pytest.raises(..., match=...)``) and what the op table cannot express: empty axes, Hypothesis-drawn
broadcast shapes, thread-count independence of the broadcast VJP, and the ufunc dispatch."""

import importlib

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fnnet
import fnnet.ops as ops

RNG = np.random.default_rng(0)


def _grads_vs_torch(fn, torch_fn, *xs):
    """fnnet's and torch's gradients of ``sum(fn(*xs) * u)`` (float64), compared."""
    out = fn(*xs)
    u = RNG.standard_normal(np.shape(out))
    grads = fnnet.grad(lambda *a: ops.sum(fn(*a) * u), argnums=tuple(range(len(xs))))(*xs)
    grads = grads if isinstance(grads, tuple) else (grads,)
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    (torch_fn(*ts) * torch.tensor(u)).sum().backward()
    for g, t in zip(grads, ts):
        assert g.shape == t.shape
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------ matmul


def test_matmul_rejects_batch_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"matmul: batch shapes \(2,\) of a \(2, 4, 5\) and \(3,\) of b \(3, 5, 6\) "
                                         r"do not broadcast .*reshape or transpose one operand"):
        ops.matmul(np.ones((2, 4, 5)), np.ones((3, 5, 6)))
    with pytest.raises(ValueError, match=r"matmul: inner dimensions differ"):
        ops.matmul(np.ones((2, 4, 5)), np.ones((1, 4, 6)))
    with pytest.raises(TypeError, match=r"matmul: a is float32 but b is float64"):
        ops.matmul(np.ones((1, 4, 5), np.float32), np.ones((2, 5, 6)))


@pytest.mark.parametrize("sa, sb", [((2, 0, 4, 5), (1, 5, 2)), ((2, 3, 0, 5), (3, 5, 2)), ((2, 3, 4, 0), (3, 0, 2)),
                                    ((3, 4, 5), (3, 5, 0)), ((0, 4, 5), (3, 1, 5, 2)), ((2, 4, 0), (0, 2))])
def test_matmul_with_empty_axes_matches_numpy_and_torch(sa, sb):
    a, b = RNG.standard_normal(sa), RNG.standard_normal(sb)
    np.testing.assert_array_equal(ops.matmul(a, b), np.matmul(a, b))
    _grads_vs_torch(ops.matmul, torch.matmul, a, b)


@settings(max_examples=30, deadline=None)
@given(batch=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "both", "neither"])), max_size=3),
       n=st.integers(0, 3), k=st.integers(0, 3), m=st.integers(1, 3), drop_a=st.integers(0, 3))
def test_matmul_broadcast_shapes_match_numpy_and_torch(batch, n, k, m, drop_a):
    """Each batch axis has its size in a, in b, in both, or 1 in both; a may have fewer leading axes."""
    ba = tuple(s if where in ("a", "both") else 1 for s, where in batch)
    bb = tuple(s if where in ("b", "both") else 1 for s, where in batch)
    a, b = RNG.standard_normal(ba[drop_a:] + (n, k)), RNG.standard_normal(bb + (k, m))
    np.testing.assert_allclose(ops.matmul(a, b), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    _grads_vs_torch(ops.matmul, torch.matmul, a, b)


def test_matmul_broadcast_vjp_is_bit_identical_for_any_thread_count():
    a, b = RNG.standard_normal((4, 1, 16, 8)), RNG.standard_normal((1, 6, 8, 12))
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            results.append(fnnet.grad(lambda a, b: ops.sum(ops.matmul(a, b) ** 2), argnums=(0, 1))(a, b))
    finally:
        numba.set_num_threads(before)
    for ga, gb in results[1:]:
        np.testing.assert_array_equal(ga, results[0][0])
        np.testing.assert_array_equal(gb, results[0][1])


def test_matmul_differentiates_one_operand_when_the_other_is_constant():
    a, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((1, 4, 5))
    ga = fnnet.grad(lambda a: ops.sum(ops.matmul(a, b)))(a)
    gb = fnnet.grad(lambda b: ops.sum(ops.matmul(a, b)))(b)
    np.testing.assert_allclose(ga, np.broadcast_to(b.sum(axis=-1)[:, None, :], a.shape), rtol=1e-12)
    np.testing.assert_allclose(gb, np.broadcast_to(a.sum(axis=(0, 1))[:, None], b.shape), rtol=1e-12)


# ------------------------------------------------------------------------------------------ split / chunk


X = RNG.standard_normal((4, 6))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ops.split(X, 4, axis=1), ValueError, r"split: 4 sections do not divide axis 1 of size 6 "
                                                  r"\(x.shape=\(4, 6\)\).*use chunk\(x, sections, axis\)"),
    (lambda: ops.split(X, 0), ValueError, r"split: indices_or_sections must be a positive int, got 0"),
    (lambda: ops.split(X, True), TypeError, r"split: indices_or_sections expected an int or a sequence of ints, "
                                            r"got True"),
    (lambda: ops.split(X, [1.5]), TypeError, r"split: indices_or_sections expected .* got \[1.5\]"),
    (lambda: ops.split(X, [True]), TypeError, r"split: indices_or_sections expected"),
    (lambda: ops.split(X, 2, axis=2), ValueError, r"split: axis 2 is out of range for an array with 2 dimension"),
    (lambda: ops.split(np.array(1.0), 1), ValueError, r"split: x must have at least 1 dimension, got a 0-d array"),
    (lambda: ops.split(np.ones(4, np.int64), 2), TypeError, r"split: x must be a float16, float32 or float64 array"),
    (lambda: ops.chunk(X, 0), ValueError, r"chunk: chunks must be a positive int, got 0"),
    (lambda: ops.chunk(X, 2.0), TypeError, r"chunk: chunks expected a positive int, got 2.0"),
    (lambda: ops.chunk(X, 2, axis=-3), ValueError, r"chunk: axis -3 is out of range"),
    (lambda: ops.chunk(X, 2, axis=1.0), TypeError, r"chunk: axis must be an int, got 1.0"),
])
def test_split_and_chunk_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("n, chunks", [(0, 3), (2, 4), (6, 4), (7, 7), (1, 1)])
def test_chunk_piece_sizes_match_torch(n, chunks):
    x = RNG.standard_normal((3, n))
    ours = ops.chunk(x, chunks, axis=1)
    theirs = torch.chunk(torch.tensor(x), chunks, dim=1)
    assert [p.shape for p in ours] == [tuple(t.shape) for t in theirs]
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p, t.numpy())


def test_split_piece_not_used_gets_zero_gradient_and_pieces_are_views():
    pieces = ops.split(X, [2], axis=1)
    assert all(np.shares_memory(p, X) for p in pieces)
    g = fnnet.grad(lambda x: ops.sum(ops.split(x, [2], axis=1)[1] * 3.0))(X)
    np.testing.assert_array_equal(g, np.concatenate([np.zeros((4, 2)), np.full((4, 4), 3.0)], axis=1))


# ------------------------------------------------------------------------------------------ einsum


A, B = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4))


@pytest.mark.parametrize("subscripts, operands, error, match", [
    ("...ij,jk->...ik", (A, B), ValueError, r"einsum: ellipsis \('...'\) is not supported, got '...ij,jk->...ik'; "
                                           r"name every axis with a letter"),
    ("ij,jk,kl->il", (A, B, B), ValueError, r"einsum: supports one or two operands, got 3"),
    ("ij,jk->ik", (A, A), ValueError, r"einsum: index 'j' has size 3 in operand 0 \(shape \(2, 3\)\) but 2 in "
                                      r"operand 1 \(shape \(2, 3\)\)"),
    ("ii,jk->ik", (RNG.standard_normal((3, 3)), B), ValueError, r"index 'i' appears twice in operand 0's "
                                                                r"subscripts 'ii'; diagonals are not supported"),
    ("ij,jk->iz", (A, B), ValueError, r"einsum: output index 'z' of 'ij,jk->iz' is in no operand"),
    ("ij,jk->ii", (A, B), ValueError, r"einsum: output index 'i' appears twice"),
    ("ijk,jk->ik", (A, B), ValueError, r"einsum: operand 0 has 2 axes \(shape \(2, 3\)\) but its subscripts 'ijk' "
                                       r"name 3"),
    ("i1,1k->ik", (A, B), ValueError, r"einsum: subscripts 'i1,1k->ik' contain '1'; indices must be letters"),
    ("ij->ji", (A, B), ValueError, r"einsum: subscripts 'ij->ji' name 1 operand\(s\), got 2"),
    (3, (A, B), TypeError, r"einsum: subscripts expected a str such as 'ij,jk->ik', got 3"),
    ("ij,jk->ik", (A.astype(np.float32), B), TypeError, r"einsum: operand 0 is float32 but operand 1 is float64"),
    ("ij,jk->ik", (A, np.ones((3, 4), np.int64)), TypeError, r"einsum: operand 1 must be a float16, float32"),
])
def test_einsum_errors(subscripts, operands, error, match):
    with pytest.raises(error, match=match):
        ops.einsum(subscripts, *operands)


@pytest.mark.parametrize("subscripts, shapes", [("bqd,bkd->bqk", [(0, 3, 2), (0, 4, 2)]),
                                                ("ij,j->i", [(3, 0), (0,)]), ("bi,bj->bij", [(2, 0), (2, 3)])])
def test_einsum_with_empty_axes_matches_numpy_and_torch(subscripts, shapes):
    xs = [RNG.standard_normal(s) for s in shapes]
    np.testing.assert_array_equal(ops.einsum(subscripts, *xs), np.einsum(subscripts, *xs))
    _grads_vs_torch(lambda *a: ops.einsum(subscripts, *a), lambda *t: torch.einsum(subscripts, *t), *xs)


@pytest.mark.parametrize("subscripts, transposes, reshapes", [("bhqd,bhdk->bhqk", 0, 0), ("bhqd,bhkd->bhqk", 1, 0),
                                                               ("bi,bj->bij", 0, 2), ("ij,jk->ki", 1, 0)])
def test_einsum_moves_axes_only_when_the_matmul_needs_it(monkeypatch, subscripts, transposes, reshapes):
    module = importlib.import_module("fnnet.ops.einsum")
    calls = []
    for name in ("transpose", "reshape"):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    shapes = {"bhqd,bhdk->bhqk": [(2, 3, 4, 5), (2, 3, 5, 6)], "bhqd,bhkd->bhqk": [(2, 3, 4, 5), (2, 3, 6, 5)],
              "bi,bj->bij": [(2, 3), (2, 4)], "ij,jk->ki": [(2, 3), (3, 4)]}[subscripts]
    xs = [RNG.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(ops.einsum(subscripts, *xs), np.einsum(subscripts, *xs), rtol=1e-12)
    assert (calls.count("transpose"), calls.count("reshape")) == (transposes, reshapes)


# ------------------------------------------------------------------------------------------ numpy ufuncs


def test_numpy_ufuncs_on_tracers_run_the_fnnet_ops():
    x = np.linspace(-1.0, 1.2, 6) + 0.05
    w = RNG.standard_normal((6, 6))

    def f(t):
        y = np.exp(t) + np.maximum(t, 0) + np.float64(2) * t + t * np.float64(3) + np.square(t) - np.negative(t)
        y = y / np.sqrt(np.abs(t) + 1) + np.tanh(t) + np.log(np.absolute(t) + 2) + np.power(t, 2) - np.minimum(t, 0)
        return np.matmul(w, y) @ w + (w @ y)

    def torch_f(t):
        y = t.exp() + t.clamp(min=0) + 2 * t + t * 3 + t ** 2 + t
        y = y / (t.abs() + 1).sqrt() + t.tanh() + (t.abs() + 2).log() + t ** 2 - t.clamp(max=0)
        tw = torch.tensor(w)
        return tw @ y @ tw + tw @ y

    np.testing.assert_allclose(f(x), torch_f(torch.tensor(x)).numpy(), rtol=1e-12)
    _grads_vs_torch(f, torch_f, x)


def test_boolean_ufuncs_on_tracers_read_the_values():
    def f(t):
        mask = np.greater(t, 0.0)
        assert type(mask) is np.ndarray and mask.dtype == bool
        assert np.isfinite(t).all() and not np.isnan(t).any() and (np.zeros(3) < t).sum() == 2
        return ops.sum(t * mask)

    np.testing.assert_array_equal(fnnet.grad(f)(np.array([-1.0, 2.0, 3.0])), [0.0, 1.0, 1.0])


@pytest.mark.parametrize("call, match", [
    (lambda t: np.sinh(t), r"np.sinh is not differentiable in fnnet \(no fnnet.ops function implements it\); use "
                           r"\(fnnet.ops.exp\(x\) - fnnet.ops.exp\(-x\)\) / 2; or apply np.sinh to "
                           r"fnnet.stop_gradient\(x\)"),
    (lambda t: np.arctan(t), r"np.arctan is not differentiable in fnnet .*compose it from fnnet.ops"),
    (lambda t: np.floor(t), r"np.floor is not differentiable .*piecewise constant .*np.floor\(fnnet.stop_gradient"),
    (lambda t: np.add.reduce(t), r"np.add.reduce on a traced array is not differentiable in fnnet; use fnnet.ops.sum"),
    (lambda t: np.multiply.outer(t, t), r"np.multiply.outer .* use broadcasting instead"),
    (lambda t: np.exp(t, out=np.empty(3)), r"np.exp\(..., out=...\) with a traced array cannot write its result"),
    (lambda t: np.exp(t, dtype=np.float32), r"np.exp: keyword argument\(s\) \['dtype'\] are not supported"),
])
def test_unsupported_ufuncs_name_the_fnnet_alternative(call, match):
    with pytest.raises(TypeError, match=match):
        fnnet.grad(lambda t: ops.sum(call(t)))(np.ones(3))


def test_augmented_assignment_into_a_plain_array_is_refused():
    def f(t):
        acc = np.zeros(3)
        acc += t
        return ops.sum(acc)

    with pytest.raises(TypeError, match=r"np.add\(..., out=...\) .*assign the result instead: a = a \+ t"):
        fnnet.grad(f)(np.ones(3))
