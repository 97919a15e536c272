/* cpu_backend.c: the CPU implementation of struct lp_backend_ops. Memory is
 * host memory (64-byte aligned), weights are borrowed from the caller's host
 * tensors as they are (quantized stays quantized), and the ops run on a
 * persistent thread pool. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lp_common.h"
#include "../tensor.h"
#include "cpu_internal.h"

static struct lp_cpu_backend *cpu(struct lp_backend *be) { return (struct lp_cpu_backend *)be; }

static void cpu_destroy(struct lp_backend *be) {
    if (!be) return;
    lp_threadpool_destroy(cpu(be)->pool);
    free(be);
}

/* Returns 64-byte aligned memory (so AVX loads never split a cache line more
 * than needed), or NULL when out of memory. */
static void *cpu_alloc(struct lp_backend *be, size_t bytes) {
    (void)be;
    size_t size;
    if (lp_add_size(bytes, 63, &size) != 0) return NULL;
    size &= ~(size_t)63;
    return aligned_alloc(64, size ? size : 64);
}

static void cpu_free(struct lp_backend *be, void *p) {
    (void)be;
    free(p);
}

static void cpu_copy(struct lp_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    if (dst != src && n) memmove(dst, src, n);
}

static void cpu_sync(struct lp_backend *be) { (void)be; }

/* Borrows host->data: the weight is valid while the host tensor is. */
static int cpu_weight_init(struct lp_backend *be, const struct lp_tensor *host, struct lp_weight *w,
                           char *err) {
    (void)be;
    memset(w, 0, sizeof *w);
    const struct lp_type_traits *tt = lp_type_get(host->type);
    if (!tt)
        return lp_err(err, LP_EUNSUPPORTED, "tensor %s: type %d is not supported", host->name,
                      host->type);
    if (host->n_dims < 1 || host->n_dims > LP_MAX_DIMS)
        return lp_err(err, LP_EFORMAT, "tensor %s: %d dimensions", host->name, host->n_dims);
    int64_t rows = 1;
    for (int i = 1; i < host->n_dims; i++) {
        if (host->ne[i] <= 0 || rows > INT64_MAX / host->ne[i])
            return lp_err(err, LP_EFORMAT, "tensor %s: bad shape", host->name);
        rows *= host->ne[i];
    }
    int64_t cols = host->ne[0];
    if (cols <= 0 || cols % tt->block_elems != 0)
        return lp_err(err, LP_EFORMAT, "tensor %s: %lld columns is not a multiple of the %s block",
                      host->name, (long long)cols, tt->name);
    size_t row_bytes = lp_type_nbytes(host->type, (uint64_t)cols), need;
    if (row_bytes == 0 || lp_mul_size(row_bytes, (size_t)rows, &need) != 0 || need > host->nbytes)
        return lp_err(err, LP_EFORMAT, "tensor %s: %zu bytes of data, shape needs more", host->name,
                      host->nbytes);
    if (!host->data) return lp_err(err, LP_EINVAL, "tensor %s: no data", host->name);
    w->type = host->type;
    w->rows = rows;
    w->cols = cols;
    w->data = (void *)(uintptr_t)host->data; /* borrowed, never written */
    w->nbytes = need;
    w->owned = 0;
    return LP_OK;
}

static void cpu_weight_clear(struct lp_backend *be, struct lp_weight *w) {
    (void)be;
    if (w->owned) free(w->data);
    memset(w, 0, sizeof *w);
}

static void cpu_matmul(struct lp_backend *be, float *y, const float *x, const struct lp_weight *w,
                       int n) {
    lp_cpu_matmul(cpu(be)->pool, cpu(be)->isa, y, x, w, n);
}

static const struct lp_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .weight_init = cpu_weight_init,
    .weight_clear = cpu_weight_clear,
    .embed = lp_cpu_embed,
    .rmsnorm = lp_cpu_rmsnorm,
    .matmul = cpu_matmul,
    .add_bias = lp_cpu_add_bias,
    .rope = lp_cpu_rope,
    .kv_store = lp_cpu_kv_store,
    .attention = lp_cpu_attention,
    .silu_mul = lp_cpu_silu_mul,
    .add = lp_cpu_add,
    .gather_rows = lp_cpu_gather_rows,
    .lora = lp_cpu_lora,
};

struct lp_backend *lp_cpu_backend_create(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    struct lp_cpu_backend *c = xcalloc(1, sizeof *c);
    c->pool = lp_threadpool_create(n_threads);
    if (!c->pool) {
        free(c);
        return NULL;
    }
    c->isa = lp_cpu_isa_best();
    c->base.ops = &cpu_ops;
    c->base.n_threads = n_threads;
    LP_DEBUG("cpu backend: %d threads, %s kernels", n_threads,
             c->isa == LP_CPU_ISA_AVX2 ? "AVX2" : "scalar");
    return &c->base;
}

int lp_cpu_backend_set_isa(struct lp_backend *be, int isa) {
    ENSURE(be->ops == &cpu_ops);
    ENSURE(isa >= LP_CPU_ISA_SCALAR && isa <= lp_cpu_isa_best());
    int old = cpu(be)->isa;
    cpu(be)->isa = isa;
    return old;
}
