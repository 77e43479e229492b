"""fnnet.losses: bad inputs, the fused softmax cross-entropy (one tape entry, exact backward), extreme
logits, and accuracy.  Values and gradients against torch for every reduction are rows of the op table
(tests/cases/losses.py)."""

import numpy as np
import pytest

import fnnet
import fnnet.losses as losses
from fnnet.autodiff import Tape

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((4, 3))
LABELS = np.array([0, 2, 1, 2])
TARGETS = RNG.uniform(size=(4, 3))

ALL_LOSSES = {
    "softmax_cross_entropy": lambda x, r="mean": losses.softmax_cross_entropy(x, LABELS, reduction=r),
    "softmax_cross_entropy_with_probs": lambda x, r="mean": losses.softmax_cross_entropy_with_probs(
        x, TARGETS, reduction=r),
    "mse": lambda x, r="mean": losses.mse(x, TARGETS, reduction=r),
    "binary_cross_entropy_with_logits": lambda x, r="mean": losses.binary_cross_entropy_with_logits(
        x, TARGETS, reduction=r),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 1])
def test_unknown_reduction_is_a_value_error(name, reduction):
    with pytest.raises(ValueError, match=rf"{name}: reduction expected one of 'mean', 'sum', 'none', got "):
        ALL_LOSSES[name](LOGITS, reduction)


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("bad, match", [
    (np.arange(12).reshape(4, 3), "float32 or float64 array, got dtype int64"),
    (np.ones((4, 3), np.int32), "got dtype int32"),
])
def test_losses_reject_non_float_inputs(name, bad, match):
    with pytest.raises(TypeError, match=rf"{name}: .*{match}"):
        ALL_LOSSES[name](bad)


@pytest.mark.parametrize("name, fn", [
    ("softmax_cross_entropy_with_probs", losses.softmax_cross_entropy_with_probs),
    ("mse", losses.mse),
    ("binary_cross_entropy_with_logits", losses.binary_cross_entropy_with_logits),
])
def test_losses_reject_mixed_dtypes_and_shapes(name, fn):
    with pytest.raises(TypeError, match=rf"{name}: \w+ is float32 but \w+ is float64; fnnet never promotes"):
        fn(LOGITS.astype(np.float32), TARGETS)
    with pytest.raises(ValueError, match=rf"{name}: \w+ expected the shape of \w+ \(4, 3\), got \(4, 1\)"):
        fn(LOGITS, TARGETS[:, :1])


