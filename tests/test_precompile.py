"""precompile exercises every kernel a model needs, in worker processes too."""

import numpy as np

import fnnet
import fnnet.layers as L
from fnnet.precompile import _leaf_layers


def _model():
    return L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2), L.Dropout(0.1),
                         L.Residual(L.Sequential([L.Conv2D(4, 1), L.Tanh()])), L.Flatten(), L.Linear(3)])


def test_leaf_layers_in_order_with_shapes():
    leaves = _leaf_layers(_model(), (None, 2, 6, 6))
    names = [type(layer).__name__ for layer, _ in leaves]
    assert names == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Dropout", "Conv2D", "Tanh", "FanInSum",
                     "Flatten", "Linear"]
    assert leaves[-1][1] == (None, 36)


def test_precompile_serial_and_with_workers_then_training_runs():
    model = _model()
    opt = fnnet.optim.adam(1e-3)
    for workers in (1, 2):
        n = fnnet.precompile(model, (None, 2, 6, 6), num_classes=3, optimizer=opt, workers=workers)
        assert n == 10
    params = model.init(fnnet.random.key(0), (None, 2, 6, 6))
    state = model.init_state((None, 2, 6, 6))
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    x = np.zeros((4, 2, 6, 6), np.float32)
    step(params, state, opt.init(params), x, np.zeros(4, np.int64), fnnet.random.key(1))


def test_precompile_float64_and_example_array():
    model = L.Sequential([L.Linear(3), L.GELU()])
    assert fnnet.precompile(model, np.zeros((5, 4)), dtype=np.float64, workers=1) == 2
