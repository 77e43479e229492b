"""pad rows: ``torch.nn.functional.pad`` is the reference (it lists the LAST axis first; fnnet the first)."""

import fnnet.ops as ops

from ._case import OpCase, rand

_TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _torch_pad(padding, mode):
    flat = tuple(v for pair in reversed(padding) for v in pair)

    def ref(t):
        import torch
        return torch.nn.functional.pad(t, flat, mode=_TORCH_MODE[mode])
    return ref


def _row(mode, shape, padding):
    return OpCase(f"pad-{mode}-{'x'.join(map(str, shape))}", lambda x: ops.pad(x, padding, mode),
                  (rand(*shape, seed=9),), ("pad",), torch_ref=_torch_pad(padding, mode))


CASES = [
    _row("zeros", (2, 3, 4, 5), ((1, 2), (0, 3))),
    _row("reflect", (2, 3, 4, 5), ((3, 1), (2, 4))),  # the largest reflection each axis allows
    _row("replicate", (2, 3, 4, 5), ((2, 5), (1, 0))),  # more than the axis: the edge repeats
    _row("circular", (2, 3, 4, 5), ((4, 1), (5, 2))),  # a whole period
    _row("reflect", (1, 2, 6), ((2, 3),)),
    _row("circular", (3, 1, 5), ((1, 1),)),
]
