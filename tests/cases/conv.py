"""conv2d rows: PyTorch's conv2d is the reference (forward and the x, weight and bias gradients)."""

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch_conv(**kw):
    def ref(x, w, b=None):
        import torch
        return torch.nn.functional.conv2d(x, w, b, **kw)
    return ref


def _row(id, x_shape, w_shape, bias=True, **kw):
    args = (rand(*x_shape), rand(*w_shape, seed=1)) + ((rand(w_shape[0], seed=2),) if bias else ())
    torch_kw = {k: v for k, v in kw.items()}
    return OpCase(f"conv2d-{id}", lambda *a: ops.conv2d(*a, **kw), args, ("conv2d",), torch_ref=_torch_conv(**torch_kw))


CASES = [
    _row("pad1", (2, 3, 6, 5), (4, 3, 3, 3), padding=1),
    _row("stride2-pad1-nobias", (2, 3, 7, 7), (4, 3, 3, 3), bias=False, stride=2, padding=1),
    _row("dilation2-same", (2, 3, 7, 6), (4, 3, 3, 3), dilation=2, padding="same"),
    _row("same-even-kernel", (2, 3, 5, 6), (4, 3, 2, 4), padding="same"),  # odd totals: extra pixel bottom/right
    _row("groups2", (2, 4, 5, 5), (6, 2, 3, 3), groups=2, padding=(1, 0)),
    _row("depthwise", (2, 3, 6, 5), (6, 1, 3, 3), groups=3, padding=1, stride=(1, 2)),
    _row("1x1", (2, 3, 5, 5), (4, 3, 1, 1)),
    _row("1x1-stride2", (2, 3, 5, 5), (4, 3, 1, 1), stride=2),
    _row("batch1-odd", (1, 2, 7, 5), (3, 2, 3, 2), stride=(2, 1), padding=(0, 1), dilation=(1, 2)),
    _row("valid-kernel-equals-input", (2, 2, 3, 4), (3, 2, 3, 4), padding="valid"),
]

CASES.append(OpCase(
    "conv2d-relu-fused",
    lambda x, w, b: ops.conv2d(x, w, b, padding=1, activation="relu"),
    (rand(2, 3, 5, 5, seed=11), rand(4, 3, 3, 3, seed=12), rand(4, seed=13, away_from=(0.0,))),
    ("conv2d",),
    torch_ref=lambda x, w, b: __import__("torch").nn.functional.conv2d(x, w, b, padding=1).relu(),
))
