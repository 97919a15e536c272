/* backend.h: the one interface the forward pass is written against. A
 * backend owns device memory and implements a handful of ops over f32
 * activations and (possibly quantized) weights. cpu/ and cuda/ implement it;
 * tests hold every op of one against the CPU op.
 *
 * Conventions: every float* / void* argument named as device memory was
 * returned by ops->alloc of the same backend. Arrays that describe the batch
 * (tokens, positions, slots, block tables) are host memory: a device backend
 * copies them itself. Activations are row-major [n_tokens, width]. Ops run in
 * order; results are visible to the host after `sync` + `download`. */
#ifndef LP_BACKEND_H
#define LP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

struct lp_backend;

/* A weight resident on a backend. Matrices are [rows, cols] with rows the
 * output features (ne[1] of the GGUF tensor) and cols the input features. A
 * vector (norm weight, bias) has rows = 1. */
struct lp_weight {
    int type;     /* enum lp_type; stays quantized when the file is */
    int64_t rows; /* output features */
    int64_t cols; /* input features (the contiguous dimension) */
    void *data;   /* backend memory, or borrowed host memory on the CPU */
    size_t nbytes;
    int owned; /* 1 if weight_clear must free data */
};

/* Where each token of a step lives in the paged KV cache and what it may
 * attend to. All arrays are host memory, valid for the duration of the op. */
struct lp_attn_batch {
    int n_tokens;
    const int32_t *pos;  /* [n_tokens] position of the token in its sequence */
    const int32_t *seq;  /* [n_tokens] index of the token's sequence, < n_seqs */
    const int32_t *slot; /* [n_tokens] cache slot = block * block_size + offset */
    int n_seqs;
    int max_blocks;             /* row stride of block_table */
    const int32_t *block_table; /* [n_seqs, max_blocks] physical block ids */
    int block_size;             /* tokens per KV block */
};

/* Token i attends to positions 0..pos[i] of its sequence, read through the
 * sequence's block table; kv_store for the step runs before attention, so a
 * prompt chunk sees itself causally. */

/* One LoRA segment of a step, for one projection: rows [start, start + len)
 * of x and y belong to sequences of one adapter. Weights are backend memory:
 * a is A [rank, in] as PEFT stores it; bt is B transposed, [rank, out], so
 * that the expand is a run of contiguous row updates. */
struct lp_lora_seg {
    int start;
    int len;
    int rank;
    float scale;
    const float *a;  /* [rank, in] */
    const float *bt; /* [rank, out] */
};

struct lp_backend_ops {
    const char *name;
    void (*destroy)(struct lp_backend *be);

    /* Memory. alloc returns NULL when the device is out of memory. */
    void *(*alloc)(struct lp_backend *be, size_t bytes);
    void (*free)(struct lp_backend *be, void *p);
    void (*upload)(struct lp_backend *be, void *dst, const void *src, size_t n);
    void (*download)(struct lp_backend *be, void *dst, const void *src, size_t n);
    void (*sync)(struct lp_backend *be);

    /* Makes a host tensor resident. The CPU backend borrows `host->data`
     * (which must outlive the weight); others copy. Returns LP_OK or a
     * negative lp_status with a reason in err. */
    int (*weight_init)(struct lp_backend *be, const struct lp_tensor *host, struct lp_weight *w,
                       char *err);
    void (*weight_clear)(struct lp_backend *be, struct lp_weight *w);

    /* x[i, :] = embedding row tokens[i] dequantized. x: [n, d], tokens host. */
    void (*embed)(struct lp_backend *be, float *x, const struct lp_weight *table,
                  const int32_t *tokens, int n);

    /* y[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w. y may equal x. [n, d] */
    void (*rmsnorm)(struct lp_backend *be, float *y, const float *x, const struct lp_weight *w,
                    int n, int d, float eps);

    /* y = x . W^T: y [n, w->rows], x [n, w->cols]. Each output row depends on
     * its input row only, with a fixed reduction order (batch invariance). */
    void (*matmul)(struct lp_backend *be, float *y, const float *x, const struct lp_weight *w,
                   int n);

    /* LoRA over segments (Punica's SGMV shrink then expand): for each
     * segment, t = x[rows] . A^T, then y[rows] += scale * t . B. x: [n, in],
     * y: [n, out] (row strides in / out); tmp: backend scratch of at least
     * [n, max rank]. Each row's result depends on that row only, in a fixed
     * order (batch invariance). */
    void (*lora)(struct lp_backend *be, float *y, const float *x, int in, int out,
                 const struct lp_lora_seg *segs, int n_segs, float *tmp);

    /* y[i, :] += b for every row. y: [n, d], b: f32 vector of d. */
    void (*add_bias)(struct lp_backend *be, float *y, const struct lp_weight *b, int n, int d);

    /* Rotary embedding in place on x [n, n_heads * head_dim] for the first
     * rot_dim dims of each head; inv_freq host [rot_dim / 2]. interleaved = 1
     * rotates pairs (2j, 2j+1) (GGUF llama layout); 0 rotates (j, j + rot_dim/2)
     * (Hugging Face / NeoX layout). */
    void (*rope)(struct lp_backend *be, float *x, int n, int n_heads, int head_dim, int rot_dim,
                 const int32_t *pos, const float *inv_freq, int interleaved);

    /* Writes k, v [n_tokens, kv_dim] into the caches at batch->slot.
     * kcache, vcache: [n_blocks * block_size, kv_dim] for one layer. */
    void (*kv_store)(struct lp_backend *be, float *kcache, float *vcache, const float *k,
                     const float *v, const struct lp_attn_batch *batch, int kv_dim);

    /* Causal grouped-query attention over the paged cache of one layer.
     * out, q: [n_tokens, n_head * head_dim]; head h reads kv head
     * h / (n_head / n_head_kv). softmax(q.k * scale) . v in f32. */
    void (*attention)(struct lp_backend *be, float *out, const float *q, const float *kcache,
                      const float *vcache, const struct lp_attn_batch *batch, int n_head,
                      int n_head_kv, int head_dim, float scale);

    /* y = silu(gate) * up, elementwise over n values. y may equal gate. */
    void (*silu_mul)(struct lp_backend *be, float *y, const float *gate, const float *up, size_t n);

    /* y += x, elementwise over n values. */
    void (*add)(struct lp_backend *be, float *y, const float *x, size_t n);

    /* dst[i, :] = src[rows[i], :] for i < n; rows host. [.., d] */
    void (*gather_rows)(struct lp_backend *be, float *dst, const float *src, const int32_t *rows,
                        int n, int d);
};

struct lp_backend {
    const struct lp_backend_ops *ops;
    int n_threads; /* CPU worker threads (CPU backend), informational elsewhere */
};

/* CPU backend: a pool of n_threads workers (0 = one per core). */
struct lp_backend *lp_cpu_backend_create(int n_threads);

/* CUDA backend (cuda/): number of usable devices (0 with no driver or GPU),
 * and a backend on `device` or NULL with the reason in err. */
int lp_cuda_device_count(char *err);
struct lp_backend *lp_cuda_backend_create(int device, char *err);

#endif
