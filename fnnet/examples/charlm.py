"""Train a character-level transformer language model: ``python -m fnnet.examples.charlm --out runs/charlm``.

The text is the Python source of a few standard-library modules (``CORPUS``, read from this interpreter's
``sysconfig`` stdlib folder: nothing is downloaded), cut to ``--max-chars`` characters.  It is split into
2048-character blocks, and a ``--seed``-driven permutation sends 10% of the blocks to a held-out
validation split.  The vocabulary is every character of the text.

The model is decoder-only (GPT-style): a token embedding and learned positions, ``--layers`` causal pre-LN
``TransformerEncoderBlock``s (``--heads`` heads, a GELU MLP four times ``--width`` wide), a final LayerNorm
and a linear head over the vocabulary.  Each step trains on ``--batch`` random windows of ``--context``
characters, predicting every next character, with AdamW (weight decay 0.1, none for biases, norm scales and
positions: ``fnnet.layers.decay_mask``), gradients clipped to norm 1, and a learning rate warmed up over the
first 10% of the steps then decayed along a cosine to 10% of ``--lr``.

The run prints the train and validation loss every ``--log-every`` steps, then the validation loss over all
held-out windows in nats and bits per character, and writes to ``--out``:

- ``weights.npz``: params, optimizer state and model config (``fnnet.io.load`` reads it; the metadata
  holds the vocabulary);
- ``config.json``: the model architecture (``fnnet.layers.from_config(c["model"])``), vocabulary and flags;
- ``metrics.json`` and ``loss_curve.png``: train and validation loss in bits per character along the run;
- ``sample.txt``: ``--sample-chars`` characters generated after ``--prompt`` at ``--temperature``.

Everything random (split, initial weights, batches, sampling) is driven by ``--seed``: two runs with the same
seed and flags on the same Python installation print and write the same numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import sysconfig
import time

import numpy as np

import fnnet
import fnnet.layers as L

from ._outputs import MISSING_MATPLOTLIB, pyplot, save_figure, write_run

#: standard-library modules and packages (top-level files only) read in this order
CORPUS = ("argparse", "json", "logging", "textwrap", "dataclasses", "functools", "collections", "inspect", "typing",
          "http", "email", "urllib", "unittest", "importlib", "asyncio")
BLOCK_CHARS = 2048
VAL_FRACTION = 0.1
WEIGHT_DECAY = 0.1
EVAL_BATCH = 64
LOG_EVAL_WINDOWS = 128  # validation windows scored at each log line (the final score uses all of them)


def corpus_files(names=CORPUS):
    """The ``.py`` files of the standard-library modules ``names``, in order (a package's files sorted)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    files = []
    for name in names:
        folder = os.path.join(stdlib, name)
        if os.path.isdir(folder):
            files += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".py")]
        elif os.path.isfile(folder + ".py"):
            files.append(folder + ".py")
    return files


def load_text(max_chars):
    """The first ``max_chars`` characters of the corpus files joined end to end."""
    files = corpus_files()
    if not files:
        raise SystemExit(f"no standard-library sources found under {sysconfig.get_paths()['stdlib']!r} (looked for "
                         f"{', '.join(CORPUS)}); this example needs a Python installation that ships its .py files")
    parts, total = [], 0
    for path in files:
        with open(path, encoding="utf-8") as fh:
            parts.append(fh.read())
        total += len(parts[-1])
        if total >= max_chars:
            break
    return "".join(parts)[:max_chars]


def split_text(text, key):
    """``(train, validation)``: the 2048-character blocks of ``text``, 10% of them (at least one) drawn by
    ``key`` for validation; each split keeps its blocks in text order."""
    blocks = [text[i:i + BLOCK_CHARS] for i in range(0, len(text), BLOCK_CHARS)]
    n_val = max(1, int(round(VAL_FRACTION * len(blocks))))
    held_out = set(fnnet.random.permutation(key, len(blocks))[:n_val].tolist())
    train = "".join(b for i, b in enumerate(blocks) if i not in held_out)
    return train, "".join(b for i, b in enumerate(blocks) if i in held_out)


class Vocabulary:
    """The sorted characters of a text; ``encode`` maps a string to int64 indices, ``decode`` back."""

    def __init__(self, text):
        self.chars = "".join(sorted(set(text)))
        self._codes = _code_points(self.chars)

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        codes = _code_points(text)
        idx = np.minimum(np.searchsorted(self._codes, codes), len(self.chars) - 1)
        unknown = self._codes[idx] != codes
        if unknown.any():
            raise ValueError(f"Vocabulary.encode: character {text[int(np.argmax(unknown))]!r} is not in the "
                             f"{len(self.chars)}-character vocabulary of the training text")
        return idx.astype(np.int64)

    def decode(self, indices):
        return "".join(self.chars[i] for i in indices)


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def build_model(vocab_size, context=64, width=128, layers=2, heads=4):
    """Embedding and learned positions, ``layers`` causal pre-LN transformer blocks, LayerNorm, linear head:
    ``tokens (N, L <= context) int -> logits (N, L, vocab_size)``."""
    blocks = [L.TransformerEncoderBlock(width, heads, 4 * width, causal=True) for _ in range(layers)]
    return L.Sequential([L.Embedding(vocab_size, width, w_init=fnnet.init.Normal(0.02)),
                         L.LearnedPositionalEmbedding(context), *blocks, L.LayerNorm(), L.Linear(vocab_size)])


