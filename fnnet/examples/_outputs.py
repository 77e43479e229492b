"""What the examples write to their ``--out`` folder: the checkpoint, the JSON files and the plots."""

from __future__ import annotations

import json
import os

import fnnet


def write_run(out, model, params, *, state=None, opt_state=None, config, metadata, metrics) -> None:
    """Write ``weights.npz`` (an :func:`fnnet.io.save` checkpoint holding the trees, ``model``'s config and
    ``metadata``), ``config.json`` (``config``) and ``metrics.json`` (``metrics``) into ``out`` (created)."""
    os.makedirs(out, exist_ok=True)
    fnnet.io.save(os.path.join(out, "weights.npz"), params, state=state, opt_state=opt_state, config=model,
                  metadata=metadata)
    for name, value in (("config.json", config), ("metrics.json", metrics)):
        with open(os.path.join(out, name), "w") as fh:
            json.dump(value, fh, indent=2)


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (ImportError when matplotlib is missing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Lay out, save (100 dpi) and close a matplotlib figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


MISSING_MATPLOTLIB = "matplotlib is not installed: no {name} (pip install fnnet[examples])"
