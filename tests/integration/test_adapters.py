"""LoRA adapters against PEFT: each adapter alone gives PEFT's greedy tokens
and top-5 logprobs within 1e-3 (goldens from tests/reference/make_adapter_goldens.py),
and a mixed batch of many adapters, different ranks and base-only rows gives
every row its PEFT output, bit-identical to that row run alone."""
import glob
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLD = os.path.join(ROOT, "tests", "reference", "goldens", "adapters")
ADAPTERS = os.path.join(ROOT, "tests", "reference", "adapters")
TINY = os.path.join(ROOT, "tests", "reference", "models", "tiny-llama")
TOL = 1e-3


def goldens():
    out = []
    for path in sorted(glob.glob(os.path.join(GOLD, "*.json"))):
        g = json.load(open(path))
        if "cases" in g and "adapter" in g and isinstance(g["cases"], list):
            out.append((os.path.basename(path)[:-5], g))
    return out


def base_for(g, default_model):
    return default_model if "SmolLM2" in g["model"] else os.path.join(ROOT, g["model"])


def check_row(out, case, where):
    assert out["tokens"] == case["greedy_ids"], f"{where}: tokens differ"
    for step, (mine, ref) in enumerate(zip(out["logprobs"], case["top5"])):
        rd = {i: lp for i, lp in ref}
        for i, lp in mine:
            if i in rd:
                assert abs(lp - rd[i]) <= TOL, f"{where} step {step} id {i}: {lp} vs {rd[i]}"


