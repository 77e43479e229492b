"""Worker processes that compile kernel signatures into the disk cache, in parallel.

The calling process starts ``python -m fnnet.precompile --worker`` processes and deals them one
signature at a time (heaviest first when compile times are known), so a worker that drew a quick kernel
asks for the next one: the work balances itself.  Each request and answer is one JSON line::

    -> {"kernel": "fnnet.kernels.dense:linear_fwd", "signature": "(Array(float32, 2, 'C', ...), ...)"}
    <- {"ok": true, "compiled": true, "seconds": 8.1}      (or {"ok": false, "error": "..."})

A worker compiles with ``dispatcher.compile(argument types)``, which loads the signature from the cache
when it is already there and otherwise compiles it and writes it to the cache.  Two workers may write
the cache index of the same helper function at once; Numba's read-modify-write of that index is not safe
across processes, so workers hold a file lock in the cache folder while they write it.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

from numba.core import event

from ._layers import compile_layers
from ._progress import LABEL, OutermostCompiles, ProgressLine, end_line, quiet
from ._signatures import find_kernel, parse_signature

__all__ = ["compile_in_workers", "serve"]


def compile_in_workers(entries, workers, *, label=LABEL):
    """Compile ``entries`` (dicts with ``kernel``, ``signature`` and optionally ``seconds``) in up to
    ``workers`` processes.  Returns ``{"compiled": n, "loaded": n, "failed": [(entry, error), ...]}``."""
    todo = queue.Queue()
    for entry in sorted(entries, key=lambda e: -(e.get("seconds") or 0.0)):
        todo.put(entry)
    result = {"compiled": 0, "loaded": 0, "failed": []}
    count = min(workers, len(entries))
    if not count:
        return result
    end_line()
    line = None if quiet() else ProgressLine(f"{label} in {count} processes", total=len(entries)).start()
    lock = threading.Lock()

    def run_one_worker():
        proc = _start_worker()
        try:
            while True:
                try:
                    entry = todo.get_nowait()
                except queue.Empty:
                    return
                answer = _ask(proc, entry)
                with lock:
                    if not answer.get("ok"):
                        result["failed"].append((entry, answer.get("error", "the worker stopped")))
                    else:
                        result["compiled" if answer["compiled"] else "loaded"] += 1
                if line is not None:
                    line.advance()
                if proc.poll() is not None:
                    return
        finally:
            _stop(proc)

    threads = [threading.Thread(target=run_one_worker, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if line is not None:
        line.finish()
    return result


def _start_worker():
    env = {**os.environ, "FNNET_QUIET_COMPILE": "1"}
    return subprocess.Popen([sys.executable, "-m", "fnnet.precompile", "--worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, bufsize=1)


def _ask(proc, entry):
    try:
        proc.stdin.write(json.dumps({"kernel": entry["kernel"], "signature": entry["signature"]}) + "\n")
        proc.stdin.flush()
        reply = proc.stdout.readline()
        return json.loads(reply) if reply else {"ok": False, "error": "the worker process exited"}
    except (OSError, ValueError) as error:
        return {"ok": False, "error": f"the worker process failed: {error}"}


def _stop(proc):
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------- worker
def serve(lines, out):
    """The worker's loop: answer each JSON request line (a signature, or the layer form's layer job)."""
    _lock_cache_index_writes()
    compiled = []
    event.register("numba:compile", OutermostCompiles(lambda d: True, lambda *a: compiled.append(a)))
    for line in lines:
        if not line.strip():
            continue
        job = json.loads(line)
        if "layers" in job:
            compile_layers(job["layers"], job["dtype"])
            continue
        out.write(json.dumps(_compile_one(job, compiled)) + "\n")
        out.flush()


def _compile_one(job, compiled):
    """Compile (or load from the cache) one signature; ``compiled`` grows when Numba really compiled."""
    began, before = time.perf_counter(), len(compiled)
    try:
        find_kernel(job["kernel"]).compile(parse_signature(job["signature"]))
    except Exception as error:  # reported to the parent, which carries on without this signature
        return {"ok": False, "error": f"{type(error).__name__}: {str(error)[:500]}"}
    return {"ok": True, "compiled": len(compiled) > before, "seconds": time.perf_counter() - began}


def _lock_cache_index_writes():
    """Make Numba's cache index update (read, add a key, write) hold an exclusive lock on a file in the
    cache folder, in this worker process only."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (two workers rarely write one helper's index at once)
        return
    from numba.core.caching import IndexDataCacheFile

    original = IndexDataCacheFile.save

    def save(self, key, data):
        with open(os.path.join(self._cache_path, ".fnnet-index.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                original(self, key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    IndexDataCacheFile.save = save
