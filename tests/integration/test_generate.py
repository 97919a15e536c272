"""`loraplex generate` end to end: batch invariance (a request's output is the
same alone or batched with others, greedy and seeded sampling), stop strings,
chat templates, and clear errors for bad requests."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "tests", "reference", "models", "tiny-llama")

PROMPTS = [
    "The quick brown fox",
    "Once upon a time, in a land far away, there lived a",
    "1, 2, 3, 4,",
    "def fibonacci(n):",
    "Paris is the capital of",
    "The weather today is",
]


def gen(lp_bin, model, *args, stdin=None):
    p = subprocess.run([lp_bin, "generate", "--model", model, *args], capture_output=True,
                       text=True, timeout=300, input=stdin)
    return p


def run_json(lp_bin, model, *args):
    p = gen(lp_bin, model, *args, "--json")
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


@pytest.fixture(params=["tiny", "default"])
def model(request, default_model):
    return TINY if request.param == "tiny" else default_model


def requests_for(sampled):
    reqs = []
    for i, p in enumerate(PROMPTS):
        r = {"prompt": p, "max_tokens": 12 + 3 * i}
        if sampled:
            r.update({"temperature": 0.9, "seed": 1000 + i, "top_p": 0.95, "top_k": 50})
        reqs.append(r)
    return reqs


@pytest.mark.parametrize("sampled", [False, True])
def test_batch_equals_alone(lp_bin, model, tmp_path, sampled):
    reqs = requests_for(sampled)
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in reqs) + "\n")
    together = run_json(lp_bin, model, "--batch", str(batch), "--ignore-eos", "--logprobs", "3")
    assert len(together) == len(reqs)
    for r, t in zip(reqs, together):
        one = tmp_path / "one.jsonl"
        one.write_text(json.dumps(r) + "\n")
        alone = run_json(lp_bin, model, "--batch", str(one), "--ignore-eos", "--logprobs", "3")[0]
        assert t["tokens"] == alone["tokens"], r
        assert t["logprobs"] == alone["logprobs"], r  # bit-identical, not just close
        assert len(t["tokens"]) == r["max_tokens"]


def test_seed_reproducible_and_sampling_differs(lp_bin, model):
    args = ["--prompt", "Tell me a story", "--max-tokens", "24", "--temperature", "1.0", "--ignore-eos"]
    a = run_json(lp_bin, model, *args, "--seed", "7")[0]
    b = run_json(lp_bin, model, *args, "--seed", "7")[0]
    c = run_json(lp_bin, model, *args, "--seed", "8")[0]
    assert a["tokens"] == b["tokens"]
    assert a["tokens"] != c["tokens"]


def test_stop_string(lp_bin, default_model):
    full = run_json(lp_bin, default_model, "--prompt", "1, 2, 3, 4,", "--max-tokens", "16")[0]
    text = full["text"]
    assert len(text) > 4
    stop = text[2:4]
    cut = run_json(lp_bin, default_model, "--prompt", "1, 2, 3, 4,", "--max-tokens", "16", "--stop", stop)[0]
    assert cut["finish_reason"] == "stop"
    assert stop not in cut["text"]
    assert text.startswith(cut["text"])


def test_chat_default_model(lp_bin, default_model):
    out = run_json(lp_bin, default_model, "--prompt", "What is the capital of France?", "--chat",
                   "--max-tokens", "32")[0]
    assert "Paris" in out["text"]
    assert out["finish_reason"] in ("stop", "length")
    # the rendered prompt starts with ChatML's system turn (SmolLM2's default system prompt)
    assert out["prompt_tokens"][0] == 1  # <|im_start|>


def test_unknown_chat_template_is_an_error(lp_bin, default_model):
    p = gen(lp_bin, default_model, "--prompt", "hi", "--chat-template", "vicuna")
    assert p.returncode == 1 and "vicuna" in p.stderr


@pytest.mark.parametrize("args,needle", [
    (["--prompt-ids", "1,2,999999"], "out of range"),
    (["--prompt-ids", "1,,x"], "prompt-ids"),
    (["--prompt", "hi", "--temperature", "-1"], "temperature"),
    (["--prompt", "hi", "--top-p", "0"], "top_p"),
])
def test_bad_requests(lp_bin, default_model, args, needle):
    p = gen(lp_bin, default_model, *args)
    assert p.returncode != 0
    assert needle in p.stderr, p.stderr


def test_bad_batch_file(lp_bin, default_model, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 3}\n')
    p = gen(lp_bin, default_model, "--batch", str(bad))
    assert p.returncode == 1 and "line 2" in p.stderr


def test_transformers5_rope_parameters_config(lp_bin, tmp_path):
    """transformers >= 5 saves rope_theta and rope scaling as one
    "rope_parameters" object: the same weights must give the same tokens."""
    import shutil
    src = os.path.join(ROOT, "tests", "reference", "models", "tiny-llama3-scaled")
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    rs = cfg.pop("rope_scaling")
    rs["rope_theta"] = cfg.pop("rope_theta")
    cfg["rope_parameters"] = rs
    (dst / "config.json").write_text(json.dumps(cfg))
    gold = json.load(open(os.path.join(ROOT, "tests", "reference", "goldens", "tiny-llama3-scaled.json")))
    case = gold["cases"][-1]
    out = run_json(lp_bin, str(dst), "--prompt-ids", ",".join(map(str, case["prompt_ids"])),
                   "--max-tokens", str(len(case["greedy_ids"])), "--ignore-eos")[0]
    assert out["tokens"] == case["greedy_ids"]


def test_model_vocab_padded_past_tokenizer(lp_bin, tmp_path):
    """Models often pad the embedding past the tokenizer's vocabulary (Qwen2
    does): logits rows must use the model's width. Zero rows added to a tied
    embedding leave every real logit unchanged, so a batch gives the same tokens."""
    import shutil
    import struct

    import numpy as np
    src = os.path.join(ROOT, "tests", "reference", "models", "tiny-llama")
    dst = tmp_path / "padded"
    shutil.copytree(src, dst)
    raw = (dst / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    tensors = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        tensors[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"])
    e = tensors["model.embed_tokens.weight"]
    tensors["model.embed_tokens.weight"] = np.vstack([e, np.zeros((8, e.shape[1]), np.float32)])
    hdr, blobs, off = {}, [], 0
    for k, arr in tensors.items():
        bts = np.ascontiguousarray(arr).tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(bts)]}
        blobs.append(bts)
        off += len(bts)
    h = json.dumps(hdr).encode()
    (dst / "model.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    cfg = json.loads((dst / "config.json").read_text())
    cfg["vocab_size"] += 8
    (dst / "config.json").write_text(json.dumps(cfg))
    batch = tmp_path / "b.jsonl"
    batch.write_text("\n".join(json.dumps({"prompt": p}) for p in PROMPTS[:3]) + "\n")
    want = run_json(lp_bin, TINY, "--batch", str(batch), "--max-tokens", "12", "--ignore-eos")
    got = run_json(lp_bin, str(dst), "--batch", str(batch), "--max-tokens", "12", "--ignore-eos")
    assert [g["tokens"] for g in got] == [w["tokens"] for w in want]