def sequence_loss(logits, targets):
    """Mean cross-entropy (nats) of ``logits (N, L, V)`` against the next characters ``targets (N, L)``."""
    return fnnet.losses.softmax_cross_entropy(fnnet.ops.reshape(logits, (-1, logits.shape[-1])),
                                              targets.reshape(-1))


def random_windows(tokens, key, batch, context):
    """``(x, y)``, each ``(batch, context)``: windows at random offsets and the same windows moved one on."""
    starts = fnnet.random.randint(key, (batch,), 0, len(tokens) - context)
    windows = tokens[starts[:, None] + np.arange(context + 1)]
    return windows[:, :-1], windows[:, 1:]


def all_windows(tokens, context):
    """``(x, y)`` over every non-overlapping ``context``-window of ``tokens`` (the validation set)."""
    n = (len(tokens) - 1) // context
    x = tokens[: n * context].reshape(n, context)
    return x, tokens[1: n * context + 1].reshape(n, context)


def validation_loss(model, params, windows, limit=None):
    """Mean loss in nats over ``windows`` (all of them, or ``limit`` evenly spaced ones)."""
    x, y = windows
    if limit is not None and len(x) > limit:
        pick = np.linspace(0, len(x) - 1, limit).astype(np.int64)
        x, y = x[pick], y[pick]
    return fnnet.train.evaluate(model, params, {}, x, y, loss_fn=sequence_loss, batch_size=EVAL_BATCH)["loss"]


def sample(model, params, vocab, prompt, n_chars, context, temperature, key):
    """``prompt`` followed by ``n_chars`` characters drawn one at a time from ``softmax(logits / temperature)``
    (the draw for character ``i`` uses ``fold_in(key, i)``)."""
    tokens = list(vocab.encode(prompt))
    for i in range(n_chars):
        logits = model.apply(params, np.asarray(tokens[-context:])[None])[0, -1].astype(np.float64) / temperature
        cdf = np.cumsum(np.exp(logits - logits.max()))
        u = fnnet.random.uniform(fnnet.random.fold_in(key, i), (), np.float64) * cdf[-1]
        tokens.append(min(int(np.searchsorted(cdf, u, side="right")), len(vocab) - 1))
    return vocab.decode(tokens)


def bits(nats):
    """Nats per character in bits per character."""
    return nats / math.log(2.0)


def _log_point(step, losses, val_loss, lr):
    """One ``history`` entry: the mean train loss since the last entry and the validation loss, in nats and bits."""
    train_loss = float(np.mean(losses))
    return {"step": step, "train_loss": train_loss, "train_bpc": bits(train_loss), "val_loss": val_loss,
            "val_bpc": bits(val_loss), "lr": lr}


