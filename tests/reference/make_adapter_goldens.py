#!/usr/bin/env python3
"""Make PEFT LoRA adapters and the goldens the engine's adapter math is checked against.

Each adapter is made with PEFT on its base (tiny-llama from its HF dir, or
SmolLM2 loaded from the default GGUF through transformers' gguf_file path,
dequantized to float32), filled with seeded random non-zero A and B whose
product is a fixed fraction of the base weight's size (so the adapter changes
the output clearly without drowning it), and saved as adapter_config.json +
adapter_model.safetensors under tests/reference/adapters/<name>/ (float32, or
bfloat16 where the name says so). The golden is then computed from the saved
files: a fresh base + PeftModel.from_pretrained, greedy 32 tokens in float32
with the prompts and the record format of make_goldens.py. Output:
tests/reference/goldens/adapters/<name>.json.

mixed_batch.json: one left-padded batch through PEFT's adapter_names=[...]
(several tiny-llama adapters and "__base__" rows in the same forward),
decoded greedily with the KV cache; every row is checked against its
single-adapter golden.

Two tiny-llama adapters are also converted with llama.cpp's
convert_lora_to_gguf.py (from the llama-cpp-python sdist tree) into
tests/reference/adapters/<name>.gguf; the script checks that the GGUF's A and
B equal the PEFT ones (B's q/k rows permuted as the converter permutes q/k).

    python tests/reference/make_adapter_goldens.py [--only NAME ...] [--llama-cpp DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_goldens as mg  # noqa: E402

ROOT = mg.ROOT
ADAPTERS = os.path.join(HERE, "adapters")
GOLDENS = os.path.join(HERE, "goldens", "adapters")
TINY = os.path.join(mg.MODELS, "tiny-llama")
LLAMA_CPP = os.path.join(ROOT, ".deps", "llama.cpp")

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]

# name, base, LoraConfig kwargs, dtype of the saved tensors, strength (|delta W| / |W|)
SPECS = [
    ("tl-qv-r4", "tiny", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), "f32", 0.5),
    ("tl-all-r8", "tiny", dict(r=8, lora_alpha=16, target_modules="all-linear"), "f32", 0.4),
    ("tl-mlp-r16-rslora", "tiny", dict(r=16, lora_alpha=16, use_rslora=True, target_modules=MLP), "f32", 0.5),
    ("tl-all-r64-rslora-bf16", "tiny", dict(r=64, lora_alpha=32, use_rslora=True, target_modules=ALL7), "bf16", 0.3),
    ("tl-patterns", "tiny", dict(r=8, lora_alpha=16, target_modules=ALL7,
                                 rank_pattern={"q_proj": 4, "model.layers.1.mlp.down_proj": 16},
                                 alpha_pattern={"v_proj": 32, "layers.0.self_attn.o_proj": 4}), "f32", 0.4),
    ("tl-layers", "tiny", dict(r=8, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                               layers_to_transform=[1], layers_pattern="layers"), "f32", 0.6),
    ("tl-regex-r12", "tiny", dict(r=12, lora_alpha=6,
                                  target_modules=r".*\.layers\.0\.(self_attn\.(q|k)_proj|mlp\.up_proj)"), "f32", 0.6),
    ("sm-qv-r8", "smollm", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]), "f32", 0.25),
    ("sm-all-r4-rslora-bf16", "smollm", dict(r=4, lora_alpha=8, use_rslora=True, target_modules="all-linear"),
     "bf16", 0.15),
    ("sm-mlp-r16-layers", "smollm", dict(r=16, lora_alpha=32, target_modules=MLP, layers_to_transform=[0, 7, 29]),
     "f32", 0.3),
]
GGUF_CONVERT = ["tl-qv-r4", "tl-all-r8"]
MIXED = ["tl-qv-r4", "tl-all-r8", "tl-mlp-r16-rslora", "tl-all-r64-rslora-bf16", "tl-patterns", "tl-layers",
         "tl-regex-r12"]


def base_entry(kind, smollm):
    for e in mg.model_table(smollm):
        if (kind == "tiny" and e["name"] == "tiny-llama") or (kind == "smollm" and e.get("default_model")):
            return e
    raise SystemExit(f"no base {kind}")


def fill_random(pm, seed, strength):
    """Seeded N(0,1) A and B, B rescaled so that rms(scale * B @ A) = strength * rms(W)."""
    import torch
    from peft.tuners.lora import LoraLayer

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in sorted(pm.named_modules(), key=lambda kv: kv[0]):
            if not isinstance(mod, LoraLayer) or "default" not in mod.lora_A:
                continue
            a, b = mod.lora_A["default"].weight, mod.lora_B["default"].weight
            a.copy_(torch.randn(a.shape, generator=g) / a.shape[1] ** 0.5)
            b.copy_(torch.randn(b.shape, generator=g))
            delta = mod.scaling["default"] * (b @ a)
            w = mod.get_base_layer().weight
            b.mul_(strength * w.pow(2).mean().sqrt() / delta.pow(2).mean().sqrt())


def make_adapter(name, kind, kw, dtype, strength, smollm, seed):
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file

    entry = base_entry(kind, smollm)
    model, _ = mg.load(entry)
    cfg = LoraConfig(init_lora_weights=False, **kw)
    pm = get_peft_model(model, cfg)
    fill_random(pm, seed, strength)
    out = os.path.join(ADAPTERS, name)
    shutil.rmtree(out, ignore_errors=True)
    pm.save_pretrained(out)
    for extra in os.listdir(out):
        if extra not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(out, extra))
    st = os.path.join(out, "adapter_model.safetensors")
    sd = load_file(st)
    if dtype == "bf16":
        sd = {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}
    save_file(dict(sorted(sd.items())), st, metadata={"format": "pt"})
    cp = os.path.join(out, "adapter_config.json")
    c = json.load(open(cp))
    c["base_model_name_or_path"] = mg.rel(entry["path"])
    if isinstance(c.get("target_modules"), list):
        c["target_modules"] = sorted(c["target_modules"])
    with open(cp, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    return out


def load_peft(kind, smollm, dirs):
    """Fresh base with the adapters in `dirs` ({name: dir}) loaded from disk."""
    from peft import PeftModel

    entry = base_entry(kind, smollm)
    model, tok = mg.load(entry)
    names = list(dirs)
    pm = PeftModel.from_pretrained(model, dirs[names[0]], adapter_name=names[0])
    for n in names[1:]:
        pm.load_adapter(dirs[n], adapter_name=n)
    return pm.eval(), tok, entry


def adapter_golden(name, kind, smollm, vers, base_golden):
    pm, tok, entry = load_peft(kind, smollm, {name: os.path.join(ADAPTERS, name)})
    cases, gaps, checks, changed = [], [], [], 0
    for i, p in enumerate(mg.PROMPTS):
        text, ids = mg.encode(tok, p)
        case, gap, sc = mg.run_case(pm, ids)
        c = {"prompt": text}
        if "messages" in p:
            c["messages"] = p["messages"]
        c.update(case)
        cases.append(c)
        gaps.append(gap)
        checks.append(sc)
        if base_golden and base_golden["cases"][i]["greedy_ids"] != case["greedy_ids"]:
            changed += 1
    cfg = json.load(open(os.path.join(ADAPTERS, name, "adapter_config.json")))
    golden = {
        "model": mg.rel(entry["path"]),
        "adapter": mg.rel(os.path.join(ADAPTERS, name)),
        "source": (f"peft PeftModel.from_pretrained over transformers {type(pm.base_model.model).__name__} from "
                   + (f"GGUF {mg.rel(entry['path'])} (gguf_file, dequantized to float32)" if entry["gguf"]
                      else f"{mg.rel(entry['hf_dir'])} (safetensors float32)")
                   + f"; greedy, {mg.N_NEW} new tokens, no EOS stop; eager attention; KV cache"),
        "versions": vers,
        "lora": {k: cfg.get(k) for k in ("r", "lora_alpha", "use_rslora", "target_modules", "rank_pattern",
                                          "alpha_pattern", "layers_to_transform", "layers_pattern")},
        "n_new": mg.N_NEW,
        "top_k": mg.TOP_K,
        "min_top1_top2_gap": round(min(gaps), 6),
        "cached_vs_uncached_max_abs_diff": float(f"{max(checks):.3g}"),
        "cases_whose_greedy_differs_from_base": changed,
        "cases": cases,
    }
    return golden, pm


def fan_in_fan_out_check(smollm):
    """PEFT resets fan_in_fan_out to False for nn.Linear bases, so the flag never
    changes how A and B act: logits with it set equal logits without."""
    import tempfile

    import torch

    src = os.path.join(ADAPTERS, "tl-qv-r4")
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(os.path.join(src, "adapter_model.safetensors"), d)
        c = json.load(open(os.path.join(src, "adapter_config.json")))
        c["fan_in_fan_out"] = True
        json.dump(c, open(os.path.join(d, "adapter_config.json"), "w"))
        ids = torch.tensor([[1, 5, 9, 42, 7, 100]])
        with torch.no_grad():
            a = load_peft("tiny", smollm, {"x": src})[0](input_ids=ids).logits
            b = load_peft("tiny", smollm, {"x": d})[0](input_ids=ids).logits
    diff = float((a - b).abs().max())
    if diff != 0.0:
        raise SystemExit(f"fan_in_fan_out changed PEFT's logits by {diff}")
    return diff


def mixed_batch(smollm, vers, singles):
    """Rows of (prompt, adapter or base) in one left-padded batch with adapter_names."""
    import torch

    dirs = {n: os.path.join(ADAPTERS, n) for n in MIXED}
    pm, tok, entry = load_peft("tiny", smollm, dirs)
    prompts = [mg.encode(tok, p)[1] for p in mg.PROMPTS]
    rows = [  # (prompt index, adapter name or None for the base)
        (0, "tl-qv-r4"), (1, None), (2, "tl-all-r8"), (3, "tl-mlp-r16-rslora"), (4, "tl-all-r64-rslora-bf16"),
        (5, "tl-patterns"), (6, None), (7, "tl-layers"), (8, "tl-regex-r12"), (1, "tl-all-r8"),
        (2, "tl-qv-r4"), (3, "tl-all-r64-rslora-bf16"),
    ]
    names = [a if a else "__base__" for _, a in rows]
    ids = [prompts[p] for p, _ in rows]
    B, T = len(rows), max(len(x) for x in ids)
    inp = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for i, x in enumerate(ids):
        inp[i, T - len(x):] = torch.tensor(x)
        mask[i, T - len(x):] = 1
    r6 = lambda v: round(float(v), 6)  # noqa: E731
    greedy = [[] for _ in range(B)]
    top5 = [[] for _ in range(B)]
    gaps = []
    with torch.no_grad():
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = pm(input_ids=inp, attention_mask=mask, position_ids=pos, use_cache=True, adapter_names=names)
        past = out.past_key_values
        step = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        for k in range(mg.N_NEW):
            nxt = torch.argmax(step, dim=-1)
            vals, idx = torch.topk(step, mg.TOP_K + 1, dim=-1)
            for i in range(B):
                greedy[i].append(int(nxt[i]))
                top5[i].append([[int(t), r6(v)] for t, v in zip(idx[i, :mg.TOP_K], vals[i, :mg.TOP_K])])
                gaps.append(float(vals[i, 0] - vals[i, 1]))
            if k == mg.N_NEW - 1:
                break
            mask = torch.cat([mask, torch.ones((B, 1), dtype=torch.long)], dim=1)
            pos = pos[:, -1:] + 1
            out = pm(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, past_key_values=past,
                     use_cache=True, adapter_names=names)
            past = out.past_key_values
            step = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    cases, worst = [], 0.0
    for i, (p, a) in enumerate(rows):
        ref = singles[a]["cases"][p]
        if ref["greedy_ids"] != greedy[i]:
            raise SystemExit(f"mixed batch row {i} ({a}) greedy differs from its single-adapter golden")
        for s1, s2 in zip(ref["top5"], top5[i]):
            if [t for t, _ in s1] == [t for t, _ in s2]:
                worst = max(worst, max(abs(v1 - v2) for (_, v1), (_, v2) in zip(s1, s2)))
        cases.append({"adapter": a, "prompt_index": p, "prompt_ids": ids[i], "greedy_ids": greedy[i],
                      "top5": top5[i]})
    golden = {
        "model": mg.rel(entry["path"]),
        "adapters": {n: mg.rel(d) for n, d in dirs.items()},
        "source": ("peft PeftModel with all adapters loaded; one left-padded batch (attention_mask, position_ids "
                   "from the mask) with adapter_names per row ('__base__' -> null here); greedy, "
                   f"{mg.N_NEW} new tokens; KV cache; float32"),
        "versions": vers,
        "n_new": mg.N_NEW,
        "top_k": mg.TOP_K,
        "min_top1_top2_gap": round(min(gaps), 6),
        "max_abs_diff_vs_single_adapter_goldens": float(f"{worst:.3g}"),
        "cases": cases,
    }
    return golden


def convert_gguf(name, llama_cpp):
    """convert_lora_to_gguf.py --outtype f32 against tiny-llama's HF dir, then
    check A, B and alpha against the PEFT files."""
    import gguf
    from safetensors.numpy import load_file

    out = os.path.join(ADAPTERS, name + ".gguf")
    script = os.path.join(llama_cpp, "convert_lora_to_gguf.py")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run([sys.executable, script, "--base", TINY, "--outtype", "f32", "--outfile", out,
                    os.path.join(ADAPTERS, name)], check=True, env=env, cwd=llama_cpp,
                   stdout=subprocess.DEVNULL)
    cfg = json.load(open(os.path.join(ADAPTERS, name, "adapter_config.json")))
    sd = load_file(os.path.join(ADAPTERS, name, "adapter_model.safetensors"))
    hf = json.load(open(os.path.join(TINY, "config.json")))
    r = gguf.GGUFReader(out)
    alpha = float(r.fields["adapter.lora.alpha"].contents())
    if alpha != float(cfg["lora_alpha"]) or r.fields["general.type"].contents() != "adapter":
        raise SystemExit(f"{out}: alpha {alpha} or general.type differs")
    kinds = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    n = 0
    for t in r.tensors:
        _, i, kind, _, ab = t.name.split(".")
        key = f"base_model.model.model.layers.{i}.{kinds[kind]}.lora_{ab[-1].upper()}.weight"
        want = sd[key].astype(np.float32)
        got = np.asarray(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
        if ab == "lora_b" and kind in ("attn_q", "attn_k"):
            heads = hf["num_attention_heads"] if kind == "attn_q" else hf["num_key_value_heads"]
            got = mg.unpermute_qk(got, heads)
        if got.shape != want.shape or not np.array_equal(got, want):
            raise SystemExit(f"{out}: {t.name} differs from {key}")
        n += 1
    if n != len(sd):
        raise SystemExit(f"{out}: {n} tensors, PEFT has {len(sd)}")
    return out, n


def fuzz_corpus():
    """Seeds for tests/fuzz/fuzz_adapter.c: flags byte (bit 0 GGUF-layout base,
    bit 1 GGUF LoRA), then u16 config length, config, safetensors."""
    import struct

    from safetensors.numpy import save as st_save

    d = os.path.join(ROOT, "tests", "fuzz", "corpus", "adapter")
    os.makedirs(d, exist_ok=True)
    rng = np.random.Generator(np.random.PCG64(5))
    shapes = {"q_proj": ("self_attn", 64, 64), "k_proj": ("self_attn", 64, 32), "v_proj": ("self_attn", 64, 32),
              "o_proj": ("self_attn", 64, 64), "gate_proj": ("mlp", 64, 128), "up_proj": ("mlp", 64, 128),
              "down_proj": ("mlp", 128, 64)}

    def tensors(pairs, dtype=np.float32):
        out = {}
        for layer, proj, r in pairs:
            grp, fin, fout = shapes[proj]
            pre = f"base_model.model.model.layers.{layer}.{grp}.{proj}"
            out[pre + ".lora_A.weight"] = rng.standard_normal((r, fin)).astype(dtype)
            out[pre + ".lora_B.weight"] = rng.standard_normal((fout, r)).astype(dtype)
        return st_save(out)

    def peft(name, flags, cfg, st):
        c = json.dumps(cfg, separators=(",", ":")).encode() if isinstance(cfg, dict) else cfg
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes([flags]) + struct.pack("<H", len(c)) + c + st)

    head = {"peft_type": "LORA", "bias": "none"}
    ref = os.path.join(ADAPTERS, "tl-qv-r4")
    if os.path.exists(ref):
        cfg = json.load(open(os.path.join(ref, "adapter_config.json")))
        st = open(os.path.join(ref, "adapter_model.safetensors"), "rb").read()
        peft("peft_tl_qv_r4", 0, cfg, st)
        peft("peft_tl_qv_r4_gguf_base", 1, cfg, st)
    if os.path.exists(ref + ".gguf"):
        g = open(ref + ".gguf", "rb").read()
        for flags, n in ((2, "gguf_tl_qv_r4_hf_base"), (3, "gguf_tl_qv_r4")):
            open(os.path.join(d, n), "wb").write(bytes([flags]) + g)
    peft("peft_patterns", 0, {**head, "r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "k_proj", "down_proj"],
                              "rank_pattern": {"k_proj": 1, "model.layers.1.mlp.down_proj": 3},
                              "alpha_pattern": {"q_proj": 8}},
         tensors([(0, "q_proj", 2), (1, "q_proj", 2), (0, "k_proj", 1), (1, "k_proj", 1), (0, "down_proj", 2),
                  (1, "down_proj", 3)]))
    peft("peft_layers_rslora_f16", 1, {**head, "r": 2, "lora_alpha": 2, "use_rslora": True,
                                       "target_modules": ["k_proj", "up_proj"], "layers_to_transform": [1],
                                       "layers_pattern": "layers"},
         tensors([(1, "k_proj", 2), (1, "up_proj", 2)], np.float16))
    peft("peft_regex_exclude", 0, {**head, "r": 1, "target_modules": r".*\.(q|o)_proj",
                                   "exclude_modules": ["layers.1.self_attn.o_proj"]},
         tensors([(0, "q_proj", 1), (1, "q_proj", 1), (0, "o_proj", 1)]))
    peft("peft_all_linear_defaults", 0, {"r": 1, "target_modules": "ALL-linear", "fan_in_fan_out": True},
         tensors([(i, p, 1) for i in (0, 1) for p in shapes]))
    peft("bad_dora", 0, {**head, "r": 1, "use_dora": True}, tensors([(0, "q_proj", 1)]))
    peft("bad_missing_b", 0, {**head, "r": 1, "target_modules": ["v_proj"], "layers_to_transform": 0},
         st_save({"base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight": np.ones((1, 64), np.float32)}))
    peft("bad_layer", 0, {**head, "r": 1, "target_modules": ["v_proj"]},
         tensors([(0, "v_proj", 1), (1, "v_proj", 1), (2, "v_proj", 1)]))
    peft("bad_json", 0, b'{"r": 1, "target_modules": ["v_pr', tensors([(0, "v_proj", 1)]))
    print(f"{mg.rel(d)}: {len(os.listdir(d))} seeds")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=mg.DEFAULT_SMOLLM, help="SmolLM2 GGUF (base of the sm-* adapters)")
    ap.add_argument("--only", nargs="*", help="adapter names to (re)make; default all (+ mixed batch, gguf)")
    ap.add_argument("--llama-cpp", default=LLAMA_CPP, help="llama.cpp source tree with convert_lora_to_gguf.py")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fuzz-corpus", action="store_true", help="only write tests/fuzz/corpus/adapter seeds")
    args = ap.parse_args()
    if args.fuzz_corpus:
        fuzz_corpus()
        return

    import torch

    torch.set_num_threads(args.threads)
    os.makedirs(ADAPTERS, exist_ok=True)
    os.makedirs(GOLDENS, exist_ok=True)
    vers = mg.versions()
    import peft

    vers["peft"] = peft.__version__
    base_goldens = {k: json.load(open(os.path.join(mg.GOLDENS, f)))
                    for k, f in (("tiny", "tiny-llama.json"), ("smollm", "SmolLM2-135M-Instruct.Q4_1.json"))
                    if os.path.exists(os.path.join(mg.GOLDENS, f))}
    singles = {None: base_goldens.get("tiny")}
    for seed, (name, kind, kw, dtype, strength) in enumerate(SPECS):
        if args.only and name not in args.only:
            gp = os.path.join(GOLDENS, name + ".json")
            if os.path.exists(gp):
                singles[name] = json.load(open(gp))
            continue
        if kind == "smollm" and not os.path.exists(args.model):
            print(f"skip {name}: {args.model} missing")
            continue
        make_adapter(name, kind, kw, dtype, strength, args.model, 1000 + seed)
        golden, _ = adapter_golden(name, kind, args.model, vers, base_goldens.get(kind))
        out = os.path.join(GOLDENS, name + ".json")
        mg.dump(golden, out)
        singles[name] = golden
        size = sum(os.path.getsize(os.path.join(ADAPTERS, name, f)) for f in os.listdir(os.path.join(ADAPTERS, name)))
        print(f"{mg.rel(out)}: {size / 1e6:.2f} MB adapter, min top1-top2 gap {golden['min_top1_top2_gap']:.2e}, "
              f"{golden['cases_whose_greedy_differs_from_base']}/{len(golden['cases'])} cases differ from base")
        if golden["min_top1_top2_gap"] < 1e-4:
            print("  warning: a near tie at some greedy step; the engine may diverge there")
    if args.only:
        return
    print(f"fan_in_fan_out=true vs false in PEFT: max |logit diff| = {fan_in_fan_out_check(args.model)}")
    mb = mixed_batch(args.model, vers, singles)
    out = os.path.join(GOLDENS, "mixed_batch.json")
    mg.dump(mb, out)
    print(f"{mg.rel(out)}: {len(mb['cases'])} rows, {len(MIXED)} adapters + base rows, "
          f"max |logprob diff| vs single-adapter goldens {mb['max_abs_diff_vs_single_adapter_goldens']:.1e}")
    for name in GGUF_CONVERT:
        if not os.path.exists(os.path.join(args.llama_cpp, "convert_lora_to_gguf.py")):
            print(f"skip {name}.gguf: no convert_lora_to_gguf.py under {args.llama_cpp}")
            continue
        path, n = convert_gguf(name, args.llama_cpp)
        print(f"{mg.rel(path)}: {n} tensors equal to the PEFT adapter's (q/k B rows permuted)")
    fuzz_corpus()


if __name__ == "__main__":
    main()
