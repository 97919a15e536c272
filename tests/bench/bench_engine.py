#!/usr/bin/env python3
"""bench_engine.py: prefill and decode tokens/s of loraplex's CPU engine on
the default model at 1 and 2 threads, beside llama.cpp (llama-bench built from
the llama-cpp-python sdist's source tree, same GGUF, same threads, same prompt
and output lengths), measured in the same run, with the ratio. Also peak RSS
of one replica. Prints a table; writes tests/bench/out/engine.json.

Method: each configuration runs REPEATS times; the median is reported.
loraplex: `generate --prompt-ids <P ids> --max-tokens N --ignore-eos --stats`
(prefill = prompt tokens / time of the steps that carried them; decode = the
N-1 single-token steps). llama.cpp: `llama-bench -p P -n N -t T -r REPEATS`
(pp = prefill, tg = decode, its own medians are means; we use its avg_ts).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_loraplex(binary, model, prompt_len, n_gen, threads, repeats, extra=()):
    pre, dec, rss = [], [], []
    ids = ",".join(str(100 + (i * 37) % 20000) for i in range(prompt_len))
    for _ in range(repeats):
        cmd = ["/usr/bin/time", "-f", "MAXRSS %M", binary, "generate", "--model", model,
               "--prompt-ids", ids, "--max-tokens", str(n_gen), "--ignore-eos",
               "--threads", str(threads), "--stats", *extra]
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        m = re.search(r"prefill (\d+) tok in ([\d.]+) s .*decode (\d+) tok in ([\d.]+) s", p.stderr)
        if not m:
            raise RuntimeError("no stats in: " + p.stderr)
        pre.append(int(m.group(1)) / float(m.group(2)))
        dec.append(int(m.group(3)) / float(m.group(4)))
        rss.append(int(re.search(r"MAXRSS (\d+)", p.stderr).group(1)) / 1024.0)
    return statistics.median(pre), statistics.median(dec), max(rss)


def run_llamacpp(bench, model, prompt_len, n_gen, threads, repeats):
    cmd = [bench, "-m", model, "-p", str(prompt_len), "-n", str(n_gen), "-t", str(threads),
           "-r", str(repeats), "-o", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(p.stdout)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
    return pp, tg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "loraplex"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--llama-bench", default=os.path.join(ROOT, ".deps", "llama.cpp", "build", "bin", "llama-bench"))
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    have_peer = os.access(args.llama_bench, os.X_OK)
    if not have_peer:
        print(f"skipped: llama.cpp comparison ({args.llama_bench} not built; run tests/bench/build_llamacpp.sh)")
    results = []
    for t in [int(x) for x in args.threads.split(",")]:
        pre, dec, rss = run_loraplex(args.bin, args.model, args.prompt, args.gen, t, args.repeats)
        row = {"threads": t, "prompt": args.prompt, "gen": args.gen,
               "loraplex_prefill_tps": pre, "loraplex_decode_tps": dec, "loraplex_peak_rss_mb": rss}
        if have_peer:
            pp, tg = run_llamacpp(args.llama_bench, args.model, args.prompt, args.gen, t, args.repeats)
            row.update({"llamacpp_prefill_tps": pp, "llamacpp_decode_tps": tg,
                        "prefill_ratio": pre / pp, "decode_ratio": dec / tg})
        results.append(row)
    print(f"\nengine benchmark: {os.path.basename(args.model)}, prompt {args.prompt}, "
          f"generate {args.gen}, median of {args.repeats}")
    hdr = f"{'threads':>7} {'lp prefill':>11} {'llama pp':>9} {'ratio':>6} {'lp decode':>10} {'llama tg':>9} {'ratio':>6} {'peak RSS':>9}"
    print(hdr)
    for r in results:
        f = lambda k, w, p=1: (f"{r[k]:{w}.{p}f}" if k in r else f"{'-':>{w}}")
        print(f"{r['threads']:>7} {f('loraplex_prefill_tps', 11)} {f('llamacpp_prefill_tps', 9)} "
              f"{f('prefill_ratio', 6, 2)} {f('loraplex_decode_tps', 10)} {f('llamacpp_decode_tps', 9)} "
              f"{f('decode_ratio', 6, 2)} {r['loraplex_peak_rss_mb']:8.1f}M")
    out = os.path.join(ROOT, "tests", "bench", "out")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "engine.json"), "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
