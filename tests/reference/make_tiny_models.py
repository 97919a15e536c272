#!/usr/bin/env python3
"""Make the tiny reference models that the engine is checked against.

Everything here is deterministic: the tokenizer is trained on the fixed text
below and every weight is drawn from numpy's PCG64 generator with a fixed seed
(not from torch's initialisers, which may change between torch releases). The
outputs are committed under tests/reference/models/ so the C tests need no
Python. Run from anywhere:

    python tests/reference/make_tiny_models.py

Models written (all float32):
  tiny-llama/            LlamaForCausalLM, GQA 4/2 heads, tied embeddings
  tiny-llama-sharded/    the same weights in two safetensors shards + index
  tiny-llama.f32.gguf    the same weights as llama.cpp's converter lays them out
  tiny-llama.q8_0.gguf   2-D weights Q8_0
  tiny-llama.q4_1.gguf   2-D weights Q4_1, token_embd Q8_0 (like SmolLM2's file)
  tiny-qwen2/            Qwen2ForCausalLM, q/k/v bias, untied lm_head, and a
                         Qwen2-style tokenizer (NFC + Qwen2 split regex)
  tiny-qwen2.f32.gguf    the same, arch qwen2
  tiny-llama3-scaled/    llama with llama3 rope scaling, head_dim 32

The GGUF layout (tensor names, q/k row permutation, metadata keys) follows what
llama.cpp's convert_hf_to_gguf.py produces; this is an independent rewrite.
Checked once against that converter (llama.cpp from llama-cpp-python 0.3.36,
pre-tokenizer name forced): every tensor byte-identical, F32 and Q8_0, same
order; metadata the same except general.name / general.size_label.
"""

import json
import os
import shutil
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "models")

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 512

# ChatML, as Qwen2 / SmolLM2 use it, without a default system message.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The fixed text the tokenizer is trained on. Plain English, a little code,
# digits and a few non-ASCII characters so that merges cover several classes.
TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. The dog sleeps in the sun while
the fox runs into the forest. In the forest there are tall trees, small birds
and a river that flows from the mountains to the sea.

Once upon a time there was a little village by the sea. The people of the
village were fishermen, and every morning they went out in their boats to
catch fish. In the evening they came back, sold the fish at the market and
told stories about the weather, the waves and the strange lights they had seen
far away on the water.

A language model reads a sequence of tokens and predicts the next one. Each
token is a number; the model turns the number into a vector, mixes the vectors
with attention, and returns a score for every token in the vocabulary. The
scores are called logits. The softmax of the logits is a probability
distribution, and greedy decoding always picks the token with the highest score.

Question: What is the capital of France?
Answer: The capital of France is Paris. Paris is a large city on the river Seine.
Question: How many legs does a spider have?
Answer: A spider has eight legs. Insects have six legs.

def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

for i in range(10):
    print(i, fibonacci(i))

int main(void) {
    printf("hello, world\\n");
    return 0;
}

Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 1024 2025 3.14159 2.71828.
Dates: 2024-01-31, 1999-12-31. Times: 12:30, 08:15. Prices: $5.99, 20%.

The server listens on a port, accepts requests and sends back responses. A
request has a method, a path, headers and a body. The body is often JSON, like
{"model": "tiny", "messages": [{"role": "user", "content": "Hello!"}]}.

Café, naïve, résumé, jalapeño, Zürich, São Paulo. 日本語のテキスト. Привет, мир!
Emoji are bytes too: 🙂 🚀.

She said: "I don't know, but I'll find out." They're here; we've seen it.
It's a nice day, isn't it? Yes, it is! No, it isn't... Maybe.

The history of science is full of small steps. Someone measures something
carefully, someone else repeats the measurement, and slowly the numbers agree.
Good tests work the same way: they compare two careful measurements and say
exactly where they differ.
"""


def rng_for(seed):
    return np.random.Generator(np.random.PCG64(seed))


# ---------------------------------------------------------------- tokenizer


# Qwen2's pre-tokenizer split, as its tokenizer.json and llama.cpp's "qwen2"
# pre-type have it: single digits, newlines kept apart, letters grouped.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_tokenizer(style):
    """Returns a `tokenizers.Tokenizer`: byte-level BPE, 512 ids, specials 0..2.

    style "gpt2": ByteLevel with GPT-2's split regex (llama.cpp pre "gpt-2").
    style "qwen2": NFC + Qwen2's split regex, then ByteLevel without regex
    (llama.cpp pre "qwen2"). transformers 5 rebuilds a qwen2 model's tokenizer
    as Qwen2Tokenizer with exactly this pipeline whatever tokenizer.json says,
    so the qwen2 model must carry it for tokenizer.json and HF to agree.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers

    tok = Tokenizer(models.BPE())
    if style == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    if tok.get_vocab_size() != VOCAB_SIZE:
        sys.exit(f"tokenizer has {tok.get_vocab_size()} ids, wanted {VOCAB_SIZE}")
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, s
    return tok


