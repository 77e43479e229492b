"""The character-level language-model example (``fnnet.examples.charlm``) at a tiny size: its outputs, that it
learns, that a seed reproduces a run bit for bit, its data split, and its errors for bad flags."""

import json
import math
import re

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
from fnnet.examples import charlm

TINY = ["--steps", "30", "--context", "16", "--width", "32", "--layers", "1", "--heads", "2", "--batch", "8",
        "--max-chars", "20000", "--log-every", "10", "--sample-chars", "40", "--lr", "5e-3"]


def _run(out, *extra):
    return charlm.main([*TINY, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("charlm")
    return out, _run(out)


def test_tiny_run_writes_every_output(tiny_run):
    out, metrics = tiny_run
    for name in ("weights.npz", "config.json", "metrics.json", "loss_curve.png", "sample.txt"):
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    model = L.from_config(config["model"])
    assert model == charlm.build_model(metrics["vocab_size"], 16, 32, 1, 2)
    assert len(config["vocabulary"]) == metrics["vocab_size"] and config["flags"]["steps"] == 30
    ckpt = fnnet.io.load(out / "weights.npz")
    vocab = charlm.Vocabulary(charlm.load_text(20000))
    assert ckpt["metadata"]["vocabulary"] == vocab.chars
    _, val_text = charlm.split_text(charlm.load_text(20000), fnnet.random.split(fnnet.random.key(0))[0])
    val_loss = charlm.validation_loss(model, ckpt["params"], charlm.all_windows(vocab.encode(val_text), 16))
    assert val_loss == metrics["val_loss"]  # the saved weights are the ones evaluated
    assert json.loads((out / "metrics.json").read_text())["val_bpc"] == metrics["val_bpc"]
    sample = (out / "sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("def ") and len(sample) == len("def ") + 40


def test_tiny_run_learns(tiny_run):
    _, metrics = tiny_run
    history = metrics["history"]
    assert [h["step"] for h in history] == [10, 20, 30]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.5
    assert metrics["val_loss"] < math.log(metrics["vocab_size"]) - 0.5  # well below a uniform guess
    assert metrics["val_bpc"] == pytest.approx(metrics["val_loss"] / math.log(2))


def test_same_seed_gives_identical_metrics_and_weights(tiny_run, tmp_path):
    out, metrics = tiny_run
    again = _run(tmp_path / "again")
    assert {k: v for k, v in again.items() if k != "wall_time_s"} == {
        k: v for k, v in metrics.items() if k != "wall_time_s"}
    assert (tmp_path / "again" / "weights.npz").read_bytes() == (out / "weights.npz").read_bytes()
    assert (tmp_path / "again" / "sample.txt").read_text() == (out / "sample.txt").read_text()
    other = _run(tmp_path / "other", "--seed", "3")
    assert other["val_loss"] != metrics["val_loss"]


def test_split_is_deterministic_and_sends_whole_blocks_to_validation():
    block = charlm.BLOCK_CHARS
    text = charlm.load_text(20 * block)
    blocks = [text[i:i + block] for i in range(0, len(text), block)]
    key = fnnet.random.key(7)
    train, val = charlm.split_text(text, key)
    assert (train, val) == charlm.split_text(text, key)
    held_out = [blocks.index(val[i:i + block]) for i in range(0, len(val), block)]
    assert len(held_out) == 2 and held_out == sorted(held_out)  # 10% of 20 blocks, in text order
    assert train == "".join(b for i, b in enumerate(blocks) if i not in held_out)
    assert charlm.split_text(text, fnnet.random.key(8))[1] != val


def test_vocabulary_round_trip_and_unknown_character():
    vocab = charlm.Vocabulary("hello, world")
    tokens = vocab.encode("world, hello")
    assert tokens.dtype == np.int64 and vocab.decode(tokens) == "world, hello"
    with pytest.raises(ValueError, match="Vocabulary.encode: character 'z' is not in the 9-character"):
        vocab.encode("hez")


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
    (["--context", "x"], "argument --context: expected a positive integer, got 'x'"),
    (["--lr", "-1"], "argument --lr: expected a positive finite number, got '-1'"),
    (["--temperature", "nan"], "argument --temperature: expected a positive finite number, got 'nan'"),
    (["--width", "30", "--heads", "4"], "--width 30 must be divisible by --heads 4"),
    (["--prompt", ""], "--prompt must not be empty"),
])
def test_bad_flags_are_clear_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        charlm.main(["--out", str(tmp_path), *flags])
    assert error.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--max-chars", "2100", "--context", "64"], "--max-chars 2100 leaves 52 "),
    (["--max-chars", "2100", "--context", "64"], "fewer than --context + 1 = 65; raise --max-chars or lower --context"),
    (["--max-chars", "5000", "--prompt", "def \u2603"],
     "--prompt 'def \u2603': Vocabulary.encode: character '\u2603' is not in the"),
])
def test_data_errors_stop_before_training(flags, message, tmp_path):
    with pytest.raises(SystemExit, match=re.escape(message)):
        charlm.main(["--out", str(tmp_path / "run"), *flags])
    assert not (tmp_path / "run").exists()
