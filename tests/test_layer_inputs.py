"""Layers given what they cannot use: inputs that are not arrays (every registered layer, a TypeError naming
the layer), non-float arrays for shape layers, a 0-d input to Flatten, a table of the wrong shape."""

import numpy as np
import pytest

import fnnet
import fnnet.layers as L

from .layer_cases import CASES as LAYER_CASES

# layers that appear in the layer table only inside containers, tested here on their own
_EXTRA_LAYERS = [(L.FanOut(2), (2, 3)), (L.FanInSum(), ((2, 3), (2, 3))), (L.FanInConcat(), ((2, 3), (2, 3))),
                 (L.Parallel([L.ReLU(), L.Linear(2)]), ((2, 3), (2, 3))), (L.Identity(), (2, 3))]
_EXTRA_LAYERS += [(L.LSTMCell(3), (2, 4))]
_LAYERS = [(case.layer, case.in_shape) for case in LAYER_CASES] + _EXTRA_LAYERS


def test_every_registered_layer_is_tried_with_non_array_inputs():
    tried = {type(layer).__name__ for layer, _ in _LAYERS}
    missing = sorted(set(L.registered_layers()) - tried - {"Scale"})
    assert not missing, f"add these layers to _EXTRA_LAYERS (or a top-level row of tests/layer_cases.py): {missing}"


@pytest.mark.parametrize("bad", [[1, 2], None, 3.0], ids=["list", "None", "float"])
@pytest.mark.parametrize("layer, in_shape", _LAYERS, ids=[f"{type(la).__name__}-{i}" for i, (la, _) in enumerate(_LAYERS)])
def test_layers_reject_non_array_inputs_with_a_type_error_naming_the_layer(layer, in_shape, bad):
    key = fnnet.random.key(0)
    params = layer.init(key, in_shape)
    state = layer.init_state(in_shape) if layer.has_state else None
    kwargs = {} if state is None else {"state": state}
    names = "|".join(sorted({type(la).__name__ for _, la, _ in L.walk(layer)}))
    with pytest.raises(TypeError, match=rf"({names})(\)|\.apply)?: (x expected a numpy array|expected a tuple of)"):
        layer.apply(params, bad, key=key, **kwargs)


def test_embedding_rejects_a_table_of_the_wrong_shape_naming_the_layer_path():
    model = L.Sequential([L.Embedding(5, 3), L.Flatten()])
    params = model.init(fnnet.random.key(0), (2, 4))
    params["0"]["weight"] = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match=r"^0 \(Embedding\): params\['weight'\] must have shape \(5, 3\) .* got \(5, 4\)"):
        model.apply(params, np.zeros((2, 4), np.int64))


def test_flatten_of_a_0d_input_is_a_value_error():
    with pytest.raises(ValueError, match=r"Flatten: start_axis=1 is out of range for input shape \(\); a 0-d input"):
        L.Flatten().apply({}, np.array(1.0))
    with pytest.raises(ValueError, match=r"Flatten: start_axis=0 is out of range for input shape \(\)"):
        L.Flatten(start_axis=0).out_shape(())


@pytest.mark.parametrize("layer", [L.Flatten(), L.Reshape((-1,))])
@pytest.mark.parametrize("dtype", [np.int64, object, np.complex128])
def test_shape_layers_reject_non_float_arrays_like_other_layers(layer, dtype):
    with pytest.raises(TypeError, match=r"reshape: x must be a float16, float32 or float64 array"):
        layer.apply({}, np.ones((2, 3), dtype))


# every layer family with params (attention layers are tested in their own files), one row per param layout
_PARAM_LAYERS = [
    (L.Linear(3), (2, 4)), (L.Linear(3, use_bias=False), (2, 4)), (L.Conv1D(2, 3), (1, 2, 6)),
    (L.Conv2D(2, 3), (1, 2, 5, 5)), (L.ConvTranspose2D(2, 3), (1, 2, 4, 4)), (L.BatchNorm(), (2, 3, 4)),
    (L.LayerNorm(), (2, 4)), (L.LayerNorm((3, 4)), (2, 3, 4)), (L.RMSNorm(), (2, 4)), (L.GroupNorm(2), (2, 4, 3)),
    (L.InstanceNorm(affine=True), (2, 4, 3)), (L.Embedding(5, 3), (2, 4)), (L.GRUCell(3), (2, 4)),
    (L.LSTMCell(3), (2, 4)), (L.RNN(L.GRUCell(3)), (2, 5, 4)),
]
_BAD_LEAVES = {"None": None, "list": [1.0, 2.0], "python-float": 0.5, "0-d": np.array(0.5, np.float32)}