def tokenizer_config():
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(i): {
                "content": s,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, s in enumerate(SPECIAL_TOKENS)
        },
        "bos_token": "<|endoftext|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "model_max_length": 512,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }


BOS_ID, EOS_ID, PAD_ID = 0, 2, 0


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def write_tokenizer_files(tok, d):
    tok.save(os.path.join(d, "tokenizer.json"), pretty=True)
    write_json(os.path.join(d, "tokenizer_config.json"), tokenizer_config())
    write_json(
        os.path.join(d, "special_tokens_map.json"),
        {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    )


# ------------------------------------------------------------------- weights


def make_weights(spec, seed):
    """HF-named float32 numpy weights for a llama-shaped model.

    Scales are chosen so that the random model is not flat: embeddings with
    std 0.3 give logits of std ~2-3 (clear argmax, few near-ties), linears
    have std 1/sqrt(fan_in), and norm weights are 1 + N(0, 0.1) so that an
    engine that forgets one of them is caught.
    """
    r = rng_for(seed)
    h, ff, nl = spec["hidden"], spec["ff"], spec["layers"]
    hd = spec["head_dim"]
    nq, nkv = spec["heads"] * hd, spec["kv_heads"] * hd
    V = VOCAB_SIZE
    w = {}

    def lin(out_f, in_f, gain=1.0):
        return (r.standard_normal((out_f, in_f)) * gain / np.sqrt(in_f)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * r.standard_normal(n)).astype(np.float32)

    w["model.embed_tokens.weight"] = (0.3 * r.standard_normal((V, h))).astype(np.float32)
    for i in range(nl):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "self_attn.q_proj.weight"] = lin(nq, h, 1.5)
        w[p + "self_attn.k_proj.weight"] = lin(nkv, h, 1.5)
        w[p + "self_attn.v_proj.weight"] = lin(nkv, h)
        if spec.get("qkv_bias"):
            w[p + "self_attn.q_proj.bias"] = (0.3 * r.standard_normal(nq)).astype(np.float32)
            w[p + "self_attn.k_proj.bias"] = (0.3 * r.standard_normal(nkv)).astype(np.float32)
            w[p + "self_attn.v_proj.bias"] = (0.3 * r.standard_normal(nkv)).astype(np.float32)
        w[p + "self_attn.o_proj.weight"] = lin(h, nq)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        w[p + "mlp.gate_proj.weight"] = lin(ff, h)
        w[p + "mlp.up_proj.weight"] = lin(ff, h)
        w[p + "mlp.down_proj.weight"] = lin(h, ff)
    w["model.norm.weight"] = norm(h)
    if not spec["tied"]:
        w["lm_head.weight"] = (0.3 * r.standard_normal((V, h))).astype(np.float32)
    return dict(sorted(w.items()))


def hf_config(spec):
    """config.json in the layout found on the Hub (rope_theta / rope_scaling
    at top level), not transformers 5's rope_parameters: that is what real
    checkpoints carry and what the engine must parse."""
    arch = spec["arch"]
    c = {
        "architectures": ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"],
        "model_type": arch,
        "vocab_size": VOCAB_SIZE,
        "hidden_size": spec["hidden"],
        "intermediate_size": spec["ff"],
        "num_hidden_layers": spec["layers"],
        "num_attention_heads": spec["heads"],
        "num_key_value_heads": spec["kv_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": spec["ctx"],
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": spec["tied"],
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    if arch == "llama":
        c["attention_bias"] = False
        c["mlp_bias"] = False
        if spec["head_dim"] != spec["hidden"] // spec["heads"]:
            c["head_dim"] = spec["head_dim"]
    else:
        c["use_sliding_window"] = False
        c["sliding_window"] = None
        c["max_window_layers"] = spec["layers"]
    if spec.get("rope_scaling"):
        c["rope_scaling"] = spec["rope_scaling"]
    return c


def save_safetensors(path, weights):
    from safetensors.numpy import save_file

    save_file(weights, path, metadata={"format": "pt"})


def write_hf_dir(d, spec, weights, tok, shards=1):
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), hf_config(spec))
    write_json(
        os.path.join(d, "generation_config.json"),
        {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "do_sample": False},
    )
    write_tokenizer_files(tok, d)
    if shards == 1:
        save_safetensors(os.path.join(d, "model.safetensors"), weights)
        return
    # Split by layer so that each shard holds whole layers, like HF's sharding.
    names = list(weights)
    groups = [[] for _ in range(shards)]
    for n in names:
        if n.startswith("model.layers."):
            layer = int(n.split(".")[2])
            g = layer * shards // spec["layers"]
        elif n == "model.embed_tokens.weight":
            g = 0
        else:
            g = shards - 1
        groups[g].append(n)
    weight_map = {}
    for g, group in enumerate(groups):
        fname = f"model-{g + 1:05d}-of-{shards:05d}.safetensors"
        save_safetensors(os.path.join(d, fname), {n: weights[n] for n in group})
        for n in group:
            weight_map[n] = fname
    total = sum(int(weights[n].nbytes) for n in names)
    write_json(
        os.path.join(d, "model.safetensors.index.json"),
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
    )


