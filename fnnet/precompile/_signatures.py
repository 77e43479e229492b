"""Kernel signatures as text, the disk-cache lookup, and the recorder of what a function calls.

A kernel is named ``"module:qualname"`` (``"fnnet.kernels.dense:linear_fwd"``) and a signature is the
``repr`` of its argument types (``"(Array(float32, 2, 'C', False, aligned=True), int64)"``), which
evaluates back to the same Numba types.  Only kernels with an on-disk cache whose function a worker
process can import by that name are worth recording: a worker compiles them into the cache, and the
calling process then loads them.

The Numba internals used here (``_cache``, ``_cache_file``, ``_index_key``, ``_compiler``) are confined to
``is_cached`` and ``_argument_types``; both fall back to a safe answer if they change.
"""

from __future__ import annotations

import gc
import importlib
import sys
import threading

from numba.core import types
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

__all__ = ["Recorder", "kernel_name", "find_kernel", "format_signature", "parse_signature", "is_cached", "recordable",
           "portable"]

_TYPE_NAMES = {name: value for name, value in vars(types).items() if not name.startswith("_")}


def kernel_name(dispatcher) -> str:
    """``"module:name"``, the name being the module attribute that holds the kernel (``_vmath`` kernels'
    qualnames carry a cache-key suffix, so the qualname alone is not always importable)."""
    module_name, name = dispatcher.py_func.__module__, dispatcher.py_func.__qualname__
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, name, None) is not dispatcher:
        name = next((attr for attr, value in vars(module).items() if value is dispatcher), name)
    return f"{module_name}:{name}"


def find_kernel(name: str):
    """The dispatcher called ``"module:qualname"``; ``LookupError`` when there is none."""
    module, _, qualname = name.partition(":")
    try:
        found = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError) as error:
        raise LookupError(f"no kernel {name!r}: {error}") from None
    if not isinstance(found, CPUDispatcher):
        raise LookupError(f"{name!r} is a {type(found).__name__}, not a Numba kernel")
    return found


def format_signature(argument_types) -> str:
    return repr(tuple(argument_types))


def parse_signature(text: str) -> tuple:
    """Numba argument types from ``format_signature``'s text; ``ValueError`` when it does not read back."""
    try:
        parsed = eval(text, {"__builtins__": {}}, _TYPE_NAMES)  # noqa: S307  (names: numba.core.types only)
    except Exception as error:
        raise ValueError(f"signature {text!r} does not parse: {error}") from None
    if not isinstance(parsed, tuple) or format_signature(parsed) != text:
        raise ValueError(f"signature {text!r} does not read back as the same argument types")
    return parsed


def recordable(dispatcher) -> bool:
    """fnnet's kernels and any kernel with a disk cache (not Numba's own internal functions)."""
    return dispatcher.py_func.__module__.startswith("fnnet.") or not isinstance(dispatcher._cache, NullCache)


def portable(dispatcher) -> bool:
    """True when a worker process can compile ``dispatcher`` into the disk cache this process reads."""
    if isinstance(dispatcher._cache, NullCache) or dispatcher.py_func.__module__ == "__main__":
        return False
    try:
        return find_kernel(kernel_name(dispatcher)) is dispatcher
    except LookupError:
        return False


def is_cached(dispatcher, argument_types) -> bool:
    """True when ``dispatcher`` has these argument types in memory or in its disk cache's index."""
    argument_types = tuple(argument_types)
    if argument_types in dispatcher.overloads:
        return True
    cache = dispatcher._cache
    if isinstance(cache, NullCache):
        return False
    try:
        key = cache._index_key(argument_types, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # a changed Numba internal: say "not cached", which only costs a worker's load
        return False


def _argument_types(dispatcher, args, kwargs):
    argument_types = [dispatcher.typeof_pyval(a) for a in args]
    if not kwargs:
        return tuple(argument_types)
    named = {k: dispatcher.typeof_pyval(v) for k, v in kwargs.items()}
    return tuple(dispatcher._compiler.fold_argument_types(argument_types, named)[1])


class _Recording:
    """What one ``Recorder`` has seen: ``{(dispatcher, argument types)}``, filled from any thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = set()

    def add(self, dispatcher, argument_types):
        with self.lock:
            self.calls.add((dispatcher, argument_types))


class _RecordingDispatcher(CPUDispatcher):
    """A cached kernel's class while a ``Recorder`` runs: notes each call's argument types, then calls."""

    _recordings: list = []
    _swapped: list = []

    def __call__(self, *args, **kwargs):
        try:
            argument_types = _argument_types(self, args, kwargs)
        except Exception:  # an argument Numba cannot type: the call itself will say so
            argument_types = None
        if argument_types is not None:
            for recording in _RecordingDispatcher._recordings:
                recording.add(self, argument_types)
        return CPUDispatcher.__call__(self, *args, **kwargs)


_swap_lock = threading.Lock()


def _recordable_dispatchers():
    return [obj for obj in gc.get_objects() if type(obj) is CPUDispatcher and recordable(obj)]


class Recorder:
    """``with Recorder() as seen:`` notes every call of a ``recordable`` Numba kernel (fnnet's, or a user's
    ``cache=True`` kernel) made from Python inside the block, from any thread.

    While a recorder is open, those dispatchers' class is swapped for a subclass whose ``__call__``
    types the arguments (about a microsecond per call) before dispatching; on exit the class is restored,
    so outside a recording kernel calls cost nothing extra.  ``seen.calls`` is ``{(dispatcher, argument
    types)}``; kernels that other kernels call are compiled with their caller and never appear.
    """

    def __enter__(self):
        self.recording = _Recording()
        with _swap_lock:
            if not _RecordingDispatcher._recordings:
                _RecordingDispatcher._swapped = _recordable_dispatchers()
                for dispatcher in _RecordingDispatcher._swapped:
                    dispatcher.__class__ = _RecordingDispatcher
            _RecordingDispatcher._recordings = [*_RecordingDispatcher._recordings, self.recording]
        return self.recording

    def __exit__(self, *exc):
        with _swap_lock:
            _RecordingDispatcher._recordings = [r for r in _RecordingDispatcher._recordings if r is not self.recording]
            if not _RecordingDispatcher._recordings:
                for dispatcher in _RecordingDispatcher._swapped:
                    dispatcher.__class__ = CPUDispatcher
                _RecordingDispatcher._swapped = []
        return False
