"""Tests for fnnet.random: Threefry known answers, key derivation, determinism, distributions, errors."""

import math
import os
import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnnet import random
from fnnet.kernels import random as kernels_random
from fnnet.random import _draws

from . import random_reference as reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Known-answer tests of threefry2x32_20 from Random123 (kat_vectors).
THREEFRY_KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key_words,counter,expected", THREEFRY_KAT)
def test_threefry_known_answers(key_words, counter, expected):
    hi, lo = random.threefry2x32(np.array(key_words, np.uint32), np.array([counter[0]], np.uint32),
                                 np.array([counter[1]], np.uint32))
    assert (int(hi[0]), int(lo[0])) == expected


def test_threefry_is_vectorised():
    his = np.array([c[1][0] for c in THREEFRY_KAT], np.uint32)
    los = np.array([c[1][1] for c in THREEFRY_KAT], np.uint32)
    hi, lo = random.threefry2x32(np.zeros(2, np.uint32), his, los)
    assert (int(hi[0]), int(lo[0])) == THREEFRY_KAT[0][2]
    assert hi.shape == (3,) and hi.dtype == np.uint32


def test_bits_of_key_zero_is_threefry_of_counter_zero():
    assert random.bits(random.key(0), 2).tolist() == [0x6B200159, 0x99BA4EFE]


# ------------------------------------------------------------------------- golden values (algorithm pin)

def test_golden_values():
    k = random.key(42)
    assert k.tolist() == [0, 42]
    assert random.bits(k, 4).tolist() == [1832780943, 270669613, 64467757, 2916123636]
    assert random.split(k).tolist() == [[1098451242, 3273851514], [1203658509, 1983744368]]
    assert random.fold_in(k, 7).tolist() == [4053721087, 4219890379]
    assert random.permutation(k, 8).tolist() == [1, 0, 2, 7, 5, 6, 4, 3]
    assert random.randint(k, 4, 0, 10).tolist() == [1, 8, 5, 5]
    np.testing.assert_array_equal(random.uniform(k, 3),
                                  np.array([0.4267275333404541, 0.06302016973495483, 0.015010058879852295],
                                           np.float32))
    np.testing.assert_array_equal(random.uniform(k, 2, np.float64), [0.4267275666499091, 0.015010069515314584])
    np.testing.assert_allclose(random.normal(k, 3), [0.9732646942138672, 0.4068711996078491, -0.07507484406232834],
                               rtol=1e-6)
    np.testing.assert_allclose(random.truncated_normal(k, 3),
                               [-0.17621764540672302, -1.3858071565628052, -1.785658836364746], rtol=1e-6)


# ------------------------------------------------- chunked kernels = the whole-array algorithm, bit for bit

CHUNK = _draws.CHUNK
# name -> (float dtypes or None, fnnet's draw, the whole-array reference); both are called as f(key, n, dtype)
REFERENCE_CASES = {
    "bits": (None, lambda k, n, dt: random.bits(k, n), lambda k, n, dt: reference.bits(k, n)),
    "uniform": ((np.float32, np.float64), lambda k, n, dt: random.uniform(k, n, dt, -3.0, 5.5),
                lambda k, n, dt: reference.uniform(k, n, dt, -3.0, 5.5)),
    "normal": ((np.float32, np.float64), random.normal, reference.normal),
    "truncated_normal": ((np.float32, np.float64), random.truncated_normal, reference.truncated_normal),
    "truncated_normal_flipped": ((np.float32, np.float64), lambda k, n, dt: random.truncated_normal(k, n, dt, 0.5, 3.0),
                                 lambda k, n, dt: reference.truncated_normal(k, n, dt, 0.5, 3.0)),
    "bernoulli": (None, lambda k, n, dt: random.bernoulli(k, n, 0.3), lambda k, n, dt: reference.bernoulli(k, n, 0.3)),
    "randint": (None, lambda k, n, dt: random.randint(k, n, -5, 1000, np.int16),
                lambda k, n, dt: reference.randint(k, n, -5, 1000, np.int16)),
    "randint_full_range": (None, lambda k, n, dt: random.randint(k, n, -(2**63), 2**63),
                           lambda k, n, dt: reference.randint(k, n, -(2**63), 2**63, np.int64)),
    "permutation": (None, lambda k, n, dt: random.permutation(k, n), lambda k, n, dt: reference.permutation(k, n)),
}
REFERENCE_PARAMS = [(name, dt) for name, (dtypes, _, _) in REFERENCE_CASES.items() for dt in dtypes or (None,)]
REFERENCE_KEYS = [random.key(0), random.key(2**64 - 1), random.fold_in(random.key(7), 3)]


