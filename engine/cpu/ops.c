/* ops.c: the CPU backend's ops other than matmul: embed, rmsnorm, add_bias,
 * rope, kv_store, paged attention, silu_mul, add, gather_rows. Each output
 * element depends only on its own inputs (never on the batch or the thread
 * split), and the float formulas follow Hugging Face transformers' f32 code
 * so that logits stay within tolerance of PyTorch. */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

#include "../lp_common.h"
#include "../tensor.h"

#ifdef __clang__
#pragma clang fp contract(off)
#endif

#define VEC_PIECE 256 /* elements of a non-f32 vector weight dequantized at a time */

static struct lp_cpu_backend *cpu(struct lp_backend *be) { return (struct lp_cpu_backend *)be; }

/* Runs fn over [0, n) on the pool, chunks of `grain` items. */
static void parallel(struct lp_backend *be, int64_t n, int64_t grain, lp_task_fn fn, void *ctx) {
    lp_threadpool_run(cpu(be)->pool, n, grain, fn, ctx);
}

/* Items per chunk so that a chunk is ~`work` elements of work, at least 1. */
static int64_t grain_for(int64_t per_item, int64_t work) {
    int64_t g = per_item > 0 ? work / per_item : work;
    return g < 1 ? 1 : g;
}

/* Element-wise kernels with an AVX2 twin that gives the same floats. */
static void axpy_scalar(float *acc, float p, const float *v, int n) {
    for (int d = 0; d < n; d++)
        acc[d] = fmaf(p, v[d], acc[d]);
}
static void scale_scalar(float *acc, float s, int n) {
    for (int d = 0; d < n; d++)
        acc[d] *= s;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_AVX2_OPS 1
__attribute__((target("avx2,fma"))) static void axpy_avx2(float *acc, float p, const float *v,
                                                          int n) {
    __m256 pv = _mm256_set1_ps(p);
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm256_storeu_ps(acc + d,
                         _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
    for (; d < n; d++)
        acc[d] = fmaf(p, v[d], acc[d]);
}
__attribute__((target("avx2,fma"))) static void scale_avx2(float *acc, float s, int n) {
    __m256 sv = _mm256_set1_ps(s);
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm256_storeu_ps(acc + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), sv));
    for (; d < n; d++)
        acc[d] *= s;
}
#endif

static void axpy(int isa, float *acc, float p, const float *v, int n) {
#ifdef HAVE_AVX2_OPS
    if (isa == LP_CPU_ISA_AVX2) {
        axpy_avx2(acc, p, v, n);
        return;
    }
#endif
    axpy_scalar(acc, p, v, n);
}

static void scale(int isa, float *acc, float s, int n) {
#ifdef HAVE_AVX2_OPS
    if (isa == LP_CPU_ISA_AVX2) {
        scale_avx2(acc, s, n);
        return;
    }
#endif
    scale_scalar(acc, s, n);
}

/* Elements [k0, k0 + len) of a vector weight as f32: a pointer into the
 * weight when it is f32, else dequantized into buf (len <= VEC_PIECE). */
static const float *vec_piece(const struct lp_weight *w, int64_t k0, int64_t len, float *buf) {
    if (w->type == LP_TYPE_F32) return (const float *)w->data + k0;
    size_t off = lp_type_nbytes(w->type, (uint64_t)k0);
    lp_dequant_row(w->type, (const uint8_t *)w->data + off, buf, len);
    return buf;
}

/* Piece length for a vector weight: VEC_PIECE is a multiple of every block. */
static int64_t piece_len(int64_t k0, int64_t d) { return d - k0 < VEC_PIECE ? d - k0 : VEC_PIECE; }

/* ---- embed -------------------------------------------------------------------- */

struct embed_job {
    float *x;
    const struct lp_weight *table;
    const int32_t *tokens;
};

