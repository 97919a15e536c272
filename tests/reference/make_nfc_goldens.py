#!/usr/bin/env python3
"""make_nfc_goldens.py: ids from Hugging Face `tokenizers` for strings whose
tokenization depends on the tokenizer's Unicode normalizer (NFC in Qwen2-style
tokenizer.json files): decomposed accents, compatibility forms, Hangul jamo.
Writes tests/reference/goldens/tokenizer_tiny_qwen2_nfc.jsonl. Run in the
reference venv (./build.sh reference installs it)."""
import json
import os
import unicodedata

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOK = os.path.join(ROOT, "tests", "reference", "models", "tiny-qwen2", "tokenizer.json")
OUT = os.path.join(ROOT, "tests", "reference", "goldens", "tokenizer_tiny_qwen2_nfc.jsonl")

BASE = ["café", "naïve résumé", "Ångström", "über straße", "ﬁne ﬂow", "①②③", "Ｆｕｌｌｗｉｄｔｈ",
        "한국어 텍스트", "Ελληνικά", "ḍ̇", "Hello world", "e\u0301 a\u0300 o\u0308", "x\u0327\u0301",
        "", " ", "12345", "<|endoftext|> text"]


def main():
    tok = Tokenizer.from_file(TOK)
    assert json.load(open(TOK))["normalizer"]["type"] == "NFC", "tiny-qwen2 should use NFC"
    lines = []
    for s in BASE:
        for form in ("NFC", "NFD", "NFKD"):
            t = unicodedata.normalize(form, s)
            lines.append({"text": t, "ids": tok.encode(t, add_special_tokens=True).ids})
    seen, uniq = set(), []
    for l in lines:
        if l["text"] not in seen:
            seen.add(l["text"])
            uniq.append(l)
    with open(OUT, "w") as f:
        for l in uniq:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
    print(f"wrote {len(uniq)} lines to {OUT}")


if __name__ == "__main__":
    main()
