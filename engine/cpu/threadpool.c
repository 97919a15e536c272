/* threadpool.c: a persistent pool of worker threads running a "parallel for"
 * over [0, n) in chunks; the calling thread takes chunks too. Workers spin a
 * little between jobs (a forward pass issues ops microseconds apart), then
 * sleep on a condition variable. Nothing is allocated per job.
 *
 * A job is finished when all its chunks are done, not when every worker has
 * looked at it: on a loaded machine a descheduled worker never holds up a
 * job it took no chunk of. Chunks are claimed with a compare-and-swap on one
 * word holding (generation, chunk count, next chunk), so a worker that wakes
 * late can only claim a chunk of the job still running, and reads the job's
 * fields only after such a claim (the caller cannot finish, and so cannot
 * rewrite them, while a chunk is out). */
#include "cpu_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "../lp_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before a thread sleeps: a fraction of a millisecond. */
#define SPIN_LIMIT 20000

/* The claim word: generation (24 bits) | chunk count (20) | next chunk (20). */
#define CHUNK_BITS 20
#define MAX_CHUNKS ((1u << CHUNK_BITS) - 1)
#define CLAIM(gen, n, next)                                                                        \
    (((uint64_t)(gen) << (2 * CHUNK_BITS)) | ((uint64_t)(n) << CHUNK_BITS) | (uint64_t)(next))
#define CLAIM_GEN(w) ((uint32_t)((w) >> (2 * CHUNK_BITS)))
#define CLAIM_N(w) ((uint32_t)((w) >> CHUNK_BITS) & MAX_CHUNKS)
#define CLAIM_NEXT(w) ((uint32_t)(w)&MAX_CHUNKS)

struct lp_threadpool {
    int n_threads;      /* workers + the caller */
    pthread_t *workers; /* [n_threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;      /* workers wait here for a new generation */
    pthread_cond_t cv_done;      /* the caller waits here for the last chunk */
    atomic_uint_least64_t claim; /* see CLAIM; publishes the job fields */
    atomic_uint gen;             /* generation of the latest job (24 bits used) */
    atomic_uint done;            /* chunks of the current job finished */
    atomic_int stop;
    atomic_int busy; /* a run is in progress (catches reentrant use) */
    lp_task_fn fn;   /* the current job, written before claim is published */
    void *ctx;
    int64_t n, grain;
};

/* Claims and runs chunks until none is left; returns the generation of the
 * job whose chunks ran out. The thread that finishes the last chunk wakes the
 * caller. */
static uint32_t run_chunks(struct lp_threadpool *p, int is_caller) {
    uint64_t w = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        uint32_t next = CLAIM_NEXT(w), n = CLAIM_N(w);
        if (next >= n) return CLAIM_GEN(w);
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        int64_t begin = (int64_t)next * p->grain;
        int64_t end = begin + p->grain < p->n ? begin + p->grain : p->n;
        p->fn(p->ctx, begin, end);
        unsigned d = atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1;
        if (d == n && !is_caller) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
        w = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    struct lp_threadpool *p = arg;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_chunks(p, 0);
    }
}

struct lp_threadpool *lp_threadpool_create(int n_threads) {
    ENSURE(n_threads >= 1);
    struct lp_threadpool *p = xcalloc(1, sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->claim, CLAIM(0, 0, 0));
    p->workers = xcalloc((size_t)n_threads, sizeof *p->workers);
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            p->n_threads = i + 1; /* destroy joins the i already started */
            lp_threadpool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void lp_threadpool_destroy(struct lp_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads - 1; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int lp_threadpool_size(const struct lp_threadpool *p) { return p->n_threads; }

void lp_threadpool_run(struct lp_threadpool *p, int64_t n, int64_t grain, lp_task_fn fn,
                       void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if ((n + grain - 1) / grain > MAX_CHUNKS) grain = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    uint32_t n_chunks = (uint32_t)((n + grain - 1) / grain);
    if (p->n_threads == 1 || n_chunks == 1) {
        fn(ctx, 0, n); /* one chunk: no reason to wake anyone */
        return;
    }
    ENSURE(atomic_exchange(&p->busy, 1) == 0);
    /* No chunk of the previous job is out (it finished), so no worker reads
     * these fields now; the release store of claim publishes them. */
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint32_t gen = (atomic_load_explicit(&p->gen, memory_order_relaxed) + 1) & 0xffffff;
    atomic_store_explicit(&p->claim, CLAIM(gen, n_chunks, 0), memory_order_release);
    /* Bumping gen under the mutex means a worker either sees the new
     * generation before it waits or is already waiting for the broadcast. */
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->gen, gen, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);

    run_chunks(p, 1);

    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != n_chunks) {
        if (++spins < SPIN_LIMIT) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->done, memory_order_acquire) != n_chunks)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    atomic_store(&p->busy, 0);
}
