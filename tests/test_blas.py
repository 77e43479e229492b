"""``fnnet.kernels.blas.gemm``: the BLAS product kernels call, on every operand layout they pass it."""

import numpy as np
import pytest
from numba import njit

from fnnet.kernels.blas import gemm, matmul


@njit(cache=True)
def _gemm(a, b, c, alpha, beta):
    # [::1, ::1] types every operand as a strided ('A') array, so gemm compiles once for all layouts (each
    # layout's own specialisation is exercised by the kernels' tests).
    gemm(a[::1, ::1], b[::1, ::1], c[::1, ::1], alpha, beta)


@njit(cache=True)
def _matmul(a, b):
    return matmul(a, b)


def _layouts(x):
    """``x`` as the layouts kernels pass: C-contiguous, its transpose's transpose (column-major), and a slice
    of a larger C-contiguous array (rows contiguous, a leading dimension larger than the row)."""
    padded = np.zeros((x.shape[0] + 3, x.shape[1] + 5), x.dtype)
    padded[1:1 + x.shape[0], 2:2 + x.shape[1]] = x
    return {"C": x, "F": np.asfortranarray(x), "slice": padded[1:1 + x.shape[0], 2:2 + x.shape[1]]}


SHAPES = [(5, 7, 3), (1, 4, 6), (6, 1, 2), (3, 5, 1), (0, 3, 2), (3, 0, 4), (1, 1, 1), (70, 33, 65)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_gemm_matches_numpy_on_every_layout(m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a0, b0, c0 = rng.standard_normal((m, k)), rng.standard_normal((k, n)), rng.standard_normal((m, n))
    _check_layouts(a0, b0, c0)


def _check_layouts(a0, b0, c0):
    for a_name, a in _layouts(a0).items():
        for b_name, b in _layouts(b0).items():
            for c_name in ("C", "F"):
                for alpha, beta in ((1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)):
                    c = _layouts(c0)[c_name].copy(order="K")
                    _gemm(a, b, c, alpha, beta)
                    np.testing.assert_allclose(c, alpha * (a0 @ b0) + beta * c0, rtol=1e-12, atol=1e-12,
                                               err_msg=f"a {a_name}, b {b_name}, c {c_name}, {alpha}, {beta}")


@pytest.mark.parametrize("make", [lambda w: w[::-1, ::-1].copy()[::-1, ::-1], lambda w: np.broadcast_to(w[:1], w.shape),
                                  lambda w: np.asfortranarray(w), lambda w: np.repeat(w, 2, axis=1)[:, ::2]],
                         ids=["reversed", "broadcast", "fortran", "gapped"])
def test_ops_hand_kernels_only_forward_strided_matrices(make):
    """gemm reads matrices with forward strides only: the ops copy any other weight layout first."""
    import fnnet
    from fnnet import ops

    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6))
    w = make(rng.standard_normal((6, 4)))
    plain = np.array(w)

    def loss(w, fn):
        return ops.sum(fn(x, w) ** 2)

    for fn in (ops.linear, ops.matmul):
        np.testing.assert_allclose(fn(x, w), x @ plain, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fnnet.grad(loss)(w, fn), fnnet.grad(loss)(plain, fn), rtol=1e-12, atol=1e-12)
    image = rng.standard_normal((2, 3, 5, 5))
    kernel = make(rng.standard_normal((4, 3 * 3 * 3))).reshape(4, 3, 3, 3)
    np.testing.assert_allclose(ops.conv2d(image, kernel), ops.conv2d(image, np.array(kernel)), rtol=1e-12, atol=1e-12)


def test_beta_zero_never_reads_c_so_nan_garbage_is_overwritten():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    for k in (4, 0):
        c = np.full((3, 2), np.nan, np.float32)
        _gemm(a[:, :k], b[:k], c, 1.0, 0.0)
        np.testing.assert_array_equal(c, np.full((3, 2), k, np.float32))


def test_float32_and_matmul():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((17, 9)).astype(np.float32)
    b = rng.standard_normal((9, 5)).astype(np.float32)
    got = _matmul(a, b)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_matmul(a[::2], b), a[::2].astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_every_kernel_file_shares_one_cache_stamp_so_a_helper_edit_recompiles_its_callers():
    import numba.core.caching as caching

    from fnnet.kernels import _jit, blas, dense

    assert _jit.SHARED_SOURCE_STAMP
    locators = caching.CacheImpl._locator_classes
    ours = [cls for cls in locators if cls.__name__.startswith("FnnetKernels")]
    assert len(ours) == 3 and locators[:3] == ours  # consulted before Numba's own, once per process

    def stamp(dispatcher):
        for cls in locators:
            locator = cls.from_function(dispatcher.py_func, dispatcher.py_func.__code__.co_filename)
            if locator is not None:
                return type(locator).__name__, locator.get_source_stamp()

    kind, stamp_dense = stamp(dense.linear_fwd)
    assert kind.startswith("FnnetKernels") and stamp(blas.gemm)[1] == stamp_dense
    assert not stamp(_gemm)[0].startswith("FnnetKernels")  # code outside fnnet/kernels keeps Numba's stamp


#: (rows, in, out) of a dense product, one per way ``dense._blocks`` splits it: large row blocks with a last
#: block that is not full, column blocks (forward and input gradient), row blocks of a narrow output (its
#: input gradient in column blocks), one block in the calling thread.
DENSE_SPLITS = [(1324, 40, 24), (200, 300, 96), (300, 200, 40), (40, 30, 20)]


@pytest.mark.parametrize("n, k, m", DENSE_SPLITS, ids=["large-rows", "columns", "rows", "serial"])
def test_dense_kernels_match_numpy_and_ignore_the_thread_count_in_every_split(n, k, m):
    import numba

    from fnnet.kernels import dense

    assert [dense._blocks(*s)[:2] for s in DENSE_SPLITS] == [(False, 6), (True, 2), (False, 5), (False, 1)]
    rng = np.random.default_rng(3)
    x, w, g = (rng.standard_normal(s).astype(np.float32) for s in ((n, k), (k, m), (n, m)))
    b = rng.standard_normal(m).astype(np.float32)
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    runs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            runs.append((dense.linear_fwd(x, w, b, True, False), *dense.linear_bwd(x, w, g, True, True, True),
                         dense.matmul_fwd(x, w)))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    y, gx, gw, gb, mm = runs[0]
    np.testing.assert_allclose(y, x64 @ w64 + b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(mm, x64 @ w64, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gx, g64 @ w64.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gw, x64.T @ g64, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(gb, g64.sum(0), rtol=1e-5, atol=1e-3)
    for one, other in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(one, other)


def test_import_loads_only_cython_blas_and_scipy_linalg_still_sees_it():
    """``import fnnet`` loads SciPy's BLAS capsule module on its own (not all of scipy.linalg); a later
    ``import scipy.linalg`` gets that same module as its attribute and works."""
    import subprocess
    import sys

    code = ("import sys, fnnet; assert 'scipy.linalg' not in sys.modules; import numpy as np, scipy.linalg; "
            "assert scipy.linalg.cython_blas is sys.modules['scipy.linalg.cython_blas']; "
            "from scipy.linalg import cython_blas; assert cython_blas is scipy.linalg.cython_blas; "
            "assert np.allclose(scipy.linalg.solve(np.eye(2), [1.0, 2.0]), [1.0, 2.0])")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
