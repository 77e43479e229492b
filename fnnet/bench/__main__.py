"""``python -m fnnet.bench``: fnnet side by side with PyTorch, NumPy and JAX, one process per measurement.

Examples::

    python -m fnnet.bench                       # everything, prints tables
    python -m fnnet.bench --workload mlp --workload tiny --json results.json
    python -m fnnet.bench --quick               # a few steps of everything (smoke test; timings meaningless)

Times are medians over repeated runs after warm-up, in milliseconds; ratios are fnnet / peer (below 1
means fnnet is faster).  Peers that are not installed are skipped with a note.  Every row is watched for
other processes using the cores (:mod:`fnnet.bench.contamination`); a row they disturbed is marked ``!``
in the tables and carries the evidence in the JSON.  ``python -m fnnet.bench.report`` renders the
documentation's tables from saved JSON runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shlex
import subprocess
import sys
import tempfile
import time

from . import contamination, measure
from . import memory as first_steps
from .ops import NUMPY_OPS, OPS, label

TRAINING = ("mlp", "tiny", "cnn", "attention", "gru", "gru_loop", "charlm")
ALL = (*TRAINING, "ops", "startup", "memory", "scaling", "remat", "float16", "threads", "distributed")
PEERS = {"mlp": ("torch", "numpy", "jax"), "tiny": ("torch", "numpy", "jax"), "cnn": ("torch",),
         "attention": ("torch",), "gru": ("torch", "jax"), "gru_loop": ("torch", "jax"), "charlm": ("torch",)}


def _installed(name):
    return name in ("fnnet", "numpy") or importlib.util.find_spec(name) is not None


_env = measure.env


def _worker(framework, workload, *, env=None, **cfg):
    return measure.worker(framework, workload, env_vars=env, **cfg)


def _fmt(ms):
    return "-" if ms is None else (f"{ms:.3f}" if ms < 10 else f"{ms:.1f}")


def _ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def _times(ratio):
    return "-" if ratio is None else f"{ratio:.2f}x"


def _mark(evidence):
    return "!" if evidence["contaminated"] else " "


def _interleaved(frameworks, workload, cfg, rounds):
    """Medians of ``rounds`` interleaved runs of whole-step workers, as ``(row, ratios, evidence)``."""
    times, evidence = measure.interleaved(frameworks, workload, cfg, rounds)
    row = measure.summarize(times, "ms")
    return row["median"], row["ratio"], evidence


def _peers(workload, notes):
    peers = []
    for peer in PEERS[workload]:
        if _installed(peer):
            peers.append(peer)
        else:
            notes.append(f"{peer} is not installed: skipped for {workload}")
    return peers


def run_training(workloads, cfg, notes, rounds=3, cold=False):
    """One row per workload: median ms per framework, ratios fnnet / peer, their ranges over rounds; with
    ``cold``, also the jitted step's first call in a process whose kernel cache starts empty."""
    rows = {}
    for w in workloads:
        peers = _peers(w, notes)
        peers = ["fnnet_eager", *peers]  # the row "fnnet" runs under fnnet.jit
        times, evidence = measure.interleaved(["fnnet", *peers], w, cfg, rounds)
        row = measure.summarize(times, "ms")
        first = measure.summarize(times, "first_ms")["median"]
        rows[w] = {**row["median"], "ratios": row["ratio"], "range": row["range"], "ratio_range": row["ratio_range"],
                   "first_call_ms": first, "rounds": rounds, "contamination": evidence,
                   "threading_layer": measure.threading_layer(times)}
        if cold:
            with tempfile.TemporaryDirectory() as cache:
                result = measure.worker("fnnet", w, **cfg, env_vars=measure.env(cfg["threads"], {"NUMBA_CACHE_DIR": cache}))
            rows[w]["first_call_cold_ms"] = result["first_ms"]
            print(f"{w:<9} first call of the jitted step with an empty kernel cache: {result['first_ms'] / 1e3:.1f} s",
                  flush=True)
        text = "  ".join(f"{p} {_fmt(row['median'][p])} ms ({row['ratio'][p]:.2f}x)" for p in peers)
        print(f"{w:<9}{_mark(evidence)}fnnet {_fmt(row['median']['fnnet'])} ms   {text}   first call (trace): "
              f"fnnet {_fmt(first.get('fnnet'))} ms, eager {_fmt(first.get('fnnet_eager'))} ms", flush=True)
    return rows


