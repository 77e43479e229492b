"""The vectorised transcendental kernels (fnnet/kernels/_vmath.py): accuracy in ulps, NumPy's special values,
and the same bits for any thread count.

An error is ``|result - reference|`` in units of the spacing of the result's format at the reference value
(an ulp; the smallest denormal below the normal range).  References: float32 results against float64 NumPy /
SciPy on the same inputs (their own error is below 1e-8 float32 ulps); float64 results against long double
(x87, 11 more bits) NumPy functions, and for erf and the normal CDF against the long-double series and
continued fraction below.  Inputs: 10^7 uniformly drawn float32 bit patterns (every binade, the denormals,
+-inf, NaNs), dense samples of each function's working range, and the edge values.
"""

import math

import numba
import numpy as np
import pytest
import scipy.special

import fnnet
import fnnet.kernels as K
import fnnet.ops as ops
from fnnet.kernels import _vmath, elementwise, softmax
from tests.thread_counts import on_one_thread_and_on_all

LD = np.longdouble
F32, F64 = np.float32, np.float64
SQRT2_LD = np.sqrt(LD(2))
SQRT_PI_LD = LD("1.772453850905516027298167483341145182")
CHUNK = 2_500_000


def ulp_error(y, ref, dtype):
    """``|y - ref|`` in ulps of ``dtype`` at ``ref`` (ref in a wider type); NaN where both are NaN is 0,
    NaN on one side only is inf.  Values beyond the format's range count as +-2**(emax+1)."""
    info = np.finfo(dtype)
    ref = np.asarray(ref)
    big = np.ldexp(ref.dtype.type(1), info.maxexp)
    y, ref = np.clip(y.astype(ref.dtype), -big, big), np.clip(ref, -big, big)
    with np.errstate(invalid="ignore"):
        exponent = np.frexp(ref)[1] - 1
        spacing = np.ldexp(ref.dtype.type(1), np.maximum(exponent - info.nmant, info.minexp - info.nmant))
        err = np.abs(y - ref) / spacing
    y_nan, ref_nan = np.isnan(y), np.isnan(ref)
    err[y_nan & ref_nan] = 0
    err[y_nan != ref_nan] = np.inf
    return err


def _worst(kernel, reference, x, dtype):
    """(max ulp error, the input giving it), over ``x`` in chunks."""
    worst, where = 0.0, None
    for start in range(0, x.size, CHUNK):
        part = x[start:start + CHUNK]
        with np.errstate(all="ignore"):
            err = ulp_error(kernel(part), reference(part), dtype)
        i = int(np.argmax(err))
        if err[i] > worst:
            worst, where = float(err[i]), part[i]
    return worst, where


# ---------------------------------------------------------------------------------------------------------
# References


def _erf_erfc_longdouble(z, gauss=None):
    """(erf(z), erfc(z)) in long double for z >= 0: the all-positive series
    erf z = 2/sqrt(pi) e^(-z^2) sum_n (2z^2)^n z / (1 3 5 ... (2n+1)) below 2, and erfc's continued fraction
    e^(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))) from 2.  ``gauss`` replaces e^(-z^2)."""
    z = z.astype(LD)
    g = np.exp(-z * z) if gauss is None else gauss
    term, total = z.copy(), z.copy()
    for n in range(1, 120):
        term = term * (2 * z * z) / (2 * n + 1)
        total = total + term
    erf_series = 2 / SQRT_PI_LD * g * total
    f = z.copy()
    for n in range(400, 0, -1):
        f = z + LD(n) / 2 / np.where(f == 0, 1, f)
    erfc_fraction = g / SQRT_PI_LD / f
    big = z >= 2
    return np.where(big, 1 - erfc_fraction, erf_series), np.where(big, erfc_fraction, 1 - erf_series)


def _gauss_longdouble(x, h=0.5):
    """exp(-h x^2) (h = 1/2 or 1) for float64 x, x^2 split into parts that long double holds exactly."""
    x = np.minimum(np.abs(x), 50)  # beyond, the result is 0 in any format
    high = x.astype(F32).astype(LD)
    low = x.astype(LD) - high
    return np.exp(-h * high * high) * np.exp(-2 * h * high * low) * np.exp(-h * low * low)


