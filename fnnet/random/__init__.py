"""Explicit, counter-based random numbers: keys in, numbers out, no hidden global state.

Design
------
A *key* is a numpy ``uint32`` array of shape ``(2,)``. Every function here is pure: it maps a key (and a
shape) to numbers with the Threefry-2x32 block cipher (20 rounds; Salmon, Moraes, Dror and Shaw, "Parallel
random numbers: as easy as 1, 2, 3", SC 2011). Word ``i`` of ``bits(key, shape)`` is the encryption of the
counter ``i // 2`` under ``key``, so the numbers depend only on the key and the shape, never on the process,
the thread count or the order of calls; code that needs randomness can run in any thread, be re-run by
``checkpoint``, or be replayed in another process and get identical numbers.

Because nothing advances behind the scenes, *using the same key twice gives the same numbers twice*. To get
independent streams, derive new keys: ``split(key, n)`` returns ``n`` child keys (the encryption of ``n``
distinct counters in a domain that ``bits`` never uses, so children are pairwise different and unrelated
to the parent's bits), and ``fold_in(key, i)`` derives a key from an integer (a step number, a layer
index). The usual pattern::

    key = fnnet.random.key(0)
    key, init_key = fnnet.random.split(key)           # consume init_key, keep `key` for later splits
    w = fnnet.random.normal(init_key, (784, 128))

Drawing a shape is a prefix of drawing a larger flat shape from the same key (``bits(k, 3)`` equals
``bits(k, 10)[:3]``); draws are stable across library versions (the tests pin golden values).

Draws are made in fixed chunks of values, spread over the calling thread's share of the cores (Numba's
thread count), straight into the result: a draw needs little memory beyond the array it returns, and its
values are the same for any thread count (see ``_draws``).
"""

from ._draws import bernoulli, bits, normal, permutation, randint, truncated_normal, uniform
from ._keys import fold_in, key, split, threefry2x32

__all__ = ["key", "split", "fold_in", "bits", "uniform", "normal", "truncated_normal", "bernoulli",
           "permutation", "randint", "threefry2x32"]
