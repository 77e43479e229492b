"""Running benchmark workers and turning their results into rows: interleaved rounds, medians, run-to-run
ranges, ratios, the contamination evidence of each row, and the description of the machine."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

from . import contamination


def env(threads, extra=None):
    """This process's environment with every thread-pool size set to ``threads``."""
    result = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        result[var] = str(threads)
    result.update(extra or {})
    return result


def worker(framework, workload, *, threads=2, batch=None, repeats=7, min_time=0.05, steps=0, env_vars=None,
           warmup=None):
    """One measurement in a fresh ``fnnet.bench.worker`` process (in a :class:`SmokeWorkers` block: in that
    framework's one long-lived process); its JSON result.  ``warmup``: calls before timing (None: the
    worker's default, past a jitted plan's first thread trial; a smoke run needs only a couple)."""
    argv = [framework, workload, "--threads", str(threads), "--repeats", str(repeats), "--min-time", str(min_time)]
    if warmup is not None:
        argv += ["--warmup", str(warmup)]
    if batch:
        argv += ["--batch", str(batch)]
    if steps:
        argv += ["--steps", str(steps)]
    environment = env_vars or env(threads)
    if SmokeWorkers.active is not None:
        return SmokeWorkers.active.run(argv, environment)
    proc = subprocess.run([sys.executable, "-m", "fnnet.bench.worker", *argv], capture_output=True, text=True,
                          env=environment)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {framework}/{workload} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class SmokeWorkers:
    """Inside ``with SmokeWorkers():`` every :func:`worker` call of a framework (and environment) goes to one
    long-lived ``fnnet.bench.worker --serve`` process instead of a fresh one per measurement.  For
    ``--quick`` smoke runs only, whose numbers mean nothing: a row's first-call time and peak RSS then
    depend on what the process ran before, but the run starts three processes instead of about a hundred
    (each importing fnnet, PyTorch or JAX), which is most of the smoke run's time."""

    active = None

    def __init__(self):
        self._procs = {}

    def __enter__(self):
        SmokeWorkers.active = self
        return self

    def __exit__(self, *exc):
        SmokeWorkers.active = None
        for proc, log in self._procs.values():
            proc.stdin.close()
            proc.wait()
            proc.stdout.close()
            log.close()

    def run(self, argv, environment):
        key = (argv[0], tuple(sorted(environment.items())))
        if key not in self._procs:
            log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker never blocks on it
            proc = subprocess.Popen([sys.executable, "-m", "fnnet.bench.worker", "--serve"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
            self._procs[key] = (proc, log)
        proc, log = self._procs[key]
        proc.stdin.write(json.dumps(argv) + "\n")
        proc.stdin.flush()
        for line in iter(proc.stdout.readline, ""):  # whatever else the workload prints comes first
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
        proc.wait()
        log.seek(0)
        raise RuntimeError(f"benchmark worker {argv[0]}/{argv[1]} failed:\n{log.read()[-3000:]}")


#: How a serving worker marks its result line on stdout.
RESULT_PREFIX = "FNNET_BENCH_RESULT "


def _spread(values):
    return [min(values), max(values)]


def summarize(times, metric):
    """``times[framework]``: one result dict per round.  The row for ``metric``: per framework the median
    and the range (min, max) over rounds; per peer the median and range of the per-round ratios
    first framework / peer (frameworks or rounds without the metric are left out)."""
    first, *peers = times
    row = {"median": {}, "range": {}, "ratio": {}, "ratio_range": {}}
    for f, results in times.items():
        values = [r[metric] for r in results if r.get(metric) is not None]
        if values:
            row["median"][f], row["range"][f] = statistics.median(values), _spread(values)
    for f in peers:
        ratios = [a[metric] / b[metric] for a, b in zip(times[first], times[f])
                  if a.get(metric) is not None and b.get(metric) is not None]
        if ratios:
            row["ratio"][f], row["ratio_range"][f] = statistics.median(ratios), _spread(ratios)
    return row


def interleaved(frameworks, workload, cfg, rounds):
    """``rounds`` interleaved runs (A B C A B C ...), so that slow drifts of a shared machine hit every
    framework alike, watched for other processes.  Returns ``(times, evidence)``: one result per round
    per framework, and the contamination record of the whole row."""
    times = {f: [] for f in frameworks}
    with contamination.Watch() as watch:
        for _ in range(rounds):
            for f in frameworks:
                times[f].append(worker(f, workload, **cfg))
    return times, watch.evidence


def threading_layer(times):
    """The Numba threading layer an fnnet worker reported, or None."""
    for results in times.values():
        for r in results:
            if r.get("threading_layer"):
                return r["threading_layer"]
    return None


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


def machine_info():
    """Where and when: CPU model, core counts, platform, library versions, date (UTC)."""
    return {"cpu_model": _cpu_model(), "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(), "python": platform.python_version(),
            **{name: _version(name) for name in ("numpy", "numba", "scipy", "torch", "jax")},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def contaminated_rows(results):
    """``[(section, row name, evidence)]`` for every contaminated row of a results dict, and for every
    contaminated whole section (row name ``"*"``; ``results["contamination"]`` holds those records)."""
    found = [(section, "*", r) for section, r in results.get("contamination", {}).items() if r["contaminated"]]
    for section, rows in results.items():
        if section == "contamination" or not isinstance(rows, dict):
            continue
        for name, row in rows.items():
            record = row.get("contamination") if isinstance(row, dict) else None
            if record and record["contaminated"]:
                found.append((section, name, record))
    if isinstance(results.get("threads"), dict) and results["threads"].get("contamination", {}).get("contaminated"):
        found.append(("threads", "*", results["threads"]["contamination"]))
    return found
