"""``python -m fnnet.bench``: fnnet side by side with PyTorch, NumPy and JAX, one process per measurement.

Examples::

    python -m fnnet.bench                       # everything, prints tables
    python -m fnnet.bench --workload mlp --workload tiny --json results.json
    python -m fnnet.bench --quick               # a few steps of everything (smoke test; timings meaningless)

Times are medians over repeated runs after warm-up, in milliseconds; ratios are fnnet / peer (below 1
means fnnet is faster).  Peers that are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from .ops import OPS

TRAINING = ("mlp", "tiny", "cnn")
ALL = (*TRAINING, "ops", "startup", "memory", "scaling", "remat", "float16", "threads", "distributed")
PEERS = {"mlp": ("torch", "numpy", "jax"), "tiny": ("torch", "numpy", "jax"), "cnn": ("torch",)}


def _installed(name):
    return name in ("fnnet", "numpy") or importlib.util.find_spec(name) is not None


def _env(threads, extra=None):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    env.update(extra or {})
    return env


def _worker(framework, workload, *, threads=2, batch=None, repeats=7, min_time=0.05, steps=0, env=None):
    cmd = [sys.executable, "-m", "fnnet.bench.worker", framework, workload, "--threads", str(threads),
           "--repeats", str(repeats), "--min-time", str(min_time)]
    if batch:
        cmd += ["--batch", str(batch)]
    if steps:
        cmd += ["--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or _env(threads))
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {framework}/{workload} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(ms):
    return "-" if ms is None else (f"{ms:.3f}" if ms < 10 else f"{ms:.1f}")


def _ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def _interleaved(frameworks, workload, cfg, rounds):
    """Median time per framework over ``rounds`` interleaved runs (A B C A B C ...), so slow drifts of a
    shared machine hit every framework alike; also the median of the per-round ratios first / other."""
    times = {f: [] for f in frameworks}
    for _ in range(rounds):
        for f in frameworks:
            times[f].append(_worker(f, workload, **cfg)["ms"])
    row = {f: statistics.median(v) for f, v in times.items()}
    first = frameworks[0]
    ratios = {f: statistics.median([a / b for a, b in zip(times[first], times[f])]) for f in frameworks[1:]}
    return row, ratios


def run_training(workloads, cfg, notes, rounds=3):
    rows = {}
    for w in workloads:
        peers = []
        for peer in PEERS[w]:
            if _installed(peer):
                peers.append(peer)
            else:
                notes.append(f"{peer} is not installed: skipped for {w}")
        row, ratios = _interleaved(["fnnet", *peers], w, cfg, rounds)
        rows[w] = {**row, "ratios": ratios}
        text = "  ".join(f"{p} {_fmt(row[p])} ms ({ratios[p]:.2f}x)" for p in peers)
        print(f"{w:<6} fnnet {_fmt(row['fnnet'])} ms   {text}", flush=True)
    return rows


def run_ops(cfg, notes):
    rows = {}
    print(f"{'op':<24}{'fnnet fwd':>10}{'torch fwd':>10}{'ratio':>8}{'fnnet f+b':>11}{'torch f+b':>11}{'ratio':>8}")
    for op in OPS:
        row = {"fnnet": _worker("fnnet", f"op:{op}", **cfg)}
        if _installed("torch"):
            row["torch"] = _worker("torch", f"op:{op}", **cfg)
        t = row.get("torch", {})
        f = row["fnnet"]
        print(f"{op:<24}{_fmt(f['fwd_ms']):>10}{_fmt(t.get('fwd_ms')):>10}{_ratio(f['fwd_ms'], t.get('fwd_ms')):>8}"
              f"{_fmt(f['fwd_bwd_ms']):>11}{_fmt(t.get('fwd_bwd_ms')):>11}"
              f"{_ratio(f['fwd_bwd_ms'], t.get('fwd_bwd_ms')):>8}", flush=True)
        rows[op] = row
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
                f = _worker("fnnet", w, **c)["ms"]
                tt = _worker("torch", w, **c)["ms"] if _installed("torch") else None
                result[f"{w}/b{b}/t{t}"] = {"fnnet": f, "torch": tt}
                print(f"{w:<8}{b:>6}{t:>8}{_fmt(f):>10}{_fmt(tt):>10}{_ratio(f, tt):>8}", flush=True)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", action="append", choices=ALL, help="repeatable; default: all")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a few steps of each measurement (a smoke test)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of each training workload")
    args = p.parse_args(argv)
    workloads = args.workload or list(ALL)
    cfg = {"threads": args.threads, "repeats": 1 if args.quick else 7, "min_time": 0.0 if args.quick else 0.2}
    notes = []
    import numpy
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                           "numpy": numpy.__version__}, "quick": args.quick}
    training = [w for w in workloads if w in TRAINING]
    if training:
        print("== training step (forward + backward + SGD update), median ms ==")
        results["training"] = run_training(training, cfg, notes, rounds=1 if args.quick else args.rounds)
    if "ops" in workloads:
        print("== per-op, median ms ==")
        results["ops"] = run_ops(cfg, notes)
    if "startup" in workloads:
        print("== fresh process to first CNN training step ==")
        results["startup"] = run_startup(notes, args.quick)
    if "memory" in workloads:
        print("== memory ==")
        results["memory"] = run_memory(cfg, notes, args.quick)
    if "scaling" in workloads:
        print("== scaling: batch size and threads ==")
        results["scaling"] = run_scaling(cfg, notes, args.quick)
    if "float16" in workloads:
        print("== float16 storage (mixed precision step) vs float32, median ms; ratio = float16 speed / float32 ==")
        results["float16"] = {}
        for w in ("cnn", "mlp"):
            row, ratios = _interleaved(["fnnet", "fnnet16"], w, cfg, 1 if args.quick else args.rounds)
            results["float16"][w] = {"float32_ms": row["fnnet"], "float16_ms": row["fnnet16"],
                                     "speed_ratio": ratios["fnnet16"]}
            print(f"{w:<6} float32 {_fmt(row['fnnet'])} ms   float16 {_fmt(row['fnnet16'])} ms   "
                  f"speed {ratios['fnnet16']:.2f}x", flush=True)
    if "threads" in workloads:
        print("== gradient of 4 micro-batches (mlp, 256 examples): 1 vs 2 Python threads, median ms ==")
        row, ratios = _interleaved(["fnnet_accum1", "fnnet_accum2"], "mlp", cfg, 1 if args.quick else args.rounds)
        speedup = ratios["fnnet_accum2"]  # serial time / threaded time
        results["threads"] = {"serial_ms": row["fnnet_accum1"], "threads2_ms": row["fnnet_accum2"], "speedup": speedup}
        print(f"serial {_fmt(row['fnnet_accum1'])} ms   2 threads {_fmt(row['fnnet_accum2'])} ms   "
              f"speed-up {speedup:.2f}x", flush=True)
    if "remat" in workloads:
        print("== gradient checkpointing (Remat): plain vs remat, memory ratio plain/remat, time ratio remat/plain ==")
        from . import remat
        results["remat"] = remat.run_all(quick=args.quick, threads=args.threads)
    if "distributed" in workloads:
        if _installed("mpi4py"):
            print("== data parallel on MPI, 2 ranks: allreduce_mean vs raw mpi4py Allreduce; mlp step, median ms ==")
            from . import distributed
            results["distributed"] = distributed.run_all(quick=args.quick, threads=args.threads)
        else:
            notes.append('mpi4py is not installed: distributed skipped (pip install "fnnet[distributed]")')
    for n in dict.fromkeys(notes):
        print("note:", n)
    results["notes"] = list(dict.fromkeys(notes))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