def make_optimizer(model, params, lr, steps):
    """Clipping to global norm 1, then AdamW on a warm-up + cosine schedule, no decay where ``decay_mask`` says."""
    warmup = max(1, steps // 10)
    schedule = (fnnet.optim.schedules.warmup_cosine_decay(0.0, lr, warmup, steps, end=0.1 * lr) if steps > warmup
                else fnnet.optim.schedules.constant(lr))
    return schedule, fnnet.optim.chain(
        fnnet.optim.clip_by_global_norm(1.0),
        fnnet.optim.adamw(schedule, weight_decay=WEIGHT_DECAY, mask=L.decay_mask(model, params)))


def prepare_data(args):
    """``(vocabulary, train tokens, validation tokens, key for the rest of the run)``; exits with a message when
    a split is shorter than one window or the prompt has a character the text lacks."""
    text = load_text(args.max_chars)
    split_key, run_key = fnnet.random.split(fnnet.random.key(args.seed))
    train_text, val_text = split_text(text, split_key)
    for name, part in (("training", train_text), ("validation", val_text)):
        if len(part) < args.context + 1:
            raise SystemExit(f"--max-chars {args.max_chars} leaves {len(part)} {name} characters, fewer than "
                             f"--context + 1 = {args.context + 1}; raise --max-chars or lower --context")
    vocab = Vocabulary(text)
    try:
        vocab.encode(args.prompt)
    except ValueError as error:
        raise SystemExit(f"--prompt {args.prompt!r}: {error}; choose a prompt made of characters of the text") from None
    return vocab, vocab.encode(train_text), vocab.encode(val_text), run_key


def fit(args, model, params, train_tokens, val_windows, key, start):
    """``args.steps`` training steps on random windows drawn with ``fold_in(key, step)``, printing and logging
    every ``args.log_every`` steps; returns ``(params, opt_state, history)``."""
    schedule, optimizer = make_optimizer(model, params, args.lr, args.steps)
    opt_state = optimizer.init(params)
    step = fnnet.train.make_train_step(model, sequence_loss, optimizer)
    history, losses, shown = [], [], min(LOG_EVAL_WINDOWS, len(val_windows[0]))
    for i in range(1, args.steps + 1):
        x, y = random_windows(train_tokens, fnnet.random.fold_in(key, i), args.batch, args.context)
        params, _, opt_state, metrics = step(params, {}, opt_state, x, y, None)
        losses.append(metrics["loss"])
        if i % args.log_every == 0 or i == args.steps:
            val_loss = validation_loss(model, params, val_windows, LOG_EVAL_WINDOWS)
            point = _log_point(i, losses, val_loss, schedule(i - 1))
            history.append(point)
            losses = []
            print(f"step {i}/{args.steps}: train loss {point['train_loss']:.4f} ({point['train_bpc']:.3f} bpc), "
                  f"validation {point['val_bpc']:.3f} bpc on {shown} windows, lr {point['lr']:.2e}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    return params, opt_state, history


def train(args):
    """Run the whole example; returns the metrics written to ``metrics.json``."""
    start = time.perf_counter()
    vocab, train_tokens, val_tokens, run_key = prepare_data(args)
    init_key, batch_key, sample_key = fnnet.random.split(run_key, 3)
    model = build_model(len(vocab), args.context, args.width, args.layers, args.heads)
    params = model.init(init_key, (None, args.context))
    val_windows = all_windows(val_tokens, args.context)
    n_params = sum(int(np.size(p)) for p in fnnet.tree.leaves(params))
    print(f"text: {len(train_tokens):,} training and {len(val_tokens):,} validation characters, vocabulary "
          f"{len(vocab)}; model: {n_params:,} params", flush=True)
    params, opt_state, history = fit(args, model, params, train_tokens, val_windows, batch_key, start)
    val_loss = validation_loss(model, params, val_windows)
    text = sample(model, params, vocab, args.prompt, args.sample_chars, args.context, args.temperature, sample_key)
    wall = time.perf_counter() - start
    metrics = {"val_loss": val_loss, "val_bpc": bits(val_loss), "val_windows": len(val_windows[0]),
               "train_chars": len(train_tokens), "val_chars": len(val_tokens), "vocab_size": len(vocab),
               "params": n_params, "steps": args.steps, "seed": args.seed, "history": history, "wall_time_s": wall}
    _write_outputs(args, model, params, opt_state, vocab, metrics, text)
    print(f"validation: loss {val_loss:.4f} nats/char, {bits(val_loss):.3f} bits/char "
          f"({len(val_windows[0])} windows of {args.context})")
    print(f"wall time: {wall:.1f} s")
    print(f"sample:\n{text}\n")
    print(f"wrote {args.out}/weights.npz, config.json, metrics.json, loss_curve.png, sample.txt")
    return metrics


def _write_outputs(args, model, params, opt_state, vocab, metrics, text):
    config = {"model": fnnet.layers.to_config(model), "vocabulary": vocab.chars, "flags": vars(args)}
    write_run(args.out, model, params, opt_state=opt_state, config=config, metrics=metrics,
              metadata={"vocabulary": vocab.chars, "steps": args.steps, "seed": args.seed,
                        "val_bpc": metrics["val_bpc"]})
    with open(os.path.join(args.out, "sample.txt"), "w", encoding="utf-8") as fh:
        fh.write(text)
    try:
        plot_curve(metrics["history"], os.path.join(args.out, "loss_curve.png"))
    except ImportError:
        print(MISSING_MATPLOTLIB.format(name="loss_curve.png"))


def plot_curve(history, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_bpc"] for h in history], label="train (mean since last point)")
    ax.plot(steps, [h["val_bpc"] for h in history], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.legend()
    save_figure(fig, path)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.examples.charlm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/charlm", help="output folder (created)")
    for flag, default, text in (("--steps", 600, "training steps"), ("--context", 64, "characters per window"),
                                ("--width", 128, "embedding width"), ("--layers", 2, "transformer blocks"),
                                ("--heads", 4, "attention heads (must divide --width)"),
                                ("--batch", 32, "windows per step"),
                                ("--max-chars", 1_000_000, "characters of standard-library source to use"),
                                ("--log-every", 50, "steps between progress lines"),
                                ("--sample-chars", 400, "characters to generate after training")):
        p.add_argument(flag, type=_positive_int, default=default, help=f"{text} (default {default})")
    p.add_argument("--lr", type=_positive_float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--temperature", type=_positive_float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--prompt", default="def ", help="text the sample starts from (default 'def ')")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.width % args.heads:
        p.error(f"--width {args.width} must be divisible by --heads {args.heads} (each head gets width / heads "
                "features); e.g. --width 128 --heads 4")
    if not args.prompt:
        p.error("--prompt must not be empty: the model needs at least one character to continue from")
    return args


def main(argv=None):
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
