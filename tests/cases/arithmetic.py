import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand

_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((5,), ()), ((), (2, 3)), ((1,), (1,))]

CASES = []
for op, np_fn, kwargs in [
    (ops.add, np.add, {}),
    (ops.subtract, np.subtract, {}),
    (ops.multiply, np.multiply, {}),
    (ops.divide, np.divide, {"positive_b": True}),
    (ops.maximum, np.maximum, {}),
    (ops.minimum, np.minimum, {}),
]:
    for sa, sb in _SHAPES:
        b = rand(*sb, seed=2, positive=kwargs.get("positive_b", False))
        CASES.append(OpCase(
            id=f"{op.__name__}{sa}{sb}", fn=op, args=(rand(*sa, seed=1), b), covers=(op.__name__,),
            numpy_ref=np_fn, torch_ref=lambda a, b, n=op.__name__: getattr(__import__("torch"), n)(a, b),
        ))

CASES += [
    OpCase("power(x,3.0)", lambda a: ops.power(a, 3.0), (rand(3, 4),), ("power",),
           numpy_ref=lambda a: a ** 3.0, torch_ref=lambda a: a ** 3.0),
    OpCase("power(x,y)", ops.power, (rand(3, 4, positive=True), rand(3, 4, seed=3)), ("power",),
           numpy_ref=np.power, torch_ref=lambda a, b: a ** b),
    OpCase("power(x,y)bcast", ops.power, (rand(2, 3, positive=True), rand(3, seed=3)), ("power",),
           numpy_ref=np.power, torch_ref=lambda a, b: a ** b),
    OpCase("where", lambda a, b: ops.where(rand(3, 4, seed=9) > 0, a, b), (rand(3, 4), rand(4, seed=2)),
           ("where",), numpy_ref=lambda a, b: np.where(rand(3, 4, seed=9) > 0, a, b),
           torch_ref=lambda a, b: __import__("torch").where(__import__("torch").tensor(rand(3, 4, seed=9) > 0), a, b)),
]
