"""Serialising layers: errors for what cannot be serialised say how to make it serialisable."""

import attrs
import numpy as np
import pytest

import fnnet.layers as L


@attrs.frozen
class Doubler:  # a user layer, deliberately not registered
    def init(self, key, in_shape):
        return {}

    def out_shape(self, in_shape):
        return in_shape

    def apply(self, params, x, *, key=None, train=False):
        return x * 2


def test_unregistered_user_layer_nested_in_a_container_names_register():
    with pytest.raises(TypeError, match=r"nested layer Doubler is not registered; decorate its class with "
                                        r"@fnnet.layers.register"):
        L.to_config(L.Sequential([L.Linear(3), Doubler()]))
    with pytest.raises(TypeError, match=r"Doubler is not a registered layer; decorate it with @fnnet.layers.register"):
        L.to_config(Doubler())


def test_function_initializer_names_fnnet_init_register():
    layer = L.Linear(3, w_init=lambda key, shape, dtype=np.float32: np.zeros(shape, dtype))
    with pytest.raises(TypeError, match=r"cannot serialise the function .*fnnet.init.register"):
        L.to_config(layer)
