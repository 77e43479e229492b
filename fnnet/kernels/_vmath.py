"""Branch-free float32/float64 exp, expm1, log, tanh, sigmoid, softplus, erf and GELU for vectorised kernels.

Why: pip's llvmlite has no SVML, so ``math.exp``/``np.tanh``/``math.erf`` inside a kernel are scalar libm
calls and the loop around them never vectorises (float32 ``tanh`` on 1M elements: ~15 ms against NumPy's
0.2 ms).  These functions are plain arithmetic: Cody-Waite range reduction, fitted polynomials, IEEE
selects instead of branches, and the exponent handled by integer bit manipulation in two tiny LLVM
intrinsics (``_ldexp_int``, ``_split_log``).  LLVM's loop vectoriser turns a kernel loop calling them into
packed AVX code (``vfmadd...ps``/``pd`` on ymm/zmm registers).

How: each function is built twice by ``_build`` from per-precision constants (``_vmath_constants``):
float32 data is computed in float32 arithmetic, float64 in float64.  A kernel calls the dtype-generic name
(``vm.exp(v)``) and Numba picks the variant from the argument's type.  Fused multiply-adds are explicit
(``fma``, ``llvm.fma``); no fastmath flag is used, so the vectorised loop body and its scalar remainder
compute identical bits and results do not depend on how ``prange`` splits the work.

Helpers are inlined at Numba-IR level (``inline="always"``) and so take the calling kernel's flags: call
them only from kernels compiled WITHOUT fastmath.  Under ``reassoc`` LLVM may fold the magic-number
rounding ``(t + M) - M`` to ``t``; the softmax kernels, which need ``reassoc`` for their row sums, take
their exponentials in separate non-fastmath row functions.

Accuracy, as asserted by tests/test_vmath.py (10^7 float32 bit patterns plus dense ranges against float64;
10^6 float64 inputs against long double): max error <= 2 ulp for exp, log, tanh, sigmoid and erf (measured
0.8, 0.8, 1.3, 0.8, 1.2 in float32; 0.6, 0.8, 1.3, 0.6, 1.0 in float64), expm1 (ELU) <= 1.5, softplus
<= 2.5, exact GELU <= 8 (measured 6 in both precisions, relative also in the left tail, where
``x (1 + erf(x / sqrt 2)) / 2`` cancels).  exp and sigmoid carry about 8 extra bits through their last
step (``exp_parts``), which keeps sigmoid's division from doubling exp's error.  Special values follow
NumPy: NaN propagates, ``exp(-inf) = 0``, ``exp(inf) = inf``, ``log(0) = -inf``, ``log(x < 0) = nan``,
``tanh(+-inf) = +-1``, signed zeros kept, overflow to inf and gradual underflow at NumPy's thresholds.

Numba cache: a cached kernel is not recompiled when a helper in another module changes.  Kernel files that
use these helpers therefore decorate their kernels through ``cache_key_suffix``, which appends a stamp of
this file and of ``_vmath_constants`` (size and modification time, what Numba checks for the kernel's own
file) to the function's qualified name, from which Numba names the cache file: an edit here gives the
dependent kernels new cache files, so they recompile.  (The alternative, copies of the helpers in every
kernel file, would duplicate this module.)  Old cache files are left behind, as Numba leaves its own.
"""

import math
import os

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from . import _vmath_constants
from ._jit import helper

__all__ = ["exp", "expm1", "log", "tanh", "sigmoid", "softplus", "erf", "erf_grad", "gelu", "gelu_grad",
           "gelu_tanh", "gelu_tanh_grad", "fma", "cache_key_suffix"]


def _source_stamp() -> str:
    """Size and modification time of this file and of its constants (what Numba itself checks to invalidate
    a cached kernel), folded into 16 hex digits."""
    stamp = 0
    for path in (__file__, _vmath_constants.__file__):
        try:
            st = os.stat(os.path.abspath(path))
        except OSError:  # no source file (frozen install): caches then follow the kernel files only
            return "nosource"
        for value in (st.st_size, st.st_mtime_ns):
            stamp = (stamp * 1_000_003 + value) % (1 << 64)
    return f"{stamp:016x}"


