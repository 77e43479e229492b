"""Markdown for the documentation's benchmark tables, from one or more saved ``python -m fnnet.bench --json``
runs (``runs``: a list of ``(source path, results dict)``).

With one run, a value is that run's median and ``(lo–hi)`` the range of the medians of its interleaved
rounds (the sections that keep one value per run, all but ``training`` and ``ops``, show no range then);
with several runs, a value is the median over the runs and ``(lo–hi)`` the range over the runs.
A row marked ``!`` was measured, in at least one run, while other processes used the cores.
"""

from __future__ import annotations

import statistics

from . import contamination
from .ops import label as op_label

TRAINING_LABELS = {
    "cnn": "Conv32-ReLU-Pool-Conv64-ReLU-Pool-FC128-FC10, 1x28x28, batch 64, SGD",
    "mlp": "784-256-256-10, batch 128, SGD",
    "tiny": "64-64-10, batch 32, SGD",
    "attention": "one pre-LayerNorm transformer block, width 128, 4 heads, context 64, batch 32, AdamW",
    "gru": "GRU(128) over 32 steps of 32 features, batch 32, Adam",
    "gru_loop": "the same GRU, fnnet's GRUCell stepped in Python (PyTorch: nn.GRU), Adam",
    "charlm": "the `charlm` example's model and step, clipped AdamW",
}
PEER_NAMES = {"fnnet_eager": "fnnet eager", "torch": "PyTorch", "numpy": "NumPy", "jax": "JAX"}
SUMMARY_WORKLOADS = ("cnn", "mlp", "tiny", "attention", "gru", "gru_loop", "charlm")


# ------------------------------------------------------------------------------------------ numbers
def fmt_ms(ms):
    """Milliseconds with three significant digits (``'0.262'``, ``'2.42'``, ``'14.0'``, ``'102'``)."""
    if ms is None:
        return "–"
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def ranged(value, spread, number, unit=""):
    """``number(value) + unit``, then ``' (lo–hi)'`` when the range is not a single point at that precision."""
    if value is None:
        return "–"
    lo, hi = (number(v) for v in spread) if spread else (None, None)
    return number(value) + unit + (f" ({lo}–{hi})" if lo != hi else "")


def fmt_ratio(value, spread=None):
    """``'0.74x'``, or ``'0.74x (0.70–0.79)'`` with a range that is not a single point."""
    return ranged(value, spread, lambda v: f"{v:.2f}", "x")


def fmt_s(value, spread=None):
    """Seconds: ``'0.98 s'``, ``'42.8 s (40.1–44.0)'``."""
    return ranged(value, spread, lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}", " s")


def fmt_mb(value, spread=None, unit=" MB"):
    """Megabytes: ``'204 MB'``, ``'16.0 MB'``, ``'204 MB (198–210)'`` (``unit=""``: ``'204'``)."""
    return ranged(value, spread, lambda v: f"{v:.1f}" if v < 100 else f"{v:.0f}", unit)


def target(value, bound, unit="", at_least=False):
    """``'≤ 1.0 s: met'`` (``'≥ 0.9x: missed'`` with ``at_least``): the median ``value`` against a goal."""
    text = f"{'≥' if at_least else '≤'} {bound}{unit}"
    if value is None:
        return text
    return f"{text}: {'met' if (value >= bound if at_least else value <= bound) else 'missed'}"


def combine(values, spreads):
    """``(value, range)`` of one cell over runs: the single run's value and in-run range, or the median
    and range over the runs (runs without the value are left out)."""
    present = [(v, s) for v, s in zip(values, spreads) if v is not None]
    if not present:
        return None, None
    if len(present) == 1:
        return present[0]
    vs = [v for v, _ in present]
    return statistics.median(vs), [min(vs), max(vs)]


def _dig(tree, *keys):
    for k in keys:
        if not isinstance(tree, dict) or k not in tree:
            return None
        tree = tree[k]
    return tree


def cell(runs, section, row, *path, spread_path=None):
    """One table cell across runs: ``path`` into each run's row, ``spread_path`` to its in-run range."""
    rows = [_dig(results, section, row) for _, results in runs]
    values = [_dig(r, *path) for r in rows]
    spreads = [_dig(r, *spread_path) if spread_path else None for r in rows]
    return combine(values, spreads)


def over_runs(runs, value):
    """``(value, range)`` of ``value(results)`` (None where a run lacks it) over the runs."""
    return combine([value(results) for _, results in runs], [None] * len(runs))


