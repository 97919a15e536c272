#!/usr/bin/env python3
"""make_tokenizer_goldens.py: the Hugging Face oracle for engine/tokenizer/.

Run in /tmp/refenv (transformers + tokenizers + gguf + jinja2):

    /tmp/refenv/bin/python tests/reference/make_tokenizer_goldens.py

Writes, under tests/reference/goldens/:
  tokenizer_smollm2.jsonl        SmolLM2 (from the GGUF model, see below)
  tok_spm/tokenizer.json         SentencePiece-style BPE (Llama-2 legacy layout:
                                 Prepend/Replace normalizer, byte_fallback)
  tok_spm/tok_spm.gguf           the same vocabulary as a GGUF "llama" model
                                 (scores instead of merges, no tensors)
  tokenizer_spm.jsonl
  tok_spm_meta/tokenizer.json    the same model with a Metaspace pre-tokenizer
                                 (prepend_scheme "first", the non-legacy layout)
  tokenizer_spm_meta.jsonl
  tok_llama3/tokenizer.json      Llama-3-style byte-level BPE (llama3 split
                                 regex, ignore_merges, BOS template)
  tok_llama3/tok_llama3.gguf     the same as a GGUF "gpt2" model, pre "llama-bpe"
  tokenizer_llama3.jsonl
  tok_chat_templates.json        chat renders from transformers' apply_chat_template

Each tokenizer_<name>.jsonl starts with one {"meta": ...} line, then one line a
corpus string: {"text", "ids" (special-token text is plain text)} and, to keep
the files small, only where they differ from the obvious: "ids_special"
(special-token text becomes the token; absent: same as ids), "decoded"
(decode(ids_special) keeping special tokens; absent: same as text),
"decoded_plain" (decode(ids); absent: same as text) and "decoded_skip"
(decode(ids_special) skipping special tokens; absent: same as decoded).
No BOS/EOS is added in the lines; the meta line holds one add_special example.

SmolLM2: transformers can build the tokenizer from the GGUF
(AutoTokenizer.from_pretrained(dir, gguf_file=...)), but its GGUF converter
loses SmolLM2's digit split: it produces a plain ByteLevel pre-tokenizer,
whereas SmolLM2's published tokenizer.json has
Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
use_regex=True)] (llama.cpp's "smollm" pre-tokenizer is the same: \\p{N} then
the GPT-2 regex). So we keep everything the converter built (vocab, merges,
added tokens, decoder) and put the published pre-tokenizer back; the script
prints how many corpus lines the unfixed converter gets wrong.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLD = os.path.join(ROOT, "tests", "reference", "goldens")
GGUF_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# --------------------------------------------------------------------------- corpus

SPECIAL_TEXTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>",
                 "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                 "<|reserved_special_token_2|>", "<tool_call>", "<mask>", "[TOOL]",
                 "<repo_name>", "<file_sep>", "<jupyter_code>", "<|im_start", "im_end|>",
                 "<|", "|>", "<<SYS>>", "[INST]", "[/INST]"]

WORDS = {
    "latin": ["hello", "world", "The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
              "tokenizer", "unbelievable", "Internationalization", "naïve", "café", "façade",
              "jalapeño", "Straße", "Ærøskøbing", "coöperate", "résumé", "ÀÉÎÕÜ", "ﬁnancial",
              "ŁÓDŹ", "Ğüşıöç", "Việt Nam", "ǅemal", "ſtraße"],
    "greek": ["Καλημέρα", "κόσμε", "Ελληνικά", "ΑΒΓΔ", "ἀρχή"],
    "cyrillic": ["Привет", "мир", "Здравствуйте", "ёжик", "Україна", "Їжак", "ПРИВЕТ"],
    "arabic": ["مرحبا", "بالعالم", "العربية", "السَّلَامُ عَلَيْكُمْ", "١٢٣٤٥"],
    "hebrew": ["שלום", "עולם", "עִבְרִית"],
    "devanagari": ["नमस्ते", "दुनिया", "हिन्दी", "क्षत्रिय", "०१२३"],
    "thai": ["สวัสดีครับ", "ภาษาไทย"],
    "cjk": ["你好", "世界", "中文分词测试", "東京都", "こんにちは", "カタカナ", "ひらがな", "漢字かな交じり文",
            "안녕하세요", "한국어", "ｆｕｌｌｗｉｄｔｈ", "１２３", "𠀀𠀁𠮷"],
    "other": ["ሰላም", "Բարեւ", "გამარჯობა", "ᠮᠣᠩᠭᠣᠯ", "ខ្មែរ", "ꦧꦱꦗꦮ", "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲"],
    "emoji": ["😀", "😂🤣", "👍", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🇫🇷🇯🇵", "❤️", "✨🎉",
              "🧑🏻‍🤝‍🧑🏾", "🤷‍♂️", "1️⃣", "©️", "🐈‍⬛", "🫠"],
    "combining": ["e\u0301", "a\u0308\u0304", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d",
                  "n\u0303o\u0303", "\u0301alone", "ก\u0e49\u0e33"],
    "symbols": ["∑∫√∞", "≠≤≥", "→⇒↔", "€£¥₹", "°C", "½¾", "™®", "§¶", "•…", "«»", "„“”", "‘’",
                "—–", "☃★☆", "♠♥♦♣", "⌘⌥", "\u200b", "\u200d", "\u200c", "\ufeff", "\u00ad",
                "\u2060", "\u180e", "ⅫⅣ", "²³", "①②"],
    "punct": [".", ",", "!", "?", "...", "!!!", "?!", ";", ":", "-", "--", "(", ")", "[", "]",
              "{", "}", "\"", "'", "`", "~", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=",
              "|", "\\", "/", "<", ">"],
}
CONTRACTIONS = ["it's", "don't", "we're", "I've", "I'm", "you'll", "he'd", "IT'S", "DON'T",
                "We'Re", "o'clock", "rock'n'roll", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
                "James'", "'quoted'", "it’s", "'ſ"]
SPACES = ["", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \t ",
          "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b", "\u000c", "    \n\n   ",
          "\u2003", "\u202f"]

CODE = [
    "def f(x):\n    return x * 2\n",
    "for i in range(10):\n\tprint(i, end='')\n",
    "int main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\n",
    "{\"name\": \"loraplex\", \"version\": [0, 1, 0], \"ok\": true, \"x\": null}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "if (a && b || !c) { x += 1; } else { x -= 1; }",
    "const f = async (x) => { await g(x); };",
    "<div class=\"a\">Hello &amp; bye</div>",
    "fn main() { let v: Vec<u8> = vec![1, 2, 3]; }",
    "x = [i**2 for i in range(100) if i % 3 == 0]",
    "    if x:\n        pass\n    else:\n        raise ValueError('bad')\n",
    "$ ls -la /usr/bin | grep -E '^d' > out.txt 2>&1",
    "a_b_c = __init__.__dict__['__name__']",
    "0x1F, 0b1010, 1e-9, 3.14159, -273.15, 1_000_000",
    "```python\nprint('hi')\n```",
    "// comment\n/* block\n   comment */",
    "key: value\nlist:\n  - item1\n  - item2\n",
]
URLS = ["https://example.com/path?q=1&r=two#frag", "http://localhost:8080/v1/chat/completions",
        "www.example.org", "mailto:someone@example.com", "ftp://files.example.net/a/b/c.tar.gz",
        "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        "user.name+tag@sub.domain.co.uk"]


def number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randrange(10))
    if kind == 1:
        return str(rng.randrange(10 ** rng.randrange(2, 8)))
    if kind == 2:
        return str(rng.randrange(10 ** 30))
    if kind == 3:
        return f"{rng.uniform(-1e4, 1e4):.{rng.randrange(1, 6)}f}"
    if kind == 4:
        return f"{rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/{rng.randrange(1900, 2100)}"
    return f"{rng.randrange(1000):,}".replace(",", rng.choice([",", ".", " "])) + str(
        rng.randrange(1000, 1000000))


def fragment(rng):
    r = rng.random()
    if r < 0.40:
        pool = WORDS[rng.choice(list(WORDS))]
        return rng.choice(pool)
    if r < 0.50:
        return number(rng)
    if r < 0.58:
        return rng.choice(CONTRACTIONS)
    if r < 0.66:
        return rng.choice(SPECIAL_TEXTS)
    if r < 0.72:
        return rng.choice(URLS)
    if r < 0.78:
        return rng.choice(CODE)
    if r < 0.86:
        return rng.choice(SPACES[1:]) * rng.randrange(1, 4)
    if r < 0.93:
        return rng.choice(WORDS["punct"]) * rng.randrange(1, 4)
    # random code points from assorted blocks
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0xE00, 0xE7F), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
              (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF), (0x2000, 0x206F), (0x300, 0x36F),
              (0x10000, 0x1007F), (0x1D400, 0x1D7FF), (0xF900, 0xFAFF)]
    lo, hi = rng.choice(blocks)
    return "".join(chr(rng.randrange(lo, hi + 1)) for _ in range(rng.randrange(1, 6)))


def build_corpus():
    rng = random.Random(20250207)
    c = ["", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \n \n", "a", "Hello world",
         " Hello world", "Hello world ", "  leading and trailing  ", "hello\tworld\n",
         "Hello, World! How are you today?", "I'm fine, thanks. It's 3:45pm and we're late.",
         "12345", "1234567890123456789012345678901234567890", "3.14159265358979",
         "In 1969, 600,000,000 people watched.", "a1b2c3d4", " 1 22 333 4444 55555",
         "Price: $1,299.99 (-15%)", "2024-12-31T23:59:59Z", "+1 (555) 123-4567",
         "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
         "<|im_start|><|im_end|>", "<|im_start|>system<|im_end|><|endoftext|>",
         "text<|endoftext|>more", "<|im_start|> spaced <|im_end|>", "<|im_start|",
         "<s>[INST] Hi [/INST] Hello </s>", "<s><s></s>", "<unk>", "x<unk>y",
         "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
         "<|eot_id|><|eot_id|>", "a <mask> b", "a<mask>b", "a   <mask>   b", "<mask>",
         "call <tool_call>{\"x\": 1}", "<tool_call><tool_call>", "[TOOL] x [TOOL]", "a[TOOL]b",
         "<repo_name>loraplex<file_sep>main.c", "<jupyter_code>print(1)",
         "👨‍👩‍👧‍👦 family", "👍🏻👍🏼👍🏽👍🏾👍🏿", "🏳️‍🌈🏳️‍⚧️", "🇺🇸🇬🇧🇩🇪",
         "日本語のテキストです。", "中文，标点！", "한국어 텍스트", "مرحبا بالعالم", "שלום עולם",
         "Ελληνικά κείμενα", "Русский текст", "हिन्दी पाठ", "ภาษาไทย", "e\u0301e\u0301e\u0301",
         "\u00a0\u00a0nbsp", "a\u3000b", "line\u2028sep", "x\u0085y", "\u180e\u180e!",
         "tab\there", "\t\t\tindent", "    four spaces", "trailing spaces    ",
         "mixed \t \n \r\n end", "\r\n\r\n", "a\rb", "\n\n\ntext\n\n\n",
         " " * 50, "\n" * 20, "\t" * 10, "a" * 300, "ab" * 150, "🙂" * 40, "0" * 100,
         "ééééé", "'s't're've'm'll'd", "'S'T'RE", "don't won't can't shouldn't",
         "ſ", "'ſ", "K\u212a", "ǅǆ", "ﬀﬁﬂ", "①②③ ⅠⅡⅢ ²³", "١٢٣ ٤٥٦", "०१२ ३४५", "１２３４",
         "x²+y²=z²", "∀x∈ℝ: x²≥0", "\u200b\u200b", "zero\u200bwidth", "a\u200dz", "\ufeffBOM",
         "soft\u00adhyphen", "😀 😃 😄 😁", "💩", "𝕳𝖊𝖑𝖑𝖔", "𝟘𝟙𝟚", "🀄🃏", "\U0001F9D1\u200D\U0001F4BB",
         ]
    c += CODE + URLS + CONTRACTIONS
    c += [s + "!" for s in SPACES if s] + ["!" + s for s in SPACES if s]
    c += ["x" + s + "y" for s in SPACES if s] + [s + "x" + s for s in SPACES if s]
    for script, words in WORDS.items():
        c.append(" ".join(words))
        c.append("".join(words))
    for s in SPECIAL_TEXTS:
        c += [s, "a" + s + "b", " " + s + " ", s + s, "\n" + s + "\n"]
    # long-ish mixed documents
    for _ in range(8):
        c.append("".join(fragment(rng) + rng.choice(SPACES) for _ in range(rng.randrange(60, 160))))
    while len(c) < 1150:
        n = rng.randrange(1, 14)
        parts = []
        for _ in range(n):
            parts.append(fragment(rng))
            parts.append(rng.choice(SPACES) if rng.random() < 0.7 else " ")
        s = "".join(parts)
        if rng.random() < 0.2:
            s = rng.choice(SPACES) + s
        if rng.random() < 0.5:
            s = s.rstrip(" ") if rng.random() < 0.5 else s
        c.append(s)
    assert all("\x00" not in s for s in c)
    return c


# --------------------------------------------------------------------------- tokenizers

def smollm2_tokenizer(corpus):
    from transformers import AutoTokenizer
    d, name = os.path.split(GGUF_MODEL)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    bt = tok.backend_tokenizer
    converted = json.loads(bt.to_str())["pre_tokenizer"]
    conv = Tokenizer.from_str(bt.to_str())
    bt.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    diff = sum(conv.encode(s, add_special_tokens=False).ids !=
               bt.encode(s, add_special_tokens=False).ids for s in corpus)
    print(f"smollm2: converter pre_tokenizer {converted}; it disagrees with the published "
          f"Digits+ByteLevel pre-tokenizer on {diff} of {len(corpus)} corpus lines")
    return bt, {"bos": tok.bos_token_id, "eos": tok.eos_token_id}


def byte_tokens():
    return [f"<0x{b:02X}>" for b in range(256)]


def train_spm(train_texts):
    """SentencePiece-style BPE, Llama-2 legacy layout, ids: <unk> <s> </s>, 256 byte
    tokens, then the learned pieces."""
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # Train with words split at ▁ (as sentencepiece does), then encode without it.
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    # The trainer keeps its alphabet in a hash map: name the 400 characters it keeps
    # (the rest become byte-fallback tokens) so that ties cannot vary between runs.
    freq = {}
    for s in train_texts:
        for ch in s.replace(" ", "▁"):
            freq[ch] = freq.get(ch, 0) + 1
    alphabet = sorted(freq, key=lambda ch: (-freq[ch], ch))[:400]
    tr = trainers.BpeTrainer(vocab_size=1800, min_frequency=2, show_progress=False,
                             special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens(),
                             initial_alphabet=alphabet, limit_alphabet=400)
    t.train_from_iterator(train_texts, trainer=tr)
    m = json.loads(t.to_str())
    vocab, merges = m["model"]["vocab"], m["model"]["merges"]
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in merges]
    model = models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    spm = Tokenizer(model)
    spm.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s in ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]])
    spm.add_tokens([AddedToken("[TOOL]", special=False, normalized=True)])
    spm.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    spm.pre_tokenizer = None
    spm.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    spm.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", spm.token_to_id("<s>"))])
    # The same model, non-legacy layout: Metaspace pre-tokenizer, prepend only first.
    meta = Tokenizer.from_str(spm.to_str())
    meta.normalizer = None
    meta.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                  split=False)
    meta.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first",
                                                         split=False), decoders.ByteFallback(),
                                      decoders.Fuse()])
    return spm, meta, merges


def train_llama3(train_texts):
    t = Tokenizer(models.BPE(ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    t.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tr = trainers.BpeTrainer(vocab_size=2500, min_frequency=2, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(train_texts, trainer=tr)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|eot_id|>"]
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    t.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True,
                                     rstrip=True)])
    t.add_tokens([AddedToken("<tool_call>", special=False, normalized=False)])
    bos = t.token_to_id("<|begin_of_text|>")
    t.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return t


# --------------------------------------------------------------------------- GGUF copies

def write_gguf(path, tok, model, pre, scores=None, add_bos=True):
    import gguf
    j = json.loads(tok.to_str())
    vocab = dict(j["model"]["vocab"])
    for a in j["added_tokens"]:
        vocab[a["content"]] = a["id"]
    n = max(vocab.values()) + 1
    tokens = [""] * n
    for s, i in vocab.items():
        tokens[i] = s
    added = {a["id"]: a for a in j["added_tokens"]}
    types = []
    for i, s in enumerate(tokens):
        if i in added:
            types.append(3 if added[i]["special"] else 4)
        elif len(s) == 6 and s.startswith("<0x") and s.endswith(">") and model == "llama":
            types.append(6)
        else:
            types.append(1)
    if model == "llama":
        types[tok.token_to_id("<unk>")] = 2
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    else:
        w.add_token_merges([" ".join(m) if isinstance(m, list) else m
                            for m in j["model"]["merges"]])
    if model == "llama":
        w.add_bos_token_id(tok.token_to_id("<s>"))
        w.add_eos_token_id(tok.token_to_id("</s>"))
        w.add_unk_token_id(tok.token_to_id("<unk>"))
        w.add_add_space_prefix(True)
    else:
        w.add_bos_token_id(tok.token_to_id("<|begin_of_text|>"))
        w.add_eos_token_id(tok.token_to_id("<|eot_id|>"))
    w.add_add_bos_token(add_bos)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def spm_scores(tok, merges):
    """Scores that make llama.cpp-style score merging equal rank merging: each learned
    piece is made by exactly one merge, so score = -rank; base symbols score lower
    than any merge result (they are never merge results)."""
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    n = max(list(vocab.values()) + [a["id"] for a in j["added_tokens"]]) + 1
    scores = [-1e9] * n
    for s, i in vocab.items():
        scores[i] = -1e6
    for rank, (a, b) in enumerate(merges):
        scores[vocab[a + b]] = -float(rank)
    return [float(x) for x in scores]


# --------------------------------------------------------------------------- goldens

def goldens(name, tok, corpus, meta):
    path = os.path.join(GOLD, f"tokenizer_{name}.jsonl")
    enc = Tokenizer.from_str(tok.to_str())
    enc.encode_special_tokens = True
    ex = tok.encode("Hello world", add_special_tokens=True).ids
    meta = dict(meta, tokenizer=name, n_lines=len(corpus), add_special_example={
        "text": "Hello world", "ids": ex})
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}, ensure_ascii=False, separators=(",", ":")) + "\n")
        for s in corpus:
            ids = enc.encode(s, add_special_tokens=False).ids
            ids_sp = tok.encode(s, add_special_tokens=False).ids
            rec = {"text": s, "ids": ids}
            if ids_sp != ids:
                rec["ids_special"] = ids_sp
            dec = tok.decode(ids_sp, skip_special_tokens=False)
            if dec != s:
                rec["decoded"] = dec
            plain = tok.decode(ids, skip_special_tokens=False)
            if plain != s:
                rec["decoded_plain"] = plain
            skip = tok.decode(ids_sp, skip_special_tokens=True)
            if skip != dec:
                rec["decoded_skip"] = skip
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


# --------------------------------------------------------------------------- chat templates

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")

CHATML_PLAIN = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def chat_goldens(smol_template):
    from transformers import PreTrainedTokenizerFast
    d = GOLD
    cases = [
        [{"role": "user", "content": "Hello!"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "  padded question \n"},
         {"role": "assistant", "content": "\n answer with spaces  "},
         {"role": "user", "content": "next\u00a0"}],
        [{"role": "system", "content": " sys \n"}, {"role": "user", "content": "a"},
         {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": "Unicode: 日本語 👨‍👩‍👧 مرحبا\n\tcode"}],
        [{"role": "user", "content": "\u3000\u2028x\x1f\x85"},
         {"role": "assistant", "content": "\u180ey\u200b"}],
        [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
        [],
    ]
    toks = {
        "chatml_smollm2": (smol_template, "<|im_start|>", "<|im_end|>"),
        "chatml": (CHATML_PLAIN, "<|im_start|>", "<|im_end|>"),
        "llama3": (LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>"),
        "llama2": (LLAMA2_TEMPLATE, "<s>", "</s>"),
    }
    out = {"templates": {}, "cases": []}
    for name, (tpl, bos, eos) in toks.items():
        out["templates"][name] = {"template": tpl, "bos": bos, "eos": eos}
        tk = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tok_llama3", "tokenizer.json"),
                                     bos_token=bos, eos_token=eos)
        for i, msgs in enumerate(cases):
            for gen in (False, True):
                rec = {"template": name, "messages": msgs, "add_generation_prompt": gen}
                try:
                    rec["rendered"] = tk.apply_chat_template(msgs, chat_template=tpl,
                                                             tokenize=False,
                                                             add_generation_prompt=gen)
                except Exception as e:  # roles the template refuses, empty lists
                    rec["error"] = type(e).__name__
                out["cases"].append(rec)
    path = os.path.join(d, "tok_chat_templates.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
    print(f"wrote {path} ({len(out['cases'])} cases)")


# --------------------------------------------------------------------------- small cases

FUZZ_SEEDS = os.path.join(ROOT, "tests", "fuzz", "corpus", "tokenizer_json")


def small_cases():
    """Tiny tokenizers for what the corpus goldens do not reach (Split's five
    behaviours, Digits grouped, lstrip/rstrip/single_word added tokens, Metaspace
    split): each is written as a fuzz seed (tokenizer.json, NUL, text) and its HF
    encodings go to tok_small_cases.json."""
    os.makedirs(FUZZ_SEEDS, exist_ok=True)
    cases = []

    def save(name, t, text):
        j = json.dumps(json.loads(t.to_str()), separators=(",", ":"), ensure_ascii=False)
        with open(os.path.join(FUZZ_SEEDS, name), "wb") as f:
            f.write(j.encode() + b"\0" + text.encode())
        rec = {"file": name}
        for ps in (0, 1):
            t.encode_special_tokens = not ps
            ids = t.encode(text, add_special_tokens=True).ids
            rec["ids_special" if ps else "ids"] = ids
            rec["decoded_special" if ps else "decoded"] = t.decode(ids, skip_special_tokens=False)
        t.encode_special_tokens = False
        cases.append(rec)

    v = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("1", "2")]
    for a, b in merges:
        v.setdefault(a + b, len(v))
    t = Tokenizer(models.BPE(dict(v), merges))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens([AddedToken("<|im_start|>", special=True, normalized=False)])
    save("bytelevel", t, "the cat in <|im_start|> the hat 123 ünïcödé 👍🏽\n\n  x")
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.ByteLevel(add_prefix_space=True)])
    save("digits", t, "in 2024, 1234567 ants")
    t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False)])
    save("digits_grouped", t, "in 2024, 1212 ants 12")
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"(?i:'s|'t)|\p{L}+|\p{N}{1,3}|\s+"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", t.token_to_id("<|im_start|>"))])
    save("split", t, "It's 12345 THE end\r\n")
    for beh in ["removed", "merged_with_previous", "merged_with_next", "contiguous"]:
        for inv in (False, True):
            t.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(r" +"), behavior=beh, invert=inv),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            save(f"split_{beh}{'_inv' if inv else ''}", t, " a  b c   d the  ")
    t.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, rstrip=True,
                                     normalized=False)])
    t.add_tokens([AddedToken("word", single_word=True, special=False, normalized=False)])
    save("added_strip", t, "a  <mask>  b word words sword word_ word. <mask>")
    sv = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sv[f"<0x{b:02X}>"] = len(sv)
    for s in ["▁", "a", "b", "c", "▁a", "▁b", "ab", "▁ab"]:
        sv[s] = len(sv)
    sm = [("▁", "a"), ("▁", "b"), ("a", "b"), ("▁a", "b")]
    s = Tokenizer(models.BPE(sv, sm, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    s.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    s.add_special_tokens([AddedToken(x, special=True, normalized=False)
                          for x in ["<unk>", "<s>", "</s>"]])
    s.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                   decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    s.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                     special_tokens=[("<s>", 1)])
    save("spm", s, "ab ba cab<s>é漢 </s>")
    s.normalizer = None
    s.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=True)
    s.decoder = decoders.Sequence([decoders.Metaspace(prepend_scheme="first"),
                                   decoders.ByteFallback(), decoders.Fuse()])
    save("metaspace", s, " ab  ab<s>b\tc")
    s.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=False)
    save("metaspace_always", s, "ab  ab<s>b c")
    # refused by us: not BPE; a merge whose result is not a token
    with open(os.path.join(FUZZ_SEEDS, "unigram"), "wb") as f:
        f.write(b'{"model":{"type":"Unigram","vocab":[["a",0.0]]}}\0a')
    with open(os.path.join(FUZZ_SEEDS, "bad_merge"), "wb") as f:
        f.write(b'{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a","a"]]}}\0aaa')
    path = os.path.join(GOLD, "tok_small_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print(f"wrote {path} ({len(cases)} cases) and the fuzz seeds")


def main():
    small_cases()
    corpus = build_corpus()
    print(f"corpus: {len(corpus)} strings, {sum(len(s) for s in corpus)} characters")
    train = corpus[0::2] + [" ".join(WORDS[k]) * 3 for k in WORDS] + CODE * 3

    spm, meta, spm_merges = train_spm(train)
    llama3 = train_llama3(train)
    for name, t in [("tok_spm", spm), ("tok_spm_meta", meta), ("tok_llama3", llama3)]:
        os.makedirs(os.path.join(GOLD, name), exist_ok=True)
        t.save(os.path.join(GOLD, name, "tokenizer.json"), pretty=False)
    write_gguf(os.path.join(GOLD, "tok_spm", "tok_spm.gguf"), spm, "llama", "default",
               scores=spm_scores(spm, spm_merges))
    write_gguf(os.path.join(GOLD, "tok_llama3", "tok_llama3.gguf"), llama3, "gpt2", "llama-bpe")

    goldens("spm", spm, corpus, {"bos": spm.token_to_id("<s>"), "eos": spm.token_to_id("</s>")})
    goldens("spm_meta", meta, corpus,
            {"bos": spm.token_to_id("<s>"), "eos": spm.token_to_id("</s>")})
    goldens("llama3", llama3, corpus, {"bos": llama3.token_to_id("<|begin_of_text|>"),
                                       "eos": None})
    if os.path.exists(GGUF_MODEL):
        smol, smeta = smollm2_tokenizer(corpus)
        goldens("smollm2", smol, corpus, smeta)
        import gguf
        r = gguf.GGUFReader(GGUF_MODEL)
        f = r.fields["tokenizer.chat_template"]
        smol_template = bytes(f.parts[f.data[0]]).decode("utf-8")
    else:
        print("no SmolLM2 GGUF: tokenizer_smollm2.jsonl not regenerated", file=sys.stderr)
        smol_template = json.load(open(os.path.join(GOLD, "tok_chat_templates.json")))[
            "templates"]["chatml_smollm2"]["template"]
    chat_goldens(smol_template)


if __name__ == "__main__":
    main()
