"""Tests for fnnet.init: fans, the variance of every named initializer, orthogonality, configs, errors."""

import json
import math
import os
import subprocess
import sys

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnnet import init, random

from . import random_reference as reference

KEY = random.key(0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("shape,expected", [
    ((), (1, 1)),
    ((7,), (7, 7)),
    ((400, 600), (400, 600)),
    ((64, 32, 3, 3), (32 * 9, 64 * 9)),
    ((8, 4, 5), (20, 40)),
    ((2, 3, 1, 1, 1), (3, 2)),
    ((0, 5), (0, 5)),
])
def test_fans(shape, expected):
    assert init.fans(shape) == expected


def test_fans_of_int_shape():
    assert init.fans(5) == (5, 5)


# Expected standard deviation of each named initializer as a function of (fan_in, fan_out).
STD_TABLE = {
    "glorot_uniform": lambda fi, fo: math.sqrt(6 / (fi + fo)) / math.sqrt(3),
    "xavier_uniform": lambda fi, fo: math.sqrt(6 / (fi + fo)) / math.sqrt(3),
    "glorot_normal": lambda fi, fo: math.sqrt(2 / (fi + fo)),
    "xavier_normal": lambda fi, fo: math.sqrt(2 / (fi + fo)),
    "he_uniform": lambda fi, fo: math.sqrt(6 / fi) / math.sqrt(3),
    "kaiming_uniform": lambda fi, fo: math.sqrt(6 / fi) / math.sqrt(3),
    "he_normal": lambda fi, fo: math.sqrt(2 / fi),
    "kaiming_normal": lambda fi, fo: math.sqrt(2 / fi),
    "lecun_uniform": lambda fi, fo: math.sqrt(3 / fi) / math.sqrt(3),
    "lecun_normal": lambda fi, fo: 1 / math.sqrt(fi),
    "normal": lambda fi, fo: 0.01,
    "uniform": lambda fi, fo: 0.01 / math.sqrt(3),
    "truncated_normal": lambda fi, fo: 0.01 * 0.8796256610342398,
}
# Bound of |w|: uniform limits and the 2-std truncation.
BOUND_TABLE = {
    "glorot_uniform": lambda fi, fo: math.sqrt(6 / (fi + fo)),
    "he_uniform": lambda fi, fo: math.sqrt(6 / fi),
    "lecun_uniform": lambda fi, fo: math.sqrt(3 / fi),
    "lecun_normal": lambda fi, fo: 2 / math.sqrt(fi) / 0.8796256610342398,
    "uniform": lambda fi, fo: 0.01,
    "truncated_normal": lambda fi, fo: 0.02,
}


def test_every_named_initializer_is_in_the_table():
    named = set(init._NAMED) - {"orthogonal", "zeros", "ones"}
    assert named == set(STD_TABLE)


@pytest.mark.parametrize("shape", [(400, 600), (64, 32, 3, 3)], ids=["dense", "conv"])
@pytest.mark.parametrize("name", sorted(STD_TABLE))
def test_empirical_std_matches_formula(name, shape):
    w = init.get(name)(KEY, shape)
    assert w.shape == shape and w.dtype == np.float32
    fan_in, fan_out = init.fans(shape)
    expected = STD_TABLE[name](fan_in, fan_out)
    assert abs(w.std() / expected - 1) < 0.02
    assert abs(w.mean()) < 0.02 * expected
    if name in BOUND_TABLE:
        assert np.abs(w).max() <= BOUND_TABLE[name](fan_in, fan_out) * (1 + 1e-6)


def test_he_normal_is_untruncated():
    w = init.he_normal(KEY, (400, 600))
    std = math.sqrt(2 / 400)
    assert np.abs(w).max() > 3.5 * std
    assert abs(np.mean(np.abs(w) > 2 * std) - 0.0455) < 0.003


def test_aliases():
    assert init.xavier_uniform is init.glorot_uniform and init.xavier_normal is init.glorot_normal
    assert init.kaiming_uniform is init.he_uniform and init.kaiming_normal is init.he_normal


@pytest.mark.parametrize("shape", [(5, 5), (50, 20), (20, 50), (16, 8, 3, 3), (4, 8, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = init.Orthogonal(gain)(KEY, shape, np.float64)
    assert w.shape == shape
    m = w.reshape(shape[0], -1)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(gram.shape[0]), atol=1e-10)


def test_orthogonal_float32_and_errors():
    w = init.orthogonal(KEY, (30, 30))
    assert w.dtype == np.float32
    np.testing.assert_allclose(w.T @ w, np.eye(30), atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.orthogonal(KEY, (5,))


@pytest.mark.parametrize("initializer,value", [(init.zeros, 0.0), (init.ones, 1.0), (init.constant(0.25), 0.25)])
def test_constants(initializer, value):
    w = initializer(KEY, (3, 4), np.float64)
    assert w.dtype == np.float64
    np.testing.assert_array_equal(w, np.full((3, 4), value))


def test_normal_mean_and_truncated_bounds():
    w = init.Normal(std=0.5, mean=3.0)(KEY, 100_000)
    assert abs(w.mean() - 3.0) < 0.01 and abs(w.std() - 0.5) < 0.01
    t = init.TruncatedNormal(std=2.0, lower=-1.0, upper=0.5)(KEY, 10_000)
    assert t.min() > -2.0 and t.max() < 1.0


def test_deterministic_and_key_dependent():
    np.testing.assert_array_equal(init.he_normal(KEY, (3, 4)), init.he_normal(KEY, (3, 4)))
    assert not np.array_equal(init.he_normal(KEY, (3, 4)), init.he_normal(random.key(1), (3, 4)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(init._NAMED))
def test_dtypes(name, dtype):
    w = init.get(name)(KEY, (6, 4), dtype)
    assert w.dtype == dtype and w.shape == (6, 4) and np.isfinite(w).all()


def test_float16_matches_float32_draw():
    np.testing.assert_array_equal(init.he_uniform(KEY, (8, 8), np.float16),
                                  init.he_uniform(KEY, (8, 8), np.float32).astype(np.float16))


def _reference_init(initializer, key, shape, dtype):
    """What ``initializer(key, shape, dtype)`` computed before draws were chunked: whole-array draws in the
    compute dtype (float32 for float16), scaled, then converted."""
    compute = np.dtype(np.float32 if np.dtype(dtype) == np.float16 else dtype)
    n = math.prod(shape)
    if isinstance(initializer, init.VarianceScaling):
        fan_in, fan_out = init.fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[initializer.mode]
        std = math.sqrt(initializer.scale / fan)
        if initializer.distribution == "uniform":
            out = reference.uniform(key, n, compute, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)
        elif initializer.distribution == "normal":
            out = reference.normal(key, n, compute) * compute.type(std)
        else:
            out = reference.truncated_normal(key, n, compute) * compute.type(std / init.TRUNCATED_STD_2)
    elif isinstance(initializer, init.Normal):
        out = reference.normal(key, n, compute) * compute.type(initializer.std) + compute.type(initializer.mean)
    elif isinstance(initializer, init.Uniform):
        out = reference.uniform(key, n, compute, initializer.minval, initializer.maxval)
    elif isinstance(initializer, init.TruncatedNormal):
        z = reference.truncated_normal(key, n, compute, initializer.lower, initializer.upper)
        out = z * compute.type(initializer.std)
    else:
        rows, cols = shape[0], math.prod(shape[1:])
        a = reference.normal(key, max(rows, cols) * min(rows, cols), np.float64).reshape(max(rows, cols), -1)
        q, r = np.linalg.qr(a)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        out = initializer.gain * (q.T if rows < cols else q)
    return out.reshape(shape).astype(dtype)


RANDOM_INITIALIZERS = {**{name: init.get(name) for name in STD_TABLE}, "orthogonal": init.orthogonal,
                       "Normal(0.5, 3)": init.Normal(0.5, 3.0), "Uniform(-2, 7)": init.Uniform(-2.0, 7.0),
                       "TruncatedNormal(2, -1, 0.5)": init.TruncatedNormal(2.0, -1.0, 0.5),
                       "Orthogonal(2)": init.Orthogonal(2.0)}


# (300, 500) spans three chunks; orthogonal skips it (a slow QR that adds no chunk boundary of its own)
REFERENCE_SHAPES = [(name, shape) for name, initializer in sorted(RANDOM_INITIALIZERS.items())
                    for shape in [(6, 4), (16, 8, 3, 3)] + [(300, 500)] * (not isinstance(initializer, init.Orthogonal))]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name,shape", REFERENCE_SHAPES)
def test_initializers_equal_the_whole_array_reference(name, shape, dtype):
    for key in (KEY, random.key(2**40 + 3)):
        got = RANDOM_INITIALIZERS[name](key, shape, dtype)
        want = _reference_init(RANDOM_INITIALIZERS[name], key, shape, dtype)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()


PEAK_MEMORY = """
import tracemalloc
import numpy as np
import fnnet
from fnnet import init
from fnnet.layers import Linear

def memory(field):                      # VmRSS: resident now; VmHWM: the peak of resident
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

Linear(8).init(fnnet.random.key(0), (None, 8))            # load the kernels first
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                                           # restart VmHWM from the current resident size
before = memory("VmRSS")
params = Linear(7000).init(fnnet.random.key(1), (None, 7000))
print("Linear", memory("VmHWM") - before, sum(p.nbytes for p in params.values()))
for name, dtype in [("he_normal", np.float16), ("lecun_normal", np.float32), ("glorot_uniform", np.float16),
                    ("normal", np.float64)]:
    init.get(name)(fnnet.random.key(0), (8, 8), dtype)
    tracemalloc.start()
    out = init.get(name)(fnnet.random.key(1), (3000, 2000), dtype)
    print(name, tracemalloc.get_traced_memory()[1], out.nbytes)
    tracemalloc.stop()
"""


def test_init_peak_memory_is_close_to_the_params():
    # Linear(7000): 196 MB of float32 weights; whole-array draws used to peak at 4.5 times that.  The peak
    # is VmHWM, reset in the child: ru_maxrss would start from the parent's resident size at the fork.
    # Two threads, so that the chunks in flight (a few MB each) do not depend on the machine's core count.
    env = dict(os.environ, NUMBA_NUM_THREADS="2", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", PEAK_MEMORY], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    lines = [line.split() for line in out.strip().splitlines()]
    assert [name for name, _, _ in lines] == ["Linear", "he_normal", "lecun_normal", "glorot_uniform", "normal"]
    for name, peak, nbytes in lines:
        assert int(peak) <= 1.5 * int(nbytes) + 20_000_000, f"{name}: peak {peak} bytes for {nbytes} bytes of params"


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, "complex64", "bogus"])
def test_bad_dtype(dtype):
    with pytest.raises(TypeError, match="fnnet.init.VarianceScaling: dtype must be float16, float32 or float64"):
        init.he_normal(KEY, (2, 2), dtype)


def test_bad_key_and_shape():
    with pytest.raises(TypeError, match=r"fnnet.init.Normal: key must be a \(2,\) uint32 array"):
        init.normal(0, (2, 2))
    with pytest.raises(ValueError, match="fnnet.init.Constant: shape dimensions must be >= 0"):
        init.zeros(KEY, (2, -2))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 4), max_size=4).map(tuple), name=st.sampled_from(sorted(init._NAMED)))
def test_any_shape_including_zero_and_one(shape, name):
    if name == "orthogonal" and len(shape) < 2:
        return
    w = init.get(name)(KEY, shape)
    assert w.shape == shape and w.dtype == np.float32 and np.isfinite(w).all()


# ------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("name", sorted(init._NAMED))
def test_config_round_trip(name):
    initializer = init.get(name)
    config = init.to_config(initializer)
    restored = init.from_config(json.loads(json.dumps(config)))
    assert restored == initializer
    np.testing.assert_array_equal(restored(KEY, (3, 2)), initializer(KEY, (3, 2)))


def test_config_format():
    assert init.to_config(init.he_normal) == {
        "name": "VarianceScaling", "scale": 2.0, "mode": "fan_in", "distribution": "normal"}
    assert init.from_config({"name": "Constant", "value": 3}) == init.constant(3.0)


def test_config_errors():
    with pytest.raises(ValueError, match="unknown initializer class 'Bogus'"):
        init.from_config({"name": "Bogus"})
    with pytest.raises(ValueError, match="bad fields for Normal"):
        init.from_config({"name": "Normal", "sigma": 1.0})
    with pytest.raises(ValueError, match="expected a dict with a 'name' key"):
        init.from_config({"std": 1.0})
    with pytest.raises(TypeError, match="not an instance of a registered initializer class"):
        init.to_config(lambda key, shape, dtype=np.float32: np.zeros(shape, dtype))


def test_register_custom_initializer():
    @init.register
    @attrs.frozen
    class Identity(init.Initializer):
        gain: float = 1.0

        def __call__(self, key, shape, dtype=np.float32):
            return self.gain * np.eye(*shape, dtype=dtype)

    try:
        config = init.to_config(Identity(3.0))
        assert config == {"name": "Identity", "gain": 3.0}
        assert init.from_config(config) == Identity(3.0)
        with pytest.raises(ValueError, match="already registered"):
            init.register(attrs.frozen(type("Identity", (), {"__annotations__": {"gain": float}})))
    finally:
        del init._CLASSES["Identity"]


def test_get():
    assert init.get("he_normal") is init.he_normal
    assert init.get(init.orthogonal) is init.orthogonal
    with pytest.raises(ValueError, match="unknown initializer 'he_norm'; available: "):
        init.get("he_norm")
    with pytest.raises(TypeError, match="expected an initializer name or object"):
        init.get(3)


@pytest.mark.parametrize("make,message", [
    (lambda: init.VarianceScaling(1.0, "fan_sum", "normal"), "mode must be one of"),
    (lambda: init.VarianceScaling(1.0, "fan_in", "cauchy"), "distribution must be one of"),
    (lambda: init.VarianceScaling(-1.0), "scale must be a finite number > 0"),
    (lambda: init.Uniform(1.0, -1.0), "need minval < maxval"),
    (lambda: init.TruncatedNormal(1.0, 2.0, -2.0), "need lower < upper"),
    (lambda: init.Normal(std=0.0), "std must be a finite number > 0"),
])
def test_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_initializers_are_frozen_and_hashable():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        init.he_normal.scale = 3.0
    assert len({init.he_normal, init.kaiming_normal, init.VarianceScaling(2.0, "fan_in", "normal")}) == 1