def cache_key_suffix(fn):
    """Rename ``fn`` (before it is jitted) so its Numba cache file name carries this module's source stamp."""
    fn.__qualname__ = f"{fn.__qualname__}__vmath_{_SOURCE_STAMP}"
    return fn


_SOURCE_STAMP = _source_stamp()

# ---------------------------------------------------------------------------------------------------------
# Bit-level intrinsics, generic over float32 (int32 bits) and float64 (int64 bits).


def _layout(fty):
    """(int type, mantissa bits, exponent bias) of an LLVM float type."""
    return (ir.IntType(32), 23, 127) if isinstance(fty, ir.FloatType) else (ir.IntType(64), 52, 1023)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma``: vfmadd on x86 with FMA)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, a, a), codegen


@intrinsic
def _ldexp_int(typingctx, y, k):
    """``y * 2**k`` for an integer-valued float ``k`` with ``|k| <= 2 * (bias - 1)``, as two exact power-of-two
    factors (so a product that underflows is rounded once, into the denormals).  ``k`` may be NaN: the integer
    is read from the bits of ``k + 1.5 * 2**mbits``, which is defined for every input."""
    if not (isinstance(y, types.Float) and y == k):
        return None

    def codegen(context, builder, signature, args):
        y, k = args
        ity, mbits, bias = _layout(y.type)
        magic = ir.Constant(y.type, 1.5 * 2.0**mbits)
        ki = builder.sub(builder.bitcast(builder.fadd(k, magic), ity), builder.bitcast(magic, ity))
        k1 = builder.ashr(ki, ir.Constant(ity, 1))

        def pow2(e):
            return builder.bitcast(builder.shl(builder.add(e, ir.Constant(ity, bias)), ir.Constant(ity, mbits)),
                                   y.type)

        return builder.fmul(builder.fmul(y, pow2(k1)), pow2(builder.sub(ki, k1)))

    return y(y, k), codegen