@pytest.mark.parametrize("name,dtype", REFERENCE_PARAMS)
@pytest.mark.parametrize("n", [0, 1, 2, 7, CHUNK - 1, CHUNK + 3, 2 * CHUNK + 1])
def test_draws_equal_the_whole_array_reference(name, dtype, n):
    _, draw, expected = REFERENCE_CASES[name]
    for k in REFERENCE_KEYS:
        got, want = draw(k, n, dtype), expected(k, n, dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), f"{name} {dtype} n={n} key={k.tolist()}"


def test_bernoulli_array_p_equals_reference():
    k, p = random.key(1), np.linspace(0.0, 1.0, 3 * CHUNK // 2)[:, None]
    np.testing.assert_array_equal(random.bernoulli(k, (p.size, 3), p), reference.bernoulli(k, (p.size, 3), p))


def test_threefry_kernel_equals_reference():
    counters = random.bits(random.key(11), (2, 1000))
    for k in REFERENCE_KEYS:
        for got, want in zip(random.threefry2x32(k, counters[0], counters[1]),
                             reference.threefry(k, counters[0], counters[1])):
            np.testing.assert_array_equal(got, want)
    hi, lo = random.threefry2x32(np.zeros(2, np.uint32), np.uint32(0), np.uint32(0))
    assert (int(hi), int(lo)) == THREEFRY_KAT[0][2] and np.ndim(hi) == 0


def test_fast_float32_box_muller_equals_numpy_float64_rounded():
    # The kernel replaces log1p/cos/sin by series and lets numpy recompute the pairs it is unsure of; over
    # a spread of the whole 2**-24 grid plus the special points (u0 = 0: a zero's sign; angles at multiples
    # of pi/2), its float32 values must equal numpy's float64 Box-Muller rounded to float32.
    grid = np.arange(0, 1 << 24, 13, dtype=np.float64) * 2.0 ** -24
    special = np.array([0.0, 2.0 ** -24, 0.25, 0.5, 0.75, 0.25 + 2.0 ** -24, 0.5 - 2.0 ** -24, 1.0 - 2.0 ** -24])
    u0 = np.concatenate([grid, special, np.repeat(special, special.size)])
    u1 = np.concatenate([np.random.default_rng(0).permutation(grid), special, np.tile(special, special.size)])
    u = np.stack([u0, u1], axis=1)
    fast, exact = np.empty(2 * len(u), np.float32), np.empty(2 * len(u))
    _draws._box_muller_float32(u, fast)
    _draws._box_muller(u, exact)
    assert fast.tobytes() == exact.astype(np.float32).tobytes()


NUMBA_THREADS_FINGERPRINT = """
import hashlib, numpy as np
from fnnet import init, random
k = random.key(5)
draws = [random.normal(k, 3 * 65536 + 5), random.normal(k, 70001, np.float64), random.uniform(k, 200001),
         random.truncated_normal(k, 140000), random.bernoulli(k, 150000), random.randint(k, 150000, 0, 7),
         init.he_normal(k, (400, 500), np.float16)]
print(hashlib.sha256(b"".join(d.tobytes() for d in draws)).hexdigest())
"""


def test_same_bits_for_any_thread_count():
    outputs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads,
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        outputs.append(subprocess.run([sys.executable, "-c", NUMBA_THREADS_FINGERPRINT], cwd=ROOT, env=env,
                                      capture_output=True, text=True, check=True).stdout.strip())
    assert len(outputs[0]) == 64 and outputs[1] == outputs[0]


@pytest.mark.parametrize("draw", [
    lambda k: random.normal(k, 4_000_000), lambda k: random.normal(k, 1_000_000, np.float64),
    lambda k: random.uniform(k, 4_000_000), lambda k: random.truncated_normal(k, 2_000_000),
    lambda k: random.bits(k, 4_000_000), lambda k: random.bernoulli(k, 8_000_000, 0.5),
    lambda k: random.randint(k, 4_000_000, 0, 100, np.int32),
], ids=["normal", "normal64", "uniform", "truncated_normal", "bits", "bernoulli", "randint"])
def test_draws_need_little_memory_beyond_the_result(draw):
    # numpy reports its allocations to tracemalloc: beyond the result, each thread holds a chunk's temporaries
    draw(random.key(0))                               # compile / load the kernels first
    allowance = 4_000_000 * kernels_random.thread_count()
    tracemalloc.start()
    try:
        out = draw(random.key(1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= out.nbytes + allowance, f"peak {peak} bytes for a {out.nbytes}-byte result"


# ------------------------------------------------------------------------------------------- keys

@pytest.mark.parametrize("seed,expected", [
    (0, [0, 0]),
    (1, [0, 1]),
    (2**32 + 5, [1, 5]),
    (-1, [0xFFFFFFFF, 0xFFFFFFFF]),
    (2**64 - 1, [0xFFFFFFFF, 0xFFFFFFFF]),
    (-(2**63), [0x80000000, 0]),
    (np.int64(7), [0, 7]),
    (2**70, [412805128, 2409419122]),
    (-(2**70), [1074096433, 3658325348]),
])
def test_key_from_seed(seed, expected):
    k = random.key(seed)
    assert k.dtype == np.uint32 and k.shape == (2,)
    assert k.tolist() == expected


def test_big_seeds_are_distinct():
    keys = {tuple(random.key(s).tolist()) for s in [2**64, 2**64 + 1, 2**65, 2**128, -(2**64), 3**100]}
    assert len(keys) == 6


@pytest.mark.parametrize("seed", [1.0, True, np.bool_(False), "1", None, np.float32(2)])
def test_key_rejects_non_int_seed(seed):
    with pytest.raises(TypeError, match="fnnet.random.key: seed must be an int"):
        random.key(seed)


def test_split_children_distinct_and_differ_from_parent():
    parents = [random.key(s) for s in range(200)] + [random.fold_in(random.key(1), i) for i in range(50)]
    seen = set()
    for parent in parents:
        children = random.split(parent, 8)
        assert children.shape == (8, 2) and children.dtype == np.uint32
        rows = {tuple(c) for c in children.tolist()}
        assert len(rows) == 8
        assert tuple(parent.tolist()) not in rows
        assert tuple(random.bits(parent, 2).tolist()) not in rows   # split does not reuse bits' counters
        seen |= rows
    assert len(seen) == 8 * len(parents)


def test_split_prefix_and_unpacking():
    k = random.key(3)
    k1, k2 = random.split(k)
    assert k1.shape == (2,) and k1.dtype == np.uint32
    np.testing.assert_array_equal(random.split(k, 5)[:2], random.split(k, 2))


def test_fold_in_distinct():
    k = random.key(0)
    folded = {tuple(random.fold_in(k, i).tolist()) for i in range(-50, 50)}
    assert len(folded) == 100 and tuple(k.tolist()) not in folded
    assert random.fold_in(k, 3).tolist() != random.split(k, 4)[3].tolist()


# ---------------------------------------------------------------------------------- determinism

def test_same_key_same_numbers_and_prefix_property():
    k = random.key(5)
    np.testing.assert_array_equal(random.normal(k, (4, 5)), random.normal(k, (4, 5)))
    np.testing.assert_array_equal(random.bits(k, 3), random.bits(k, 10)[:3])
    assert not np.array_equal(random.normal(random.key(5), 8), random.normal(random.key(6), 8))


FINGERPRINT = """
from fnnet import random
k = random.key(2024)
print([random.bits(k, 3).tolist(), random.normal(random.split(k)[1], 2, np.float64).tolist()])
"""


def test_same_bits_in_a_subprocess():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import numpy as np" + FINGERPRINT
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    printed = []
    exec(FINGERPRINT, {"np": np, "print": printed.append})
    assert out == str(printed[0])


def test_same_bits_in_threads():
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: random.uniform(random.key(9), 10_000), range(8)))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


# --------------------------------------------------------------------------------- distributions

N = 200_000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("minval,maxval", [(0.0, 1.0), (-3.0, 5.0), (1.0, 1.0 + 1e-6)])
def test_uniform_range_mean_var(dtype, minval, maxval):
    x = random.uniform(random.key(1), N, dtype, minval, maxval)
    assert x.dtype == dtype and x.shape == (N,)
    assert x.min() >= dtype(minval) and x.max() < dtype(maxval)
    width = maxval - minval
    if width > 1e-3:                  # (a float32 range of width 1e-6 holds only 8 values)
        assert abs(x.astype(np.float64).mean() - (minval + maxval) / 2) < 0.01 * width
        assert abs(x.astype(np.float64).var() - width ** 2 / 12) < 0.01 * width ** 2 / 12


def test_uniform_never_returns_maxval_after_rounding():
    # the range is one float32 ulp wide: minval + u * ulp rounds up to maxval for u > 0.5 unless clamped
    x = random.uniform(random.key(0), 100_000, np.float32, 0.99999994, 1.0)
    assert (x < np.float32(1.0)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_moments(dtype):
    z = random.normal(random.key(2), N, dtype)
    assert z.dtype == dtype and np.isfinite(z).all()
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(np.abs(z) > 2.0) - 0.0455) < 0.003


def _truncated_moments(a, b):
    """Mean and std of a standard normal conditioned on (a, b)."""
    pdf = lambda x: 0.0 if math.isinf(x) else math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))
    mass = cdf(b) - cdf(a)
    mean = (pdf(a) - pdf(b)) / mass
    a_term = 0.0 if math.isinf(a) else a * pdf(a)
    b_term = 0.0 if math.isinf(b) else b * pdf(b)
    var = 1 + (a_term - b_term) / mass - mean ** 2
    return mean, math.sqrt(var)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lower,upper", [(-2.0, 2.0), (-1.0, 0.5), (0.5, 3.0), (3.0, 6.0), (-np.inf, 0.0)])