def _normal_cdf_longdouble(x):
    """Phi(x) for float64 x, accurate in both tails."""
    z = np.abs(x.astype(LD)) / SQRT2_LD
    erf_z, erfc_z = _erf_erfc_longdouble(z, gauss=_gauss_longdouble(x))
    return np.where(x < 0, erfc_z / 2, np.where(z < 2, (1 + erf_z) / 2, 1 - erfc_z / 2))


def _erf_longdouble(x):
    return np.sign(x).astype(LD) * _erf_erfc_longdouble(np.abs(x))[0]


def _sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


def _gelu_tanh_ref(x):
    """x sigmoid(2u): the same function as x (1 + tanh u) / 2 without its cancellation for x << 0."""
    return x * _sigmoid_ref(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))


# name: (kernel, float64 reference for float32 inputs, long-double reference for float64 inputs or None,
#        dense range, bound float32, bound float64)
FUNCTIONS = {
    "exp": (K.exp_fwd, np.exp, np.exp, (-105, 90), 2.0, 2.0),
    "log": (K.log_fwd, np.log, np.log, (0, 5), 2.0, 2.0),
    "tanh": (K.tanh_fwd, np.tanh, np.tanh, (-10, 10), 2.0, 2.0),
    "sigmoid": (K.sigmoid_fwd, _sigmoid_ref, _sigmoid_ref, (-110, 110), 2.0, 2.0),
    "softplus": (K.softplus_fwd, lambda x: np.logaddexp(0, x), lambda x: np.logaddexp(LD(0), x), (-110, 110),
                 2.5, 2.5),
    "elu": (lambda x: K.elu_fwd(x, x.dtype.type(1)), lambda x: np.where(x > 0, x, np.expm1(x)),
            lambda x: np.where(x > 0, x, np.expm1(x)), (-40, 5), 1.5, 1.5),
    "erf": (K.erf_fwd, scipy.special.erf, _erf_longdouble, (-7, 7), 2.0, 2.0),
    "gelu": (lambda x: K.gelu_fwd(x, False), lambda x: x * scipy.special.ndtr(x),
             lambda x: x * _normal_cdf_longdouble(x), (-16, 8), 8.0, 8.0),
}


@pytest.fixture(scope="module")
def float32_bit_patterns():
    bits = np.random.default_rng(0).integers(0, 2**32, 10**7, dtype=np.uint64).astype(np.uint32)
    return bits.view(F32)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_float32_error_in_ulps(name, float32_bit_patterns):
    kernel, reference, _, (lo, hi), bound, _ = FUNCTIONS[name]
    dense = np.random.default_rng(1).uniform(lo, hi, 2 * 10**6).astype(F32)
    for x in (float32_bit_patterns, dense):
        worst, where = _worst(kernel, lambda v: reference(v.astype(F64)), x, F32)
        assert worst <= bound, f"{name} float32: {worst:.3f} ulp at x={where!r} (bound {bound})"


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_float64_error_in_ulps(name):
    kernel, _, reference, (lo, hi), _, bound = FUNCTIONS[name]
    rng = np.random.default_rng(2)
    n = 10**6 if name not in ("erf", "gelu") else 4 * 10**4  # their references are series, slower
    bit_patterns = rng.integers(0, 2**64, n, dtype=np.uint64).view(F64)
    if name == "gelu":  # the reference's series/fraction needs finite x below the clamp
        bit_patterns = bit_patterns[np.abs(bit_patterns) < 1e300]
    for x in (bit_patterns, rng.uniform(lo, hi, n)):
        worst, where = _worst(kernel, lambda v: reference(v.astype(LD)) if name not in ("erf", "gelu")
                              else reference(v), x, F64)
        assert worst <= bound, f"{name} float64: {worst:.3f} ulp at x={where!r} (bound {bound})"


def test_tanh_gelu_is_accurate_where_it_matters():
    """The tanh form's argument u = sqrt(2/pi)(x + 0.044715 x^3) is rounded, and sigmoid(2u) amplifies
    that by |2u| in the left tail: an ulp bound for |x| <= 1, relative to max(|GELU|, 1) everywhere."""
    for dtype, eps in ((F32, 2.0**-23), (F64, 2.0**-52)):
        x = np.random.default_rng(3).uniform(-12, 12, 10**6).astype(dtype)
        y = K.gelu_fwd(x, True).astype(LD)
        ref = _gelu_tanh_ref(x.astype(LD))
        near = np.abs(x) <= 1
        assert np.max(ulp_error(y[near].astype(dtype), ref[near], dtype)) <= 8
        assert np.max(np.abs(y - ref) / np.maximum(np.abs(ref), 1)) <= 4 * eps


