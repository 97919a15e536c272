#!/usr/bin/env python3
"""Make the Hugging Face goldens the engine's logits are checked against.

For each reference model, a fixed list of prompts is tokenized by the model's
HF tokenizer; the ids are recorded (the engine takes ids, so a tokenizer
difference cannot hide a logit difference). transformers then decodes 32
tokens greedily in float32, never stopping at EOS, and we record at every
step the top-5 (id, logprob) of log_softmax(logits), plus for the prompt
positions the logprob of the actual next token. Output:
tests/reference/goldens/<name>.json.

    python tests/reference/make_goldens.py [--model PATH_TO_SMOLLM2_GGUF] [--only NAME ...]

The tiny models are made first (make_tiny_models.py) when missing. GGUF files
are loaded through transformers' gguf_file path, which dequantizes with
gguf-py and undoes llama.cpp's q/k row permutation; check_gguf_weights()
verifies both against our own reading of the file.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = os.path.join(HERE, "models")
GOLDENS = os.path.join(HERE, "goldens")
DEFAULT_SMOLLM = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
N_NEW = 32
TOP_K = 5

LONG_TEXT = (
    "The history of science is full of small steps. Someone measures something carefully, "
    "someone else repeats the measurement, and slowly the numbers agree. In the nineteenth "
    "century, chemists weighed the same substances again and again until the ratios between "
    "the elements were known to four or five digits. Astronomers timed the passage of stars "
    "across a wire in the eyepiece, and argued for years about the personal error of each "
    "observer. Engineers who built the first railways learned that iron expands in the summer "
    "sun and contracts in the winter cold, and left gaps between the rails. Good tests work "
    "the same way: they compare two careful measurements and say exactly where they differ, so "
    "that the next person knows where to look. In the end, the"
)

PROMPTS = [
    {"text": "Hello"},
    {"text": "The quick brown fox"},
    {"text": "Once upon a time there was a little village by the sea. The people of the village were"},
    {"text": "Question: What is the capital of France?\nAnswer:"},
    {"text": "def fibonacci(n):\n    a, b = 0, 1\n"},
    {"text": "1, 2, 3, 4, 5, 6, 7,"},
    {"text": "Café au lait in Zürich costs 5.99 — 日本語 🙂 and"},
    {"text": LONG_TEXT},
    {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
        ]
    },
]


def rel(p):
    p = os.path.abspath(p)
    return os.path.relpath(p, ROOT) if p.startswith(ROOT + os.sep) else p


def model_table(smollm_path):
    """(golden name, path the engine loads, HF dir, gguf file or None, tokenizer dir)."""
    t = []
    for name in ("tiny-llama", "tiny-llama-sharded", "tiny-qwen2", "tiny-llama3-scaled"):
        d = os.path.join(MODELS, name)
        t.append(dict(name=name, path=d, hf_dir=d, gguf=None, tok_dir=d))
    for name, base in (
        ("tiny-llama.f32.gguf", "tiny-llama"),
        ("tiny-llama.q8_0.gguf", "tiny-llama"),
        ("tiny-llama.q4_1.gguf", "tiny-llama"),
        ("tiny-qwen2.f32.gguf", "tiny-qwen2"),
    ):
        t.append(dict(name=name, path=os.path.join(MODELS, name), hf_dir=MODELS, gguf=name,
                      tok_dir=os.path.join(MODELS, base)))
    sm = os.path.abspath(smollm_path)
    t.append(dict(name=os.path.basename(sm)[: -len(".gguf")] if sm.endswith(".gguf") else os.path.basename(sm),
                  path=sm, hf_dir=os.path.dirname(sm), gguf=os.path.basename(sm), tok_dir=None,
                  default_model=True))
    return t


def versions():
    import gguf  # noqa: F401
    import safetensors
    import tokenizers
    import torch
    import transformers
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "gguf": version("gguf"),
        "numpy": np.__version__,
    }


def load(entry):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": entry["gguf"]} if entry["gguf"] else {}
    model = AutoModelForCausalLM.from_pretrained(
        entry["hf_dir"], dtype=torch.float32, attn_implementation="eager", **kw
    ).eval()
    if entry["tok_dir"]:
        tok = AutoTokenizer.from_pretrained(entry["tok_dir"])
    else:
        tok = AutoTokenizer.from_pretrained(entry["hf_dir"], **kw)
        if entry.get("default_model"):
            # transformers rebuilds SmolLM2's tokenizer from the GGUF with a plain
            # ByteLevel pre-tokenizer; the published tokenizer.json (and llama.cpp's
            # "smollm" pre-type) splits digits first. Use the published one.
            from tokenizers import pre_tokenizers

            tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ])
    return model, tok


def check_gguf_weights(model, path):
    """Max |transformers weight - our dequantized, un-permuted GGUF weight|.

    Our side: gguf-py's reader + dequantize, and the inverse of llama.cpp's
    llama q/k permutation written here independently. Returns (max diff, n).
    """
    import gguf

    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    cfg = model.config
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    hf_of = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    blk = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
           "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    worst, n = 0.0, 0
    for t in r.tensors:
        if t.name in hf_of:
            hf = hf_of[t.name]
        else:
            _, i, kind, suffix = t.name.split(".")
            hf = f"model.layers.{i}.{blk[kind]}.{suffix}"
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(x) for x in reversed(t.shape)]) if w.ndim != len(t.shape) else w
        if arch == "llama" and kind_of(t.name) in ("attn_q", "attn_k") and t.name.endswith(".weight"):
            heads = cfg.num_attention_heads if kind_of(t.name) == "attn_q" else cfg.num_key_value_heads
            w = unpermute_qk(w, heads)
        got = sd[hf]
        if got.shape != w.shape:
            raise SystemExit(f"{t.name}: shape {w.shape} vs transformers {got.shape}")
        worst = max(worst, float(np.abs(got - w).max()))
        n += 1
    if cfg.tie_word_embeddings:
        worst = max(worst, float(np.abs(sd["lm_head.weight"] - sd["model.embed_tokens.weight"]).max()))
    return worst, n


def check_gguf_vocab(path, tokenizer_json):
    """The GGUF's tokens, token types and merges equal tokenizer.json's."""
    import gguf

    r = gguf.GGUFReader(path)
    tj = json.load(open(tokenizer_json, encoding="utf-8"))
    vocab = dict(tj["model"]["vocab"])
    for a in tj["added_tokens"]:
        vocab[a["content"]] = a["id"]
    want = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    got = r.fields["tokenizer.ggml.tokens"].contents()
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    types = r.fields["tokenizer.ggml.token_type"].contents()
    special = {a["id"] for a in tj["added_tokens"] if a["special"]}
    if got != want or r.fields["tokenizer.ggml.merges"].contents() != merges:
        raise SystemExit(f"{path}: GGUF vocabulary or merges differ from {tokenizer_json}")
    if [i for i, t in enumerate(types) if t == int(gguf.TokenType.CONTROL)] != sorted(special):
        raise SystemExit(f"{path}: control token types differ from the special added tokens")


def kind_of(gname):
    parts = gname.split(".")
    return parts[2] if parts[0] == "blk" else parts[0]


def unpermute_qk(w, n_head):
    """Inverse of the converter's permutation: gguf rows [0, hd/2, 1, hd/2+1, ...] -> HF order."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_rope_permutation():
    """Shows that ggml's interleaved ("normal") rope on permuted q/k gives the
    same attention scores as HF's rotate_half rope on the original weights."""
    rng = np.random.Generator(np.random.PCG64(7))
    hd, d_in, base = 16, 24, 10000.0
    wq, wk = rng.standard_normal((hd, d_in)), rng.standard_normal((hd, d_in))
    x = rng.standard_normal((6, d_in))
    inv = base ** (-np.arange(0, hd, 2) / hd)  # [hd/2]
    pos = np.arange(6)[:, None] * inv[None, :]  # [6, hd/2]
    cos, sin = np.cos(pos), np.sin(pos)

    def hf_rope(v):  # pairs (i, i + hd/2)
        a, b = v[:, : hd // 2], v[:, hd // 2:]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=1)

    def ggml_rope(v):  # pairs (2i, 2i + 1)
        a, b = v[:, 0::2], v[:, 1::2]
        out = np.empty_like(v)
        out[:, 0::2], out[:, 1::2] = a * cos - b * sin, b * cos + a * sin
        return out

    sys.path.insert(0, HERE)
    from make_tiny_models import permute_qk

    s_hf = hf_rope(x @ wq.T) @ hf_rope(x @ wk.T).T
    s_gg = ggml_rope(x @ permute_qk(wq, 1).T) @ ggml_rope(x @ permute_qk(wk, 1).T).T
    assert np.allclose(unpermute_qk(permute_qk(wq, 1), 1), wq)
    return float(np.abs(s_hf - s_gg).max())


def encode(tok, prompt):
    if "messages" in prompt:
        text = tok.apply_chat_template(prompt["messages"], tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
    else:
        text = prompt["text"]
        ids = tok(text)["input_ids"]
    return text, [int(i) for i in ids]


def run_case(model, ids):
    """Greedy decode N_NEW tokens with the KV cache; returns the case fields
    and two diagnostics: the smallest top-1/top-2 gap over the steps and the
    largest difference from one uncached forward over prompt + generated."""
    import torch

    r6 = lambda v: round(float(v), 6)  # noqa: E731
    with torch.no_grad():
        x = torch.tensor([ids])
        out = model(input_ids=x, use_cache=True)
        lp = torch.log_softmax(out.logits[0].float(), dim=-1)  # [T, V]
        prompt_next_lp = [r6(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)]
        step = lp[-1]
        past = out.past_key_values
        greedy, top5, steps, min_gap = [], [], [], float("inf")
        for k in range(N_NEW):
            vals, idx = torch.topk(step, TOP_K + 1)
            min_gap = min(min_gap, float(vals[0] - vals[1]))
            nxt = int(torch.argmax(step))
            assert nxt == int(idx[0])
            greedy.append(nxt)
            top5.append([[int(i), r6(v)] for i, v in zip(idx[:TOP_K], vals[:TOP_K])])
            steps.append(step)
            if k == N_NEW - 1:
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            step = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        full = model(input_ids=torch.tensor([ids + greedy[:-1]])).logits[0].float()
        full = torch.log_softmax(full, dim=-1)[len(ids) - 1:]  # [N_NEW, V]
        selfcheck = float((full - torch.stack(steps)).abs().max())
    case = {"prompt_ids": ids, "greedy_ids": greedy, "top5": top5, "prompt_next_lp": prompt_next_lp}
    return case, min_gap, selfcheck


def make_golden(entry, vers):
    model, tok = load(entry)
    info = {}
    if entry["gguf"]:
        diff, n = check_gguf_weights(model, entry["path"])
        info["gguf_weights_vs_gguf_py_max_abs_diff"] = diff
        info["gguf_tensors_checked"] = n
        if diff != 0.0:
            raise SystemExit(f"{entry['name']}: transformers' weights differ from gguf-py's by {diff}")
        if entry["tok_dir"]:
            check_gguf_vocab(entry["path"], os.path.join(entry["tok_dir"], "tokenizer.json"))
    if entry["tok_dir"]:
        # What the engine reads (tokenizer.json through the tokenizers library)
        # must tokenize like the HF tokenizer class transformers picks.
        from tokenizers import Tokenizer

        raw = Tokenizer.from_file(os.path.join(entry["tok_dir"], "tokenizer.json"))
        for p in PROMPTS:
            text, ids = encode(tok, p)
            if raw.encode(text, add_special_tokens=False).ids != ids:
                raise SystemExit(f"{entry['name']}: tokenizer.json and transformers disagree on {text!r}")
    cases, gaps, checks = [], [], []
    for p in PROMPTS:
        text, ids = encode(tok, p)
        case, gap, sc = run_case(model, ids)
        c = {"prompt": text}
        if "messages" in p:
            c["messages"] = p["messages"]
        c.update(case)
        cases.append(c)
        gaps.append(gap)
        checks.append(sc)
    golden = {
        "model": rel(entry["path"]),
        "source": (f"transformers {type(model).__name__} from "
                   + (f"GGUF {rel(entry['path'])} (gguf_file, dequantized to float32)" if entry["gguf"]
                      else f"{rel(entry['hf_dir'])} (safetensors float32)")
                   + f"; greedy, {N_NEW} new tokens, no EOS stop; eager attention; KV cache"),
        "versions": vers,
        "default_model": bool(entry.get("default_model")),
        "n_new": N_NEW,
        "top_k": TOP_K,
        "min_top1_top2_gap": round(min(gaps), 6),
        "cached_vs_uncached_max_abs_diff": float(f"{max(checks):.3g}"),
        **info,
        "cases": cases,
    }
    return golden, gaps, checks


def dump(golden, path):
    """Compact JSON: one line per case field, readable in a diff."""
    head = {k: v for k, v in golden.items() if k != "cases"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append('  "cases": [')
    for ci, c in enumerate(golden["cases"]):
        lines.append("    {")
        items = list(c.items())
        for i, (k, v) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            lines.append(f"      {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, separators=(',', ':'))}{comma}")
        lines.append("    }" + ("," if ci < len(golden["cases"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    json.loads(open(path, encoding="utf-8").read())  # well-formed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_SMOLLM, help="SmolLM2 GGUF to make a golden for")
    ap.add_argument("--only", nargs="*", help="golden names to (re)make; default all")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if not os.path.isfile(os.path.join(MODELS, "tiny-llama", "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(HERE, "make_tiny_models.py")], check=True)

    rope_err = check_rope_permutation()
    print(f"rope check: ggml interleaved rope on permuted q/k vs HF rope: max |score diff| = {rope_err:.2e}")
    if rope_err > 1e-9:
        raise SystemExit("q/k permutation does not reconcile the two rope layouts")

    os.makedirs(GOLDENS, exist_ok=True)
    vers = versions()
    for entry in model_table(args.model):
        if args.only and entry["name"] not in args.only:
            continue
        if not os.path.exists(entry["path"]):
            print(f"skip {entry['name']}: {entry['path']} missing")
            continue
        golden, gaps, checks = make_golden(entry, vers)
        out = os.path.join(GOLDENS, entry["name"] + ".json")
        dump(golden, out)
        lens = [len(c["prompt_ids"]) for c in golden["cases"]]
        extra = ""
        if "gguf_weights_vs_gguf_py_max_abs_diff" in golden:
            extra = (f", gguf weights == gguf-py dequant (max diff "
                     f"{golden['gguf_weights_vs_gguf_py_max_abs_diff']}, {golden['gguf_tensors_checked']} tensors)")
        print(f"{rel(out)}: {len(golden['cases'])} cases, prompt lengths {lens}, "
              f"min top1-top2 gap {min(gaps):.2e}, cached/uncached diff {max(checks):.1e}{extra}")
        if min(gaps) < 1e-4:
            print(f"  warning: a near tie ({min(gaps):.2e}) at some greedy step; the engine may diverge there")


if __name__ == "__main__":
    main()
