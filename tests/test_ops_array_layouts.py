"""Every op of the table (tests/cases) on arrays that hold ordinary values in an unusual container:
non-native byte order, an unaligned buffer, an ``np.memmap``.  Each must give bit-identical results and
gradients to the plain array (kernels read raw memory, so validation converts such arrays first), and
``np.ma.MaskedArray`` inputs, whose mask would be silently dropped, must be rejected before any kernel runs.
"""

import numpy as np
import pytest

import fnnet
import fnnet.ops as ops
from fnnet.autodiff import vjp

from .cases import ALL_CASES

ids = [c.id for c in ALL_CASES]
X = np.random.default_rng(0).standard_normal((3, 4))


def _swapped(a):
    """The same values stored in the non-native byte order (big-endian on this machine)."""
    return a.astype(a.dtype.newbyteorder("S")) if a.dtype.itemsize > 1 else a


def _unaligned(a):
    """The same values in a buffer that starts one byte past an aligned address."""
    buf = np.empty(a.nbytes + 1, np.uint8)
    out = buf[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert a.dtype.itemsize == 1 or a.size == 0 or not out.flags.aligned
    return out


def _memmap(a, path):
    if a.size == 0:
        return a  # numpy cannot map an empty file
    out = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    out[...] = a
    return out


def _variant(kind, args, tmp_path):
    out = []
    for i, a in enumerate(args):
        if not isinstance(a, np.ndarray):
            out.append(a)
        elif kind == "swapped":
            out.append(_swapped(a))
        elif kind == "unaligned":
            out.append(_unaligned(a))
        else:
            out.append(_memmap(a, tmp_path / f"arg{i}.bin"))
    return out


def _grads(case, args):
    argnums = case.argnums()

    def f(*traced):
        merged = list(args)
        for i, t in zip(argnums, traced):
            merged[i] = t
        return case.fn(*merged)

    out, vjp_fn = vjp(f, *[args[i] for i in argnums])
    return out, vjp_fn(np.linspace(-1.0, 1.0, np.size(out)).reshape(np.shape(out)))


@pytest.mark.parametrize("kind", ["swapped", "unaligned", "memmap"])
@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_op_on_an_unusual_array_container_equals_the_plain_array(case, kind, tmp_path, kernel_inputs):
    args = _variant(kind, case.args, tmp_path)
    expected = case.fn(*case.args)
    got = case.fn(*args)
    assert type(got) is np.ndarray and got.dtype == expected.dtype and got.dtype.isnative, (type(got), got.dtype)
    np.testing.assert_array_equal(got, expected)
    expected_out, expected_grads = _grads(case, list(case.args))
    got_out, got_grads = _grads(case, args)
    np.testing.assert_array_equal(got_out, expected_out)
    for g, e in zip(got_grads, expected_grads):
        assert type(g) is np.ndarray and g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)
    bad = [k for k, aligned, native in kernel_inputs if not (aligned and native)]
    assert not bad, f"kernels {sorted(set(bad))} received an unaligned or non-native array"


@pytest.mark.parametrize("case", ALL_CASES, ids=ids)
def test_op_rejects_a_masked_array_naming_the_fix(case):
    i = case.argnums()[0]
    args = list(case.args)
    args[i] = np.ma.masked_array(args[i], mask=np.zeros(args[i].shape, bool))
    with pytest.raises(TypeError, match=r"masked array.*\.filled\("):
        case.fn(*args)
    with pytest.raises(TypeError, match=r"(value_and_grad\(.*\)|vjp): .*masked array.*\.filled\("):
        vjp(lambda x: case.fn(*(args[:i] + [x] + args[i + 1:])), args[i])


# ---------------------------------------------------------------- the same, spelled out on a few ops


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
def test_big_endian_arrays_are_read_as_their_values_forward_and_gradient(dtype):
    x = np.array([0.5, 1.0, 1.0], dtype=dtype)
    native = x.astype(x.dtype.newbyteorder("="))
    assert float(ops.sum(x)) == 2.5
    assert ops.sum(x).dtype == native.dtype and ops.sum(x).dtype.isnative
    np.testing.assert_array_equal(ops.exp(x), ops.exp(native))
    np.testing.assert_array_equal(ops.multiply(x, native), ops.multiply(native, native))
    np.testing.assert_array_equal(ops.softmax(x), ops.softmax(native))
    g = fnnet.grad(lambda x: ops.sum(ops.tanh(x) * x))(x)
    np.testing.assert_array_equal(g, fnnet.grad(lambda x: ops.sum(ops.tanh(x) * x))(native))
    assert g.dtype == native.dtype


def test_unaligned_float32_view_is_copied_to_an_aligned_array(kernel_inputs):
    buf = np.zeros(4 * 6 + 1, np.uint8)
    x = buf[1:].view(np.float32).reshape(2, 3)
    x[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert not x.flags.aligned
    plain = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(ops.sum(x, axis=1), [3.0, 12.0])
    np.testing.assert_array_equal(ops.matmul(x, plain.T), plain @ plain.T)
    np.testing.assert_array_equal(fnnet.grad(lambda x: ops.sum(x * x))(x), 2 * plain)
    assert kernel_inputs and all(aligned and native for _, aligned, native in kernel_inputs), kernel_inputs


def test_memmap_is_accepted_by_unary_and_binary_ops(tmp_path):
    m = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=(2, 3))
    m[...] = X[:2, :3]
    for y in (ops.exp(m), ops.add(m, m), ops.multiply(2.0, m), ops.where(m > 0, m, 0.0), ops.getitem(m, 0)):
        assert type(y) is np.ndarray
    np.testing.assert_array_equal(ops.add(m, m), X[:2, :3].astype(np.float32) * 2)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("call", [ops.exp, lambda a: ops.add(a, a), lambda a: ops.getitem(a, 0), ops.transpose])
def test_masked_arrays_and_matrices_are_rejected_naming_the_op(call):
    masked = np.ma.masked_array(X, mask=X > 0)
    with pytest.raises(TypeError, match=r"^\w+: \w+ is a numpy masked array.*x\.filled\(0\.0\)"):
        call(masked)
    with pytest.raises(TypeError, match=r"^\w+: \w+ is an np\.matrix.*np\.asarray\(x\)"):
        call(np.asmatrix(X))
