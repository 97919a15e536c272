/* lp_common.c: error strings, the log callback, ENSURE and the aborting
 * allocators shared by engine/ and store/. */
#define _POSIX_C_SOURCE 200809L
#include "lp_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int lp_log_level_max = LP_LOG_INFO;
static lp_log_fn log_fn;
static void *log_user;

const char *lp_strerror(int status) {
    switch (status) {
    case LP_OK: return "ok";
    case LP_EINVAL: return "invalid argument";
    case LP_ENOMEM: return "out of memory";
    case LP_EIO: return "i/o error";
    case LP_EFORMAT: return "bad format";
    case LP_EUNSUPPORTED: return "unsupported";
    case LP_ENOTFOUND: return "not found";
    case LP_EBUSY: return "busy";
    case LP_ERANGE: return "out of range";
    case LP_ECANCELED: return "cancelled";
    default: return "unknown error";
    }
}

int lp_err(char *err, int status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, LP_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return status;
}

void lp_log_set(lp_log_fn fn, void *user, int max_level) {
    log_fn = fn;
    log_user = user;
    lp_log_level_max = max_level;
}

void lp_log_write(int level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(level, buf, log_user);
    } else {
        static const char *names[] = {"error", "warn", "info", "debug"};
        fprintf(stderr, "loraplex %s: %s\n", names[level & 3], buf);
    }
}

void lp_ensure_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "%s:%d: ENSURE(%s) failed\n", file, line, expr);
    fflush(stderr);
    abort();
}

static void oom(size_t n) {
    fprintf(stderr, "loraplex: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

double lp_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
