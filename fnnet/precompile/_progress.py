"""The compile progress line: ``fnnet: compiling kernels (first run only) ... 7 compiled, 12.3 s`` on stderr.

Importing fnnet registers one listener for Numba's ``"numba:compile"`` event, which Numba broadcasts only
when it really compiles (a kernel loaded from the disk cache sends none).  When one of fnnet's kernels
starts compiling, a ``ProgressLine`` starts: on a terminal it is rewritten in place four times a second;
otherwise it is printed once when the compiles have taken ``NON_TTY_DELAY_S`` seconds, and a final line
with the count follows.  The line ends when no kernel has compiled for ``IDLE_S`` seconds.  A process
whose kernels all load from the cache prints nothing, and ``FNNET_QUIET_COMPILE=1`` silences the line.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time

from numba.core import event

from ..kernels import CACHE_ENABLED

__all__ = ["ProgressLine", "OutermostCompiles", "install", "quiet", "end_line"]

NON_TTY_DELAY_S = 1.0  # without a terminal, say nothing for compiles shorter than this
IDLE_S = 1.0  # no compile for this long ends the line
TICK_S = 0.25

LABEL = "compiling kernels (first run only)" if CACHE_ENABLED else "compiling kernels (the disk cache is off)"


def quiet() -> bool:
    return os.environ.get("FNNET_QUIET_COMPILE", "") not in ("", "0")


class ProgressLine:
    """One stderr line counting compiled kernels, from ``start()`` to ``finish()``.

    ``idle`` (optional) is asked every tick whether the work is over; the line then finishes itself.
    """

    def __init__(self, label=LABEL, *, total=None, idle=None):
        self.label, self.total, self.idle = label, total, idle
        self.count = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.shown = False

    def start(self):
        self.started = time.perf_counter()
        self.tty = _isatty(sys.stderr)
        if self.tty:
            self._write("\r" + self._text() + "\x1b[K")
        threading.Thread(target=self._tick, name="fnnet-compile-progress", daemon=True).start()
        return self

    def advance(self, n=1):
        with self.lock:
            self.count += n
            if self.tty and not self.done.is_set():
                self._write("\r" + self._text() + "\x1b[K")

    def finish(self):
        with self.lock:
            if self.done.is_set():
                return
            self.done.set()
            if self.tty:
                self._write("\r" + self._text() + "\x1b[K\n")
            elif self.shown:
                self._write(f"fnnet: compiled {self.count} kernel{'s' * (self.count != 1)} in "
                            f"{time.perf_counter() - self.started:.1f} s\n")

    def _text(self):
        of = f"/{self.total}" if self.total is not None else ""
        return f"fnnet: {self.label} ... {self.count}{of} compiled, {time.perf_counter() - self.started:.1f} s"

    def _tick(self):
        while not self.done.wait(TICK_S):
            if self.idle is not None and self.idle():
                self.finish()
                return
            with self.lock:
                if self.done.is_set():
                    return
                if self.tty:
                    self._write("\r" + self._text() + "\x1b[K")
                elif not self.shown and time.perf_counter() - self.started >= NON_TTY_DELAY_S:
                    self.shown = True
                    self._write(self._text() + "\n")

    def _write(self, text):
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed stderr must not break a compile
            pass


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class OutermostCompiles(event.Listener):
    """Calls ``on_compiled(dispatcher, argument types, seconds)`` for each compile of a dispatcher that
    ``wanted(dispatcher)`` accepts and that is not nested inside another such compile (a kernel's
    helpers compile inside the kernel's own event).  ``on_begin(dispatcher)`` runs when one starts."""

    def __init__(self, wanted, on_compiled, on_begin=None):
        self.wanted, self.on_compiled, self.on_begin = wanted, on_compiled, on_begin
        self.local = threading.local()

    def on_start(self, ev):
        try:
            dispatcher = ev.data["dispatcher"]
            if self.wanted(dispatcher):
                stack = self.local.__dict__.setdefault("stack", [])
                stack.append(time.perf_counter())
                if len(stack) == 1 and self.on_begin is not None:
                    self.on_begin(dispatcher)
        except Exception:  # a listener must never break a compile
            pass

    def on_end(self, ev):
        try:
            dispatcher = ev.data["dispatcher"]
            stack = self.local.__dict__.get("stack")
            if stack and self.wanted(dispatcher):
                began = stack.pop()
                if not stack:
                    self.on_compiled(dispatcher, tuple(ev.data["args"]), time.perf_counter() - began)
        except Exception:
            pass


def _is_fnnet(dispatcher) -> bool:
    return dispatcher.py_func.__module__.startswith("fnnet.")


class _Watcher:
    """The process-wide progress line over fnnet's kernel compiles."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.lock = threading.Lock()
        self.line = None
        self.busy = 0
        self.last_end = 0.0

    def begin(self, dispatcher):
        with self.lock:
            self.busy += 1
            if (self.line is None or self.line.done.is_set()) and not quiet():
                self.line = ProgressLine(idle=self._idle).start()

    def compiled(self, dispatcher, argument_types, seconds):
        with self.lock:
            self.busy = max(0, self.busy - 1)
            self.last_end = time.perf_counter()
            line = self.line
        if line is not None:
            line.advance()

    def _idle(self):
        return self.busy == 0 and time.perf_counter() - self.last_end >= IDLE_S

    def close(self):
        if self.line is not None:
            self.line.finish()


_watcher = _Watcher()
_installed = []


def install():
    """Register the progress line's listener (once per process)."""
    if _installed:
        return
    _installed.append(OutermostCompiles(_is_fnnet, _watcher.compiled, _watcher.begin))
    event.register("numba:compile", _installed[0])
    atexit.register(_watcher.close)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_watcher.reset)


def end_line():
    """Finish the process-wide line now (before another line, such as the workers', takes the terminal)."""
    _watcher.close()
