"""Activation statistics: record per-layer output (and gradient) statistics while a model runs.

::

    with fnnet.layers.record_activations(gradients=True, bins=30) as rec:
        grads = fnnet.grad(loss)(params, x, y)
    print(rec.table())                 # path, type, mean, std, min, max, zeros, nan, inf
    rec.activations                    # {"0": {"mean": ..., ...}, "3": {...}}: keyed like the params tree
    rec.plot_histograms("hist.png")

Statistics are computed by one Numba kernel pass per layer output (``fnnet.ops.summarize``); the tensors
themselves are not kept.  Recording is per thread and off by default: when off, containers pay one
thread-local lookup per ``apply``.
"""

from __future__ import annotations

import contextlib
import threading

from .. import ops
from .walking import is_leaf

__all__ = ["record_activations", "ActivationRecorder", "current"]

_local = threading.local()


def current():
    """The active recorder of this thread, or None."""
    return getattr(_local, "recorder", None)


def _insert(nested, path, value):
    parts = path.split("/")
    node = nested
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


class ActivationRecorder:
    """Collects statistics by layer path (made by :func:`record_activations`; see :mod:`fnnet.layers.recording`)."""

    def __init__(self, gradients=False, bins=0):
        self.gradients_enabled = gradients
        self.bins = bins
        self._path = []
        self.types = {}
        self._activations = {}
        self._gradients = {}

    def push(self, name):
        self._path.append(str(name))

    @property
    def path(self) -> tuple:
        """The layer path currently being run (container names from the root)."""
        return tuple(self._path)

    @contextlib.contextmanager
    def at_path(self, path):
        """Record as if running at ``path`` inside the block (used when a layer's forward is re-run during
        the backward, where the container path stack is empty)."""
        saved = self._path
        self._path = list(path)
        try:
            yield
        finally:
            self._path = saved

    def pop(self, layer, y):
        path = "/".join(self._path)
        self._path.pop()
        if not is_leaf(layer) or isinstance(y, (tuple, list)):
            return y
        self.types[path] = type(layer).__name__
        self._activations[path] = ops.summarize(y, bins=self.bins)
        if self.gradients_enabled and hasattr(y, "tape"):
            y = ops.gradient_probe(y, lambda g, path=path: self._gradients.__setitem__(
                path, ops.summarize(g, bins=self.bins)))
        return y

    @property
    def activations(self) -> dict:
        """Per-layer output statistics as a nested dict keyed like the params tree."""
        nested = {}
        for path, s in self._activations.items():
            _insert(nested, path, s)
        return nested

    @property
    def gradients(self) -> dict:
        """Per-layer statistics of the gradient w.r.t. each layer's output (needs ``gradients=True``)."""
        nested = {}
        for path, s in self._gradients.items():
            _insert(nested, path, s)
        return nested

    def table(self, which="activations") -> str:
        """A text table of the recorded statistics, one row per layer path."""
        flat = self._activations if which == "activations" else self._gradients
        header = (f"{'path':<16}{'type':<14}{'mean':>11}{'std':>11}{'min':>11}{'max':>11}{'zeros':>8}"
                  f"{'nan':>6}{'inf':>6}")
        lines = [header, "-" * len(header)]
        for path, s in flat.items():
            lines.append(f"{path:<16}{self.types.get(path, ''):<14}{s['mean']:>11.4g}{s['std']:>11.4g}"
                         f"{s['min']:>11.4g}{s['max']:>11.4g}{s['zero_fraction']:>8.1%}{s['nan_count']:>6}"
                         f"{s['inf_count']:>6}")
        return "\n".join(lines)

    def plot_histograms(self, path, which="activations"):
        """Save a PNG with one histogram per layer (needs ``bins > 0`` and matplotlib).

        The figure is drawn off-screen (``matplotlib.figure.Figure``), so the process's backend, e.g. inline
        plots in Jupyter, is left as it is."""
        from matplotlib.figure import Figure

        flat = self._activations if which == "activations" else self._gradients
        items = [(p, s) for p, s in flat.items() if "histogram" in s]
        if not items:
            raise ValueError("plot_histograms: no histograms were recorded; use record_activations(bins=30)")
        fig = Figure(figsize=(6, 1.6 * len(items)))
        axes = fig.subplots(len(items), 1, squeeze=False)
        for ax, (p, s) in zip(axes[:, 0], items):
            counts, edges = s["histogram"]
            ax.stairs(counts, edges, fill=True)
            ax.set_title(f"{p} ({self.types.get(p, '')})", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=90)


@contextlib.contextmanager
def record_activations(gradients=False, bins=0):
    """Record statistics of every (non-container) layer's output inside the block; yields the recorder.

    Args:
        gradients: also record statistics of the gradient w.r.t. each layer output (under ``grad``).
        bins: number of histogram bins per layer (0: no histograms).
    """
    previous = current()
    recorder = ActivationRecorder(gradients, bins)
    _local.recorder = recorder
    try:
        yield recorder
    finally:
        _local.recorder = previous
