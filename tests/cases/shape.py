import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand

CASES = [
    OpCase("reshape", lambda x: ops.reshape(x, (4, -1)), (rand(2, 3, 4),), ("reshape",),
           numpy_ref=lambda x: x.reshape(4, -1), torch_ref=lambda t: t.reshape(4, -1)),
    OpCase("transpose", lambda x: ops.transpose(x, (2, 0, 1)), (rand(2, 3, 4),), ("transpose",),
           numpy_ref=lambda x: np.transpose(x, (2, 0, 1)), torch_ref=lambda t: t.permute(2, 0, 1)),
    OpCase("transpose-default", ops.transpose, (rand(2, 3),), ("transpose",),
           numpy_ref=np.transpose, torch_ref=lambda t: t.T),
]
