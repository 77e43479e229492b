"""Tests for fnnet.init: fans, the variance of every named initializer, orthogonality, configs, errors."""

import json
import math

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnnet import init, random

KEY = random.key(0)


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
