"""grad / value_and_grad / vjp / checkpoint / stop_gradient semantics, threads and error messages."""

import threading

import numpy as np
import pytest

import fnnet
import fnnet.ops as ops
from fnnet.autodiff import Tracer


def _mlp_loss(params, x, y, use_second_layer=True):
    h = ops.linear(x, params["l1"]["weight"], params["l1"]["bias"])
    h = ops.relu(h)
    if use_second_layer:  # Python control flow on a concrete flag
        h = ops.linear(h, params["l2"]["weight"], params["l2"]["bias"])
    return ops.sum((h - y) ** 2.0) / float(len(x))


def _params(rng, dtype=np.float64):
    return {
        "l1": {"weight": rng.standard_normal((4, 8)).astype(dtype), "bias": rng.standard_normal(8).astype(dtype)},
        "l2": {"weight": rng.standard_normal((8, 3)).astype(dtype), "bias": rng.standard_normal(3).astype(dtype)},
    }


def test_grad_returns_params_structure_and_dtypes():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        params = _params(rng, dtype)
        g = fnnet.grad(_mlp_loss)(params, rng.standard_normal((5, 4)).astype(dtype),
                                  rng.standard_normal((5, 3)).astype(dtype))
        assert fnnet.tree.structure(g) == fnnet.tree.structure(params)
        for a, b in zip(fnnet.tree.leaves(g), fnnet.tree.leaves(params)):
            assert a.shape == b.shape and a.dtype == b.dtype


def test_unused_params_get_zero_gradients_not_none():
    rng = np.random.default_rng(1)
    params = _params(rng)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 8))
    g = fnnet.grad(_mlp_loss)(params, x, y, use_second_layer=False)
    assert np.all(g["l2"]["weight"] == 0) and np.all(g["l2"]["bias"] == 0)
    assert np.any(g["l1"]["weight"] != 0)


def test_mlp_gradient_matches_torch_with_python_if():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    params = _params(rng)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    value, g = fnnet.value_and_grad(_mlp_loss)(params, x, y)
    t = {k: {n: torch.tensor(v, requires_grad=True) for n, v in d.items()} for k, d in params.items()}
    h = torch.relu(torch.tensor(x) @ t["l1"]["weight"] + t["l1"]["bias"])
    h = h @ t["l2"]["weight"] + t["l2"]["bias"]
    tloss = ((h - torch.tensor(y)) ** 2).sum() / 6
    tloss.backward()
    np.testing.assert_allclose(value, tloss.item(), rtol=1e-12)
    for k in params:
        for n in params[k]:
            np.testing.assert_allclose(g[k][n], t[k][n].grad.numpy(), rtol=1e-10, atol=1e-12)


def test_loops_and_while_on_concrete_values():
    def f(x):
        total = x
        steps = 0
        while float(ops.sum(total)) < 100.0 and steps < 10:  # data-dependent loop
            total = total * 2.0
            steps += 1
        return ops.sum(total)

    x = np.array([1.0, 2.0])
    # 3 -> 6 -> 12 -> 24 -> 48 -> 96 -> 192: six doublings
    np.testing.assert_allclose(fnnet.grad(f)(x), [64.0, 64.0])


def test_argnums_tuple_and_has_aux():
    def f(a, b):
        loss = ops.sum(a * b)
        return loss, {"prod": a * b}

    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    (ga, gb), aux = fnnet.grad(f, argnums=(0, 1), has_aux=True)(a, b)
    np.testing.assert_array_equal(ga, b)
    np.testing.assert_array_equal(gb, a)
    assert type(aux["prod"]) is np.ndarray  # tracers are stripped from aux
    (val, aux2), ga2 = fnnet.value_and_grad(f, has_aux=True)(a, b)
    assert val == 11.0 and np.array_equal(ga2, b)


def test_tracer_operators_and_methods():
    def f(x):
        y = (2.0 - x) * x / (1.0 + x ** 2.0) + (-x) @ np.ones((3, 2)).T[0]
        z = y.reshape(1, 3).T.reshape(-1)
        return ops.sum(z + np.ones(3))

    x = np.array([0.5, 1.5, -0.3])
    fnnet.testing.check_grads(f, (x,))
    assert (fnnet.grad(lambda x: ops.sum(x * (x > 0)))(x) == (x > 0)).all()


def test_comparisons_return_plain_arrays_and_bool_reads_value():
    seen = {}

    def f(x):
        seen["cmp"] = x > 0
        if ops.sum(x) > 0:
            return ops.sum(x * 3.0)
        return ops.sum(x)

    np.testing.assert_array_equal(fnnet.grad(f)(np.array([1.0, 2.0])), [3.0, 3.0])
    assert type(seen["cmp"]) is np.ndarray and seen["cmp"].dtype == bool


