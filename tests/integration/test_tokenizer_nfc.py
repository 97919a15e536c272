"""A tokenizer.json with an NFC normalizer (Qwen2 style) gives Hugging Face's
ids on text in any normalization form (goldens from `tokenizers`)."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "reference", "models", "tiny-qwen2")
GOLD = os.path.join(ROOT, "tests", "reference", "goldens", "tokenizer_tiny_qwen2_nfc.jsonl")


def test_nfc_ids_match_hf(lp_bin):
    lines = [json.loads(l) for l in open(GOLD, encoding="utf-8")]
    assert len(lines) > 20
    bad = []
    for g in lines:
        p = subprocess.run([lp_bin, "tokenize", "--model", MODEL, "--text", g["text"], "--json"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        ids = json.loads(p.stdout)["ids"]
        if ids != g["ids"]:
            bad.append((g["text"], ids, g["ids"]))
    assert not bad, bad[:5]
