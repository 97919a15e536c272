#!/usr/bin/env python3
"""make_quant_goldens.py: golden dequantization vectors for engine/quant.c.

For every block type loraplex reads, writes raw block bytes and gguf-py's
`gguf.quants.dequantize` of them into tests/reference/goldens/quant.bin; the C
test (tests/unit/engine/test_quant.c) requires lp_dequant_row to reproduce the
floats bit for bit. Two cases per type: rows quantized by gguf-py where it has
a quantizer, and random valid blocks crafted byte by byte (random fp16 scales,
subnormal and negative ones included), which is the only case for Q4_K/Q6_K
(gguf-py has no quantizer for them).

File format (little endian):
  "LPQG" u32 version=1 u32 n_cases
  per case: u32 type (GGML id) u32 n_elems u32 n_bytes, bytes[n_bytes],
            f32[n_elems]
Run with a python that has gguf and numpy:  python make_quant_goldens.py
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

N = 1024  # elements per case: a multiple of every block size
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens", "quant.bin")


def f16_bytes(rng, count):
    """Random finite fp16 scales: normal values of both signs, some subnormal."""
    mag = rng.uniform(1e-4, 2.0, count).astype(np.float32)
    sign = np.where(rng.random(count) < 0.25, -1.0, 1.0).astype(np.float32)
    h = (mag * sign).astype(np.float16)
    sub = rng.random(count) < 0.1
    h[sub] = (rng.integers(1, 0x3FF, sub.sum()).astype(np.uint16)).view(np.float16)
    return h.view(np.uint8).reshape(count, 2)


def crafted_blocks(rng, qtype, n_blocks):
    """Random bytes for every field of the block, with sane fp16 scales."""
    block, size = GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    if qtype in (T.Q4_0, T.Q8_0):
        b[:, 0:2] = f16_bytes(rng, n_blocks)
    elif qtype in (T.Q4_1, T.Q4_K):  # d and m / dmin
        b[:, 0:2] = f16_bytes(rng, n_blocks)
        b[:, 2:4] = f16_bytes(rng, n_blocks)
    elif qtype == T.Q6_K:  # d is the last two bytes
        b[:, size - 2:size] = f16_bytes(rng, n_blocks)
    return b.reshape(-1)


def crafted_floats(rng, qtype):
    if qtype == T.F32:
        x = rng.standard_normal(N).astype(np.float32) * 10
        x[:4] = [0.0, -0.0, 1e-42, -3.4e38]
        return x.view(np.uint8)
    bits = rng.integers(0, 1 << 16, N, dtype=np.uint32).astype(np.uint16)
    # keep finite values: exponent field not all ones
    if qtype == T.F16:
        bits[(bits & 0x7C00) == 0x7C00] &= 0xBFFF
    else:  # BF16
        bits[(bits & 0x7F80) == 0x7F80] &= 0xBFFF
    return bits.view(np.uint8)


def main():
    rng = np.random.default_rng(20261125)
    types = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q6_K]
    cases = []
    for qt in types:
        block, _ = GGML_QUANT_SIZES[qt]
        # 1. rows quantized by gguf-py itself (where it can)
        rows = (rng.standard_normal((2, N // 2)) * rng.uniform(0.01, 3.0, (2, 1))).astype(np.float32)
        rows[0, :block] = 0.0  # an all-zero block (d == 0)
        try:
            q = quants.quantize(rows, qt)
            cases.append((qt, np.ascontiguousarray(q).view(np.uint8).reshape(-1)))
        except NotImplementedError:
            pass
        # 2. crafted random blocks
        if block == 1:
            raw = crafted_floats(rng, qt)
        else:
            raw = crafted_blocks(rng, qt, N // block)
        cases.append((qt, raw))

    with open(OUT, "wb") as f:
        f.write(b"LPQG" + struct.pack("<II", 1, len(cases)))
        for qt, raw in cases:
            raw = np.ascontiguousarray(raw, dtype=np.uint8)
            deq = quants.dequantize(raw, qt).astype(np.float32, copy=False).reshape(-1)
            assert deq.size == N, (qt, deq.size)
            f.write(struct.pack("<III", int(qt), N, raw.size))
            f.write(raw.tobytes())
            f.write(np.ascontiguousarray(deq).tobytes())
            print(f"{qt.name:5s} bytes={raw.size:5d} elems={N}")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