static void embed_task(void *ctx, int64_t begin, int64_t end) {
    const struct embed_job *j = ctx;
    const struct lp_weight *t = j->table;
    size_t rb = lp_type_nbytes(t->type, (uint64_t)t->cols);
    for (int64_t i = begin; i < end; i++) {
        int32_t tok = j->tokens[i];
        ENSURE(tok >= 0 && tok < t->rows);
        lp_dequant_row(t->type, (const uint8_t *)t->data + (size_t)tok * rb,
                       j->x + (size_t)i * (size_t)t->cols, t->cols);
    }
}

void lp_cpu_embed(struct lp_backend *be, float *x, const struct lp_weight *table,
                  const int32_t *tokens, int n) {
    struct embed_job j = {x, table, tokens};
    parallel(be, n, grain_for(table->cols, 1 << 16), embed_task, &j);
}

/* ---- rmsnorm ------------------------------------------------------------------ */

struct rmsnorm_job {
    int isa;
    float *y;
    const float *x;
    const struct lp_weight *w;
    int d;
    float eps;
};

static void rmsnorm_task(void *ctx, int64_t begin, int64_t end) {
    const struct rmsnorm_job *j = ctx;
    float buf[VEC_PIECE];
    for (int64_t i = begin; i < end; i++) {
        const float *x = j->x + (size_t)i * (size_t)j->d;
        float *y = j->y + (size_t)i * (size_t)j->d;
        /* As LlamaRMSNorm: mean of squares in f32, x * rsqrt(mean + eps), then
         * times the weight. */
        float ss = lp_cpu_dot_f32(j->isa, x, x, j->d);
        float r = 1.0f / sqrtf(ss / (float)j->d + j->eps);
        for (int64_t k0 = 0; k0 < j->d; k0 += VEC_PIECE) {
            int64_t len = piece_len(k0, j->d);
            const float *w = vec_piece(j->w, k0, len, buf);
            for (int64_t k = 0; k < len; k++) {
                float t = x[k0 + k] * r;
                y[k0 + k] = w[k] * t;
            }
        }
    }
}

void lp_cpu_rmsnorm(struct lp_backend *be, float *y, const float *x, const struct lp_weight *w,
                    int n, int d, float eps) {
    ENSURE(w->rows * w->cols == d);
    struct rmsnorm_job j = {cpu(be)->isa, y, x, w, d, eps};
    parallel(be, n, grain_for(d, 1 << 15), rmsnorm_task, &j);
}

/* ---- add_bias ------------------------------------------------------------------ */

void lp_cpu_add_bias(struct lp_backend *be, float *y, const struct lp_weight *b, int n, int d) {
    (void)be;
    ENSURE(b->rows * b->cols == d);
    float buf[VEC_PIECE];
    for (int64_t k0 = 0; k0 < d; k0 += VEC_PIECE) {
        int64_t len = piece_len(k0, d);
        const float *bv = vec_piece(b, k0, len, buf);
        for (int i = 0; i < n; i++) {
            float *yi = y + (size_t)i * (size_t)d + k0;
            for (int64_t k = 0; k < len; k++)
                yi[k] += bv[k];
        }
    }
}

/* ---- rope ------------------------------------------------------------------------ */

#define ROPE_MAX_HALF 512 /* rot_dim / 2 up to this (head_dim 1024) */

struct rope_job {
    float *x;
    int n_heads, head_dim, rot_dim;
    const int32_t *pos;
    const float *inv_freq;
    int interleaved;
};

