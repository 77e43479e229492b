"""Markdown for the documentation's benchmark tables, from one or more saved ``python -m fnnet.bench --json``
runs (``runs``: a list of ``(source path, results dict)``).

With one run, a value is that run's median and ``(lo–hi)`` the range of the medians of its interleaved
rounds; with several runs, a value is the median over the runs and ``(lo–hi)`` the range over the runs.
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
    "charlm": "the `charlm` example's model and step, clipped AdamW",
}
PEER_NAMES = {"torch": "PyTorch", "numpy": "NumPy", "jax": "JAX"}
SUMMARY_WORKLOADS = ("cnn", "mlp", "tiny", "attention", "gru", "charlm")


# ------------------------------------------------------------------------------------------ numbers
def fmt_ms(ms):
    """Milliseconds with three significant digits (``'0.262'``, ``'2.42'``, ``'14.0'``, ``'102'``)."""
    if ms is None:
        return "–"
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def fmt_ratio(value, spread=None):
    """``'0.74x'``, or ``'0.74x (0.70–0.79)'`` with a range that is not a single point."""
    if value is None:
        return "–"
    text = f"{value:.2f}x"
    if spread and f"{spread[0]:.2f}" != f"{spread[1]:.2f}":
        text += f" ({spread[0]:.2f}–{spread[1]:.2f})"
    return text


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


# ------------------------------------------------------------------------------------------ pieces
def _rows(runs, section):
    """Row names in first-seen order over the runs."""
    return list(dict.fromkeys(name for _, results in runs for name in results.get(section, {})))


def _date(results):
    """``'2026-12-01 14:47 UTC'`` from the run's ISO date."""
    date = str(results["machine"].get("date", "?"))
    return f"{date[:16].replace('T', ' ')} UTC" if date.endswith("+00:00") else date


def _evidence(runs, section, row):
    return [(_date(results), r) for _, results in runs
            if (r := _dig(results, section, row, "contamination")) and r["contaminated"]]


def _name(text, runs, section, row):
    return f"{text} !" if _evidence(runs, section, row) else text


def caption(runs):
    """Where the numbers come from: machine, versions, command(s), rounds, and how to read the ranges."""
    first = runs[0][1]["machine"]
    machine = (f"{first.get('cpu_model', '?')}, {first.get('usable_cpus', first.get('cpus'))} cores, "
               f"{first.get('threads', '?')} threads; Python {first.get('python')}, numpy {first.get('numpy')}, "
               f"numba {first.get('numba')}, PyTorch {first.get('torch')}, threading layer "
               f"{first.get('threading_layer')}")
    commands = "; ".join(dict.fromkeys(f"`{results.get('command', 'python -m fnnet.bench')}`" for _, results in runs))
    rounds = runs[0][1].get("rounds", 1)
    if len(runs) == 1:
        spread = f"(lo–hi): range over the {rounds} interleaved rounds" if rounds > 1 else "one round: no range"
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


def footnotes(runs, section):
    """One line per contaminated row and run, with the evidence."""
    lines = [f"- `{row}` ({date}): {contamination.describe(r, top=3)}"
             for row in _rows(runs, section) for date, r in _evidence(runs, section, row)]
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
    """The training-step table: ms per framework and fnnet / peer ratios, one row per workload."""
    peers = _peers(runs, "training", ("torch", "numpy", "jax"))
    header = ["workload", "fnnet ms"]
    for p in peers:
        header += [f"{PEER_NAMES[p]} ms", f"fnnet / {PEER_NAMES[p]}"]
    rows = []
    for w in _rows(runs, "training"):
        name = _name(f"`{w}` ({TRAINING_LABELS.get(w, w)})", runs, "training", w)
        cells = [name, fmt_ms(cell(runs, "training", w, "fnnet")[0])]
        for p in peers:
            cells += [fmt_ms(cell(runs, "training", w, p)[0]),
                      fmt_ratio(*cell(runs, "training", w, "ratios", p, spread_path=("ratio_range", p)))]
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


# name -> (renderer, the section every run must have)
BLOCKS = {"training": (training, "training"), "ops": (ops, "ops"), "summary": (summary, "training")}