@pytest.mark.parametrize("dtype", [F32, F64])
def test_gradients_of_erf_and_gelu(dtype):
    """erf' = 2/sqrt(pi) exp(-x^2) in ulps; GELU' has a zero near x = -0.75, so its error is measured
    relative to max(|GELU'|, 1) there."""
    x = np.random.default_rng(4).uniform(-9, 9, 10**5).astype(dtype)
    one = np.ones_like(x)
    erf_grad = 2 / SQRT_PI_LD * _gauss_longdouble(x.astype(F64), h=1)
    assert np.max(ulp_error(K.erf_bwd(x, one), erf_grad, dtype)) <= 4
    eps = np.finfo(dtype).eps
    xl = x.astype(F64)
    exact = _normal_cdf_longdouble(xl) + xl.astype(LD) * _gauss_longdouble(xl) / np.sqrt(2 * LD(np.pi))
    u2 = 2 * math.sqrt(2 / math.pi) * (xl.astype(LD) + LD(0.044715) * xl.astype(LD)**3)
    s = 1 / (1 + np.exp(-u2))
    tanh_form = s + xl * s * (1 - s) * 2 * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * xl.astype(LD)**2)
    for approximate, ref in ((False, exact), (True, tanh_form)):
        got = K.gelu_bwd(x, one, approximate).astype(LD)
        assert np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1)) <= 8 * eps


# ---------------------------------------------------------------------------------------------------------
# Special values


EDGES = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 20.0, -20.0, 100.0, -100.0,
         700.0, -700.0, 710.0, -750.0, 1e-30, -1e-30, 1e-300, -1e-300]


def _edges(dtype):
    info = np.finfo(dtype)
    tiny, smallest = info.tiny, info.smallest_subnormal
    x = np.array(EDGES + [tiny, -tiny, smallest, -smallest, 3 * smallest, tiny / 3, info.max, -info.max,
                          float(np.log(info.max)), float(np.log(info.tiny)),
                          float(np.log(info.smallest_subnormal))], dtype=dtype)
    with np.errstate(over="ignore"):
        around = np.concatenate([np.nextafter(x, dtype(np.inf)), np.nextafter(x, dtype(-np.inf))])
    return np.concatenate([x, around])


def _same(a, b):
    """Equal values, NaN where NaN, and the same sign of zero."""
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a[a == 0]), np.signbit(b[b == 0]))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name, kernel, numpy_fn", [
    ("exp", K.exp_fwd, np.exp),
    ("log", K.log_fwd, np.log),
    ("tanh", K.tanh_fwd, np.tanh),
    ("expm1 (elu, alpha=1, x <= 0)", lambda x: K.elu_fwd(np.minimum(x, 0), x.dtype.type(1)), np.expm1),
])
def test_special_values_are_numpys(name, kernel, numpy_fn, dtype):
    """NaN, +-inf, +-0, denormals and the overflow/underflow thresholds give NumPy's special results (the
    same inf/0/NaN/sign of zero); finite results are within the ulp bounds above."""
    x = _edges(dtype)
    if name.startswith("expm1"):
        x = np.minimum(x, 0)
    with np.errstate(all="ignore"):
        got, expected = kernel(x), numpy_fn(x)
    special = ~np.isfinite(expected) | (expected == 0) | ~np.isfinite(got) | (got == 0)
    assert _same(got[special], expected[special]), (x[special], got[special], expected[special])
    assert np.max(ulp_error(got[~special], numpy_fn(x[~special].astype(LD)), dtype)) <= 2


@pytest.mark.parametrize("dtype", [F32, F64])
def test_exp_around_the_cutoff_below_which_it_is_zero(dtype):
    """Below ``exp_zero`` exp skips its arithmetic and gives 0 (scaling into the denormals costs a microcode
    assist per element); the true value rounds to 0 there, and the denormal results just above keep the
    ulp bound."""
    from fnnet.kernels import _vmath_constants

    cutoff = (_vmath_constants.FLOAT32 if dtype is F32 else _vmath_constants.FLOAT64)["exp_zero"]
    x = np.concatenate([np.linspace(cutoff - 4, cutoff + 4, 200_001), [-np.inf]]).astype(dtype)
    got = K.exp_fwd(x)
    assert np.all(got[x < cutoff] == 0) and not np.signbit(got).any()
    with np.errstate(under="ignore"):
        assert np.max(ulp_error(got, np.exp(x.astype(LD)), dtype)) <= 2
    assert got[x > cutoff + 1].min() > 0  # the cutoff sits below the last nonzero result