static void rope_task(void *ctx, int64_t begin, int64_t end) {
    const struct rope_job *j = ctx;
    const int half = j->rot_dim / 2;
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    for (int64_t i = begin; i < end; i++) {
        /* As transformers: freqs = pos * inv_freq in f32, then cos and sin. */
        float p = (float)j->pos[i];
        for (int k = 0; k < half; k++) {
            float theta = p * j->inv_freq[k];
            cs[k] = cosf(theta);
            sn[k] = sinf(theta);
        }
        float *row = j->x + (size_t)i * (size_t)j->n_heads * (size_t)j->head_dim;
        for (int h = 0; h < j->n_heads; h++) {
            float *v = row + (size_t)h * (size_t)j->head_dim;
            int stride = j->interleaved ? 1 : half; /* distance between a pair */
            int step = j->interleaved ? 2 : 1;
            for (int k = 0; k < half; k++) {
                float *a = v + k * step, *b = a + stride;
                float x0 = *a, x1 = *b;
                /* q*cos + rotate_half(q)*sin, each product rounded */
                float a0 = x0 * cs[k], a1 = x1 * sn[k];
                float b0 = x1 * cs[k], b1 = x0 * sn[k];
                *a = a0 - a1;
                *b = b0 + b1;
            }
        }
    }
}

void lp_cpu_rope(struct lp_backend *be, float *x, int n, int n_heads, int head_dim, int rot_dim,
                 const int32_t *pos, const float *inv_freq, int interleaved) {
    ENSURE(rot_dim % 2 == 0 && rot_dim <= head_dim && rot_dim / 2 <= ROPE_MAX_HALF);
    struct rope_job j = {x, n_heads, head_dim, rot_dim, pos, inv_freq, interleaved};
    parallel(be, n, grain_for((int64_t)n_heads * head_dim, 1 << 14), rope_task, &j);
}

/* ---- kv_store -------------------------------------------------------------------- */

void lp_cpu_kv_store(struct lp_backend *be, float *kcache, float *vcache, const float *k,
                     const float *v, const struct lp_attn_batch *batch, int kv_dim) {
    (void)be;
    size_t row = (size_t)kv_dim * sizeof(float);
    for (int i = 0; i < batch->n_tokens; i++) {
        int32_t s = batch->slot[i];
        ENSURE(s >= 0);
        memcpy(kcache + (size_t)s * (size_t)kv_dim, k + (size_t)i * (size_t)kv_dim, row);
        memcpy(vcache + (size_t)s * (size_t)kv_dim, v + (size_t)i * (size_t)kv_dim, row);
    }
}

/* ---- attention ------------------------------------------------------------------- */

#define ATTN_KEYS 64       /* keys scored per online-softmax step */
#define ATTN_MAX_HEAD 1024 /* head_dim up to this */

struct attn_job {
    int isa;
    float *out;
    const float *q, *kcache, *vcache;
    const struct lp_attn_batch *b;
    int n_head, n_head_kv, head_dim;
    float scale;
};

/* One (token, head): softmax(q.k * scale) . v over positions 0..pos of the
 * token's sequence, read through its block table. Online softmax over steps
 * of ATTN_KEYS keys, all in f32; the order depends on pos only. */
