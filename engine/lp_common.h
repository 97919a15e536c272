/* lp_common.h: what every engine and store file shares: the error enum,
 * the error-message buffer convention, the log callback, ENSURE and xmalloc.
 * The engine is a library: it never includes app/ and never exits on bad input. */
#ifndef LP_COMMON_H
#define LP_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Status codes: 0 is success, every failure is negative. */
enum lp_status {
    LP_OK = 0,
    LP_EINVAL = -1,       /* a caller passed something wrong */
    LP_ENOMEM = -2,       /* a large allocation failed; only this request fails */
    LP_EIO = -3,          /* a read, write, open or mmap failed */
    LP_EFORMAT = -4,      /* a file or payload does not follow its format */
    LP_EUNSUPPORTED = -5, /* valid, but not something we implement */
    LP_ENOTFOUND = -6,    /* a named thing does not exist */
    LP_EBUSY = -7,        /* a bounded queue or pool is full; try later */
    LP_ERANGE = -8,       /* a number is outside what we accept */
    LP_ECANCELED = -9,    /* the request was cancelled */
};

/* Returns a static string naming the status. */
const char *lp_strerror(int status);

/* Functions that can fail with a reason take `char *err` pointing at a buffer
 * of LP_ERR_LEN bytes (or NULL) and write one human sentence there. */
#define LP_ERR_LEN 256

#if defined(__GNUC__)
#define LP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LP_PRINTF(a, b)
#endif

/* Writes the message into err (if not NULL) and returns `status`, so that a
 * parser can say `return lp_err(err, LP_EFORMAT, "tensor %s: ...", name);`. */
int lp_err(char *err, int status, const char *fmt, ...) LP_PRINTF(3, 4);

/* Logging: the application installs one callback; the level is tested before
 * arguments are evaluated. */
enum lp_log_level { LP_LOG_ERROR = 0, LP_LOG_WARN = 1, LP_LOG_INFO = 2, LP_LOG_DEBUG = 3 };
typedef void (*lp_log_fn)(int level, const char *msg, void *user);
void lp_log_set(lp_log_fn fn, void *user, int max_level);
extern int lp_log_level_max;
void lp_log_write(int level, const char *fmt, ...) LP_PRINTF(2, 3);
#define LP_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= lp_log_level_max) lp_log_write((level), __VA_ARGS__);                       \
    } while (0)
#define LP_ERROR(...) LP_LOG(LP_LOG_ERROR, __VA_ARGS__)
#define LP_WARN(...) LP_LOG(LP_LOG_WARN, __VA_ARGS__)
#define LP_INFO(...) LP_LOG(LP_LOG_INFO, __VA_ARGS__)
#define LP_DEBUG(...) LP_LOG(LP_LOG_DEBUG, __VA_ARGS__)

/* Invariants are checked in every build: prints file, line, expression; aborts. */
void lp_ensure_fail(const char *file, int line, const char *expr);
#define ENSURE(x)                                                                                  \
    do {                                                                                           \
        if (!(x)) lp_ensure_fail(__FILE__, __LINE__, #x);                                          \
    } while (0)

/* Small bookkeeping allocations abort on failure; large ones use malloc and
 * return LP_ENOMEM to the request that needed them. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
static inline int lp_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}
static inline int lp_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

/* Monotonic clock in seconds. */
double lp_time_now(void);

#endif
