"""float16 storage: conversion kernels between IEEE half (held as ``uint16`` bits) and float32.

Numba cannot compile float16 arithmetic, so half-precision arrays are handed to kernels as ``uint16``
views and converted in registers with two tiny LLVM intrinsics (``fpext`` half -> float and ``fptrunc``
float -> half, round-to-nearest-even).  On x86 with F16C they compile to ``vcvtph2ps``/``vcvtps2ph``, and
are bit-exact with numpy's conversions for every one of the 65,536 half values.
"""

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ._jit import SERIAL_STREAM, kernel


@intrinsic
def half_bits_to_float(typingctx, bits):
    """float32 value of the half whose bits are the uint16 ``bits``."""
    if bits != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        half = builder.bitcast(args[0], ir.HalfType())
        return builder.fpext(half, ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def float_to_half_bits(typingctx, value):
    """uint16 bits of the half nearest to float32 ``value`` (round to nearest even)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        half = builder.fptrunc(args[0], ir.HalfType())
        return builder.bitcast(half, ir.IntType(16))

    return types.uint16(types.float32), codegen




@kernel
def half_to_float32(bits):
    """(n,) uint16 half bits -> (n,) float32."""
    out = np.empty(bits.size, dtype=np.float32)
    if bits.size < SERIAL_STREAM:
        for i in range(bits.size):
            out[i] = half_bits_to_float(bits[i])
        return out
    for i in prange(bits.size):
        out[i] = half_bits_to_float(bits[i])
    return out


@kernel
def float32_to_half(x):
    """(n,) float32 -> (n,) uint16 half bits."""
    out = np.empty(x.size, dtype=np.uint16)
    if x.size < SERIAL_STREAM:
        for i in range(x.size):
            out[i] = float_to_half_bits(x[i])
        return out
    for i in prange(x.size):
        out[i] = float_to_half_bits(x[i])
    return out


@kernel
def half_to_float32_scaled(bits, factor):
    """(n,) uint16 half bits times float32 ``factor`` -> ((n,) float32, count of NaN or infinite results)."""
    out = np.empty(bits.size, dtype=np.float32)
    if bits.size < SERIAL_STREAM:
        serial_count = 0
        for i in range(bits.size):
            value = half_bits_to_float(bits[i]) * factor
            out[i] = value
            if not np.isfinite(value):
                serial_count += 1
        return out, serial_count
    nonfinite = 0
    for i in prange(bits.size):
        value = half_bits_to_float(bits[i]) * factor
        out[i] = value
        if not np.isfinite(value):
            nonfinite += 1
    return out, nonfinite