@pytest.mark.parametrize("dtype", [F32, F64])
def test_special_values_of_the_activations(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    one = dtype(1)
    assert _same(K.sigmoid_fwd(x), np.array([np.nan, 1, 0, 0.5, 0.5], dtype))
    assert _same(K.softplus_fwd(x), np.array([np.nan, np.inf, 0, math.log(2), math.log(2)], dtype))
    assert _same(K.erf_fwd(x), np.array([np.nan, 1, -1, 0, -0.0], dtype))
    assert _same(K.elu_fwd(x, one), np.array([np.nan, np.inf, -1, 0, -0.0], dtype))
    # exact GELU: +inf -> inf, -inf -> -0 (the limit; PyTorch's x * (1 + erf) / 2 gives NaN there)
    assert _same(K.gelu_fwd(x, False), np.array([np.nan, np.inf, -0.0, 0, -0.0], dtype))
    assert _same(K.gelu_fwd(x[[0, 1, 3, 4]], True), np.array([np.nan, np.inf, 0, -0.0], dtype))
    # the backward kernels: NaN propagates, elu_bwd passes g at NaN (like PyTorch)
    g = np.ones_like(x)
    assert _same(K.elu_bwd(x, g, one), np.array([1, 1, 0, 1, 1], dtype))
    assert _same(K.softplus_bwd(x, g), np.array([np.nan, 1, 0, 0.5, 0.5], dtype))
    assert _same(K.erf_bwd(x, g), np.array([np.nan, 0, 0, 2 / math.sqrt(math.pi), 2 / math.sqrt(math.pi)], dtype))
    assert _same(K.gelu_bwd(x[[0, 1, 3]], g[:3], False), np.array([np.nan, 1, 0.5], dtype))
    assert K.gelu_bwd(x[2:3], g[:1], False)[0] == 0  # the limit at -inf


@pytest.mark.parametrize("dtype", [F32, F64])
def test_softmax_family_keeps_its_accuracy_and_special_values(dtype):
    x = (np.random.default_rng(5).standard_normal((64, 33)) * 30).astype(dtype)
    m = x.max(axis=1, keepdims=True)
    shifted = (x - m).astype(LD)  # rounded like the kernels' x - max, which exp then amplifies by |x - max|
    total = np.sum(np.exp(shifted), axis=1, keepdims=True)
    # each output rounds the exponentials, their row sum and the division/log once: a few ulps (log_softmax
    # near 0 inherits log(sum)'s absolute error, as before these kernels: bounded relative to max(|y|, 1))
    assert np.max(ulp_error(K.softmax_fwd(x), np.exp(shifted) / total, dtype)) <= 4
    log_softmax_ref = shifted - np.log(total)
    log_softmax_err = np.abs(K.log_softmax_fwd(x) - log_softmax_ref) / np.maximum(np.abs(log_softmax_ref), 1)
    assert np.max(log_softmax_err) <= 4 * np.finfo(dtype).eps
    assert np.max(ulp_error(K.logsumexp_fwd(x), (m + np.log(total))[:, 0], dtype)) <= 4
    inf_rows = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]], dtype)
    with np.errstate(all="ignore"):
        y = K.softmax_fwd(inf_rows)
    assert y[0, 1] == 0 and np.isnan(y[1]).all() and np.isnan(y[2]).all()
    with np.errstate(all="ignore"):
        nan_after_inf = K.logsumexp_fwd(np.array([[np.inf, np.nan], [np.nan, np.inf], [-np.inf, np.nan]], dtype))
    assert np.isnan(nan_after_inf).all()  # a NaN is never dropped behind an infinite maximum
    lse_inf = K.logsumexp_fwd(inf_rows)
    assert _same(lse_inf[1:], np.array([-np.inf, np.inf], dtype))
    assert ulp_error(lse_inf[:1], np.logaddexp(LD(0), LD(1))[None], dtype)[0] <= 2