_OP_METRICS = ("fwd_ms", "fwd_bwd_ms")


def _op_row(op, cfg, rounds):
    """One op row: per framework and metric the median over rounds, with ranges, ratios and evidence."""
    frameworks = ["fnnet", *(["torch"] if _installed("torch") else []), *(["numpy"] if op in NUMPY_OPS else [])]
    times, evidence = measure.interleaved(frameworks, f"op:{op}", cfg, rounds)
    rows = {m: measure.summarize(times, m) for m in _OP_METRICS}
    row = {f: {m: rows[m]["median"].get(f) for m in _OP_METRICS} for f in frameworks}
    for key in ("range", "ratio", "ratio_range"):
        row["ratios" if key == "ratio" else key] = {m: rows[m][key] for m in _OP_METRICS}
    return {"label": label(op), **row, "rounds": rounds, "contamination": evidence,
            "threading_layer": measure.threading_layer(times)}


def run_ops(cfg, notes, rounds=1):
    """One row per op and shape: forward and forward + backward, fnnet vs PyTorch (NumPy's forward as a
    reference where it has the op), medians over ``rounds`` interleaved rounds."""
    rows = {}
    print(f"{'op':<24} {'fnnet fwd':>10}{'torch fwd':>10}{'ratio':>8}{'numpy fwd':>10}"
          f"{'fnnet f+b':>11}{'torch f+b':>11}{'ratio':>8}")
    if not _installed("torch"):
        notes.append("torch is not installed: per-op rows without PyTorch")
    for op in OPS:
        row = rows[op] = _op_row(op, cfg, rounds)
        f, t, n = row["fnnet"], row.get("torch", {}), row.get("numpy", {})
        fwd, fwd_bwd = (_times(row["ratios"][m].get("torch")) for m in _OP_METRICS)
        print(f"{op:<24}{_mark(row['contamination'])}{_fmt(f['fwd_ms']):>10}{_fmt(t.get('fwd_ms')):>10}{fwd:>8}"
              f"{_fmt(n.get('fwd_ms')):>10}{_fmt(f['fwd_bwd_ms']):>11}{_fmt(t.get('fwd_bwd_ms')):>11}{fwd_bwd:>8}",
              flush=True)
    return rows


_STARTUP = {
    "fnnet": "from fnnet.bench.workloads import fnnet_step; fnnet_step('cnn')()",
    "fnnet+precompile": ("import fnnet; from fnnet.bench.workloads import fnnet_model, fnnet_step; "
                         "fnnet.precompile(fnnet_model('cnn'), (None, 1, 28, 28)); fnnet_step('cnn')()"),
    "torch": "from fnnet.bench.workloads import torch_step; torch_step('cnn')()",
    "jax": "import jax; print(jax.devices())",
}


def _time_process(code, env):
    """Seconds from launching a fresh interpreter to the end of ``code`` (the child reports the wall-clock
    time at which it finished, so interpreter teardown is not counted)."""
    t0 = time.time()
    code = f"{code}\nimport time as _t; print('FNNET_BENCH_DONE', _t.time())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"start-up run failed:\n{proc.stderr[-3000:]}")
    done = [line for line in proc.stdout.splitlines() if line.startswith("FNNET_BENCH_DONE")]
    return float(done[-1].split()[1]) - t0


def run_startup(notes, quick=False):
    """Fresh process -> imports -> builds the CNN -> one training step, timed from outside."""
    result = {}
    if quick:  # the default cache (warmed by earlier runs); an empty cache costs a minute of compiling
        notes.append("quick mode: start-up measured with the default cache only (no cold start)")
        result["fnnet_warm_s"] = _time_process(_STARTUP["fnnet"], _env(2))
    else:
        with tempfile.TemporaryDirectory() as cache:
            env = _env(2, {"NUMBA_CACHE_DIR": cache})
            result["fnnet_cold_s"] = _time_process(_STARTUP["fnnet"], env)
            result["fnnet_warm_s"] = min(_time_process(_STARTUP["fnnet"], env) for _ in range(3))
        with tempfile.TemporaryDirectory() as cache:
            env = _env(2, {"NUMBA_CACHE_DIR": cache})
            result["fnnet_cold_precompile_s"] = _time_process(_STARTUP["fnnet+precompile"], env)
    if _installed("torch"):
        result["torch_s"] = min(_time_process(_STARTUP["torch"], _env(2)) for _ in range(1 if quick else 3))
    for k, v in result.items():
        print(f"{k:<26}{v:8.2f} s", flush=True)
    return result


