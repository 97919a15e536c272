#!/usr/bin/env python3
"""make_corpus.py: writes the seed corpora for fuzz_gguf and fuzz_safetensors
(tests/fuzz/corpus/{gguf,safetensors}/): a few small valid files that reach
every part of the parsers, and a few invalid ones near the edges. Standard
library only; the output is committed, rerun this after changing it.

    python3 tests/fuzz/make_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- GGUF -------------------------------------------------------------------

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR_FMT = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
              T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
# type id: (block elements, block bytes), as engine/tensor.c
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
        "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t == T_STR:
        return gstr(v)
    if t == T_ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(gvalue(et, x) for x in items)
    return struct.pack(SCALAR_FMT[t], v)


def gguf(kvs, tensors, version=3, alignment=32, offsets=None, tail_pad=True):
    """kvs: [(key, type, value)]; tensors: [(name, type name or raw id, ne list)].
    Data is laid out as it should be; `offsets` replaces what the header says."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gvalue(t, v)
    pad = lambda x: (x + alignment - 1) // alignment * alignment
    sizes, at, offs, tids = [], 0, [], []
    for name, tname, ne in tensors:
        tid, be, bb = GGML[tname] if isinstance(tname, str) else (tname, 1, 4)
        n = 1
        for d in ne:
            n *= d
        tids.append(tid)
        sizes.append(n // be * bb)
        offs.append(at)
        at = pad(at + sizes[-1])
    hdr_offs = offsets if offsets is not None else offs
    for (name, _, ne), tid, off in zip(tensors, tids, hdr_offs):
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", tid, off)
    if not tensors:
        return out
    out += b"\0" * (pad(len(out)) - len(out))
    start = len(out)
    for i, size in enumerate(sizes):
        out += b"\0" * (start + offs[i] - len(out))
        out += bytes((i * 31 + j * 7) & 0xFF for j in range(size))
    if tail_pad:
        out += b"\0" * (pad(len(out) - start) - (len(out) - start))
    return out


def gguf_seeds():
    kvs = [("general.architecture", T_STR, "llama"),
           ("llama.block_count", T_U32, 2),
           ("llama.rope.freq_base", T_F32, 10000.0),
           ("test.f64", T_F64, 0.25),
           ("test.i8", T_I8, -3), ("test.u8", T_U8, 200), ("test.i16", T_I16, -300),
           ("test.u16", T_U16, 60000), ("test.i32", T_I32, -70000), ("test.i64", T_I64, -(1 << 40)),
           ("test.u64", T_U64, 1 << 50),
           ("tokenizer.ggml.add_bos_token", T_BOOL, True),
           ("tokenizer.ggml.tokens", T_ARR, (T_STR, ["<s>", "a", "bc", ""])),
           ("tokenizer.ggml.token_type", T_ARR, (T_I32, [3, 1, 1, 1])),
           ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0, -1.0, -2.0, -3.0])),
           ("test.bools", T_ARR, (T_BOOL, [True, False]))]
    tensors = [("token_embd.weight", "Q8_0", [32, 4]), ("blk.0.attn_norm.weight", "F32", [32]),
               ("blk.0.ffn_up.weight", "Q4_K", [256, 1]), ("blk.0.ffn_down.weight", "Q6_K", [256, 1]),
               ("blk.0.attn_q.weight", "Q4_0", [32, 2]), ("blk.0.attn_k.weight", "Q4_1", [32, 1]),
               ("blk.0.attn_v.weight", "F16", [4, 2]), ("output_norm.weight", "BF16", [8])]
    seeds = {
        "valid_v3.gguf": gguf(kvs, tensors),
        "valid_v2.gguf": gguf(kvs[:3], tensors[:2], version=2),
        "valid_align64.gguf": gguf(kvs[:2] + [("general.alignment", T_U32, 64)], tensors[:3],
                                   alignment=64),
        "valid_align1_nopad.gguf": gguf([("general.alignment", T_U32, 1)], tensors[1:4:2],
                                        alignment=1, tail_pad=False),
        "valid_no_tensors.gguf": gguf(kvs[:4], []),
        "valid_empty.gguf": gguf([], []),
        "valid_3d.gguf": gguf([], [("t3", "F32", [2, 3, 4]), ("t4", "F16", [1, 2, 1, 2])]),
        "bad_v1.gguf": gguf(kvs[:2], tensors[:1], version=1),
        "bad_offset.gguf": gguf(kvs[:1], tensors[:2], offsets=[0, 64]),
        "bad_truncated.gguf": gguf(kvs[:1], tensors[:2])[:-20],
        "bad_dup_key.gguf": gguf(kvs[:2] + kvs[1:2], []),
        "bad_align3.gguf": gguf([("general.alignment", T_U32, 3)], tensors[:1]),
        "bad_type.gguf": gguf(kvs[:1], [("q5_1", 7, [32])]),
    }
    return seeds


# ---- safetensors --------------------------------------------------------------

DT = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1}


def safetensors(entries, metadata=None, raw_header=None, extra=b"", pad8=True):
    """entries: [(name, dtype, shape)] laid out in order."""
    header, at, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape in entries:
        n = DT[dt]
        for d in shape:
            n *= d
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [at, at + n]}
        data += bytes((at + j * 13) & 0xFF for j in range(n))
        at += n
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad8:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data + extra


def st_seeds():
    ents = [("model.embed_tokens.weight", "BF16", [4, 8]), ("model.norm.weight", "F32", [8]),
            ("lm_head.weight", "F16", [4, 8]), ("scalar", "F32", []), ("empty", "F32", [0, 3]),
            ("w4", "F16", [1, 2, 1, 2])]
    return {
        "valid.safetensors": safetensors(ents, metadata={"format": "pt"}),
        "valid_unpadded.safetensors": safetensors(ents[:2], pad8=False),
        "valid_empty.safetensors": safetensors([]),
        "valid_lora.safetensors": safetensors(
            [("base_model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [2, 8]),
             ("base_model.model.layers.0.self_attn.q_proj.lora_B.weight", "F32", [8, 2])],
            metadata={"format": "pt", "note": "\u00e9t\u00e9"}),
        "bad_i64.safetensors": safetensors([("step", "I64", [1])]),
        "bad_dup.safetensors": safetensors([], raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', extra=bytes(8)),
        "bad_overlap.safetensors": safetensors([], raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', extra=bytes(8)),
        "bad_trailing.safetensors": safetensors(ents[:1], extra=b"xx"),
        "bad_meta.safetensors": safetensors([], metadata={"n": 5}),
        "bad_utf8.safetensors": safetensors([], raw_header=b'{"\xc0\xaf":{}}'),
    }


def main():
    for sub, seeds in (("gguf", gguf_seeds()), ("safetensors", st_seeds())):
        d = os.path.join(HERE, "corpus", sub)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{sub}: {len(seeds)} seeds in {d}")


if __name__ == "__main__":
    main()
