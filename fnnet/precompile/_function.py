"""The function form, ``precompile(fn, *example_args)``, and the signature log that lets it compile in parallel.

``fn`` runs once on the example arguments while a ``Recorder`` notes every kernel signature it calls.
What it noted is written to a small JSON log, keyed by ``fn``'s name and the example arguments' types.
The next time (a new Numba cache folder, an upgraded fnnet, a wiped cache), the logged signatures that
are not in the cache are compiled by worker processes in parallel before ``fn`` runs, and ``fn`` then
loads them from the cache.  The very first run has no log and compiles serially, inside ``fn``.

The log lives outside the Numba cache, in ``$FNNET_SIGNATURE_LOG_DIR`` or else
``$XDG_CACHE_HOME/fnnet/signatures`` (``~/.cache/fnnet/signatures``), so it outlives the cache it helps
to refill.  It names kernels and types only; a stale entry (a kernel renamed by an upgrade) is skipped.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import tempfile
import time
from typing import NamedTuple

import numpy as np
from numba.core import event

from ._progress import OutermostCompiles
from ._signatures import (Recorder, find_kernel, format_signature, is_cached, kernel_name, parse_signature, portable,
                          recordable)
from ._workers import compile_in_workers

__all__ = ["PrecompileReport", "precompile_function", "log_path"]


class PrecompileReport(NamedTuple):
    """What ``fnnet.precompile(fn, ...)`` did.

    Attributes:
        kernels: distinct (kernel, signature) pairs ``fn`` called on the example arguments.
        compiled_in_workers: signatures from the log compiled by worker processes before ``fn`` ran.
        compiled: signatures compiled in this process while ``fn`` ran.
        loaded: the other signatures ``fn`` called: loaded from the disk cache (or already loaded).
        seconds: wall time of the whole call.
        log: the signature log's path (None when no writable folder exists or caching is off).
    """

    kernels: int
    compiled_in_workers: int
    compiled: int
    loaded: int
    seconds: float
    log: str | None


WORKER_START_S = 3.0  # a worker process imports fnnet before it compiles anything (2-3 s on 2 shared cores)


def precompile_function(fn, args, kwargs, *, workers, forced, cache_enabled):
    """Compile the logged signatures ``fn`` needs in workers, run ``fn`` recording, update the log.

    ``forced``: ``workers`` was given, so use that many workers whenever a logged signature is missing;
    otherwise only when the logged compile times say the workers finish sooner than one process would.
    """
    began = time.perf_counter()
    path = log_path(fn, args, kwargs) if cache_enabled else None
    logged = _read_log(path)
    missing = [entry for entry in logged if _needs_compiling(entry)]
    in_workers = 0
    if missing and workers > 1 and (forced or _workers_finish_sooner(missing, workers)):
        in_workers = compile_in_workers(missing, workers)["compiled"]
    compiled = {}
    listener = OutermostCompiles(recordable, lambda d, types, s: compiled.__setitem__((d, types), s))
    event.register("numba:compile", listener)
    try:
        with Recorder() as seen:
            fn(*args, **kwargs)
    except Exception as error:
        error.add_note(f"(raised by {_name(fn)} called by fnnet.precompile on the example arguments)")
        raise
    finally:
        event.unregister("numba:compile", listener)
    reached = seen.calls | set(compiled)
    if path is not None:
        _write_log(path, fn, args, kwargs, reached, compiled, logged)
    return PrecompileReport(kernels=len(reached), compiled_in_workers=in_workers, compiled=len(compiled),
                            loaded=len(reached) - len(compiled), seconds=time.perf_counter() - began, log=path)


def _workers_finish_sooner(missing, workers) -> bool:
    serial = sum(entry.get("seconds") or 1.0 for entry in missing)
    return WORKER_START_S + serial / min(workers, len(missing)) < serial


def check_call(fn, args, kwargs):
    """``TypeError`` before anything runs when ``fn`` is not callable or cannot take these arguments."""
    if not callable(fn):
        raise TypeError(f"fnnet.precompile: expected a callable (a loss, a train step, grad(loss)) or a Layer as "
                        f"the first argument, got {type(fn).__name__} {fn!r:.60}; pass the function to compile, "
                        "then the example arguments it will be called with")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call itself check
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"fnnet.precompile: the example arguments do not fit {_name(fn)}{signature}: {error}; "
                        "pass exactly the arguments fn will be called with (fnnet.precompile(fn, *args, "
                        "**kwargs))") from None


def _name(fn) -> str:
    return getattr(fn, "__qualname__", type(fn).__qualname__)


def _needs_compiling(entry) -> bool:
    try:
        return not is_cached(find_kernel(entry["kernel"]), parse_signature(entry["signature"]))
    except (LookupError, ValueError, KeyError, TypeError):  # a stale or foreign entry: skip it
        return False


# --------------------------------------------------------------------------------------------- the log
def _log_dir():
    folder = os.environ.get("FNNET_SIGNATURE_LOG_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "fnnet", "signatures")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _function_key(fn) -> str:
    """``module.qualname`` of ``fn``, plus the wrapper's own code when ``functools.wraps`` copied the
    name (``grad(loss)`` is named ``loss`` but calls other kernels)."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    key = f"{getattr(target, '__module__', '?')}.{target.__qualname__}"
    code = getattr(fn, "__code__", None)
    if code is not None and getattr(code, "co_qualname", target.__qualname__) != target.__qualname__:
        key += f" via {code.co_qualname}"
    return key


def _describe(value):
    """The parts of an argument that decide which kernel signatures run: dtypes and ranks, not shapes."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype.name}[{value.ndim}d]"
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, str):
        return repr(value[:40])
    return f"{type(value).__module__}.{type(value).__qualname__}"


def log_path(fn, args, kwargs):
    """Where ``fn``'s signature log for these example arguments lives (None: no writable folder)."""
    folder = _log_dir()
    if folder is None:
        return None
    described = json.dumps([_function_key(fn), _describe(list(args)), _describe(kwargs)], sort_keys=True)
    digest = hashlib.sha256(described.encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", _name(fn))[:60]
    return os.path.join(folder, f"{stem}-{digest}.json")


def _read_log(path):
    if path is None:
        return []
    try:
        with open(path) as fh:
            entries = json.load(fh)["kernels"]
        return [e for e in entries if isinstance(e, dict)]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: run as on a first run
        return []


def _write_log(path, fn, args, kwargs, reached, compiled, logged):
    """Rewrite the log with what ``fn`` reached this time (only when that changed)."""
    before = {(e.get("kernel"), e.get("signature")): e.get("seconds", 0.0) for e in logged}
    entries = []
    for dispatcher, argument_types in reached:
        text = format_signature(argument_types)
        if not portable(dispatcher) or not _parses(text):
            continue
        name = kernel_name(dispatcher)
        seconds = compiled.get((dispatcher, argument_types), before.get((name, text), 0.0))
        entries.append({"kernel": name, "signature": text, "seconds": round(seconds, 2)})
    entries.sort(key=lambda e: (e["kernel"], e["signature"]))
    if {(e["kernel"], e["signature"]) for e in entries} == set(before):
        return
    document = {"function": _function_key(fn), "arguments": _describe([list(args), kwargs]), "kernels": entries}
    try:
        with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), suffix=".tmp", delete=False) as fh:
            json.dump(document, fh, indent=1)
        os.replace(fh.name, path)
    except OSError:  # a read-only or full disk: the log is an optimisation only
        pass


def _parses(text) -> bool:
    try:
        parse_signature(text)
        return True
    except ValueError:
        return False
