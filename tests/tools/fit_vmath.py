"""Fit the polynomial coefficients of ``fnnet/kernels/_vmath.py`` (a development tool, not part of the package).

Each function is approximated on its interval by the polynomial that interpolates it at Chebyshev nodes
(``mpmath.chebyfit`` at 50 significant digits: within a small factor of the minimax polynomial), then the
coefficients are rounded to float32 or float64.  The printed ``maxrel`` is the largest error relative to the
function, with the rounded coefficients, on a 3001-point grid.  Run: ``python tests/tools/fit_vmath.py``
(needs ``mpmath``, which the test environment has as a dependency of sympy/PyTorch).
"""

import mpmath as mp
import numpy as np

mp.mp.dps = 50
SQRT = mp.sqrt
SQRT2 = SQRT(2)
ERFC_CENTRE = mp.mpf("0.5")  # the tail polynomial's variable is t - 0.5, t = 2 / (2 + z)


def q_expm1(r):
    """(e^r - 1 - r) / r^2."""
    return (mp.expm1(r) - r) / r**2 if abs(r) > 1e-20 else mp.mpf(1) / 2 + r / 6


def r_log(z):
    """(2 atanh(s) / s - 2) / z with z = s^2."""
    return (2 * mp.atanh(SQRT(z)) / SQRT(z) - 2) / z if z > 1e-30 else mp.mpf(2) / 3


def p_tanh(u):
    """(tanh(x) - x) / x^3 with u = x^2."""
    return (mp.tanh(SQRT(u)) - SQRT(u)) / u**mp.mpf(1.5) if u > 1e-30 else mp.mpf(-1) / 3


def p_erf(u):
    """erf(x) / x - 1 with u = x^2."""
    return mp.erf(SQRT(u)) / SQRT(u) - 1 if u > 1e-30 else 2 / SQRT(mp.pi) - 1


def q_erfc(v):
    """erfc(z) exp(z^2) / t with t = v + 0.5 = 2 / (2 + z)."""
    t = v + ERFC_CENTRE
    z = 2 / t - 2
    return mp.erfc(z) * mp.exp(z * z) / t


def fit(name, g, a, b, degree, dtype, relative_to=None):
    coeffs = mp.chebyfit(g, [a, b], degree + 1)
    rounded = [float(dtype(float(c))) for c in coeffs]  # highest degree first
    worst = mp.mpf(0)
    for i in range(3001):
        u = a + (b - a) * mp.mpf(i) / 3000
        worst = max(worst, abs(mp.polyval([mp.mpf(c) for c in rounded], u) - g(u)) / abs((relative_to or g)(u)))
    print(f"{name} ({np.dtype(dtype).name}, degree {degree}): maxrel {mp.nstr(worst, 3)}")
    print("    (" + ", ".join(repr(c) for c in rounded) + ")")


def main():
    half_ln2 = mp.log(2) / 2 + mp.mpf("0.001")  # a little slack for the rounding of k
    s2_max = ((SQRT2 - 1) / (SQRT2 + 1))**2 * mp.mpf("1.001")  # s = f / (2 + f), m in [sqrt(1/2), sqrt(2))
    erf_rel = lambda u: p_erf(u) + 1  # noqa: E731  (error relative to erf(x)/x, not to the small P - 1)
    for dtype, degrees, zmax in [(np.float32, (4, 3, 5, 6, 9), 10.5), (np.float64, (10, 7, 11, 11, 23), 27.5)]:
        d_expm1, d_log, d_tanh, d_erf, d_erfc = degrees
        fit("q_expm1", q_expm1, -half_ln2, half_ln2, d_expm1, dtype)
        fit("r_log", r_log, mp.mpf(0), s2_max, d_log, dtype)
        fit("p_tanh", p_tanh, mp.mpf(0), mp.mpf("0.625")**2, d_tanh, dtype)
        fit("p_erf", p_erf, mp.mpf(0), mp.mpf(1), d_erf, dtype, relative_to=erf_rel)
        t_lo, t_hi = 2 / (2 + mp.mpf(zmax)), 2 / (2 + mp.mpf("0.5"))  # z in [0.5, zmax]
        fit("q_erfc", q_erfc, t_lo - ERFC_CENTRE, t_hi - ERFC_CENTRE, d_erfc, dtype)


if __name__ == "__main__":
    main()
