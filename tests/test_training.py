"""The main job end to end (short variant), its reproducibility, the MNIST path, and the loop helpers."""

import gzip
import json
import struct

import numpy as np

import fnnet
import fnnet.layers as L
from fnnet.examples import digits


def test_digits_short_run_learns_and_writes_outputs(tmp_path, capsys):
    acc = digits.main(["--out", str(tmp_path), "--epochs", "4", "--seed", "1"])
    out = capsys.readouterr().out
    assert acc >= 0.93, out  # the full README run (25 epochs) reaches >= 0.97
    assert "test accuracy" in out and "wall time" in out and "epoch 4/4" in out  # tqdm bars
    for name in ("weights.npz", "config.json", "metrics.json", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    ckpt = fnnet.io.load(tmp_path / "weights.npz")
    model = L.from_config(json.loads((tmp_path / "config.json").read_text()))
    assert model == digits.build_model(8)
    (x_train, y_train), (x_test, y_test) = fnnet.datasets.load_digits(0.2, seed=1)
    evaluated = fnnet.train.evaluate(model, ckpt["params"], ckpt["state"], x_test, y_test)
    assert evaluated["accuracy"] == acc
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_same_seed_writes_identical_weight_files(tmp_path):
    for run in ("a", "b"):
        digits.main(["--out", str(tmp_path / run), "--epochs", "1", "--limit", "400", "--no-progress"])
    assert (tmp_path / "a" / "weights.npz").read_bytes() == (tmp_path / "b" / "weights.npz").read_bytes()
    digits.main(["--out", str(tmp_path / "c"), "--epochs", "1", "--limit", "400", "--no-progress", "--seed", "5"])
    assert (tmp_path / "a" / "weights.npz").read_bytes() != (tmp_path / "c" / "weights.npz").read_bytes()


def _write_idx(path, array, magic_type=0x08):
    header = struct.pack(">HBB", 0, magic_type, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(">u1").tobytes())


def test_mnist_idx_path(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 120).astype(np.uint8)
    images = np.zeros((120, 28, 28), np.uint8)
    for i, c in enumerate(labels):  # a learnable synthetic set: a bright column per class
        images[i, :, 2 + 2 * c] = 255
    for stem, arr in (("train-images-idx3-ubyte", images[:100]), ("train-labels-idx1-ubyte", labels[:100]),
                      ("t10k-images-idx3-ubyte", images[100:]), ("t10k-labels-idx1-ubyte", labels[100:])):
        _write_idx(tmp_path / f"{stem}.gz", arr)
    acc = digits.main(["--out", str(tmp_path / "out"), "--data", str(tmp_path), "--epochs", "3", "--no-progress",
                       "--batch-size", "20"])
    assert acc >= 0.9


def test_run_epoch_is_functional_and_reproducible():
    model = L.Sequential([L.Linear(8), L.ReLU(), L.Dropout(0.2), L.Linear(3)])
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    y = (np.arange(50) % 3).astype(np.int64)
    params = model.init(fnnet.random.key(0), x)
    opt = fnnet.optim.sgd(0.1)
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    results = []
    for _ in range(2):
        opt_state = opt.init(params)
        before = fnnet.tree.map(np.copy, params)
        p, s, o, metrics = fnnet.train.run_epoch(step, params, {}, opt_state, x, y, fnnet.random.key(3), batch_size=16)
        assert all(np.array_equal(a, b) for a, b in zip(fnnet.tree.leaves(params), fnnet.tree.leaves(before)))
        results.append(p)
        assert set(metrics) == {"loss", "accuracy"}
    assert all(np.array_equal(a, b) for a, b in zip(fnnet.tree.leaves(results[0]), fnnet.tree.leaves(results[1])))