def test_truncated_normal_bounds_and_moments(dtype, lower, upper):
    z = random.truncated_normal(random.key(3), N, dtype, lower, upper)
    assert z.dtype == dtype
    assert (z > lower).all() and (z < upper).all()
    mean, std = _truncated_moments(lower, upper)
    assert abs(z.mean() - mean) < 0.01
    assert abs(z.std() - std) < 0.01 * std + 1e-3


def test_truncated_normal_default_std():
    z = random.truncated_normal(random.key(4), N)
    assert abs(z.std() - 0.8796256610342398) < 0.005


def test_truncated_normal_strictly_inside_narrow_interval():
    z = random.truncated_normal(random.key(4), 10_000, np.float32, 1.0, 1.000001)
    assert (z > np.float32(1.0)).all() and (z < np.float32(1.000001)).all()


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_bernoulli_rate(p):
    x = random.bernoulli(random.key(5), (400, 500), p)
    assert x.dtype == np.bool_ and x.shape == (400, 500)
    assert abs(x.mean() - p) < 0.005


def test_bernoulli_array_p_and_errors():
    p = np.array([0.0, 1.0, 0.5])
    x = random.bernoulli(random.key(6), (1000, 3), p)
    assert not x[:, 0].any() and x[:, 1].all()
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        random.bernoulli(random.key(6), 3, 1.5)
    with pytest.raises(ValueError, match="does not broadcast"):
        random.bernoulli(random.key(6), 3, np.array([0.1, 0.2]))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(-(2**70), 2**70))