def _example(layer, in_shape):
    if layer.integer_input:
        return np.zeros(in_shape, np.int64)
    return np.random.default_rng(0).standard_normal(in_shape).astype(np.float32)


@pytest.mark.parametrize("bad", list(_BAD_LEAVES), ids=list(_BAD_LEAVES))
@pytest.mark.parametrize("layer, in_shape", _PARAM_LAYERS, ids=[type(la).__name__ for la, _ in _PARAM_LAYERS])
def test_a_bad_param_leaf_is_an_error_naming_the_layer_and_the_param(layer, in_shape, bad):
    key = fnnet.random.key(0)
    params = layer.init(key, in_shape)
    state = layer.init_state(in_shape) if layer.has_state else None
    kwargs = {} if state is None else {"state": state}
    for name in params:
        broken = {**params, name: _BAD_LEAVES[bad]}
        with pytest.raises((TypeError, ValueError), match=rf"^{type(layer).__name__}: params\['{name}'\] expected"):
            layer.apply(broken, _example(layer, in_shape), key=key, **kwargs)


_WITH_BIAS = [(la, s) for la, s in _PARAM_LAYERS if "bias" in la.init(fnnet.random.key(0), s)]


@pytest.mark.parametrize("layer, in_shape", _WITH_BIAS, ids=[type(la).__name__ for la, _ in _WITH_BIAS])
def test_a_none_bias_is_an_error_when_the_layer_has_a_bias(layer, in_shape):
    params = {**layer.init(fnnet.random.key(0), in_shape), "bias": None}
    state = layer.init_state(in_shape) if layer.has_state else None
    kwargs = {} if state is None else {"state": state}
    with pytest.raises(TypeError, match=rf"{type(layer).__name__}: params\['bias'\] expected a float array .* got None"):
        layer.apply(params, _example(layer, in_shape), **kwargs)


def test_a_bad_param_inside_a_container_names_the_path():
    model = L.Residual(L.Sequential([L.Linear(3), L.ReLU()]))
    params = model.init(fnnet.random.key(0), (2, 3))
    params["block"]["0"]["weight"] = None
    with pytest.raises(TypeError, match=r"^block/0 \(Linear\): params\['weight'\] expected .* got None"):
        model.apply(params, np.zeros((2, 3), np.float32))


def test_fan_in_sum_rejects_none_naming_the_layer():
    with pytest.raises(TypeError, match=r"FanInSum: x\[0\] must be a numpy array"):
        L.FanInSum().apply({}, (None, np.zeros(3, np.float32)))


def _leaked_tracer():
    leaked = []

    def f(x):
        leaked.append(x)
        return fnnet.ops.sum(x)

    fnnet.grad(f)(np.ones((2, 3, 4), np.float32))
    return leaked[0]


_PASS_THROUGH = [L.Identity(), L.FanOut(2), L.Dropout(0.5), L.Dropout2D(0.5)]


@pytest.mark.parametrize("dtype", [np.complex64, object, np.int64])
@pytest.mark.parametrize("layer", _PASS_THROUGH, ids=lambda la: type(la).__name__)
def test_pass_through_layers_reject_non_float_arrays(layer, dtype):
    with pytest.raises(TypeError, match=rf"{type(layer).__name__}: x must be a float16, float32 or float64 array"):
        layer.apply({}, np.zeros((2, 3, 4), dtype))


@pytest.mark.parametrize("layer", _PASS_THROUGH, ids=lambda la: type(la).__name__)
def test_pass_through_layers_reject_a_leaked_tracer(layer):
    with pytest.raises(fnnet.autodiff.UnexpectedTracerError, match=rf"^{type(layer).__name__}: got a traced value"):
        layer.apply({}, _leaked_tracer())


def test_remat_names_the_layer_for_a_leaked_tracer():
    with pytest.raises(fnnet.autodiff.UnexpectedTracerError, match=r"^Remat\(ReLU\): got a traced value"):
        L.Remat(L.ReLU()).apply({}, _leaked_tracer())
    model = L.Sequential([L.Remat(L.ReLU())])
    with pytest.raises(fnnet.autodiff.UnexpectedTracerError, match=r"^0 \(Remat\(ReLU\)\): got a traced value"):
        model.apply(model.init(fnnet.random.key(0), (2, 3)), _leaked_tracer())