def test_ops_outside_grad_record_nothing_and_return_arrays():
    y = ops.exp(np.zeros(3))
    assert type(y) is np.ndarray


def test_non_scalar_output_is_a_clear_error():
    with pytest.raises(TypeError, match=r"must return a scalar \(shape \(\)\), got shape \(3,\)"):
        fnnet.grad(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(TypeError, match="float scalar"):
        fnnet.grad(lambda x: 3)(np.ones(3))


def test_numpy_function_on_tracer_is_a_clear_error():
    with pytest.raises(TypeError, match="fnnet.ops"):
        fnnet.grad(lambda x: np.sum(np.asarray(x)))(np.ones(3))


def test_leaked_tracer_is_a_clear_error():
    box = {}

    def f(x):
        box["t"] = x
        return ops.sum(x)

    fnnet.grad(f)(np.ones(2))
    with pytest.raises(fnnet.autodiff.UnexpectedTracerError, match="already returned"):
        ops.exp(box["t"])


def test_missing_vjp_names_op_and_argument():
    prim = fnnet.primitive("test_half_vjp", lambda a, b: (a * b, (a, b)), lambda res, g: (g * res[1], None),
                           argnames=("a", "b"), override=True)
    fnnet.grad(lambda a: ops.sum(prim(a, np.ones(2))))(np.ones(2))  # fine: b not traced
    with pytest.raises(NotImplementedError, match=r"no VJP for 'test_half_vjp' w.r.t. argument 1 \('b'\)"):
        fnnet.grad(lambda b: ops.sum(prim(np.ones(2), b)))(np.ones(2))
    from fnnet.autodiff.primitive import _REGISTRY
    _REGISTRY.pop("test_half_vjp")


def test_duplicate_primitive_name_rejected():
    with pytest.raises(ValueError, match="already registered"):
        fnnet.primitive("add", lambda x: (x, None))


def test_user_defined_primitive_example_from_docs():
    cube = fnnet.primitive("test_cube", lambda x: (x * x * x, (x,)), lambda res, g: (3.0 * res[0] ** 2 * g,),
                           override=True)
    np.testing.assert_allclose(fnnet.grad(lambda x: ops.sum(cube(x)))(np.arange(3.0)), [0.0, 3.0, 12.0])
    fnnet.testing.check_grads(lambda x: cube(x), (np.linspace(-1, 1, 5),))
    from fnnet.autodiff.primitive import _REGISTRY
    _REGISTRY.pop("test_cube")


def test_stop_gradient():
    g = fnnet.grad(lambda x: ops.sum(x * fnnet.stop_gradient(x)))(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(g, [2.0, 3.0])


def test_vjp_non_scalar_and_reusable():
    out, vjp_fn = fnnet.vjp(lambda x: ops.tanh(x) * 2.0, np.array([0.0, 1.0]))
    (g1,) = vjp_fn(np.ones(2))
    (g2,) = vjp_fn(np.ones(2))
    np.testing.assert_allclose(g1, 2.0 * (1 - np.tanh([0.0, 1.0]) ** 2))
    np.testing.assert_array_equal(g1, g2)
    with pytest.raises(ValueError, match="cotangent has shape"):
        vjp_fn(np.ones(3))


def test_python_float_argument_gets_float_gradient():
    g = fnnet.grad(lambda s, x: ops.sum(x * s), argnums=0)(2.0, np.array([1.0, 2.0]))
    assert isinstance(g, float) and g == 3.0


def test_threads_compute_grads_concurrently_with_serial_results():
    rng = np.random.default_rng(3)
    params = _params(rng, np.float32)
    batches = [(rng.standard_normal((64, 4)).astype(np.float32), rng.standard_normal((64, 3)).astype(np.float32))
               for _ in range(8)]
    g_fn = fnnet.grad(_mlp_loss)
    serial = [g_fn(params, x, y) for x, y in batches]
    results = [None] * len(batches)

    def worker(indices):
        for _ in range(5):
            for i in indices:
                g = g_fn(params, *batches[i])
                if results[i] is None:
                    results[i] = g
                else:
                    assert all(np.array_equal(a, b) for a, b in zip(fnnet.tree.leaves(g), fnnet.tree.leaves(results[i])))

    threads = [threading.Thread(target=worker, args=(range(t, 8, 4),)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, r in zip(serial, results):
        for a, b in zip(fnnet.tree.leaves(s), fnnet.tree.leaves(r)):
            np.testing.assert_array_equal(a, b)


def test_checkpoint_gives_identical_gradients_and_less_tape_memory():
    rng = np.random.default_rng(4)
    ws = [rng.standard_normal((64, 64)).astype(np.float32) * 0.1 for _ in range(6)]
    x = rng.standard_normal((256, 64)).astype(np.float32)

    def block(w, h):
        return ops.tanh(ops.linear(ops.tanh(ops.linear(h, w)), w))

    def loss(ws, remat):
        h = x
        for w in ws:
            h = fnnet.checkpoint(block)(w, h) if remat else block(w, h)
        return ops.sum(h * h)

    g_plain = fnnet.grad(loss)(ws, False)
    plain_bytes = fnnet.autodiff.last_tape_stats()["peak_residual_bytes"]
    g_remat = fnnet.grad(loss)(ws, True)
    remat_bytes = fnnet.autodiff.last_tape_stats()["peak_residual_bytes"]
    for a, b in zip(g_plain, g_remat):
        np.testing.assert_array_equal(a, b)  # bitwise
    assert remat_bytes * 2 <= plain_bytes, (remat_bytes, plain_bytes)


def test_checkpoint_outside_grad_is_plain_call():
    f = fnnet.checkpoint(lambda x: ops.exp(x))
    assert type(f(np.zeros(2))) is np.ndarray


def test_tracer_repr_and_shape_attributes():
    def f(x):
        assert isinstance(x, Tracer)
        assert x.shape == (2, 3) and x.dtype == np.float64 and x.ndim == 2 and x.size == 6 and len(x) == 2
        assert "Tracer" in repr(x)
        return ops.sum(ops.reshape(x, (-1,)) * 1.0)

    fnnet.grad(f)(np.ones((2, 3)))


def test_check_finite_debug_mode_names_op_and_argument():
    x = np.array([1.0, np.nan, 3.0])
    assert np.isnan(ops.exp(x)[1])  # off by default: NaN propagates as in numpy
    with fnnet.check_finite():
        with pytest.raises(ValueError, match=r"exp: argument 0 \('x'\) contains 1 NaN and 0 inf value\(s\), the first at index \(1,\)"):
            ops.exp(x)
        with pytest.raises(ValueError, match=r"log: its output contains 0 NaN and 1 inf"):
            fnnet.grad(lambda v: ops.sum(ops.log(v)))(np.array([1.0, 0.0]))
        ops.exp(np.array([1.0, 2.0]))


def test_import_works_without_a_writable_cache_location(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = ("import numpy as np, fnnet, fnnet.kernels as K; assert not K.CACHE_ENABLED; "
            "print(fnnet.ops.sum(fnnet.ops.exp(np.zeros(3))))")
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(blocker / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.0"


@pytest.mark.parametrize("fwd, bwd, message", [
    (lambda x: x * 2, None, r"primitive 'contract_probe': the forward must return \(output, residuals\).*returned ndarray"),
    (lambda x: (x * 2, (x,), 3), None, r"the forward must return \(output, residuals\).*returned a tuple of 3"),
    (lambda x: ((x * 2).astype(np.float64), ()), None, "returned float64 from float32 inputs.*changes_dtype=True"),
    (lambda x: ([1.0], ()), None, "output must be a numpy array, got list"),
    (lambda x: (x * 2, ()), lambda res, g: g * 2, "the VJP must return a tuple with one cotangent per positional"),
    (lambda x: (x * 2, ()), lambda res, g: (g, g), r"the VJP returned 2 cotangent\(s\) for 1 positional input"),
    (lambda x: (x * 2, ()), lambda res, g: (2.0,), "cotangent for argument 0 .* must be a numpy array or None"),
])
def test_primitive_contract_errors_name_the_primitive(fwd, bwd, message):
    from fnnet.autodiff.primitive import _REGISTRY

    probe = fnnet.primitive("contract_probe", fwd, bwd or (lambda res, g: (g * 2,)), override=True)
    try:
        x = np.ones(3, np.float32)
        with pytest.raises(TypeError, match=message):
            fnnet.grad(lambda v: ops.sum(probe(v)))(x)
    finally:
        _REGISTRY.pop("contract_probe")


def test_declared_dtype_change_is_accepted_and_help_shows_the_how_to():
    from fnnet.autodiff.primitive import _REGISTRY

    widen = fnnet.primitive("widen_probe", lambda x: (x.astype(np.float64), ()),
                            lambda res, g: (g.astype(np.float32),), changes_dtype=True)
    try:
        assert widen(np.ones(2, np.float32)).dtype == np.float64
    finally:
        _REGISTRY.pop("widen_probe")
    assert "_cube_fwd" in fnnet.primitive.__doc__ and "one cotangent per positional input" in fnnet.primitive.__doc__
    with pytest.raises(TypeError, match=r"fnnet.primitive\('bad'\): fwd must be a function"):
        fnnet.primitive("bad", None)


# ---------------------------------------------------- what grad traces: subclasses, scalars, 0-d values


def test_grad_traces_memmapped_params_like_the_same_params_in_memory(tmp_path):
    rng = np.random.default_rng(5)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    for name, leaf in params.items():
        np.save(tmp_path / f"{name}.npy", leaf)
    mapped = {name: np.load(tmp_path / f"{name}.npy", mmap_mode="r") for name in params}
    assert all(type(leaf) is np.memmap for leaf in mapped.values())
    x = rng.standard_normal((3, 4))

    def loss(p):
        return ops.sum(ops.tanh(x * p["w"]) + p["b"] * p["b"])

    expected = fnnet.grad(loss)(params)
    got = fnnet.grad(loss)(mapped)
    for name in params:
        assert type(got[name]) is np.ndarray and np.abs(got[name]).sum() > 0
        np.testing.assert_array_equal(got[name], expected[name])


def test_grad_traces_plain_ndarray_subclasses_and_numpy_scalars():
    class Tagged(np.ndarray):
        pass

    x = np.arange(3.0)
    g = fnnet.grad(lambda x: ops.sum(x * x))(x.view(Tagged))
    np.testing.assert_array_equal(g, 2 * x)
    g32 = fnnet.grad(lambda s: s * s)(np.float32(3.0))
    assert type(g32) is np.float32 and g32 == 6.0
    assert type(fnnet.grad(lambda s: s * s)(np.float64(3.0))) is np.float64
    assert type(fnnet.grad(lambda s: s * s)(3.0)) is float


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_grad_rejects_masked_arrays_and_matrices_saying_how_to_fix():
    masked = np.ma.masked_array(np.ones(3), mask=[False, True, False])
    with pytest.raises(TypeError, match=r"value_and_grad\(<lambda>\): leaf 0 .* masked array.*x\.filled\(0\.0\)"):
        fnnet.grad(lambda p: ops.sum(p["w"]))({"w": masked})
    with pytest.raises(TypeError, match=r"vjp: leaf 0 .* np\.matrix.*np\.asarray\(x\)"):
        fnnet.vjp(lambda w: w, np.asmatrix(np.ones((2, 2))))


def test_a_0d_value_used_several_times_accumulates_its_gradient():
    x = np.arange(3.0)
    g = fnnet.grad(lambda x: (lambda a: a * a * a + a + a)(x[1]))(x)
    np.testing.assert_array_equal(g, [0.0, 5.0, 0.0])
    s = np.array(2.0)
    gs = fnnet.grad(lambda s: ops.sum(x * s + x * s + x * s + x * s))(s)
    assert type(gs) is np.ndarray and gs.shape == () and gs == 4 * x.sum()


def test_checkpoint_on_a_leaked_tracer_raises_like_an_op():
    box = {}
    fnnet.grad(lambda x: ops.sum(box.setdefault("t", x)))(np.ones(2))
    exp_block = fnnet.checkpoint(lambda x: ops.exp(x))
    with pytest.raises(fnnet.autodiff.UnexpectedTracerError,
                       match=r"checkpoint\(<lambda>\): got a traced value from a grad call that has already returned"):
        exp_block(box["t"])


def test_stacking_zero_d_traced_values_differentiates():
    g = fnnet.grad(lambda a: ops.sum(ops.stack([ops.sum(a), ops.sum(ops.multiply(a, a))])))(np.ones(3))
    np.testing.assert_array_equal(g, np.full(3, 3.0))


def test_numpy_reductions_of_tracers_run_the_fnnet_ops():
    """np.sum/np.mean/np.max call the tracer's method with numpy's extra arguments."""
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(fnnet.grad(lambda x: np.sum(x * x))(x), 2 * x)
    np.testing.assert_allclose(fnnet.grad(lambda x: np.mean(x * x, axis=0))(x), 2 * x / 3)
    np.testing.assert_array_equal(fnnet.grad(lambda x: np.max(x))(x), [0.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="dtype=float32 would change"):
        fnnet.grad(lambda x: np.sum(x, dtype=np.float32))(x)
    with pytest.raises(TypeError, match="out="):
        fnnet.grad(lambda x: np.sum(x, out=np.zeros(())))(x)
