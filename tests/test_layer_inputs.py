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