# ---------------------------------------------------------------------- GGUF


def permute_qk(w, n_head):
    """Row permutation llama.cpp's converter applies to q/k of llama models.

    HF's rotate_half rope pairs dimension i with i + head_dim/2; ggml's
    "normal" rope pairs 2i with 2i+1. Reordering rows within each head as
    [0, hd/2, 1, hd/2+1, ...] makes the two give the same result.
    """
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    return f"blk.{parts[2]}." + GGUF_NAMES[".".join(parts[3:])]


def write_gguf(path, spec, weights, tok, ftype):
    """ftype: 'f32', 'q8_0' or 'q4_1' (2-D weights; 1-D tensors stay F32)."""
    import gguf
    from gguf import GGMLQuantizationType as Q

    arch = spec["arch"]
    name = os.path.basename(path).split(".")[0]
    w = gguf.GGUFWriter(path, arch)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                 "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}[ftype]

    w.add_type("model")
    w.add_name(name)
    w.add_block_count(spec["layers"])
    w.add_context_length(spec["ctx"])
    w.add_embedding_length(spec["hidden"])
    w.add_feed_forward_length(spec["ff"])
    w.add_head_count(spec["heads"])
    w.add_head_count_kv(spec["kv_heads"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-05)
    w.add_file_type(int(file_type))
    if arch == "llama":
        # The converter writes these for llama but not for qwen2, whose head
        # size is always embedding_length / head_count.
        w.add_vocab_size(VOCAB_SIZE)
        w.add_rope_dimension_count(spec["head_dim"])
        w.add_key_length(spec["head_dim"])
        w.add_value_length(spec["head_dim"])

    # Tokenizer, as the converter writes a gpt2-style BPE vocabulary.
    tj = json.loads(tok.to_str())
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [None] * VOCAB_SIZE
    for t, i in vocab.items():
        tokens[i] = t
    special = {a["id"] for a in tj["added_tokens"] if a["special"]}
    types = [int(gguf.TokenType.CONTROL) if i in special else int(gguf.TokenType.NORMAL)
             for i in range(VOCAB_SIZE)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2" if arch == "llama" else "qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_pad_token_id(PAD_ID)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    for hf, t in weights.items():
        gname = gguf_name(hf)
        if arch == "llama" and hf.endswith("q_proj.weight"):
            t = permute_qk(t, spec["heads"])
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            t = permute_qk(t, spec["kv_heads"])
        qtype = Q.F32
        if t.ndim == 2 and ftype == "q8_0":
            qtype = Q.Q8_0
        elif t.ndim == 2 and ftype == "q4_1":
            qtype = Q.Q8_0 if gname == "token_embd.weight" else Q.Q4_1
        if qtype == Q.F32:
            w.add_tensor(gname, np.ascontiguousarray(t, dtype=np.float32))
        else:
            data = gguf.quants.quantize(np.ascontiguousarray(t), qtype)
            w.add_tensor(gname, data, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ------------------------------------------------------------------- main

TINY_LLAMA = dict(arch="llama", hidden=64, ff=128, layers=2, heads=4, kv_heads=2, head_dim=16,
                  ctx=512, tied=True)
TINY_QWEN2 = dict(arch="qwen2", hidden=64, ff=128, layers=2, heads=4, kv_heads=2, head_dim=16,
                  ctx=512, tied=False, qkv_bias=True)
TINY_LLAMA3_SCALED = dict(
    arch="llama", hidden=64, ff=128, layers=2, heads=2, kv_heads=1, head_dim=32, ctx=512,
    tied=True,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
)


def main():
    tok = train_tokenizer("gpt2")
    qwen_tok = train_tokenizer("qwen2")
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    llama_w = make_weights(TINY_LLAMA, seed=1001)
    write_hf_dir(os.path.join(OUT, "tiny-llama"), TINY_LLAMA, llama_w, tok)
    write_hf_dir(os.path.join(OUT, "tiny-llama-sharded"), TINY_LLAMA, llama_w, tok, shards=2)
    for ft in ("f32", "q8_0", "q4_1"):
        write_gguf(os.path.join(OUT, f"tiny-llama.{ft}.gguf"), TINY_LLAMA, llama_w, tok, ft)

    qwen_w = make_weights(TINY_QWEN2, seed=2002)
    write_hf_dir(os.path.join(OUT, "tiny-qwen2"), TINY_QWEN2, qwen_w, qwen_tok)
    write_gguf(os.path.join(OUT, "tiny-qwen2.f32.gguf"), TINY_QWEN2, qwen_w, qwen_tok, "f32")

    l3_w = make_weights(TINY_LLAMA3_SCALED, seed=3003)
    write_hf_dir(os.path.join(OUT, "tiny-llama3-scaled"), TINY_LLAMA3_SCALED, l3_w, tok)

    total = 0
    for dirpath, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            total += os.path.getsize(p)
            print(f"{os.path.relpath(p, ROOT)}  {os.path.getsize(p)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
