#!/usr/bin/env python3
"""bench_lora.py: what adapters cost on the CPU engine, measured in one run on
the default model. Prints:

- decode throughput at batch 16 (16 requests, 64 new tokens each) for
  base-only, one shared adapter, and 16 distinct rank-16 adapters on q,k,v,o,
  and one adapter merged into an f32 copy of the weights it targets, with
  ratios to base-only (aim: 16 distinct >= 0.85x);
- host -> slot load latency p50/p99 for ranks 8, 16, 64 (aim < 10 ms);
- the time per decode step added by resident adapters (aim < 1 ms).

Adapters are random PEFT adapters (non-zero A and B) written by this script
with the standard library and numpy into tests/bench/out/adapters/. Method:
each configuration runs REPEATS times, the median is reported.
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "bench", "out")
# SmolLM2-135M shapes: projection -> (out, in)
SHAPES = {"q_proj": (576, 576), "k_proj": (192, 576), "v_proj": (192, 576), "o_proj": (576, 576),
          "gate_proj": (1536, 576), "up_proj": (1536, 576), "down_proj": (576, 1536)}
ATTN = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
        "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
N_LAYERS = 30


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_adapter(path, rank, targets, seed):
    if os.path.exists(os.path.join(path, "adapter_model.safetensors")):
        return path
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(N_LAYERS):
        for t in targets:
            out_f, in_f = SHAPES[t]
            pre = f"base_model.model.model.layers.{layer}.{ATTN[t]}.{t}"
            tensors[pre + ".lora_A.weight"] = rng.normal(0, 0.02, (rank, in_f))
            tensors[pre + ".lora_B.weight"] = rng.normal(0, 0.02, (out_f, rank))
    write_safetensors(os.path.join(path, "adapter_model.safetensors"), tensors)
    cfg = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": targets,
           "bias": "none", "use_rslora": False, "use_dora": False, "fan_in_fan_out": False}
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def run_batch(binary, model, lines, threads, max_tokens, extra=()):
    path = os.path.join(OUT, "bench_lora_batch.jsonl")
    with open(path, "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")
    p = subprocess.run([binary, "generate", "--model", model, "--batch", path, "--ignore-eos",
                        "--max-tokens", str(max_tokens), "--threads", str(threads), "--stats", *extra],
                       capture_output=True, text=True, check=True)
    m = re.search(r"decode (\d+) tok in ([\d.]+) s .*; (\d+) steps", p.stderr)
    if not m:
        raise RuntimeError(p.stderr)
    loads = [(float(ms), int(r)) for ms, r in re.findall(r" ([\d.]+)/r(\d+)", p.stderr)]
    dec_tok, dec_s, steps = int(m.group(1)), float(m.group(2)), int(m.group(3))
    return (dec_tok / dec_s if dec_s > 0 else 0.0), dec_s, loads


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "loraplex"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    adir = os.path.join(OUT, "adapters")
    os.makedirs(adir, exist_ok=True)
    qkvo = ["q_proj", "k_proj", "v_proj", "o_proj"]
    distinct = [make_adapter(os.path.join(adir, f"r16-qkvo-{i}"), 16, qkvo, 100 + i) for i in range(args.batch)]
    prompts = [f"Request {i}: tell me something about the number {i * 7}." for i in range(args.batch)]

    def lines(adapters):
        return [{"prompt": p, "adapter": a} for p, a in zip(prompts, adapters)]

    configs = {"base-only": (lines([None] * args.batch), ()),
               "1 shared adapter": (lines([distinct[0]] * args.batch), ()),
               f"{args.batch} distinct adapters": (lines(distinct), ()),
               "1 adapter, merged": (lines([distinct[0]] * args.batch), ("--merge",))}
    res = {}
    for name, (ls, extra) in configs.items():
        runs = [run_batch(args.bin, args.model, ls, args.threads, args.tokens, extra) for _ in range(args.repeats)]
        res[name] = {"decode_tps": statistics.median(r[0] for r in runs),
                     "decode_s": statistics.median(r[1] for r in runs)}
    base = res["base-only"]
    steps = args.tokens - 1
    print(f"\nLoRA benchmark: {os.path.basename(args.model)}, batch {args.batch}, {args.tokens} new tokens, "
          f"{args.threads} threads, rank-16 q,k,v,o adapters, median of {args.repeats}")
    print(f"{'configuration':<24} {'decode tok/s':>12} {'ratio':>6} {'ms/step':>8} {'added ms/step':>14}")
    for name, r in res.items():
        ms_step = r["decode_s"] / steps * 1e3
        added = ms_step - base["decode_s"] / steps * 1e3
        print(f"{name:<24} {r['decode_tps']:12.1f} {r['decode_tps'] / base['decode_tps']:6.2f} "
              f"{ms_step:8.2f} {added:14.2f}")
        r["ratio"] = r["decode_tps"] / base["decode_tps"]
        r["added_ms_per_step"] = added

    # host -> slot load latency: 16 adapters per rank, one run each (+ repeats)
    loads = {}
    for rank in (8, 16, 64):
        ads = [make_adapter(os.path.join(adir, f"r{rank}-qkvo-{i}"), rank, qkvo, 1000 * rank + i) for i in range(16)]
        samples = []
        for _ in range(args.repeats):
            _, _, l = run_batch(args.bin, args.model, [{"prompt": "hi", "adapter": a} for a in ads], args.threads, 1)
            samples += [ms for ms, r in l]
        loads[rank] = {"p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99), "n": len(samples)}
    print(f"\n{'host->slot load':<24} {'p50 ms':>8} {'p99 ms':>8} {'samples':>8}")
    for rank, v in loads.items():
        print(f"{'rank ' + str(rank) + ' q,k,v,o':<24} {v['p50_ms']:8.3f} {v['p99_ms']:8.3f} {v['n']:8d}")
    with open(os.path.join(OUT, "lora.json"), "w") as f:
        json.dump({"decode": res, "load": loads, "threads": args.threads, "batch": args.batch}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