def test_permutation_is_a_permutation(n, seed):
    perm = random.permutation(random.key(seed), n)
    assert perm.dtype == np.int64
    assert sorted(perm.tolist()) == list(range(n))


def test_permutation_of_array_rows_and_uniformity():
    x = np.arange(12).reshape(6, 2)
    y = random.permutation(random.key(7), x)
    assert y.shape == x.shape and sorted(y[:, 0].tolist()) == x[:, 0].tolist()
    np.testing.assert_array_equal(y[:, 1], y[:, 0] + 1)
    first = [int(random.permutation(random.fold_in(random.key(8), i), 4)[0]) for i in range(2000)]
    assert np.all(np.abs(np.bincount(first, minlength=4) / 2000 - 0.25) < 0.04)
    with pytest.raises(ValueError, match="at least one dimension"):
        random.permutation(random.key(7), np.array(3.0))
    with pytest.raises(TypeError, match="expected an int or an array, got float 3.0"):
        random.permutation(random.key(7), 3.0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        random.permutation(random.key(7), -1)


@pytest.mark.parametrize("minval,maxval,dtype", [
    (0, 10, np.int64), (-5, 3, np.int32), (0, 256, np.uint8), (-(2**63), 2**63, np.int64), (7, 8, np.int16),
])
def test_randint_range(minval, maxval, dtype):
    x = random.randint(random.key(9), 20_000, minval, maxval, dtype)
    assert x.dtype == dtype
    assert int(x.min()) >= minval and int(x.max()) < maxval
    if maxval - minval <= 256:
        assert len(np.unique(x)) == maxval - minval


@pytest.mark.parametrize("args,error,message", [
    ((0, 10, np.float32), TypeError, "dtype must be an integer dtype"),
    ((5, 5, np.int64), ValueError, "need minval < maxval"),
    ((0, 300, np.uint8), ValueError, "within uint8 range"),
    ((0.0, 3, np.int64), TypeError, "minval must be an int"),
])
def test_randint_errors(args, error, message):
    with pytest.raises(error, match=message):
        random.randint(random.key(0), 3, *args)


# ------------------------------------------------------------------------------------ validation

FUNCTIONS = {
    "bits": lambda k, s: random.bits(k, s),
    "uniform": lambda k, s: random.uniform(k, s),
    "normal": lambda k, s: random.normal(k, s, np.float64),
    "truncated_normal": lambda k, s: random.truncated_normal(k, s),
    "bernoulli": lambda k, s: random.bernoulli(k, s, 0.3),
    "randint": lambda k, s: random.randint(k, s, 0, 4),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("bad_key,error", [
    ([0, 1], TypeError), (np.zeros(2, np.int64), TypeError), (np.zeros(3, np.uint32), ValueError),
    (np.zeros((2, 2), np.uint32), ValueError), (7, TypeError),
])
def test_bad_key_message(name, bad_key, error):
    expected = (f"fnnet.random.{name}: key must be a (2,) uint32 array from fnnet.random.key(seed) "
                f"or split(...), got ")
    with pytest.raises(error, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        FUNCTIONS[name](bad_key, 3)


def test_split_result_hint():
    with pytest.raises(ValueError, match=r"index the result of split, e.g. k1, k2 = split\(key\)"):
        random.normal(random.split(random.key(0)), 3)


@pytest.mark.parametrize("shape,error,message", [
    ((2, -1), ValueError, "shape dimensions must be >= 0"),
    (-3, ValueError, "shape dimensions must be >= 0"),
    ((2.0, 3), TypeError, "shape must be an int or a tuple of ints"),
    ("ab", TypeError, "shape must be an int or a tuple of ints"),
    ((True,), TypeError, "shape must be an int or a tuple of ints"),
])
def test_bad_shape(shape, error, message):
    with pytest.raises(error, match=f"fnnet.random.uniform: {message}"):
        random.uniform(random.key(0), shape)


@pytest.mark.parametrize("fn", [random.uniform, random.normal, random.truncated_normal])
@pytest.mark.parametrize("dtype", [np.float16, np.int32, "complex64", "nonsense"])
def test_unsupported_dtype(fn, dtype):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        fn(random.key(0), 3, dtype)


def test_uniform_bad_bounds():
    with pytest.raises(ValueError, match="need finite minval < maxval"):
        random.uniform(random.key(0), 3, np.float32, 1.0, 1.0)


shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**64 - 1))
def test_shapes_and_dtypes(shape, seed):
    k = random.key(seed)
    assert random.bits(k, shape).shape == shape and random.bits(k, shape).dtype == np.uint32
    for fn in (random.uniform, random.normal, random.truncated_normal):
        for dtype in (np.float32, np.float64):
            out = fn(k, shape, dtype)
            assert out.shape == shape and out.dtype == dtype and np.isfinite(out).all()
    assert random.bernoulli(k, shape).shape == shape
    assert random.randint(k, shape, -2, 3).shape == shape
