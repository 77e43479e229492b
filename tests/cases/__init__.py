"""The table of op test cases.  Each family module defines ``CASES``; ``ALL_CASES`` joins them.

A case drives four checks in ``tests/test_ops_table.py``: forward against NumPy, forward and VJP against
PyTorch (float64), the float64 dot-product gradient check, and dtype preservation in float32.  The
coverage test there fails when a registered primitive appears in no case.
"""

import importlib
import pkgutil

from ._case import OpCase  # noqa: F401

ALL_CASES = []
for _m in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    ALL_CASES.extend(importlib.import_module(f"{__name__}.{_m}").CASES)
