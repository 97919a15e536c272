/* model.h: a base model as the engine sees it: hyper-parameters, borrowed
 * views of every weight (inside the mmapped GGUF or safetensors files), the
 * tokenizer and the chat template. Loaded from a GGUF file or a Hugging Face
 * directory (config.json + *.safetensors + tokenizer.json). */
#ifndef LP_MODEL_H
#define LP_MODEL_H

#include <stdint.h>

#include "../tensor.h"

struct lp_tokenizer;

enum lp_arch {
    LP_ARCH_LLAMA = 1, /* Llama 2/3.x, SmolLM2, Mistral */
    LP_ARCH_QWEN2 = 2, /* q/k/v bias */
};

struct lp_model_config {
    int arch; /* enum lp_arch */
    int n_vocab;
    int n_embd; /* hidden size */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_ff;        /* MLP intermediate size */
    int n_ctx_train; /* context the model was trained for */
    int rot_dim;     /* rotary dims per head (= head_dim for these archs) */
    float rope_theta;
    float rms_eps;
    int tied_embeddings;
    int rope_interleaved; /* 1: GGUF llama layout (q/k permuted), 0: HF layout */
};

/* One transformer block. Matrices are [rows = out, cols = in] views; biases
 * and norms are f32 vectors. A missing optional tensor has data == NULL. */
struct lp_layer_weights {
    struct lp_tensor attn_norm;      /* [n_embd] */
    struct lp_tensor wq;             /* [n_head * head_dim, n_embd] */
    struct lp_tensor wk;             /* [n_head_kv * head_dim, n_embd] */
    struct lp_tensor wv;             /* [n_head_kv * head_dim, n_embd] */
    struct lp_tensor wo;             /* [n_embd, n_head * head_dim] */
    struct lp_tensor bq, bk, bv, bo; /* optional biases */
    struct lp_tensor ffn_norm;       /* [n_embd] */
    struct lp_tensor w_gate;         /* [n_ff, n_embd] */
    struct lp_tensor w_up;           /* [n_ff, n_embd] */
    struct lp_tensor w_down;         /* [n_embd, n_ff] */
};

struct lp_model {
    struct lp_model_config cfg;
    struct lp_tensor tok_embd;       /* [n_vocab, n_embd] */
    struct lp_tensor output_norm;    /* [n_embd] */
    struct lp_tensor output;         /* [n_vocab, n_embd]; == tok_embd when tied */
    struct lp_layer_weights *layers; /* [n_layer] */
    float *inv_freq;                 /* [rot_dim / 2] rotary inverse frequencies, scaling applied */
    struct lp_tokenizer *tok;        /* owned */
    char *chat_template;             /* the model's Jinja template or NULL; owned */
    char *path;                      /* owned */
    char *source;                    /* "gguf" or "safetensors" */
    void *impl;                      /* file handles and f32 copies; private to model.c */
};

/* Loads a model from a .gguf file or a Hugging Face model directory, checking
 * every tensor's presence, type and shape against the config. *out is a new
 * model (lp_model_destroy). Errors name the file, tensor or key. */
int lp_model_load(const char *path, struct lp_model **out, char *err);
void lp_model_destroy(struct lp_model *m); /* NULL is a no-op */

/* Number of weight bytes (as stored) of the model's tensors. */
uint64_t lp_model_weight_bytes(const struct lp_model *m);

#endif
