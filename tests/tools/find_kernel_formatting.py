"""Find kernels that compile string formatting: ``python tests/tools/find_kernel_formatting.py [NAME ...]``.

Compiles every signature of ``fnnet/kernels/manifest.json`` in this process with an empty kernel cache
(a temporary ``NUMBA_CACHE_DIR``) and lists the kernels whose compile reached Numba's string
formatting (``str``/``repr`` of ints, string concatenation, ``raise_with_shape_context``), with the
seconds it cost.  Such code comes from array operations that check shapes at run time and format the
message, e.g. ``row[:] = other`` (write a loop instead); fnnet's ops check shapes in Python before a kernel
runs, so kernels need none of it.  Takes about 6 minutes on 2 cores; prints nothing under the header
when every kernel is clean.  ``NAME`` arguments keep only the manifest kernels whose name contains one of
them (``recurrent random``: a minute).  Not part of the test suite (it compiles everything from scratch).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import defaultdict

import _compile_log  # tests/tools: the script's own folder

FORMATTING = ("unicode", "str_generic", "repr_generic", "raise_with_shape", "integer_str")


def main(names=()) -> int:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fnnet-formatting-")
    found = defaultdict(float)

    def on_end(name, seconds, enclosing):
        outermost = not any(word in n for n in enclosing for word in FORMATTING)  # nested ones: counted there
        if enclosing and outermost and any(word in name for word in FORMATTING):
            owners = [n for n in enclosing if n.startswith("fnnet.")]
            found[owners[0] if owners else enclosing[0]] += seconds

    _compile_log.listen(on_end)
    from fnnet.precompile.__main__ import read_manifest
    from fnnet.precompile._signatures import find_kernel, parse_signature

    entries = [e for e in read_manifest() if not names or any(n in e["kernel"] for n in names)]
    for entry in entries:
        find_kernel(entry["kernel"]).compile(parse_signature(entry["signature"]))
    print(f"{len(entries)} kernel signatures compiled; kernels that compile string formatting:")
    for name, seconds in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"  {name}: {seconds:.1f} s")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
