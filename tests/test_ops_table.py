"""The op table (tests/cases) drives every op's forward, VJP, gradient-check and dtype tests."""

import numpy as np
import pytest

import fnnet
import fnnet.ops  # noqa: F401  (registers the built-in primitives)
from fnnet.autodiff import registered_primitives, vjp
from fnnet.testing import assert_close, check_grads

from .cases import ALL_CASES

# Primitives exercised by dedicated test files instead of the table, with where.
TESTED_ELSEWHERE = {
    "checkpoint": "tests/test_autodiff.py::test_checkpoint_*",
    "cast": "tests/test_float16.py::test_cast_touches_only_floating_leaves_and_is_differentiable",
}

ids = [c.id for c in ALL_CASES]


def _torch_args(case):
    torch = pytest.importorskip("torch")
    out = []
    for a in case.args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            out.append(torch.tensor(a, requires_grad=True))
        elif isinstance(a, np.ndarray):
            out.append(torch.tensor(a))
        else:
            out.append(a)
    return out


def test_every_registered_primitive_has_a_table_entry():
    covered = {name for case in ALL_CASES for name in case.covers}
    library = {name for name in registered_primitives() if not name.startswith("test_")}  # tests define their own
    missing = sorted(library - covered - set(TESTED_ELSEWHERE))
    assert not missing, f"primitives without a row in tests/cases: {missing}"


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_forward_matches_numpy(case):
    if case.numpy_ref is None:
        pytest.skip("no NumPy reference for this op (compared with PyTorch instead)")
    assert_close(case.fn(*case.args), case.numpy_ref(*case.args), rtol=case.rtol, atol=case.atol, what=case.id)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_forward_and_vjp_match_torch(case):
    if case.torch_ref is None:
        pytest.skip("PyTorch has no equivalent of this op")
    torch = pytest.importorskip("torch")
    targs = _torch_args(case)
    expected = case.torch_ref(*targs)
    argnums = case.argnums()
    out, vjp_fn = vjp(lambda *xs: case.fn(*_merge(case, xs)),
                      *[case.args[i] for i in argnums])
    assert_close(out, expected, rtol=case.rtol, atol=case.atol, what=f"{case.id} forward")
    u = np.random.default_rng(1).standard_normal(np.shape(out))
    grads = vjp_fn(u)
    torch_inputs = [targs[i] for i in argnums]
    expected_grads = torch.autograd.grad(expected, torch_inputs, torch.tensor(u), allow_unused=True)
    for i, g, tg in zip(argnums, grads, expected_grads):
        tg = np.zeros_like(case.args[i]) if tg is None else tg
        assert_close(g, tg, rtol=case.rtol, atol=max(case.atol, 1e-9), what=f"{case.id} d/d arg{i}")


def _merge(case, traced):
    args = list(case.args)
    for i, t in zip(case.argnums(), traced):
        args[i] = t
    return args


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_gradient_check_float64(case):
    argnums = case.argnums()
    check_grads(lambda *xs: case.fn(*_merge(case, xs)), [case.args[i] for i in argnums], rtol=case.grad_rtol)


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_float32_keeps_dtype(case):
    args32 = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float64 else a for a in case.args]
    out32 = case.fn(*args32)
    out64 = case.fn(*case.args)
    assert out32.dtype == np.float32, f"{case.id}: float32 inputs gave {out32.dtype}"
    np.testing.assert_allclose(out32, out64, rtol=2e-4, atol=2e-5)


def test_gradient_checker_catches_a_wrong_vjp():
    wrong = fnnet.primitive("test_wrong_square", lambda x: (x * x, x), lambda x, g: (3.0 * x * g,),
                            override=True)
    from fnnet.autodiff.primitive import _REGISTRY

    try:
        with pytest.raises(fnnet.testing.GradientCheckError, match="central differences"):
            check_grads(lambda x: wrong(x), [np.linspace(0.5, 1.5, 7)])
    finally:
        _REGISTRY.pop("test_wrong_square")