def _quotient(a, b):
    """``a / b``, or None when either is missing (or ``b`` is 0)."""
    return None if a is None or not b else a / b


# ------------------------------------------------------------------------------------------ pieces
def _rows(runs, section):
    """Row names in first-seen order over the runs."""
    return list(dict.fromkeys(name for _, results in runs for name in results.get(section, {})))


def _date(results):
    """``'2026-12-01 14:47 UTC'`` from the run's ISO date."""
    date = str(results["machine"].get("date", "?"))
    return f"{date[:16].replace('T', ' ')} UTC" if date.endswith("+00:00") else date


def _evidence(runs, section, row=None):
    """``[(date, record)]`` of the runs in which a row (``row=None``: a section watched as a whole, whose
    record sits under ``results["contamination"]`` or the section's own ``"contamination"``) was disturbed."""
    def record(results):
        if row is not None:
            return _dig(results, section, row, "contamination")
        return _dig(results, "contamination", section) or _dig(results, section, "contamination")

    return [(_date(results), r) for _, results in runs if (r := record(results)) and r["contaminated"]]


def _flag(text, flagged):
    """``text``, with the contamination mark ``' !'`` when ``flagged``."""
    return f"{text} !" if flagged else text


def _name(text, runs, section, row=None):
    return _flag(text, _evidence(runs, section, row))


def caption(runs, in_run_ranges=True):
    """Where the numbers come from: machine, versions, command(s), rounds, and how to read the ranges
    (``in_run_ranges=False``: the section keeps one value per run, so one run shows no range)."""
    first = runs[0][1]["machine"]
    machine = (f"{first.get('cpu_model', '?')}, {first.get('usable_cpus', first.get('cpus'))} cores, "
               f"{first.get('threads', '?')} threads; Python {first.get('python')}, numpy {first.get('numpy')}, "
               f"numba {first.get('numba')}, PyTorch {first.get('torch')}, threading layer "
               f"{first.get('threading_layer')}")
    commands = "; ".join(dict.fromkeys(f"`{results.get('command', 'python -m fnnet.bench')}`" for _, results in runs))
    rounds = runs[0][1].get("rounds", 1)
    if len(runs) == 1:
        spread = ("one value per run: no range" if not in_run_ranges else "one round: no range" if rounds == 1
                  else f"(lo–hi): range over the {rounds} interleaved rounds")
    else:
        spread = f"value: median of {len(runs)} runs; (lo–hi): range over the runs"
    lines = [f"Machine: {machine}.  ",
             f"Run(s): {', '.join(_date(results) for _, results in runs)}: {commands}; "
             f"{spread}.  ",
             f"Rendered by `python -m fnnet.bench.report {' '.join(path for path, _ in runs)} --write`."]
    return "\n".join(lines)


def smoke_note(runs):
    """A warning first thing in the block when any run was a ``--quick`` smoke run."""
    if not any(results.get("quick") for _, results in runs):
        return ""
    return ("**Smoke run (`--quick`: one repeat, no minimum time): these numbers are meaningless and only show "
            "that the pipeline works.**\n\n")


def footnotes(runs, *sections):
    """One line per contaminated row (or section watched as a whole) and run, with the evidence."""
    lines = [f"- `{section if row is None else row}` ({date}): {contamination.describe(r, top=3)}"
             for section in sections for row in (None, *_rows(runs, section))
             for date, r in _evidence(runs, section, row)]
    if not lines:
        return ""
    return "\n\n`!`: measured while other processes used the cores:\n\n" + "\n".join(lines)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


# ------------------------------------------------------------------------------------------ blocks
def _peers(runs, section, candidates):
    return [p for p in candidates if any(_dig(results, section, row, p) is not None
                                         for _, results in runs for row in results.get(section, {}))]


