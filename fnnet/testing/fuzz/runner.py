"""Running cases in subprocesses, so that a crash (segfault, abort) or a hang is a finding, not the end.

``run(indices, seed, jobs)`` starts ``jobs`` worker processes (``python -m fnnet.testing.fuzz --worker``)
and shares the cases out between them (each worker's kernels get ``cores // jobs`` threads, so the workers
do not fight over the cores).  A worker imports fnnet once, loads the kernels by running every target's
canonical call in float32, float64 and float16, and then forks one child per batch of cases; the child inherits the
loaded kernels and reports each case on a pipe.  On a cold cache that warm-up is most of a run (Numba
compiles every kernel's float32 and float64 specialisations there; the mutated calls add about a third
more, mostly for read-only inputs), so each worker starts it in its own part of the table (see
``_warm_order``): the workers compile different kernels at once, and each loads from the disk cache what
the others compiled.  When a child dies, the case it had
started is a ``crash``; when a case runs longer than ``timeout`` seconds, the child is killed and the case
is a ``hang``.  Either way the worker forks a fresh child for the rest of the batch.  Where ``fork`` is not
available the worker runs the cases itself, and the parent restarts a worker that died.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading

import numpy as np

from .cases import case, run_case, targets
from .oracle import Weights, cast64, evaluate

__all__ = ["run", "serve", "report", "BATCH", "TIMEOUT"]

BATCH = 200
TIMEOUT = 300.0


def _emit(stream, message):
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _dead(index, seed, source, cls, detail):
    """The result of a case whose process died or hung (its plan is rebuilt here, for the note)."""
    c = case(seed, index, source)
    try:
        plan = c.plan()[1]
        note = f"argument {plan.arg}: {plan.note}" if plan.arg >= 0 else plan.note
    except Exception as e:  # noqa: BLE001
        note = f"(the plan could not be rebuilt: {e!r})"
    return {"index": index, "id": c.id, "target": c.spec.name, "mutation": c.mutation.name, "note": note,
            "class": cls, "detail": detail}


def _warm_order(specs, slot, slots):
    """The targets in the order worker ``slot`` of ``slots`` warms them: even slots walk up from the start
    of their share of the table, odd slots down from its end, so with two workers one walks up and one
    down, and the kernels each reaches after they meet are already in the disk cache."""
    start = (slot + slot % 2) * len(specs) // slots
    order = specs[start:] + specs[:start]
    return order[::-1] if slot % 2 else order


def _warm_up(source, slot=0, slots=1):
    """Load the kernels of every canonical call, in float32, float64 and float16, once, before forking
    (their errors, if any, are the cases' business)."""
    for spec in _warm_order(targets(source), slot, slots):
        inst = spec.build(np.random.default_rng(0))
        wide = cast64(inst, inst.args)
        half = [a.astype(np.float16) if m.kind == "float" else a for a, m in zip(wide, inst.meta)]
        for args in (inst.args, wide, half):
            evaluate(inst, args, inst.diff_positions(), Weights([0]))


def _child(seed, source, batch, fd):
    with os.fdopen(fd, "w") as out:
        for index in batch:
            _emit(out, {"start": index})
            _emit(out, run_case(seed, index, source))
    os._exit(0)


def _lines(fd, timeout):
    """Yield decoded JSON messages from ``fd``; yield None once when ``timeout`` passes without one."""
    buffer = b""
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            yield None
            return
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield json.loads(line)


def _run_batch(seed, source, batch, timeout, out):
    """Fork a child for ``batch``; report its results; return the indices it did not get to."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(seed, source, batch, write)
    os.close(write)
    started, finished = None, set()
    for message in _lines(read, timeout):
        if message is None:
            os.kill(pid, signal.SIGKILL)
            _emit(out, _dead(started, seed, source, "hang", f"no result after {timeout:g} s; killed"))
            finished.add(started)
            break
        if "start" in message:
            started = message["start"]
            continue
        _emit(out, message)
        finished.add(message["index"])
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if started is not None and started not in finished:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
        _emit(out, _dead(started, seed, source, "crash", f"the process died ({how})"))
        finished.add(started)
    return [i for i in batch if i not in finished]


def serve(seed, source, indices, timeout, out=sys.stdout, slot=0, slots=1):
    """The loop of worker ``slot`` of ``slots`` (see the module docstring)."""
    _warm_up(source, slot, slots)
    if not hasattr(os, "fork"):
        for index in indices:
            _emit(out, {"start": index})
            _emit(out, run_case(seed, index, source))
        return
    pending = list(indices)
    while pending:
        batch, pending = pending[:BATCH], pending[BATCH:]
        rest = _run_batch(seed, source, batch, timeout, out)
        pending = rest + pending


def _worker(seed, source, indices, timeout, results, env, slot):
    """Parent side: run ``indices`` in worker processes until each has a result (restarting dead ones)."""
    pending = list(indices)
    try:
        while pending:
            pending = _worker_process(seed, source, pending, timeout, results, env, slot)
    finally:
        for index in pending:
            results.put(_dead(index, seed, source, "fuzzer-error", "the runner stopped before this case"))


def _worker_process(seed, source, pending, timeout, results, env, slot):
    """One worker process over ``pending``; returns the cases still without a result.  ``slot``: ``(index,
    count)`` of this worker among all, which picks its warm-up order."""
    cmd = [sys.executable, "-m", "fnnet.testing.fuzz", "--worker", "--seed", str(seed), "--timeout", str(timeout),
           "--slot", f"{slot[0]}/{slot[1]}"]
    if source:
        cmd += ["--targets", source]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    proc.stdin.write(json.dumps(pending) + "\n")
    proc.stdin.close()
    started, done = None, set()
    for line in proc.stdout:
        if not line.startswith("{"):  # something an op or a library printed
            continue
        message = json.loads(line)
        if "start" in message:
            started = message["start"]
            continue
        results.put(message)
        done.add(message["index"])
    status = proc.wait()
    if started is None or started in done:  # died before its first case (import or warm-up failed) or finished
        for index in pending:
            if index not in done:
                results.put(_dead(index, seed, source, "crash", f"the worker process died (status {status})"))
        return []
    results.put(_dead(started, seed, source, "crash", f"the worker process died (status {status})"))
    done.add(started)
    return [i for i in pending if i not in done]


def _worker_env(jobs):
    """Share the cores between the workers' kernel threads: with 2 workers on 2 cores, spinning thread pools
    of 2 threads each made the run slower than one worker.  An explicit NUMBA_NUM_THREADS wins."""
    env = dict(os.environ)
    env.setdefault("NUMBA_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return env


def run(indices, seed=0, jobs=2, timeout=TIMEOUT, source=None, progress=None) -> list:
    """Run the cases ``indices`` in ``jobs`` worker processes; return their results ordered by index."""
    indices, jobs = list(indices), max(1, jobs)
    results = queue.Queue()
    env = _worker_env(jobs)
    threads = [threading.Thread(target=_worker, args=(seed, source, indices[j::jobs], timeout, results, env, (j, jobs)),
                                daemon=True) for j in range(jobs)]
    for t in threads:
        t.start()
    collected = []
    while len(collected) < len(indices):
        collected.append(results.get())
        if progress is not None:
            progress(len(collected), len(indices))
    for t in threads:
        t.join()
    return sorted(collected, key=lambda r: r["index"])


def report(results, every_failure=False) -> str:
    """A table of counts by class, then the first repro of each failure class (or every failure)."""
    from .classify import CLASSES, FAILURES

    counts = {cls: 0 for cls in CLASSES}
    for r in results:
        counts[r["class"]] = counts.get(r["class"], 0) + 1
    lines = [f"{len(results)} cases", *(f"  {cls:<16}{n:>7}" for cls, n in counts.items())]
    shown = set()
    for r in results:
        if r["class"] in FAILURES and (every_failure or r["class"] not in shown):
            shown.add(r["class"])
            lines.append(f"{r['class']}: python -m fnnet.testing.fuzz --case {r['id']}  # {r['target']} / "
                         f"{r['mutation']} ({r['note']}): {r['detail']}")
    return "\n".join(lines)
