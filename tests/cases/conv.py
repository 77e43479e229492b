"""Convolution rows: PyTorch's conv1d, conv2d and conv_transpose2d are the references (forward and the x,
weight and bias gradients)."""

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


def _torch_fn(name, **kw):
    def ref(x, w, b=None):
        import torch
        return getattr(torch.nn.functional, name)(x, w, b, **kw)
    return ref


def _row_1d(id, x_shape, w_shape, bias=True, **kw):
    args = (rand(*x_shape, seed=3), rand(*w_shape, seed=4)) + ((rand(w_shape[0], seed=5),) if bias else ())
    return OpCase(f"conv1d-{id}", lambda *a: ops.conv1d(*a, **kw), args, ("conv1d",),
                  torch_ref=_torch_fn("conv1d", **kw))


CASES += [
    _row_1d("pad1", (2, 3, 7), (4, 3, 3), padding=1),
    _row_1d("stride2-dilation2-nobias", (2, 3, 9), (4, 3, 3), bias=False, stride=2, dilation=2),
    _row_1d("same-even-kernel", (2, 2, 6), (3, 2, 4), padding="same"),  # odd total: the extra pixel at the end
    _row_1d("groups2-batch1-odd", (1, 4, 5), (6, 2, 2), groups=2, padding=2, stride=3),
    _row_1d("depthwise-valid", (2, 3, 4), (3, 1, 4), groups=3, padding="valid"),
]


def _row_transposed(id, x_shape, w_shape, bias=True, **kw):
    """``w_shape`` is PyTorch's ``(in_ch, out_ch/groups, kh, kw)``."""
    args = (rand(*x_shape, seed=6), rand(*w_shape, seed=7))
    if bias:
        args += (rand(w_shape[1] * kw.get("groups", 1), seed=8),)
    return OpCase(f"conv_transpose2d-{id}", lambda *a: ops.conv_transpose2d(*a, **kw), args, ("conv_transpose2d",),
                  torch_ref=_torch_fn("conv_transpose2d", **kw))


CASES += [
    _row_transposed("plain", (2, 3, 4, 5), (3, 2, 3, 3)),
    _row_transposed("stride2-pad1-outpad1", (2, 3, 4, 3), (3, 4, 3, 3), stride=2, padding=1, output_padding=1),
    _row_transposed("stride-2x3-groups2-nobias", (1, 4, 3, 5), (4, 3, 2, 3), bias=False, stride=(2, 3),
                    padding=(0, 1), output_padding=(1, 2), groups=2),
    _row_transposed("dilation2-outpad-from-dilation", (2, 2, 5, 4), (2, 3, 3, 2), dilation=2, padding=1,
                    output_padding=1),
    _row_transposed("1x1-batch1", (1, 3, 3, 3), (3, 2, 1, 1)),
    _row_transposed("kernel4-stride2-pad1", (2, 2, 3, 3), (2, 2, 4, 4), stride=2, padding=1),  # DCGAN upsampling
]