@pytest.mark.parametrize("dtype", [F32, F64])
def test_row_maximum_is_a_single_running_maximum_for_every_length_and_special_value(dtype):
    """``softmax.row_max`` keeps eight running maxima; its result must be a single running maximum's
    (``x[i, 0]`` unless something beats it, NaN only when ``x[i, 0]`` is NaN; ``-inf`` for an empty row), in
    the row's dtype, at every tail length."""

    @numba.njit(cache=False)
    def maxima(x):
        return np.array([softmax.row_max(x[i], x.shape[1]) for i in range(x.shape[0])])

    rng = np.random.default_rng(8)
    assert maxima(np.zeros((2, 0), dtype))[0] == -np.inf
    for n in range(1, 27):
        x = rng.standard_normal((40, n)).astype(dtype)
        x[1, n - 1] = np.nan
        x[2, 0] = np.nan
        x[3] = -np.inf
        x[4, rng.integers(n)] = np.inf
        x[5, :] = -0.0
        x[6, n // 2] = 1e30
        reference = []
        for row in x:
            m = row[0]
            for v in row[1:]:
                if v > m:
                    m = v
            reference.append(m)
        got = maxima(x)
        assert got.dtype == dtype and _same(got, np.array(reference, dtype)), n


# ---------------------------------------------------------------------------------------------------------
# Determinism and the cache key


def test_results_do_not_depend_on_the_thread_count():
    """Vector body and scalar remainder compute the same bits, so moving prange's chunk boundaries (by
    changing the thread count) changes nothing."""
    x = np.random.default_rng(6).standard_normal(100_003) * 4
    calls = [K.exp_fwd, K.log_fwd, K.tanh_fwd, K.sigmoid_fwd, K.softplus_fwd, K.erf_fwd,
             lambda v: K.elu_fwd(v, v.dtype.type(0.7)), lambda v: K.gelu_fwd(v, False),
             lambda v: K.gelu_fwd(v, True), lambda v: K.gelu_bwd(v, v, False), lambda v: K.erf_bwd(v, v),
             lambda v: K.softmax_fwd(v[:99_990].reshape(30, -1))]
    for dtype in (F32, F64):
        xd = np.abs(x).astype(dtype) if dtype == F32 else x.astype(dtype)
        serial, parallel = on_one_thread_and_on_all(lambda: [call(xd) for call in calls])
        for a, b in zip(serial, parallel):
            assert a.tobytes() == b.tobytes()


def test_every_kernel_reaching_vmath_carries_its_source_stamp_in_the_cache_key():
    """A cached kernel is not recompiled when _vmath changes unless its cache name changes with it."""
    stamp = "__vmath_" + _vmath._SOURCE_STAMP
    for module in (elementwise, softmax):
        dispatchers = {n: f for n, f in vars(module).items() if isinstance(f, numba.core.dispatcher.Dispatcher)}
        keyed = {n for n, f in dispatchers.items() if f.py_func.__qualname__.endswith(stamp)}
        for name, f in dispatchers.items():
            reaches = {"vm"} | keyed
            if reaches & set(f.py_func.__code__.co_names):
                assert name in keyed, f"{module.__name__}.{name} calls _vmath but lacks the cache-key suffix"
        assert keyed, module.__name__


# ---------------------------------------------------------------------------------------------------------
# The op-level API added with the kernels


def test_gelu_accepts_pytorch_approximate_names_and_rejects_others():
    x = np.linspace(-4, 4, 17)
    np.testing.assert_array_equal(ops.gelu(x, approximate="none"), ops.gelu(x))
    np.testing.assert_array_equal(ops.gelu(x, approximate="tanh"), ops.gelu(x, approximate=True))
    assert not np.array_equal(ops.gelu(x, approximate="tanh"), ops.gelu(x))
    with pytest.raises(ValueError, match=r"gelu: approximate must be 'none' or 'tanh'.*got 'fast'"):
        ops.gelu(x, approximate="fast")


def test_gelu_left_tail_keeps_its_relative_accuracy():
    """x Phi(x) from erfc: the textbook x (1 + erf(x/sqrt2)) / 2 cancels to 0 or loses every digit there."""
    x = np.array([-5.0, -9.0, -20.0, -37.0])
    np.testing.assert_allclose(ops.gelu(x), x * _normal_cdf_longdouble(x).astype(F64), rtol=1e-14)
    np.testing.assert_allclose(ops.gelu(x.astype(F32)), (x * scipy.special.ndtr(x)).astype(F32), rtol=1e-6)
    g = fnnet.grad(lambda v: ops.sum(ops.erf(v)))(x)
    np.testing.assert_allclose(g, 2 / np.sqrt(np.pi) * np.exp(-x * x), rtol=1e-13, atol=0)