@intrinsic
def _split_log(typingctx, x):
    """``(m, k)`` with ``x = m * 2**k`` and ``m`` in ``[sqrt(1/2), sqrt(2))``, for positive normal ``x``."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        (x,) = args
        ity, mbits, bias = _layout(x.type)
        offset = ir.Constant(ity, 0x3F3504F3 if mbits == 23 else 0x3FE6A09E667F3BCD)  # bits of ~sqrt(1/2)
        bits = builder.bitcast(x, ity)
        k = builder.ashr(builder.sub(bits, offset), ir.Constant(ity, mbits))
        m = builder.bitcast(builder.sub(bits, builder.shl(k, ir.Constant(ity, mbits))), x.type)
        return context.make_tuple(builder, signature.return_type, (m, builder.sitofp(k, x.type)))

    return types.UniTuple(x, 2)(x), codegen


def _inline(fn):
    return helper(fn, inline=True)


@_inline
def _horner(u, c):
    """``c[0] * u**(n-1) + ... + c[n-1]`` (coefficients highest degree first; LLVM unrolls up to ~12)."""
    p = c[0]
    for i in range(1, len(c)):
        p = fma(p, u, c[i])
    return p


def _polynomial(c):
    """An inlined evaluator of the polynomial ``c``; above 12 coefficients it is split as
    ``high(u) * u**12 + low(u)`` so that each Horner loop is short enough for LLVM to unroll (a loop left
    rolled inside the kernel loop stops its vectorisation)."""
    if len(c) <= 12:
        return _inline(lambda u: _horner(u, c))
    high, low = c[:-12], c[-12:]

    @_inline
    def split(u):
        u4 = (u * u) * (u * u)
        return fma(_horner(u, high), u4 * u4 * u4, _horner(u, low))

    return split


# ---------------------------------------------------------------------------------------------------------
# The functions, built once per precision.


def _build(dt, K):
    """Return the functions for float type ``dt`` from the constants ``K`` (a dict of dt scalars/tuples)."""
    ZERO, HALF, ONE, TWO = dt(0.0), dt(0.5), dt(1.0), dt(2.0)
    INF = dt(np.inf)
    MAGIC, INV_LN2, LN2_HI, LN2_LO = K["magic"], K["inv_ln2"], K["ln2_hi"], K["ln2_lo"]
    EXP_LO, EXP_HI, EXPM1_LO, EXPM1_TINY = K["exp_lo"], K["exp_hi"], K["expm1_lo"], K["expm1_tiny"]
    EXP_ZERO = K["exp_zero"]
    Q_EXPM1, R_LOG, P_TANH, P_ERF, Q_ERFC = K["q_expm1"], K["r_log"], K["p_tanh"], K["p_erf"], K["q_erfc"]
    MIN_NORMAL, DENORMAL_SCALE, DENORMAL_K = K["min_normal"], K["denormal_scale"], K["denormal_k"]
    TANH_SMALL, ERFC_CENTRE, ERFC_ZMAX = dt(0.625), dt(0.5), K["erfc_zmax"]
    SQRT_HALF, INV_SQRT_2PI = dt(math.sqrt(0.5)), dt(1.0 / math.sqrt(2.0 * math.pi))
    TWO_OVER_SQRT_PI, THREE = dt(2.0 / math.sqrt(math.pi)), dt(3.0)
    GELU_2C, GELU_A = dt(2.0 * math.sqrt(2.0 / math.pi)), dt(0.044715)  # PyTorch's tanh-GELU constants
    ERFC_XMAX = dt(float(ERFC_ZMAX) * math.sqrt(2.0))  # the same clamp for Phi's argument x = z sqrt 2
    poly_erfc = _polynomial(Q_ERFC)

    @_inline
    def reduce_exp(x):
        """(k, r, r_lo) with x = k ln2 + r + r_lo, |r| <= ln2/2, r_lo the rounding error of r (x clamped)."""
        k = (x * INV_LN2 + MAGIC) - MAGIC
        r_hi = fma(k, -LN2_HI, x)  # exact
        r = fma(k, -LN2_LO, r_hi)
        return k, r, fma(k, -LN2_LO, r_hi - r)

    @_inline
    def expm1_reduced(r, r_lo):
        """exp(r + r_lo) - 1 for |r| <= ln2/2: r + (r_lo + r^2 q(r)), q fitted to (e^r - 1 - r)/r^2."""
        return r + fma(r * r, _horner(r, Q_EXPM1), r_lo)

    @_inline
    def exp_parts(x):
        """(k, t, rest) with exp(x) = 2^k (t + rest) to ~8 bits beyond working precision, |rest| < ulp(t)."""
        xc = EXP_HI if x > EXP_HI else x  # NaN passes both clamps and propagates
        xc = EXP_LO if xc < EXP_LO else xc
        k, r, r_lo = reduce_exp(xc)
        t = ONE + r
        t_err = (ONE - t) + r  # exact: 1 + r = t + t_err
        return k, t, t_err + fma(r * r, _horner(r, Q_EXPM1), r_lo)

    @_inline
    def exp_scaled(x, m):
        """m exp(x), rounded once also where it is denormal (m a normal number or 0, |m| < 16: the lower
        clamp of x must still give m exp(x) = 0)."""
        k, t, rest = exp_parts(x)
        return _ldexp_int((t + rest) * m, k)

    @_inline
    def exp_pair(x):
        """exp(x) as an unevaluated sum hi + lo (hi = exp(x) rounded), for x <= 0."""
        k, t, rest = exp_parts(x)
        hi = t + rest
        return _ldexp_int(hi, k), _ldexp_int((t - hi) + rest, k)

    @_inline
    def exp_(x):
        """exp(x).  An input whose exp rounds to 0 (a masked score's -inf, say) is replaced by 0 before the
        arithmetic and its result by 0 after: scaling such a lane down into the denormals costs a microcode
        assist per element (-inf inputs took 2.2x as long as normal ones), and -inf fills half of every
        causal attention tile.  NaN fails both comparisons and propagates; the bits are unchanged."""
        under = x < EXP_ZERO
        y = exp_scaled(ZERO if under else x, ONE)
        return ZERO if under else y

    @_inline
    def expm1_(x):
        xc = EXP_HI if x > EXP_HI else x
        xc = EXPM1_LO if xc < EXPM1_LO else xc  # expm1 is -1 to working precision below
        k, r, r_lo = reduce_exp(xc)
        s = _ldexp_int(HALF, k)  # 2^(k-1): finite up to the overflow threshold
        y = TWO * fma(s, expm1_reduced(r, r_lo), s - HALF)
        return x if abs(x) < EXPM1_TINY else y  # exact for tiny x, keeps -0

    @_inline
    def log_(x):
        tiny = x < MIN_NORMAL
        m, k = _split_log(x * DENORMAL_SCALE if tiny else x)
        k = k - DENORMAL_K if tiny else k
        f = m - ONE
        s = f / (TWO + f)
        z = s * s
        hfsq = HALF * f * f
        # log(1+f) = 2 atanh(s) = f - hfsq + s (hfsq + R(z)), R(z) = z R_LOG(z) fitted to 2 atanh(s)/s - 2
        tail = f - (hfsq - fma(s, hfsq + z * _horner(z, R_LOG), k * LN2_LO))
        y = fma(k, LN2_HI, tail)
        y = y if x < INF else x  # +inf and NaN
        y = -INF if x == ZERO else y
        return dt(np.nan) if x < ZERO else y

    @_inline
    def log1p_small(u):
        """log(1 + u) for u in [0, 1] (softplus): log(w) corrected by the rounding of w = 1 + u."""
        w = ONE + u
        return log_(w) + (u - (w - ONE)) / w

    @_inline
    def tanh_(x):
        a = abs(x)
        u = x * x
        small = fma(a * u, _horner(u, P_TANH), a)  # tanh(a) = a + a^3 P(a^2) for a < 0.625
        large = ONE - TWO / (exp_(TWO * a) + ONE)
        return math.copysign(small if a < TANH_SMALL else large, x)

    @_inline
    def sigmoid_(x):
        """n / (1 + e) with e = exp(-|x|) and n = 1 or e, evaluated with e and 1 + e as exact pairs: where
        the result sits just below a power of two and e just above one, any rounding of e or 1 + e would
        cost up to 1 ulp of the result."""
        e, e_lo = exp_pair(-abs(x))
        n, n_lo = (ONE, ZERO) if x >= ZERO else (e, e_lo)
        d = ONE + e
        d_err = ((ONE - d) + e) + e_lo  # 1 + e + e_lo = d + d_err
        q = n / d
        remainder = fma(-q, d, n)  # exact: n = q d + remainder
        return q + (remainder + n_lo - q * d_err) / d

    @_inline
    def sigmoid_pair(x):
        """(sigmoid(x), sigmoid(-x)), the second without the cancellation of 1 - sigmoid(x)."""
        e = exp_(-abs(x))
        d = ONE / (ONE + e)
        ed = e * d
        return (d, ed) if x >= ZERO else (ed, d)

    @_inline
    def softplus_(x):
        return (x if x > ZERO else ZERO) + log1p_small(exp_(-abs(x)))

    @_inline
    def square_split(x):
        """(s, lo) with s = fl(x^2) and x^2 = s + lo exactly."""
        s = x * x
        return s, fma(x, x, -s)

    @_inline
    def erfc_tq(a):
        """erfc(a) exp(a^2) for 0.5 <= a <= zmax: t Q(t - 0.5), t = 2 / (2 + a), Q fitted."""
        t = TWO / (TWO + a)
        return t * poly_erfc(t - ERFC_CENTRE)

    @_inline
    def erf_small(x):
        """erf(x) for |x| < 1: x + x P(x^2), P fitted to erf(x)/x - 1."""
        return fma(x, _horner(x * x, P_ERF), x)

    @_inline
    def erf_(x):
        a = abs(x)
        ac = ERFC_ZMAX if a > ERFC_ZMAX else a  # erfc has underflowed to 0 above zmax
        s, lo = square_split(ac)
        tail = exp_scaled(-s, (ONE - lo) * erfc_tq(ac))  # erfc(|x|) = exp(-s) exp(-lo) erfc_tq
        return erf_small(x) if a < ONE else math.copysign(ONE - tail, x)

    @_inline
    def erf_grad(x):
        """d erf(x) / dx = 2 / sqrt(pi) exp(-x^2)."""
        a = abs(x)
        ac = ERFC_ZMAX if a > ERFC_ZMAX else a
        s, lo = square_split(ac)
        return exp_scaled(-s, (ONE - lo) * TWO_OVER_SQRT_PI)

    @_inline
    def gauss_parts(x):
        """Pieces of the normal distribution at x, for the GELU functions: ``(small, xs, h, w, tail)`` where
        ``exp(-x^2/2) = exp(-h) w`` (exactly up to O(lo^2)), ``Phi(-|x|) = exp(-h) w tail`` for
        |x| >= sqrt(1/2), ``small`` is Phi(x) for |x| < sqrt(1/2) (where 1/2 + erf/2 does not cancel) and
        ``xs`` is x clamped to where exp(-h) has underflowed."""
        a = abs(x)
        ac = ERFC_XMAX if a > ERFC_XMAX else a
        s, lo = square_split(ac)
        small = fma(HALF, erf_small(x * SQRT_HALF), HALF)
        return small, math.copysign(ac, x), HALF * s, ONE - HALF * lo, HALF * erfc_tq(ac * SQRT_HALF)

    @_inline
    def gelu_(x):
        """x Phi(x) (PyTorch's approximate='none'), with one rounding in the left tail's denormals."""
        small, xs, h, w, tail = gauss_parts(x)
        e = exp_scaled(-h, xs * w * tail)  # x Phi(-|x|)
        large = e if x < ZERO else x - e
        return x * small if abs(x) < SQRT_HALF else large

    @_inline
    def gelu_grad(x):
        """Phi(x) + x phi(x), with one exp: exp(-h) w times the right multiplier for each branch."""
        small, xs, h, w, tail = gauss_parts(x)
        x_pdf = xs * INV_SQRT_2PI
        is_small = abs(x) < SQRT_HALF
        m = x_pdf if is_small else (tail + x_pdf if x < ZERO else x_pdf - tail)
        e = exp_scaled(-h, w * m)
        return small + e if is_small else (e if x < ZERO else ONE + e)

    @_inline
    def gelu_tanh_(x):
        """x (1 + tanh(u)) / 2 = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3) (approximate='tanh')."""
        return x * sigmoid_(GELU_2C * fma(GELU_A * x, x * x, x))

    @_inline
    def gelu_tanh_grad(x):
        s, s_neg = sigmoid_pair(GELU_2C * fma(GELU_A * x, x * x, x))
        du2 = GELU_2C * fma(THREE * GELU_A * x, x, ONE)
        return fma(x * s * s_neg, du2, s)

    return dict(exp=exp_, expm1=expm1_, log=log_, tanh=tanh_, sigmoid=sigmoid_, softplus=softplus_, erf=erf_,
                erf_grad=erf_grad, gelu=gelu_, gelu_grad=gelu_grad, gelu_tanh=gelu_tanh_,
                gelu_tanh_grad=gelu_tanh_grad)


def _consts(dt, values):
    """``values`` (floats and tuples of floats) converted to ``dt``."""
    return {k: (tuple(dt(c) for c in v) if isinstance(v, tuple) else dt(v)) for k, v in values.items()}


_F32 = _build(np.float32, _consts(np.float32, _vmath_constants.FLOAT32))
_F64 = _build(np.float64, _consts(np.float64, _vmath_constants.FLOAT64))


def _generic(name):
    """A function callable from njit code that runs the float32 or float64 variant of ``name``."""

    def stub(x):
        raise TypeError(f"fnnet.kernels._vmath.{name} is only callable from Numba-compiled code")

    stub.__name__ = stub.__qualname__ = name

    @overload(stub, inline="always")
    def _choose(x):
        if x == types.float32:
            impl = _F32[name]
        elif x == types.float64:
            impl = _F64[name]
        else:
            return None
        return lambda x: impl(x)

    return stub


exp = _generic("exp")
expm1 = _generic("expm1")
log = _generic("log")
tanh = _generic("tanh")
sigmoid = _generic("sigmoid")
softplus = _generic("softplus")
erf = _generic("erf")
erf_grad = _generic("erf_grad")
gelu = _generic("gelu")
gelu_grad = _generic("gelu_grad")
gelu_tanh = _generic("gelu_tanh")
gelu_tanh_grad = _generic("gelu_tanh_grad")
