"""The data-parallel tables of ``docs/distributed.md``, rendered from ``python -m fnnet.bench --workload
distributed --json`` runs (the ``distributed`` section; see :mod:`fnnet.bench.distributed`)."""

from __future__ import annotations

from .render import caption, cell, fmt_ms, fmt_ratio, footnotes, smoke_note, table, target

__all__ = ["distributed", "BLOCKS"]

#: The issue's goal: ``allreduce_mean`` of a tree within this factor of a raw ``Allreduce`` of one buffer.
ALLREDUCE_GOAL = 1.1


def _allreduce_row(runs, size):
    def get(key):
        return cell(runs, "distributed", "allreduce", size, key)

    def timed(name):
        ms, gbs = get(f"{name}_ms")[0], get(f"{name}_gbs")[0]
        return "–" if ms is None else f"{fmt_ms(ms)} ({gbs:.1f} GB/s)"

    params = int(size)
    ratio = get("ratio")
    return [f"{params / 1e6:g}M ({params * 4 / 1e6:g} MB)", timed("fnnet"), timed("deterministic"), timed("raw"),
            fmt_ratio(*ratio), fmt_ms(get("copy_ms")[0]), target(ratio[0], ALLREDUCE_GOAL, "x")]


def distributed(runs):
    """``allreduce_mean`` against a raw ``mpi4py`` ``Allreduce`` per tree size, and the 2-rank ``mlp`` step
    against one process with two threads."""
    sizes = []
    for _, results in runs:
        sizes += [s for s in results["distributed"].get("allreduce", {}) if s not in sizes]
    header = ["params (float32 bytes)", "`allreduce_mean` ms (bus GB/s)", "deterministic", "raw `Allreduce`, one buffer",
              "fnnet / raw", "copy of the tree ms", "goal"]
    allreduce = table(header, [_allreduce_row(runs, s) for s in sizes])

    def step(key):
        return fmt_ms(cell(runs, "distributed", "step", key)[0])

    saving = cell(runs, "distributed", "step", "overlap_saving_ms")[0]
    steps = table(["`mlp` step, global batch 128", "ms"], [
        ["1 process x 2 Numba threads", step("single_ms")],
        ["2 ranks x 1 thread, overlap (256 KiB buckets, the default)", step("overlap_ms")],
        ["the same without overlap", step("no_overlap_ms")],
        ["the same, deterministic (with overlap)", step("deterministic_ms")],
        ["the same ranks computing their steps without any communication", step("local_ms")],
        ["overlap saving (no overlap - overlap)", "–" if saving is None else f"{saving:.2f}"]])
    return (smoke_note(runs) + allreduce + "\n\n" + steps + footnotes(runs, "distributed") + "\n\n"
            + caption(runs, False))


# name -> (renderer, the section every run must have)
BLOCKS = {"distributed": (distributed, "distributed")}
