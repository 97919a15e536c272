#!/usr/bin/env python3
"""run_all.py: the standard benchmark set behind `./build.sh bench`: the
engine beside llama.cpp (building llama.cpp's tools from the pinned
llama-cpp-python sdist the first time) and the cost of LoRA adapters. Each
prints its table; JSON results land in tests/bench/out/."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    rc = subprocess.run(["bash", os.path.join(HERE, "build_llamacpp.sh")]).returncode
    if rc != 0:
        print("skipped: llama.cpp comparison (building llama.cpp failed)")
    for script in ("bench_engine.py", "bench_lora.py"):
        r = subprocess.run([sys.executable, os.path.join(HERE, script)])
        if r.returncode != 0:
            return r.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
