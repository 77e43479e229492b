"""A plan: the steps a trace recorded, pruned and compiled into one Python function.

The steps of a :class:`fnnet.autodiff.recording.Recorder` become the body of a generated function, one line
per step (``v12 = f3(v4, v9, key=v2)``), with a ``del`` right after each value's last use, so a replay
holds what the eager run held and no more (residuals go as soon as their VJP has run).  Steps whose
outputs nothing needs are dropped (the functions are pure); checks always run.  Generating source instead
of looping over a step list removes the per-step interpretation cost: what is left is the call itself.

Each plan also settles, by measurement, how many threads its kernels use: a step of small arrays (a
64-wide MLP, a GRU cell of batch 32) spends more time waking the kernels' worker threads than computing,
while a convolution wants every core.  After :data:`FIRST_TRIAL` replays with the caller's count, the next
:data:`TRIAL_REPLAYS` alternate, in blocks of :data:`TRIAL_BLOCK`, between the caller's count and one
thread, and :func:`settle_threads` picks the count with the faster median replay.  A trial can be fooled
by a burst of load, so a plan runs it again after :data:`RETRIAL_AFTER` replays, and again each time the
count of replays doubles; a later trial changes the choice only when the other count wins clearly (both
its fastest and its median replay by 5%), so the choice does not flip on noise.  A wrong choice lasts a
bounded share of a run, and the trials cost a vanishing one.  Results do not depend on the count: every
kernel's chunking is fixed (docs/design.md, "Determinism").
"""

from __future__ import annotations

import time

import numpy as np

from ..autodiff import Tracer
from ..kernels._jit import swap_threads

__all__ = ["Plan", "FIRST_TRIAL", "TRIAL_REPLAYS", "TRIAL_BLOCK", "RETRIAL_AFTER", "settle_threads"]

#: Replays a plan runs with the caller's thread count before its first trial: the first replays after a
#: trace run slower with two threads than later ones, which made a trial right after the trace pick one
#: thread for the ``mlp`` benchmark step, which takes 1.5x as long on one thread.
FIRST_TRIAL = 32
#: Replays a plan spends measuring its thread count (half with the caller's count, half with one thread).
TRIAL_REPLAYS = 16
#: Consecutive replays with one count in a trial (the first of each block is not timed).
TRIAL_BLOCK = 4
#: Replays after which a plan measures its thread count again (then after twice as many, and so on).
RETRIAL_AFTER = 128