def training(runs):
    """The training-step table: ms per framework and fnnet / peer ratios, one row per workload (``fnnet`` is
    the step under ``fnnet.jit`` when the run has an ``fnnet_eager`` row), then the first call's time."""
    peers = _peers(runs, "training", ("fnnet_eager", "torch", "numpy", "jax"))
    jitted = "fnnet_eager" in peers
    header = ["workload", "fnnet jit ms" if jitted else "fnnet ms"]
    for p in peers:
        header += [f"{PEER_NAMES[p]} ms", f"fnnet / {PEER_NAMES[p]}"]
    if jitted:
        header += ["first call: jit / eager ms (jit, empty kernel cache)"]
    rows = []
    for w in _rows(runs, "training"):
        name = _name(f"`{w}` ({TRAINING_LABELS.get(w, w)})", runs, "training", w)
        cells = [name, fmt_ms(cell(runs, "training", w, "fnnet")[0])]
        for p in peers:
            cells += [fmt_ms(cell(runs, "training", w, p)[0]),
                      fmt_ratio(*cell(runs, "training", w, "ratios", p, spread_path=("ratio_range", p)))]
        if jitted:
            cold = cell(runs, "training", w, "first_call_cold_ms")[0]
            cells.append(f"{fmt_ms(cell(runs, 'training', w, 'first_call_ms', 'fnnet')[0])} / "
                         f"{fmt_ms(cell(runs, 'training', w, 'first_call_ms', 'fnnet_eager')[0])}"
                         + ("" if cold is None else f" (empty cache: {cold / 1e3:.1f} s)"))
        rows.append(cells)
    return smoke_note(runs) + table(header, rows) + footnotes(runs, "training") + "\n\n" + caption(runs)


def _op_cells(runs, op, metric, peer):
    return [fmt_ms(cell(runs, "ops", op, peer, metric)[0]),
            fmt_ratio(*cell(runs, "ops", op, "ratios", metric, peer, spread_path=("ratio_range", metric, peer)))]


def ops(runs):
    """The per-op table: forward and forward + backward ms, fnnet / PyTorch (and fnnet / NumPy forward)."""
    header = ["op (shape)", "fnnet fwd ms", "PyTorch fwd ms", "fnnet / PyTorch", "NumPy fwd ms", "fnnet / NumPy",
              "fnnet fwd+bwd ms", "PyTorch fwd+bwd ms", "fnnet / PyTorch"]
    rows = []
    for op in _rows(runs, "ops"):
        text = next((results["ops"][op].get("label") for _, results in runs if op in results.get("ops", {})), None)
        rows.append([_name(text or op_label(op), runs, "ops", op), fmt_ms(cell(runs, "ops", op, "fnnet", "fwd_ms")[0]),
                     *_op_cells(runs, op, "fwd_ms", "torch"), *_op_cells(runs, op, "fwd_ms", "numpy"),
                     fmt_ms(cell(runs, "ops", op, "fnnet", "fwd_bwd_ms")[0]),
                     *_op_cells(runs, op, "fwd_bwd_ms", "torch")])
    return smoke_note(runs) + table(header, rows) + footnotes(runs, "ops") + "\n\n" + caption(runs)


def summary(runs):
    """README's one line: fnnet / PyTorch per training workload, where it was measured, and how."""
    first = runs[0][1]["machine"]
    parts, marked = [], False
    for w in (w for w in SUMMARY_WORKLOADS if w in _rows(runs, "training")):
        ratio = cell(runs, "training", w, "ratios", "torch", spread_path=("ratio_range", "torch"))
        if ratio[0] is not None:
            flagged = bool(_evidence(runs, "training", w))
            marked = marked or flagged
            parts.append(f"{w} {fmt_ratio(*ratio)}{' !' if flagged else ''}")
    how = f"median of {len(runs)} runs" if len(runs) > 1 else "one run"
    marks = " (`!`: other processes were using the cores)" if marked else ""
    smoke = "  **Smoke run: meaningless numbers.**" if any(results.get("quick") for _, results in runs) else ""
    return (f"**Training step time, fnnet / PyTorch** (below 1 is faster; {first.get('cpu_model')}, "
            f"{first.get('usable_cpus', first.get('cpus'))} cores, {how} of `python -m fnnet.bench`): "
            f"{', '.join(parts)}{marks}.{smoke}  Method, per-op numbers and the run-to-run range: "
            f"[docs/performance.md](docs/performance.md).")


def _scaling_grid(runs):
    """``{workload: {batch: {threads: row name}}}`` from the ``'mlp/b64/t2'`` row names."""
    grid = {}
    for key in _rows(runs, "scaling"):
        workload, batch, threads = key.split("/")
        grid.setdefault(workload, {}).setdefault(int(batch[1:]), {})[int(threads[1:])] = key
    return grid


def _scaling_cells(runs, key, torch):
    """``['fnnet / PyTorch ms', 'fnnet / PyTorch']`` for one (workload, batch, threads) row name."""
    fnnet = fmt_ms(cell(runs, "scaling", key, "fnnet")[0])
    if not torch:
        return [fnnet]
    ratio = over_runs(runs, lambda r: _quotient(_dig(r, "scaling", key, "fnnet"), _dig(r, "scaling", key, "torch")))
    return [f"{fnnet} / {fmt_ms(cell(runs, 'scaling', key, 'torch')[0])}", fmt_ratio(*ratio)]