def test_softmax_cross_entropy_rejects_bad_labels():
    op = losses.softmax_cross_entropy
    with pytest.raises(IndexError, match=r"softmax_cross_entropy: labels\[2\] = 3 is out of range for 3 classes; "
                                         r"labels must be in 0..2"):
        op(LOGITS, np.array([0, 1, 3, 1]))
    with pytest.raises(IndexError, match=r"labels\[0\] = -1 is out of range"):
        op(LOGITS, np.array([-1, 1, 2, 1], np.int32))
    with pytest.raises(TypeError, match="labels expected an int32 or int64 array of class indices, got float64"):
        op(LOGITS, LABELS.astype(np.float64))
    with pytest.raises(TypeError, match="labels expected an int32 or int64 array .* got bool"):
        op(LOGITS, LABELS > 0)
    with pytest.raises(TypeError, match="labels expected an int32 or int64 array .* got int16"):
        op(LOGITS, LABELS.astype(np.int16))
    with pytest.raises(TypeError, match="labels expected an int32 or int64 array .* got list"):
        op(LOGITS, [0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"labels expected shape \(4,\) \(one class index per row of logits\), "
                                         r"got \(4, 1\)"):
        op(LOGITS, LABELS[:, None])
    with pytest.raises(ValueError, match=r"logits expected 2 dimensions \(batch, classes\), got shape \(12,\)"):
        op(LOGITS.reshape(-1), LABELS)
    with pytest.raises(TypeError, match="labels must be a plain integer numpy array, got a traced array"):
        fnnet.grad(lambda x: op(x, x))(LOGITS)


def test_softmax_cross_entropy_is_one_fused_tape_entry_with_the_exact_backward(monkeypatch):
    recorded = []
    original = Tape.record

    def counting(self, prim, *args, **kwargs):
        recorded.append(prim.name)
        return original(self, prim, *args, **kwargs)

    monkeypatch.setattr(Tape, "record", counting)
    g = fnnet.grad(lambda x: losses.softmax_cross_entropy(x, LABELS))(LOGITS)
    assert recorded == ["softmax_cross_entropy"]
    p = np.exp(LOGITS - LOGITS.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(g, (p - np.eye(3)[LABELS]) / len(LABELS), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropies_are_finite_for_extreme_logits(dtype):
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], dtype)
    for fn in (lambda x: losses.softmax_cross_entropy(x, np.array([1, 2])),
               lambda x: losses.softmax_cross_entropy_with_probs(x, np.eye(3, dtype=dtype)[[1, 2]]),
               lambda x: losses.binary_cross_entropy_with_logits(x, np.ones(x.shape, dtype))):
        value, g = fnnet.value_and_grad(fn)(x)
        assert value.dtype == dtype and np.isfinite(value) and np.isfinite(g).all()
    np.testing.assert_allclose(losses.softmax_cross_entropy(x, np.array([1, 2]), reduction="none"),
                               [2000.0, 1.0 + np.log1p(np.exp(-1.0))], rtol=1e-6)


def test_loss_output_shapes_and_dtypes():
    x32 = LOGITS.astype(np.float32)
    assert losses.softmax_cross_entropy(x32, LABELS).shape == ()
    assert losses.softmax_cross_entropy(x32, LABELS).dtype == np.float32
    assert losses.softmax_cross_entropy(x32, LABELS, reduction="none").shape == (4,)
    assert losses.mse(x32, x32, reduction="none").shape == (4, 3)
    assert losses.binary_cross_entropy_with_logits(x32, x32, reduction="sum").dtype == np.float32


def test_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert losses.accuracy(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert np.isnan(losses.accuracy(np.zeros((0, 2)), np.zeros(0, np.int64)))
    with pytest.raises(TypeError, match="accuracy: labels expected integer class indices, got dtype float64"):
        losses.accuracy(logits, np.array([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"accuracy: labels expected shape \(3,\), got \(2,\)"):
        losses.accuracy(logits, np.array([1, 0]))
    with pytest.raises(ValueError, match=r"accuracy: logits expected 2 dimensions"):
        losses.accuracy(logits[0], np.array([1]))
    with pytest.raises(ValueError, match=r"accuracy: logits expected at least 1 class, got shape \(2, 0\)"):
        losses.accuracy(np.zeros((2, 0), np.float32), np.array([0, 0]))


def test_train_accuracy_of_zero_classes_is_a_value_error():
    with pytest.raises(ValueError, match=r"accuracy: logits expected a last axis of at least 1 class"):
        fnnet.train.accuracy(np.zeros((2, 0), np.float32), np.array([0, 0]))


def test_float16_logits_are_storage_computed_in_float32():
    x16 = LOGITS.astype(np.float16)
    for fn in (lambda x: losses.softmax_cross_entropy(x, LABELS),
               lambda x: losses.softmax_cross_entropy_with_probs(x, TARGETS.astype(x.dtype)),
               lambda x: losses.mse(x, TARGETS.astype(x.dtype)),
               lambda x: losses.binary_cross_entropy_with_logits(x, TARGETS.astype(x.dtype))):
        v16, g16 = fnnet.value_and_grad(fn)(x16)
        v32, g32 = fnnet.value_and_grad(fn)(x16.astype(np.float32))
        assert v16.dtype == np.float16 and g16.dtype == np.float16
        np.testing.assert_allclose(float(v16), float(v32), rtol=2e-3)
        np.testing.assert_allclose(g16.astype(np.float32), g32, rtol=5e-3, atol=5e-4)