class Plan:
    """The compiled replay of one trace.

    Attributes:
        num_steps: steps in the replay (after pruning).
        num_recorded: steps the trace recorded.
        trace_seconds: time the trace took (the first call).
        source: the generated Python source (for inspection).
        threads: the thread count its kernels run with: 0 for the calling thread's own count, 1, or None
            while a trial measures it.
    """

    def __init__(self, recorder, input_slots, out_leaves, out_def, trace_seconds, donated_slots=frozenset()):
        self.out_def = out_def
        self.trace_seconds = trace_seconds
        outputs = []  # per output leaf: slot or -1 (then a constant)
        consts_out = []
        for leaf in out_leaves:
            if type(leaf) is Tracer and leaf.tape is recorder.root:
                outputs.append(leaf.node)
                consts_out.append(None)
            else:
                outputs.append(-1)
                consts_out.append(leaf)
        steps = _prune(recorder.steps, outputs)
        self.num_recorded = len(recorder.steps)
        self.num_steps = len(steps)
        steps = _write_into_donated(steps, outputs, donated_slots, recorder.values)
        self.source, namespace = _generate(steps, input_slots, outputs, recorder.constants)
        exec(compile(self.source, f"<fnnet.jit plan of {recorder.where}>", "exec"), namespace)
        self._replay = namespace["replay"]
        self._outputs = outputs
        self._consts_out = consts_out
        self.threads = 0
        self._trials = ([], [])  # replay seconds with the caller's count, with one thread
        self._trial_replays = 0
        self._replays = 0
        self._next_trial = FIRST_TRIAL
        self._settled = None  # the choice of the last trial (None before the first)

    def run(self, leaves):
        """The outputs' leaves for the inputs' ``leaves`` (as flattened by the trace)."""
        self._replays += 1
        if self._replays == self._next_trial:  # measure the thread count (again: see the module docstring)
            self._next_trial = RETRIAL_AFTER if self._next_trial < RETRIAL_AFTER else 2 * self._next_trial
            self._trials, self._trial_replays = ([], []), 0
            self.threads = None
        threads = self.threads
        if threads == 0:
            results = self._replay(*leaves)
        elif threads is None:
            results = self._trial(leaves)
        else:
            previous = swap_threads(threads)
            try:
                results = self._replay(*leaves)
            finally:
                swap_threads(previous)
        return [r if s >= 0 else c for r, s, c in zip(results, self._outputs, self._consts_out)]

    def _trial(self, leaves):
        """One replay of the thread-count trial: blocks of :data:`TRIAL_BLOCK` replays with the caller's count,
        one thread, one thread, the caller's count (so a steady drift weighs on both counts alike), each
        block's first replay untimed (it wakes or parks the worker threads).  Settles ``threads`` after
        ``TRIAL_REPLAYS`` replays (concurrent callers may add a sample: harmless)."""
        own, single = self._trials
        k = self._trial_replays
        self._trial_replays = k + 1
        one = (k // TRIAL_BLOCK) % 4 in (1, 2)  # caller's, one, one, caller's
        previous = swap_threads(1) if one else 0
        start = time.perf_counter()
        try:
            results = self._replay(*leaves)
        finally:
            if one:
                swap_threads(previous)
        if k % TRIAL_BLOCK:
            (single if one else own).append(time.perf_counter() - start)
        if k + 1 >= TRIAL_REPLAYS and self.threads is None:
            self.threads = self._settled = settle_threads(own, single, self._settled)
        elif k == 0 and _caller_threads() == 1:
            self.threads = 0  # the caller already runs one thread: nothing to choose
        return results


def settle_threads(own, single, previous=None) -> int:
    """The thread count a plan keeps after a trial: 1 (one thread) or 0 (the caller's count), from the
    replay seconds of each (``own``, ``single``).  A count that wins clearly, by 5% in both its fastest and
    its median replay, is kept; otherwise the ``previous`` trial's choice stands, and on the first trial
    the faster median decides.  Either statistic alone is fooled on a shared machine (one lucky replay moves
    the fastest, a burst of load the median), and a wrong choice costs a lot: on the 2-core machine the
    ``mlp`` benchmark step took 3.84 ms on one thread, 2.51 ms on two (``tests/tools/profile_plan.py``)."""
    fast_own, fast_single = min(own), min(single)
    mid_own, mid_single = float(np.median(own)), float(np.median(single))
    if fast_single < 0.95 * fast_own and mid_single < 0.95 * mid_own:
        return 1
    if fast_own < 0.95 * fast_single and mid_own < 0.95 * mid_single:
        return 0
    if previous is not None:
        return previous
    return 1 if mid_single < mid_own else 0


def _caller_threads() -> int:
    previous = swap_threads(1)
    swap_threads(previous)
    return previous


def _step_slots(step):
    fn, ins, kwargs, dynamic, outs = step
    used = list(ins) + [s for _, s in dynamic]
    defined = [] if outs is None else [outs] if type(outs) is int else [o for o in outs if o >= 0]
    return used, defined


def _prune(steps, outputs):
    """The steps that outputs or checks depend on, in order."""
    needed = {s for s in outputs if s >= 0}
    kept = []
    for step in reversed(steps):
        used, defined = _step_slots(step)
        if step[4] is None or any(d in needed for d in defined):
            kept.append(step)
            needed.update(used)
    kept.reverse()
    return kept


def _write_into_donated(steps, outputs, donated, values):
    """``steps`` with each step that can write its results over its inputs (an optimizer update:
    ``writing_into``) told which of its inputs it may overwrite: donated inputs that nothing reads after
    it, returns, or shares memory with (a view kept for later; judged on the trace's values)."""
    if not donated:
        return steps
    last_use = _last_uses(steps, outputs)
    out = []
    for i, step in enumerate(steps):
        fn, ins = step[0], step[1]
        if hasattr(fn, "writing_into"):
            later = [a for t, last in last_use.items() if last > i for a in _arrays(values[t])]
            positions = [pos for pos, s in zip(fn.dynamic, ins)
                         if s in donated and last_use.get(s) == i
                         and not any(np.may_share_memory(values[s], v) for v in later)]
            if positions:
                step = (fn.writing_into(positions), *step[1:])
        out.append(step)
    return out


def _arrays(value):
    """The arrays in a slot's value (residuals are tuples of arrays and other values)."""
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _arrays(v)


def _last_uses(steps, outputs):
    """slot -> index of the last step that reads it (``len(steps)`` for outputs)."""
    last_use = {}
    for i, step in enumerate(steps):
        for s in _step_slots(step)[0]:
            last_use[s] = i
    for s in outputs:
        if s >= 0:
            last_use[s] = len(steps)
    return last_use


def _generate(steps, input_slots, outputs, constants):
    """Source and namespace of ``replay(*inputs) -> tuple of outputs``."""
    namespace = {"__builtins__": __builtins__}
    last_use = _last_uses(steps, outputs)
    live = set(input_slots)
    lines = [f"def replay({', '.join(f'v{s}' for s in input_slots)}):"]
    for s in sorted(constants):
        if s in last_use:
            namespace[f"c{s}"] = constants[s]
            lines.append(f"    v{s} = c{s}")
            live.add(s)
    for i, (fn, ins, kwargs, dynamic, outs) in enumerate(steps):
        namespace[f"f{i}"] = fn
        args = [f"v{s}" for s in ins] + [f"{k}=v{s}" for k, s in dynamic]
        if kwargs:
            namespace[f"k{i}"] = kwargs
            args.append(f"**k{i}")
        call = f"f{i}({', '.join(args)})"
        if outs is None:
            lines.append(f"    {call}")
            defined = []
        elif type(outs) is int:
            lines.append(f"    v{outs} = {call}")
            defined = [outs]
        else:
            targets = [f"v{o}" if o >= 0 and last_use.get(o, -1) > i else "_" for o in outs]
            lines.append(f"    {', '.join(targets)}{',' if len(targets) == 1 else ''} = {call}")
            defined = [o for o in outs if o >= 0 and last_use.get(o, -1) > i]
        live.update(defined)
        dead = sorted(s for s in live if last_use.get(s, -1) <= i)
        if dead:
            lines.append(f"    del {', '.join(f'v{s}' for s in dead)}")
            live.difference_update(dead)
    result = ", ".join("None" if s < 0 else f"v{s}" for s in outputs)
    lines.append(f"    return ({result}{',' if len(outputs) == 1 else ''})")
    return "\n".join(lines) + "\n", namespace


def describe_leaf(leaf) -> tuple:
    """The part of a call's signature a non-array input leaf contributes: its type and value."""
    return ("static", type(leaf), leaf)
