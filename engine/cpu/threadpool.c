/* threadpool.c: a persistent pool of worker threads running a "parallel for"
 * over [0, n) in chunks claimed from an atomic counter; the calling thread
 * takes chunks too. Workers spin a little between jobs (a forward pass issues
 * ops microseconds apart), then sleep on a condition variable. Nothing is
 * allocated per job. */
#include "cpu_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "../lp_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before a thread sleeps: roughly 0.1-0.5 ms. */
#define SPIN_LIMIT 20000

struct lp_threadpool {
    int n_threads;      /* workers + the caller */
    pthread_t *workers; /* [n_threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* workers wait here for a new generation */
    pthread_cond_t cv_done; /* the caller waits here for pending == 0 */
    atomic_uint gen;        /* bumped once per job; publishes the job fields */
    atomic_int stop;
    atomic_int pending; /* workers not yet done with the current job */
    atomic_llong next;  /* next chunk to claim */
    atomic_int busy;    /* a run is in progress (catches reentrant use) */
    lp_task_fn fn;      /* the current job, written before gen is bumped */
    void *ctx;
    int64_t n, grain, n_chunks;
};

static void run_chunks(struct lp_threadpool *p) {
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (c >= p->n_chunks) break;
        int64_t begin = c * p->grain;
        int64_t end = begin + p->grain < p->n ? begin + p->grain : p->n;
        p->fn(p->ctx, begin, end);
    }
}

static void *worker_main(void *arg) {
    struct lp_threadpool *p = arg;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen)
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (atomic_load(&p->stop)) return NULL;
        run_chunks(p);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

struct lp_threadpool *lp_threadpool_create(int n_threads) {
    ENSURE(n_threads >= 1);
    struct lp_threadpool *p = xcalloc(1, sizeof *p);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
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
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
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
    int64_t n_chunks = (n + grain - 1) / grain;
    if (p->n_threads == 1 || n_chunks == 1) {
        fn(ctx, 0, n); /* one chunk: no reason to wake anyone */
        return;
    }
    ENSURE(atomic_exchange(&p->busy, 1) == 0);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    p->n_chunks = n_chunks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    /* Bumping gen under the mutex means a worker either sees the new
     * generation before it waits or is already waiting for the broadcast. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);

    run_chunks(p);

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < SPIN_LIMIT) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    atomic_store(&p->busy, 0);
}