static void attn_one(const struct attn_job *j, int64_t i, int h) {
    const struct lp_attn_batch *b = j->b;
    const int hd = j->head_dim;
    const size_t kv_dim = (size_t)j->n_head_kv * (size_t)hd;
    const int g = h / (j->n_head / j->n_head_kv);
    const float *q = j->q + ((size_t)i * (size_t)j->n_head + (size_t)h) * (size_t)hd;
    const int32_t seq = b->seq[i];
    ENSURE(seq >= 0 && seq < b->n_seqs);
    const int32_t *bt = b->block_table + (size_t)seq * (size_t)b->max_blocks;
    const int64_t n_pos = (int64_t)b->pos[i] + 1;
    ENSURE(n_pos >= 1 && n_pos <= (int64_t)b->max_blocks * b->block_size);

    float acc[ATTN_MAX_HEAD];
    memset(acc, 0, sizeof(float) * (size_t)hd);
    float m = -INFINITY, l = 0.0f;
    float s[ATTN_KEYS];
    size_t rows[ATTN_KEYS];
    for (int64_t p0 = 0; p0 < n_pos; p0 += ATTN_KEYS) {
        int cnt = n_pos - p0 < ATTN_KEYS ? (int)(n_pos - p0) : ATTN_KEYS;
        float cmax = -INFINITY;
        for (int t = 0; t < cnt; t++) {
            int64_t p = p0 + t;
            int32_t blk = bt[p / b->block_size];
            ENSURE(blk >= 0);
            rows[t] = (size_t)blk * (size_t)b->block_size + (size_t)(p % b->block_size);
            const float *k = j->kcache + rows[t] * kv_dim + (size_t)g * (size_t)hd;
            s[t] = lp_cpu_dot_f32(j->isa, q, k, hd) * j->scale;
            if (s[t] > cmax) cmax = s[t];
        }
        if (cmax > m) {
            float corr = expf(m - cmax); /* 0 on the first step */
            l *= corr;
            scale(j->isa, acc, corr, hd);
            m = cmax;
        }
        for (int t = 0; t < cnt; t++) {
            float e = expf(s[t] - m);
            l += e;
            const float *v = j->vcache + rows[t] * kv_dim + (size_t)g * (size_t)hd;
            axpy(j->isa, acc, e, v, hd);
        }
    }
    float *o = j->out + ((size_t)i * (size_t)j->n_head + (size_t)h) * (size_t)hd;
    for (int d = 0; d < hd; d++)
        o[d] = acc[d] / l;
}

static void attn_task(void *ctx, int64_t begin, int64_t end) {
    const struct attn_job *j = ctx;
    for (int64_t t = begin; t < end; t++)
        attn_one(j, t / j->n_head, (int)(t % j->n_head));
}

void lp_cpu_attention(struct lp_backend *be, float *out, const float *q, const float *kcache,
                      const float *vcache, const struct lp_attn_batch *batch, int n_head,
                      int n_head_kv, int head_dim, float scale) {
    ENSURE(n_head_kv > 0 && n_head % n_head_kv == 0);
    ENSURE(head_dim > 0 && head_dim <= ATTN_MAX_HEAD);
    struct attn_job j = {cpu(be)->isa, out,    q,         kcache,   vcache,
                         batch,        n_head, n_head_kv, head_dim, scale};
    int64_t tasks = (int64_t)batch->n_tokens * n_head;
    int64_t grain = tasks / (16 * (int64_t)be->n_threads);
    parallel(be, tasks, grain < 1 ? 1 : grain, attn_task, &j);
}

/* ---- element-wise ------------------------------------------------------------------ */

struct ew_job {
    float *y;
    const float *a, *b;
};

static void silu_mul_task(void *ctx, int64_t begin, int64_t end) {
    const struct ew_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        /* as torch: x / (1 + exp(-x)), then times up */
        float g = j->a[i];
        float sg = g / (1.0f + expf(-g));
        j->y[i] = sg * j->b[i];
    }
}

void lp_cpu_silu_mul(struct lp_backend *be, float *y, const float *gate, const float *up,
                     size_t n) {
    struct ew_job j = {y, gate, up};
    parallel(be, (int64_t)n, 1 << 14, silu_mul_task, &j);
}

static void add_task(void *ctx, int64_t begin, int64_t end) {
    const struct ew_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->y[i] += j->a[i];
}

void lp_cpu_add(struct lp_backend *be, float *y, const float *x, size_t n) {
    struct ew_job j = {y, x, NULL};
    parallel(be, (int64_t)n, 1 << 16, add_task, &j);
}

void lp_cpu_gather_rows(struct lp_backend *be, float *dst, const float *src, const int32_t *rows,
                        int n, int d) {
    (void)be;
    for (int i = 0; i < n; i++) {
        ENSURE(rows[i] >= 0);
        memmove(dst + (size_t)i * (size_t)d, src + (size_t)rows[i] * (size_t)d,
                (size_t)d * sizeof(float));
    }
}
