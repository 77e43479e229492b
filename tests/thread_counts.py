"""Run a computation with one kernel thread and with all of them, for the tests that results do not depend
on the thread count."""

from __future__ import annotations

import numba


def on_one_thread_and_on_all(run):
    """``(run()`` with one Numba thread, ``run()`` with ``NUMBA_NUM_THREADS)``; the count is restored after."""
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        return single, run()
    finally:
        numba.set_num_threads(before)