def run_memory(cfg, notes, quick=False):
    steps = 3 if quick else 50
    result = {"fnnet_mb": _worker("fnnet", "cnn", steps=steps, threads=cfg["threads"])["peak_rss_mb"]}
    if _installed("torch"):
        result["torch_mb"] = _worker("torch", "cnn", steps=steps, threads=cfg["threads"])["peak_rss_mb"]
    print(f"peak RSS, CNN training ({steps} steps): " + ", ".join(f"{k} {v:.0f} MB" for k, v in result.items()))
    return result


def run_scaling(cfg, notes, quick=False):
    batches = (1, 8) if quick else (1, 8, 64, 256)
    threads = (1, 2)
    result = {}
    print(f"{'workload':<8}{'batch':>6}{'threads':>8}{'fnnet ms':>10}{'torch ms':>10}{'ratio':>8}")
    for w in ("mlp", "cnn"):
        for b in batches:
            for t in threads:
                c = dict(cfg, threads=t, batch=b)
                with contamination.Watch() as watch:
                    f = _worker("fnnet", w, **c)["ms"]
                    tt = _worker("torch", w, **c)["ms"] if _installed("torch") else None
                result[f"{w}/b{b}/t{t}"] = {"fnnet": f, "torch": tt, "contamination": watch.evidence}
                print(f"{w:<8}{b:>6}{t:>8}{_fmt(f):>10}{_fmt(tt):>10}{_ratio(f, tt):>8}{_mark(watch.evidence)}",
                      flush=True)
    return result


def run_float16(cfg, rounds):
    """The mixed-precision step against two float32 steps: ``make_train_step``'s (its drop-in counterpart:
    the same metrics and finite check; the ``speed_ratio``) and the bare jitted step of the training table."""
    result = {}
    for w in ("cnn", "mlp"):
        row, _, evidence = _interleaved(["fnnet32_train", "fnnet16", "fnnet"], w, cfg, rounds)
        result[w] = {"float32_ms": row["fnnet32_train"], "float16_ms": row["fnnet16"], "float32_bare_ms": row["fnnet"],
                     "speed_ratio": row["fnnet32_train"] / row["fnnet16"], "bare_speed_ratio": row["fnnet"] / row["fnnet16"],
                     "contamination": evidence}
        print(f"{w:<6}{_mark(evidence)}float32 train step {_fmt(row['fnnet32_train'])} ms   float16 "
              f"{_fmt(row['fnnet16'])} ms   speed {result[w]['speed_ratio']:.2f}x   (bare float32 step "
              f"{_fmt(row['fnnet'])} ms: {result[w]['bare_speed_ratio']:.2f}x)", flush=True)
    return result


def run_threads(cfg, rounds):
    row, ratios, evidence = _interleaved(["fnnet_accum1", "fnnet_accum2"], "mlp", cfg, rounds)
    speedup = ratios["fnnet_accum2"]  # serial time / threaded time
    print(f"serial {_fmt(row['fnnet_accum1'])} ms   2 threads {_fmt(row['fnnet_accum2'])} ms   "
          f"speed-up {speedup:.2f}x{_mark(evidence)}", flush=True)
    return {"serial_ms": row["fnnet_accum1"], "threads2_ms": row["fnnet_accum2"], "speedup": speedup,
            "contamination": evidence}


def run_remat(args):
    from . import remat

    return remat.run_all(quick=args.quick, threads=args.threads)


def run_distributed(args, notes):
    if not _installed("mpi4py"):
        notes.append('mpi4py is not installed: distributed skipped (pip install "fnnet[distributed]")')
        return None
    from . import distributed

    return distributed.run_all(quick=args.quick, threads=args.threads)


