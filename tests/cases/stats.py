import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand

_seen = []

CASES = [
    OpCase("gradient_probe", lambda x: ops.gradient_probe(x, _seen.append), (rand(3, 4),), ("gradient_probe",),
           numpy_ref=lambda x: x, torch_ref=lambda t: t * 1.0),
]
