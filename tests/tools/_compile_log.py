"""Numba's compile events as ``on_end(name, seconds, enclosing)`` calls, for the cold-start tools here.

``name`` is ``module.qualname`` of the function whose compile ended, ``seconds`` its compile time (nested
compiles included) and ``enclosing`` the names of the compiles still running around it, outermost first.
"""

from __future__ import annotations

import time


def listen(on_end) -> None:
    """Register a listener that reports every compile's end to ``on_end`` (call before importing fnnet)."""
    from numba.core import event

    stack = []

    class Listener(event.Listener):
        def on_start(self, ev):
            fn = ev.data["dispatcher"].py_func
            stack.append((f"{fn.__module__}.{fn.__qualname__}", time.perf_counter()))

        def on_end(self, ev):
            name, start = stack.pop()
            on_end(name, time.perf_counter() - start, [n for n, _ in stack])

    event.register("numba:compile", Listener())