def _sections(args, cfg, notes):
    """``name -> (heading, run)`` for every section after the training steps, in the order they run."""
    rounds = 1 if args.quick else args.rounds
    return {
        "ops": ("per-op, median ms", lambda: run_ops(cfg, notes, rounds)),
        "startup": ("fresh process to first CNN training step", lambda: run_startup(notes, args.quick)),
        "memory": ("memory", lambda: {**run_memory(cfg, notes, args.quick),
                                      **first_steps.run_all(args.quick, args.threads)}),
        "scaling": ("scaling: batch size and threads", lambda: run_scaling(cfg, notes, args.quick)),
        "float16": ("float16 storage (mixed precision step) vs float32, median ms; ratio = float16 speed / float32",
                    lambda: run_float16(cfg, rounds)),
        "threads": ("gradient of 4 micro-batches (mlp, 256 examples): 1 vs 2 Python threads, median ms",
                    lambda: run_threads(cfg, rounds)),
        "remat": ("gradient checkpointing (Remat): plain vs remat, memory ratio plain/remat, time ratio remat/plain",
                  lambda: run_remat(args)),
        "distributed": ("data parallel on MPI, 2 ranks: allreduce_mean vs raw mpi4py Allreduce; mlp step, median ms",
                        lambda: run_distributed(args, notes)),
    }


_ROW_GUARDED = ("training", "ops", "scaling", "float16", "threads")  # the others get one record per section


def _header(args, argv):
    """The run's provenance: machine, command line, quick flag, rounds (the threading layer comes later)."""
    machine = measure.machine_info()
    command = shlex.join(["python", "-m", "fnnet.bench", *(sys.argv[1:] if argv is None else argv)])
    return {"machine": {**machine, "threads": args.threads}, "command": command, "quick": args.quick,
            "rounds": 1 if args.quick else args.rounds, "contamination": {}}


def _finish(results, notes):
    """Record the threading layer the workers used, print the notes and the contamination warning."""
    layers = [row.get("threading_layer") for section in ("training", "ops")
              for row in results.get(section, {}).values()]
    results["machine"]["threading_layer"] = next((t for t in layers if t), None)
    for n in dict.fromkeys(notes):
        print("note:", n)
    results["notes"] = list(dict.fromkeys(notes))
    bad = measure.contaminated_rows(results)
    if bad:
        worst = max(bad, key=lambda b: b[2]["other_cpu_percent"])
        print(f"warning: {len(bad)} row(s) measured while other processes used the cores (marked !; evidence "
              f"under 'contamination' in the JSON; rerun them on a quiet machine): "
              f"{', '.join(f'{section}/{name}' for section, name, _ in bad)}; the worst, {worst[0]}/{worst[1]}: "
              f"{contamination.describe(worst[2])}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", action="append", choices=ALL, help="repeatable; default: all")
    p.add_argument("--json", help="also write the results (with machine, command and evidence) to this JSON file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a few steps of each measurement (a smoke test)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of each training and op row")
    p.add_argument("--cold-first-call", action="store_true",
                   help="training rows: also time the jitted step's first call with an empty kernel cache (minutes)")
    args = p.parse_args(argv)
    workloads = args.workload or list(ALL)
    cfg = {"threads": args.threads, "repeats": 1 if args.quick else 7, "min_time": 0.0 if args.quick else 0.2,
           "warmup": 2 if args.quick else None}
    notes = []
    results = _header(args, argv)
    # a smoke run measures in one long-lived worker per framework instead of a fresh process per measurement
    with measure.SmokeWorkers() if args.quick else contextlib.nullcontext():
        _run_sections(args, workloads, cfg, notes, results)
    _finish(results, notes)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


def _run_sections(args, workloads, cfg, notes, results):
    """The training rows, then every other selected section, into ``results``."""
    training = [w for w in workloads if w in TRAINING]
    if training:
        print("== training step (forward + backward + update: SGD; Adam for gru, AdamW for attention and charlm), "
              "median ms ==")
        results["training"] = run_training(training, cfg, notes, rounds=results["rounds"], cold=args.cold_first_call)
    for name, (heading, run) in _sections(args, cfg, notes).items():
        if name in workloads:
            print(f"== {heading} ==", flush=True)
            with contamination.Watch() as watch:
                result = run()
            if result is not None:
                results[name] = result
                if name not in _ROW_GUARDED:
                    results["contamination"][name] = watch.evidence


if __name__ == "__main__":
    main()