def scaling(runs):
    """ms per training step by batch size and thread count, fnnet and PyTorch, one row per workload and batch."""
    grid = _scaling_grid(runs)
    counts = sorted({t for batches in grid.values() for keys in batches.values() for t in keys})
    torch = bool(_peers(runs, "scaling", ("torch",)))
    header = ["workload", "batch"]
    for t in counts:
        name = f"{t} thread{'s' if t > 1 else ''}"
        header += [f"{name}: fnnet / PyTorch ms", "fnnet / PyTorch"] if torch else [f"{name}: fnnet ms"]
    rows = []
    for workload, batches in grid.items():
        for batch in sorted(batches):
            keys = [batches[batch].get(t) for t in counts]
            flagged = any(_evidence(runs, "scaling", k) for k in keys if k)
            rows.append([_flag(f"`{workload}`", flagged), str(batch),
                         *(c for k in keys for c in _scaling_cells(runs, k, torch))])
    return smoke_note(runs) + table(header, rows) + footnotes(runs, "scaling") + "\n\n" + caption(runs, False)


# the performance targets the tables are judged against (medians over the runs)
GOALS = {"warm_start_s": 1.0, "peak_rss_mb": 250, "remat_memory": 2.0, "remat_time": 1.4, "float16_speed": 0.9}
STARTUP_ROWS = (  # (fnnet key, peer key, measurement)
    ("fnnet_warm_s", "torch_s", "fresh process → end of the first CNN training step, warm kernel cache"),
    ("fnnet_cold_s", None, "same, empty kernel cache"),
    ("fnnet_cold_precompile_s", None, "same, empty kernel cache, `fnnet.precompile(model, in_shape)` first"))


def startup(runs):
    """Start-up (a fresh process to the end of its first CNN training step) and, where the runs hold a
    ``memory`` section, the peak RSS of a CNN training process: fnnet, PyTorch, and the goals."""
    rows = []
    for key, peer, text in STARTUP_ROWS:
        value = cell(runs, "startup", key)
        if value[0] is not None:
            goal = target(value[0], GOALS["warm_start_s"], " s") if key == "fnnet_warm_s" else "–"
            peer_value = fmt_s(*cell(runs, "startup", peer)) if peer else "–"
            rows.append([_name(text, runs, "startup"), fmt_s(*value), peer_value, goal])
    if any("memory" in results for _, results in runs):
        rss = cell(runs, "memory", "fnnet_mb")
        rows.append([_name("peak RSS of a CNN training process (batch 64)", runs, "memory"), fmt_mb(*rss),
                     fmt_mb(*cell(runs, "memory", "torch_mb")), target(rss[0], GOALS["peak_rss_mb"], " MB")])
    body = table(["measurement", "fnnet", "PyTorch", "goal"], rows)
    return smoke_note(runs) + body + footnotes(runs, "startup", "memory") + "\n\n" + caption(runs, False)


def _remat_label(runs, row):
    """``'MLP, 16 x (Linear(1024), ReLU), 4 pairs per block, batch 256'`` from the row's sizes."""
    record = next((results["remat"][row] for _, results in runs if row in results.get("remat", {})), {})
    sizes, model = record.get("sizes", {}), _dig(record, "plain", "model")
    if model == "mlp" and {"width", "depth", "batch", "block_layers"} <= sizes.keys():
        pairs = sizes["block_layers"]
        return (f"MLP, {sizes['depth']} x (Linear({sizes['width']}), ReLU), {pairs} pair{'s' if pairs > 1 else ''} "
                f"per block, batch {sizes['batch']}")
    if model == "cnn" and "batch" in sizes:
        return f"CNN (`cnn`), each conv block wrapped, batch {sizes['batch']}"
    return row


def _activation_mb(record):
    """The tape's bytes beyond the params it references, in MB."""
    return None if not record else max(record["peak_tape_bytes"] - record["param_bytes"], 0) / 2**20


def _megabytes(value):
    """Megabytes without the unit (the column header names it)."""
    return fmt_mb(value, unit="")


def _remat_pair(runs, row, value, number):
    """``'plain / remat'``: ``value(record of the mode)`` over the runs, formatted by ``number``."""
    return " / ".join(number(over_runs(runs, lambda r: value(_dig(r, "remat", row, mode)))[0])
                      for mode in ("plain", "remat"))


