/* cpu_internal.h: what the files of the CPU backend share, and what its unit
 * tests and benchmark reach past the backend vtable for: the thread pool, the
 * instruction-set choice and the matmul kernel on a row range. */
#ifndef LP_CPU_INTERNAL_H
#define LP_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

/* ---- thread pool (threadpool.c) ------------------------------------------- */

/* A persistent pool of n_threads - 1 workers plus the calling thread. Not
 * reentrant: one lp_threadpool_run at a time (one replica owns a backend). */
struct lp_threadpool;

/* Work item: handle [begin, end) of the range given to lp_threadpool_run. */
typedef void (*lp_task_fn)(void *ctx, int64_t begin, int64_t end);

/* Starts n_threads - 1 workers (n_threads >= 1). Returns NULL if a thread
 * cannot be started. */
struct lp_threadpool *lp_threadpool_create(int n_threads);
/* Stops and joins the workers. NULL is a no-op. */
void lp_threadpool_destroy(struct lp_threadpool *pool);
/* Total threads, the caller included. */
int lp_threadpool_size(const struct lp_threadpool *pool);
/* Calls fn over [0, n) in chunks of `grain` items claimed dynamically by the
 * workers and the caller; returns when every chunk is done. Allocates nothing.
 * Which thread runs which chunk varies: fn must make each item's result
 * independent of that. */
void lp_threadpool_run(struct lp_threadpool *pool, int64_t n, int64_t grain, lp_task_fn fn,
                       void *ctx);

/* ---- instruction sets ------------------------------------------------------ */

enum lp_cpu_isa {
    LP_CPU_ISA_SCALAR = 0, /* portable C; same results as AVX2, bit for bit */
    LP_CPU_ISA_AVX2 = 1,   /* x86-64 AVX2 + FMA + F16C */
};

/* The best ISA this CPU runs. */
int lp_cpu_isa_best(void);

/* ---- kernels (matmul.c, ops.c) -------------------------------------------- */

/* y[i, r] = dot(x[i, :], W[r, :]) for i < n and r in [r0, r1), on one thread.
 * y: [n, w->rows], x: [n, w->cols]. The dot product of every (i, r) runs the
 * same operations in the same order whatever n, r0, r1 and isa are: element k
 * is fused-multiply-added into lane k % 16 in increasing k, and the 16 lanes
 * are summed in a fixed tree. */
void lp_cpu_matmul_range(int isa, float *y, const float *x, const struct lp_weight *w, int n,
                         int64_t r0, int64_t r1);

/* The whole matmul, rows split over the pool. */
void lp_cpu_matmul(struct lp_threadpool *pool, int isa, float *y, const float *x,
                   const struct lp_weight *w, int n);

/* Dot product of f32 vectors with the same lane order as the matmul. */
float lp_cpu_dot_f32(int isa, const float *a, const float *b, int64_t n);

/* ---- the backend (cpu_backend.c) ------------------------------------------- */

/* Forces an ISA on a CPU backend (tests compare scalar and AVX2); returns the
 * previous one. isa must be <= lp_cpu_isa_best(). */
int lp_cpu_backend_set_isa(struct lp_backend *be, int isa);

/* The CPU backend object; ops.c reads the pool and the ISA from it. */
struct lp_cpu_backend {
    struct lp_backend base; /* first: a struct lp_backend * points here */
    struct lp_threadpool *pool;
    int isa; /* enum lp_cpu_isa */
};

/* The ops other than memory and matmul (ops.c). */
void lp_cpu_embed(struct lp_backend *be, float *x, const struct lp_weight *table,
                  const int32_t *tokens, int n);
void lp_cpu_rmsnorm(struct lp_backend *be, float *y, const float *x, const struct lp_weight *w,
                    int n, int d, float eps);
void lp_cpu_add_bias(struct lp_backend *be, float *y, const struct lp_weight *b, int n, int d);
void lp_cpu_rope(struct lp_backend *be, float *x, int n, int n_heads, int head_dim, int rot_dim,
                 const int32_t *pos, const float *inv_freq, int interleaved);
void lp_cpu_kv_store(struct lp_backend *be, float *kcache, float *vcache, const float *k,
                     const float *v, const struct lp_attn_batch *batch, int kv_dim);
void lp_cpu_attention(struct lp_backend *be, float *out, const float *q, const float *kcache,
                      const float *vcache, const struct lp_attn_batch *batch, int n_head,
                      int n_head_kv, int head_dim, float scale);
void lp_cpu_silu_mul(struct lp_backend *be, float *y, const float *gate, const float *up, size_t n);
void lp_cpu_add(struct lp_backend *be, float *y, const float *x, size_t n);
void lp_cpu_gather_rows(struct lp_backend *be, float *dst, const float *src, const int32_t *rows,
                        int n, int d);
/* The LoRA op (lora.c). */
void lp_cpu_lora(struct lp_backend *be, float *y, const float *x, int in, int out,
                 const struct lp_lora_seg *segs, int n_segs, float *tmp);

#endif