def run_batch(lp_bin, model, lines, tmp_path, name="b.jsonl"):
    f = tmp_path / name
    f.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    p = subprocess.run([lp_bin, "generate", "--model", model, "--batch", str(f), "--ignore-eos",
                        "--logprobs", "5", "--json"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.splitlines()]


@pytest.mark.parametrize("name,g", goldens(), ids=[n for n, _ in goldens()])
def test_adapter_alone_matches_peft(lp_bin, default_model, tmp_path, name, g):
    model = base_for(g, default_model)
    adapter = os.path.join(ROOT, g["adapter"])
    lines = [{"prompt_ids": c["prompt_ids"], "adapter": adapter, "max_tokens": len(c["greedy_ids"])}
             for c in g["cases"]]
    outs = run_batch(lp_bin, model, lines, tmp_path)
    for k, (out, c) in enumerate(zip(outs, g["cases"])):
        check_row(out, c, f"{name} case {k}")


def test_mixed_batch_matches_peft_and_alone(lp_bin, tmp_path):
    """≥ 8 rows, ≥ 6 adapters of different ranks plus base-only rows, in one batch."""
    tiny = [(n, g) for n, g in goldens() if g["model"].endswith("tiny-llama")]
    assert len(tiny) >= 6, "need six tiny-llama adapter goldens"
    base = json.load(open(os.path.join(ROOT, "tests", "reference", "goldens", "tiny-llama.json")))
    rows = []
    for k, (n, g) in enumerate(tiny):
        c = g["cases"][k % len(g["cases"])]
        rows.append(({"prompt_ids": c["prompt_ids"], "adapter": os.path.join(ROOT, g["adapter"]),
                      "max_tokens": len(c["greedy_ids"])}, c, n))
    for k in (1, 4):
        c = base["cases"][k]
        rows.append(({"prompt_ids": c["prompt_ids"], "adapter": None, "max_tokens": len(c["greedy_ids"])},
                     c, "base"))
    # interleave so adapters and base rows alternate in submission order
    rows = rows[::2] + rows[1::2]
    assert len(rows) >= 8
    together = run_batch(lp_bin, TINY, [r[0] for r in rows], tmp_path)
    for k, (out, (line, case, n)) in enumerate(zip(together, rows)):
        check_row(out, case, f"mixed row {k} ({n})")
        alone = run_batch(lp_bin, TINY, [line], tmp_path, "one.jsonl")[0]
        assert alone["tokens"] == out["tokens"] and alone["logprobs"] == out["logprobs"], \
            f"row {k} ({n}) differs from running alone"


@pytest.mark.parametrize("bad,needle", [
    ("missing", "missing"),
    ("pickle", "pickle"),
])
def test_broken_adapters_are_refused(lp_bin, tmp_path, bad, needle):
    d = tmp_path / "ad"
    d.mkdir()
    if bad == "pickle":
        (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                                                           "target_modules": ["q_proj"]}))
        (d / "adapter_model.bin").write_bytes(b"\x80\x04\x95")
        path = str(d)
    else:
        path = str(tmp_path / "missing")
    p = subprocess.run([lp_bin, "generate", "--model", TINY, "--adapter", path, "--prompt", "hi"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert needle in p.stderr.lower(), p.stderr


def test_peft_mixed_batch_golden(lp_bin, tmp_path):
    """PEFT's own mixed batch (adapter_names per row, base rows too) against ours."""
    g = json.load(open(os.path.join(GOLD, "mixed_batch.json")))
    rows = g["cases"]
    assert len(rows) >= 8 and len({r["adapter"] for r in rows if r["adapter"]}) >= 6
    assert any(r["adapter"] is None for r in rows)
    lines = [{"prompt_ids": r["prompt_ids"], "max_tokens": len(r["greedy_ids"]),
              "adapter": os.path.join(ROOT, g["adapters"][r["adapter"]]) if r["adapter"] else None}
             for r in rows]
    outs = run_batch(lp_bin, os.path.join(ROOT, g["model"]), lines, tmp_path)
    for k, (out, r) in enumerate(zip(outs, rows)):
        check_row(out, r, f"mixed_batch row {k} ({r['adapter']})")


@pytest.mark.parametrize("name", ["tl-qv-r4", "tl-all-r8"])
def test_gguf_lora_twin_gives_same_tokens(lp_bin, tmp_path, name):
    """The adapter converted by llama.cpp's convert_lora_to_gguf.py, on the GGUF
    base, gives PEFT's tokens."""
    g = json.load(open(os.path.join(GOLD, name + ".json")))
    base = os.path.join(ROOT, "tests", "reference", "models", "tiny-llama.f32.gguf")
    adapter = os.path.join(ADAPTERS, name + ".gguf")
    lines = [{"prompt_ids": c["prompt_ids"], "adapter": adapter, "max_tokens": len(c["greedy_ids"])}
             for c in g["cases"]]
    outs = run_batch(lp_bin, base, lines, tmp_path)
    for k, (out, c) in enumerate(zip(outs, g["cases"])):
        check_row(out, c, f"{name}.gguf case {k}")


@pytest.mark.parametrize("name", ["tl-all-r8", "tl-all-r64-rslora-bf16", "sm-qv-r8"])
def test_merged_mode_matches_peft(lp_bin, default_model, name):
    """--merge folds the adapter into an f32 copy of the weights it targets
    (W + scale·B·A): same tokens as PEFT, logprobs within 1e-3."""
    g = json.load(open(os.path.join(GOLD, name + ".json")))
    model = base_for(g, default_model)
    for k, c in enumerate(g["cases"][:5]):
        p = subprocess.run([lp_bin, "generate", "--model", model, "--adapter", os.path.join(ROOT, g["adapter"]),
                            "--merge", "--prompt-ids", ",".join(map(str, c["prompt_ids"])),
                            "--max-tokens", str(len(c["greedy_ids"])), "--logprobs", "5", "--ignore-eos",
                            "--json"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        check_row(json.loads(p.stdout), c, f"{name} merged case {k}")


def test_merge_needs_one_adapter(lp_bin, tmp_path):
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps({"prompt": "a", "adapter": os.path.join(ADAPTERS, "tl-qv-r4")}) + "\n" +
                 json.dumps({"prompt": "b", "adapter": os.path.join(ADAPTERS, "tl-all-r8")}) + "\n")
    p = subprocess.run([lp_bin, "generate", "--model", TINY, "--batch", str(b), "--merge"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "exactly one adapter" in p.stderr