def _rss_goal(runs, row, rss, time):
    """The row's process-memory goal (``rss_goal``: more than ``rss_ratio`` less RSS, where given at no more
    than ``time_ratio`` the time), judged: ``'≥ 2.5x at ≤ 1.35x: met'``; '–' for a row without one."""
    record = next((results["remat"][row] for _, results in runs if row in results.get("remat", {})), {})
    goal = record.get("rss_goal")
    if not goal:
        return "–"
    slow = goal.get("time_ratio")
    text = f"> {goal['rss_ratio']}x" if slow is None else f"≥ {goal['rss_ratio']}x at ≤ {slow}x the time"
    if rss is None or (slow is not None and time is None):
        return text
    met = (rss > goal["rss_ratio"] if slow is None else rss >= goal["rss_ratio"] and time <= slow)
    return f"{text}: {'met' if met else 'missed'}"


def remat(runs):
    """Gradient checkpointing: activation memory on the tape, RSS growth in a step and step time, plain vs
    ``Remat``, with the seed's goal (that much less tape memory at no more than that much time) and, for the
    rows that have one, the goal on process memory."""
    mem, slow = GOALS["remat_memory"], GOALS["remat_time"]
    header = ["model", "activation tape MB, plain / remat", "less tape (plain / remat)",
              "RSS growth in a step MB, plain / remat", "less RSS (plain / remat)", "step ms, plain / remat",
              "slower (remat / plain)", f"goal: ≥ {mem}x less tape at ≤ {slow}x the time", "goal: less RSS"]
    rows = []
    for row in _rows(runs, "remat"):
        less, time = cell(runs, "remat", row, "activation_tape_ratio"), cell(runs, "remat", row, "time_ratio")
        rss = cell(runs, "remat", row, "rss_ratio")
        met = "–" if None in (less[0], time[0]) else "met" if less[0] >= mem and time[0] <= slow else "missed"
        rows.append([_name(_remat_label(runs, row), runs, "remat"),
                     _remat_pair(runs, row, _activation_mb, _megabytes), fmt_ratio(*less),
                     _remat_pair(runs, row, lambda r: _quotient(_dig(r, "rss_growth_bytes"), 2**20), _megabytes),
                     fmt_ratio(*rss), _remat_pair(runs, row, lambda r: _dig(r, "step_ms"), fmt_ms), fmt_ratio(*time),
                     met, _rss_goal(runs, row, rss[0], time[0])])
    return smoke_note(runs) + table(header, rows) + footnotes(runs, "remat") + "\n\n" + caption(runs, False)


def float16(runs):
    """The mixed-precision training step (float16 storage, float32 compute and master params) vs float32."""
    rows = []
    for w in _rows(runs, "float16"):
        speed = cell(runs, "float16", w, "speed_ratio")
        bare = cell(runs, "float16", w, "float32_bare_ms")[0]  # (older runs have no bare column)
        rows.append([_name(f"`{w}` ({TRAINING_LABELS.get(w, w)})", runs, "float16", w),
                     fmt_ms(cell(runs, "float16", w, "float32_ms")[0]),
                     fmt_ms(cell(runs, "float16", w, "float16_ms")[0]),
                     fmt_ratio(*speed), target(speed[0], GOALS["float16_speed"], "x", at_least=True),
                     "–" if bare is None else fmt_ms(bare)])
    header = ["workload", "float32 `make_train_step` ms", "float16 `make_mixed_precision_train_step` ms",
              "float16 speed (float32 ms / float16 ms)", "goal", "bare float32 step ms (training table)"]
    return smoke_note(runs) + table(header, rows) + footnotes(runs, "float16") + "\n\n" + caption(runs, False)


def threads(runs):
    """Gradient accumulation over micro-batches on one Python thread vs two."""
    speedup = cell(runs, "threads", "speedup")
    row = [_name("`mlp` gradient of 256 examples as 4 micro-batches (`fnnet.optim.accumulate_gradients`)",
                 runs, "threads"), fmt_ms(cell(runs, "threads", "serial_ms")[0]),
           fmt_ms(cell(runs, "threads", "threads2_ms")[0]), fmt_ratio(*speedup)]
    body = table(["measurement", "threads=1 ms", "threads=2 ms", "speed-up (threads=1 ms / threads=2 ms)"], [row])
    return smoke_note(runs) + body + footnotes(runs, "threads") + "\n\n" + caption(runs, False)


# name -> (renderer, the section every run must have)
BLOCKS = {"training": (training, "training"), "ops": (ops, "ops"), "summary": (summary, "training"),
          "scaling": (scaling, "scaling"), "startup": (startup, "startup"), "remat": (remat, "remat"),
          "float16": (float16, "float16"), "threads": (threads, "threads")}
