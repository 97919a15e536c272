/* test_gguf.c: the GGUF reader on small files built here in memory (valid
 * ones, then each kind of lie a hostile file can tell), and on the real
 * SmolLM2 model when it is present. */
#include "lp_test.h"

#include "lp_common.h"
#include "model/gguf.h"

/* ---- a tiny GGUF writer ---------------------------------------------------- */

struct wbuf {
    uint8_t *p;
    size_t n, cap;
};

static void w_bytes(struct wbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void w_u8(struct wbuf *b, uint8_t v) { w_bytes(b, &v, 1); }
static void w_u32(struct wbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(b, x, 4);
}
static void w_u64(struct wbuf *b, uint64_t v) {
    w_u32(b, (uint32_t)v);
    w_u32(b, (uint32_t)(v >> 32));
}
static void w_str(struct wbuf *b, const char *s) {
    w_u64(b, strlen(s));
    w_bytes(b, s, strlen(s));
}
static void w_key(struct wbuf *b, const char *key, uint32_t type) {
    w_str(b, key);
    w_u32(b, type);
}

struct tspec {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
};

/* What the builder writes; the zero value plus defaults() is a valid file. */
struct gspec {
    uint32_t version;
    int64_t alignment; /* < 0: no general.alignment key */
    int alignment_as_str;
    int dup_key, nested_array, bad_vtype, bad_bool;
    int n_tensors;
    struct tspec t[4];
    int64_t offset_delta[4]; /* added to the correct offset of tensor i */
    int swap_offsets;        /* give tensors 1 and 2 each other's offsets */
    uint64_t tensor_count_override, kv_count_override; /* 0: the real count */
};

static void defaults(struct gspec *s) {
    memset(s, 0, sizeof *s);
    s->version = 3;
    s->alignment = -1;
    s->n_tensors = 3;
    s->t[0] = (struct tspec){"w.f32", 2, {4, 2, 1, 1}, LP_TYPE_F32};
    s->t[1] = (struct tspec){"w.q8", 2, {32, 2, 1, 1}, LP_TYPE_Q8_0};
    s->t[2] = (struct tspec){"w.f16", 1, {3, 1, 1, 1}, LP_TYPE_F16};
}

static uint64_t pad(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static uint64_t spec_nbytes(const struct tspec *t) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < 4; d++)
        n *= t->ne[d];
    size_t nb = lp_type_nbytes((int)t->type, n);
    return nb ? nb : 64; /* invalid tensors still get some bytes */
}

/* Byte j of tensor i's data. */
static uint8_t pattern(int i, uint64_t j) { return (uint8_t)(i * 64 + j * 7 + 1); }

/* Builds the file; the last tensor ends exactly at the end of the buffer. */
static void build(const struct gspec *s, struct wbuf *b) {
    memset(b, 0, sizeof *b);
    w_bytes(b, "GGUF", 4);
    w_u32(b, s->version);
    w_u64(b, s->tensor_count_override ? s->tensor_count_override : (uint64_t)s->n_tensors);
    size_t kv_count_at = b->n;
    w_u64(b, 0);
    uint64_t n_kv = 0;
    w_key(b, "general.architecture", GGUF_TYPE_STRING), w_str(b, "llama"), n_kv++;
    w_key(b, "llama.block_count", GGUF_TYPE_UINT32), w_u32(b, 3), n_kv++;
    w_key(b, "llama.rope.freq_base", GGUF_TYPE_FLOAT32), w_u32(b, 0x461c4000), n_kv++; /* 1e4 */
    w_key(b, "test.f64", GGUF_TYPE_FLOAT64), w_u64(b, 0x3fe0000000000000ull), n_kv++;  /* 0.5 */
    w_key(b, "test.i8", GGUF_TYPE_INT8), w_u8(b, 0xfb), n_kv++;                        /* -5 */
    w_key(b, "test.u64", GGUF_TYPE_UINT64), w_u64(b, 1ull << 40), n_kv++;
    w_key(b, "tokenizer.ggml.add_bos_token", GGUF_TYPE_BOOL), w_u8(b, s->bad_bool ? 2 : 1), n_kv++;
    w_key(b, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY), w_u32(b, GGUF_TYPE_STRING), w_u64(b, 3);
    w_str(b, "a"), w_str(b, "bc"), w_str(b, ""), n_kv++;
    w_key(b, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY), w_u32(b, GGUF_TYPE_INT32), w_u64(b, 3);
    w_u32(b, 1), w_u32(b, 2), w_u32(b, (uint32_t)-3), n_kv++;
    if (s->alignment >= 0) {
        if (s->alignment_as_str)
            w_key(b, "general.alignment", GGUF_TYPE_STRING), w_str(b, "32");
        else
            w_key(b, "general.alignment", GGUF_TYPE_UINT32), w_u32(b, (uint32_t)s->alignment);
        n_kv++;
    }
    if (s->dup_key) w_key(b, "llama.block_count", GGUF_TYPE_UINT32), w_u32(b, 4), n_kv++;
    if (s->nested_array) {
        w_key(b, "test.nested", GGUF_TYPE_ARRAY), w_u32(b, GGUF_TYPE_ARRAY), w_u64(b, 1);
        w_u32(b, GGUF_TYPE_UINT8), w_u64(b, 1), w_u8(b, 0), n_kv++;
    }
    if (s->bad_vtype) w_key(b, "test.bad", 13), w_u32(b, 0), n_kv++;
    uint64_t kc = s->kv_count_override ? s->kv_count_override : n_kv;
    for (int k = 0; k < 8; k++)
        b->p[kv_count_at + k] = (uint8_t)(kc >> (8 * k));

    uint64_t align = s->alignment > 0 && !s->alignment_as_str ? (uint64_t)s->alignment : 32;
    uint64_t off[4], at = 0;
    for (int i = 0; i < s->n_tensors; i++) {
        off[i] = at;
        at = pad(at + spec_nbytes(&s->t[i]), align);
    }
    for (int i = 0; i < s->n_tensors; i++) {
        const struct tspec *t = &s->t[i];
        w_str(b, t->name);
        w_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            w_u64(b, d < 4 ? t->ne[d] : 1);
        w_u32(b, t->type);
        int j = s->swap_offsets && (i == 1 || i == 2) ? 3 - i : i;
        w_u64(b, off[j] + (uint64_t)s->offset_delta[i]);
    }
    if (s->n_tensors == 0) return;
    while (b->n % align)
        w_u8(b, 0);
    size_t data_start = b->n;
    /* Data at the true offsets; tensors claiming more than 1 MiB (the ones
     * meant to be refused) get 64 bytes, and no gap over 1 MiB is filled. */
    for (int i = 0; i < s->n_tensors; i++) {
        uint64_t nb = spec_nbytes(&s->t[i]);
        if (nb > (1u << 20)) nb = 64;
        uint64_t target = data_start + off[i];
        while (b->n < target && target - b->n < (1u << 20))
            w_u8(b, 0);
        for (uint64_t j = 0; j < nb; j++)
            w_u8(b, pattern(i, j));
    }
}

/* Opens a private, exactly-sized copy, so ASan sees any read past the end.
 * On success *copy is the buffer to free after gguf_close. */
static int open_copy(const struct wbuf *b, size_t len, struct gguf_ctx **ctx, char *err,
                     uint8_t **copy) {
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len) memcpy(*copy, b->p, len);
    int rc = gguf_open_memory(*copy, len, ctx, err);
    if (rc != 0) {
        free(*copy);
        *copy = NULL;
    }
    return rc;
}

/* The spec must be refused, with a message that contains `want`. */
static void expect_fail(const struct gspec *s, const char *want) {
    struct wbuf b;
    build(s, &b);
    struct gguf_ctx *ctx = NULL;
    char err[LP_ERR_LEN] = "";
    uint8_t *copy;
    int rc = open_copy(&b, b.n, &ctx, err, &copy);
    if (rc == 0) fail_msg("accepted a file that should fail with '%s'", want);
    assert_null(ctx);
    if (want && !strstr(err, want)) fail_msg("error '%s' does not mention '%s'", err, want);
    free(b.p);
}

/* ---- valid files ----------------------------------------------------------- */

static void check_valid(struct gguf_ctx *ctx, const uint8_t *base, uint64_t align, int64_t n_kv) {
    assert_int_equal(gguf_kv_count(ctx), n_kv);
    struct gguf_str s;
    assert_int_equal(gguf_get_str(ctx, "general.architecture", &s), 0);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    uint32_t u;
    assert_int_equal(gguf_get_u32(ctx, "llama.block_count", &u), 0);
    assert_int_equal(u, 3);
    float f;
    assert_int_equal(gguf_get_f32(ctx, "llama.rope.freq_base", &f), 0);
    assert_true(f == 10000.0f);
    assert_int_equal(gguf_get_f32(ctx, "test.f64", &f), 0);
    assert_true(f == 0.5f);
    int64_t i64;
    assert_int_equal(gguf_get_i64(ctx, "test.i8", &i64), 0);
    assert_int_equal(i64, -5);
    assert_int_equal(gguf_get_u32(ctx, "test.i8", &u), LP_EFORMAT);  /* negative */
    assert_int_equal(gguf_get_u32(ctx, "test.u64", &u), LP_EFORMAT); /* too large */
    assert_int_equal(gguf_get_i64(ctx, "test.u64", &i64), 0);
    assert_int_equal(i64, 1ll << 40);
    assert_int_equal(gguf_get_u32(ctx, "general.architecture", &u), LP_EFORMAT);
    assert_int_equal(gguf_get_f32(ctx, "llama.block_count", &f), LP_EFORMAT);
    assert_int_equal(gguf_get_u32(ctx, "no.such.key", &u), LP_ENOTFOUND);
    assert_int_equal(gguf_kv_find(ctx, "no.such.key"), -1);
    assert_int_equal(gguf_kv_find(ctx, "llama"), -1);
    int bv = 0;
    assert_int_equal(gguf_get_bool(ctx, "tokenizer.ggml.add_bos_token", &bv), 0);
    assert_int_equal(bv, 1);
    int64_t ki = gguf_kv_find(ctx, "tokenizer.ggml.tokens");
    assert_int_equal(ki, 7);
    assert_int_equal(gguf_kv_type(ctx, ki), GGUF_TYPE_ARRAY);
    struct gguf_str k = gguf_kv_key(ctx, ki);
    assert_int_equal(k.len, strlen("tokenizer.ggml.tokens"));
    int et;
    uint64_t n;
    assert_int_equal(gguf_get_arr(ctx, "tokenizer.ggml.tokens", &et, &n), 0);
    assert_int_equal(et, GGUF_TYPE_STRING);
    assert_int_equal(n, 3);
    s = gguf_arr_str(ctx, "tokenizer.ggml.tokens", 1);
    assert_int_equal(s.len, 2);
    assert_memory_equal(s.ptr, "bc", 2);
    assert_int_equal(gguf_arr_str(ctx, "tokenizer.ggml.tokens", 2).len, 0);
    assert_null(gguf_arr_str(ctx, "tokenizer.ggml.tokens", 3).ptr);
    assert_null(gguf_arr_data(ctx, "tokenizer.ggml.tokens"));
    assert_int_equal(gguf_get_arr(ctx, "tokenizer.ggml.token_type", &et, &n), 0);
    assert_int_equal(et, GGUF_TYPE_INT32);
    const uint8_t *tt = gguf_arr_data(ctx, "tokenizer.ggml.token_type");
    assert_non_null(tt);
    int32_t v3;
    memcpy(&v3, tt + 8, 4);
    assert_int_equal(v3, -3);

    assert_int_equal(gguf_tensor_count(ctx), 3);
    assert_int_equal(gguf_tensor_find(ctx, "w.q8"), 1);
    assert_int_equal(gguf_tensor_find(ctx, "w"), -1);
    struct lp_tensor t;
    static const struct {
        const char *name;
        int type, n_dims;
        int64_t ne0, ne1;
        size_t nbytes;
    } want[3] = {{"w.f32", LP_TYPE_F32, 2, 4, 2, 32},
                 {"w.q8", LP_TYPE_Q8_0, 2, 32, 2, 68},
                 {"w.f16", LP_TYPE_F16, 1, 3, 1, 6}};
    const uint8_t *first = NULL;
    for (int i = 0; i < 3; i++) {
        gguf_tensor_get(ctx, i, &t);
        assert_string_equal(t.name, want[i].name);
        assert_int_equal(t.type, want[i].type);
        assert_int_equal(t.n_dims, want[i].n_dims);
        assert_int_equal(t.ne[0], want[i].ne0);
        assert_int_equal(t.ne[1], want[i].ne1);
        assert_int_equal(t.ne[2], 1);
        assert_int_equal(t.ne[3], 1);
        assert_int_equal(t.nbytes, want[i].nbytes);
        const uint8_t *d = t.data;
        if (i == 0) first = d;
        assert_int_equal((size_t)(d - base) % align, 0);
        assert_int_equal((size_t)(d - first) % align, 0);
        for (size_t j = 0; j < t.nbytes; j++)
            assert_int_equal(d[j], pattern(i, j));
    }
}

static void test_valid(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    struct wbuf b;
    build(&s, &b);
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN] = "";
    int rc = gguf_open_memory(b.p, b.n, &ctx, err);
    if (rc != 0) fail_msg("open: %s", err);
    assert_int_equal(gguf_version(ctx), 3);
    check_valid(ctx, b.p, 32, 9);
    gguf_close(ctx);
    free(b.p);

    /* Version 2 and a 64-byte alignment read the same way. */
    s.version = 2;
    s.alignment = 64;
    build(&s, &b);
    rc = gguf_open_memory(b.p, b.n, &ctx, err);
    if (rc != 0) fail_msg("open v2: %s", err);
    assert_int_equal(gguf_version(ctx), 2);
    check_valid(ctx, b.p, 64, 10);
    gguf_close(ctx);
    free(b.p);
    gguf_close(NULL);
}

static void test_no_tensors(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.n_tensors = 0;
    struct wbuf b;
    build(&s, &b);
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN] = "";
    int rc = gguf_open_memory(b.p, b.n, &ctx, err);
    if (rc != 0) fail_msg("open: %s", err);
    assert_int_equal(gguf_tensor_count(ctx), 0);
    assert_int_equal(gguf_tensor_find(ctx, "w.f32"), -1);
    gguf_close(ctx);
    free(b.p);
}

static void test_open_file(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    struct wbuf b;
    build(&s, &b);
    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b.p, b.n), (ssize_t)b.n);
    close(fd);
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN] = "";
    int rc = gguf_open(path, &ctx, err);
    if (rc != 0) fail_msg("open: %s", err);
    struct lp_tensor t;
    gguf_tensor_get(ctx, 2, &t);
    assert_int_equal(((uintptr_t)t.data) % 32, 0); /* mmap is page-aligned */
    assert_int_equal(((const uint8_t *)t.data)[5], pattern(2, 5));
    gguf_close(ctx);
    /* A truncated file on disk fails and names the path. */
    assert_int_equal(truncate(path, (off_t)b.n - 1), 0);
    rc = gguf_open(path, &ctx, err);
    assert_int_equal(rc, LP_EFORMAT);
    assert_non_null(strstr(err, path));
    unlink(path);
    assert_int_equal(gguf_open("/nonexistent/x.gguf", &ctx, err), LP_EIO);
    assert_null(ctx);
    free(b.p);
}

/* ---- hostile files --------------------------------------------------------- */

static void test_truncated_everywhere(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    struct wbuf b;
    build(&s, &b);
    for (size_t len = 0; len < b.n; len++) {
        struct gguf_ctx *ctx = NULL;
        char err[LP_ERR_LEN] = "";
        uint8_t *copy;
        int rc = open_copy(&b, len, &ctx, err, &copy);
        if (rc == 0) fail_msg("accepted a file truncated to %zu of %zu bytes", len, b.n);
        assert_true(rc < 0);
        assert_true(err[0] != '\0');
    }
    struct gguf_ctx *ctx = NULL;
    char err[LP_ERR_LEN];
    uint8_t *copy;
    assert_int_equal(open_copy(&b, b.n, &ctx, err, &copy), 0);
    gguf_close(ctx);
    free(copy);
    free(b.p);
}

static void test_header(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.version = 1;
    expect_fail(&s, "version 1");
    s.version = 4;
    expect_fail(&s, "version 4");
    s.version = 0x03000000;
    expect_fail(&s, "big-endian");
    defaults(&s);
    struct wbuf b;
    build(&s, &b);
    b.p[0] = 'X';
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN];
    assert_int_equal(gguf_open_memory(b.p, b.n, &ctx, err), LP_EFORMAT);
    assert_non_null(strstr(err, "magic"));
    free(b.p);
}

static void test_counts(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.kv_count_override = 1ull << 60;
    expect_fail(&s, "kv_count");
    s.kv_count_override = 0;
    s.tensor_count_override = 1ull << 60;
    expect_fail(&s, "tensor_count");
    s.tensor_count_override = UINT64_MAX;
    expect_fail(&s, "tensor_count");
    /* One more than written: the reader runs into the data section. */
    s.tensor_count_override = 4;
    expect_fail(&s, NULL);
    s.tensor_count_override = 0;
    s.kv_count_override = 10;
    expect_fail(&s, NULL);
}

/* Patches the 8-byte length just before the first occurrence of `needle`. */
static void patch_len_before(struct wbuf *b, const char *needle, size_t back, uint64_t v) {
    size_t n = strlen(needle);
    for (size_t i = 8; i + n <= b->n; i++) {
        if (memcmp(b->p + i, needle, n) == 0) {
            for (int k = 0; k < 8; k++)
                b->p[i - back + k] = (uint8_t)(v >> (8 * k));
            return;
        }
    }
    fail_msg("needle %s not found", needle);
}

static void expect_patched_fail(struct wbuf *b, const char *want) {
    struct gguf_ctx *ctx = NULL;
    char err[LP_ERR_LEN] = "";
    uint8_t *copy;
    int rc = open_copy(b, b->n, &ctx, err, &copy);
    if (rc == 0) fail_msg("accepted a patched file that should fail with '%s'", want);
    assert_int_equal(rc, LP_EFORMAT); /* a lie, not an allocation failure */
    if (want && !strstr(err, want)) fail_msg("error '%s' does not mention '%s'", err, want);
}

static void test_lying_lengths(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    uint64_t lies[] = {UINT64_MAX, 1ull << 63, 1ull << 32, 100000};
    for (size_t l = 0; l < sizeof lies / sizeof lies[0]; l++) {
        struct wbuf b;
        /* A key length. */
        build(&s, &b);
        patch_len_before(&b, "general.architecture", 8, lies[l]);
        expect_patched_fail(&b, "kv 0");
        free(b.p);
        /* A string value length: after the key and its 4-byte type. */
        build(&s, &b);
        patch_len_before(&b, "llama", 8, lies[l]); /* "llama" value comes first */
        expect_patched_fail(&b, NULL);
        free(b.p);
        /* An array count (before the first element "a": 8 len + 8 count). */
        build(&s, &b);
        {
            /* element type at key end, then count */
            size_t n = strlen("tokenizer.ggml.tokens");
            for (size_t i = 0; i + n <= b.n; i++)
                if (memcmp(b.p + i, "tokenizer.ggml.tokens", n) == 0) {
                    size_t at = i + n + 4 + 4; /* type, element type */
                    for (int k = 0; k < 8; k++)
                        b.p[at + k] = (uint8_t)(lies[l] >> (8 * k));
                    break;
                }
        }
        expect_patched_fail(&b, "tokenizer.ggml.tokens");
        free(b.p);
        /* A numeric array count. */
        build(&s, &b);
        {
            size_t n = strlen("tokenizer.ggml.token_type");
            for (size_t i = 0; i + n <= b.n; i++)
                if (memcmp(b.p + i, "tokenizer.ggml.token_type", n) == 0) {
                    size_t at = i + n + 4 + 4;
                    for (int k = 0; k < 8; k++)
                        b.p[at + k] = (uint8_t)(lies[l] >> (8 * k));
                    break;
                }
        }
        expect_patched_fail(&b, "tokenizer.ggml.token_type");
        free(b.p);
        /* A tensor name length. */
        build(&s, &b);
        patch_len_before(&b, "w.q8", 8, lies[l]);
        expect_patched_fail(&b, "tensor 1");
        free(b.p);
    }
}

static void test_kv_errors(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.dup_key = 1;
    expect_fail(&s, "llama.block_count");
    defaults(&s);
    s.nested_array = 1;
    expect_fail(&s, "test.nested");
    defaults(&s);
    s.bad_vtype = 1;
    expect_fail(&s, "test.bad");
    defaults(&s);
    s.bad_bool = 1;
    expect_fail(&s, "tokenizer.ggml.add_bos_token");
}

static void test_alignment(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.alignment = 3;
    expect_fail(&s, "general.alignment");
    s.alignment = 0;
    expect_fail(&s, "general.alignment");
    s.alignment = 48;
    expect_fail(&s, "power of two");
    defaults(&s);
    s.alignment = 32;
    s.alignment_as_str = 1;
    expect_fail(&s, "general.alignment");
    /* A 1-byte alignment is legal: tensors are packed. */
    defaults(&s);
    s.alignment = 1;
    struct wbuf b;
    build(&s, &b);
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN];
    int rc = gguf_open_memory(b.p, b.n, &ctx, err);
    if (rc != 0) fail_msg("open: %s", err);
    struct lp_tensor t;
    gguf_tensor_get(ctx, 2, &t);
    assert_int_equal(((const uint8_t *)t.data)[0], pattern(2, 0));
    gguf_close(ctx);
    free(b.p);
}

static void test_offsets(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.offset_delta[1] = -32; /* overlaps tensor 0 */
    expect_fail(&s, "tensor w.q8: offset 0 != expected 32");
    defaults(&s);
    s.offset_delta[1] = 1; /* misaligned */
    expect_fail(&s, "tensor w.q8: offset 33 != expected 32");
    defaults(&s);
    s.offset_delta[2] = 32; /* a gap */
    expect_fail(&s, "w.f16");
    defaults(&s);
    s.offset_delta[0] = 32; /* first tensor not at 0 */
    expect_fail(&s, "w.f32");
    defaults(&s);
    s.swap_offsets = 1; /* out of order */
    expect_fail(&s, "w.q8");
    defaults(&s);
    s.offset_delta[2] = (int64_t)(UINT64_MAX - 1000); /* wraps around */
    expect_fail(&s, "w.f16");
}

static void test_tensor_errors(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    s.t[1].type = 7; /* Q5_1: a GGML type we do not implement */
    expect_fail(&s, "w.q8: type 7");
    s.t[1].type = 200;
    expect_fail(&s, "type 200");
    s.t[1].type = UINT32_MAX;
    expect_fail(&s, "w.q8");
    defaults(&s);
    s.t[2].name = "w.f32";
    expect_fail(&s, "tensor w.f32: name appears twice");
    defaults(&s);
    s.t[0].name = "";
    expect_fail(&s, "empty name");
    defaults(&s);
    s.t[0].n_dims = 0;
    expect_fail(&s, "n_dims 0");
    s.t[0].n_dims = 5;
    expect_fail(&s, "n_dims 5");
    defaults(&s);
    s.t[0].ne[1] = 0;
    expect_fail(&s, "w.f32: dim 1 is 0");
    defaults(&s);
    s.t[0].n_dims = 3;
    s.t[0].ne[0] = s.t[0].ne[1] = s.t[0].ne[2] = 1ull << 32;
    expect_fail(&s, "overflow");
    s.t[0].n_dims = 1;
    s.t[0].ne[0] = 1ull << 63;
    expect_fail(&s, "w.f32");
    s.t[0].ne[0] = 1ull << 62; /* elements fit, bytes do not */
    expect_fail(&s, "w.f32");
    s.t[0].ne[0] = 1ull << 40; /* bytes fit in size_t, not in the file */
    expect_fail(&s, "past the end");
    defaults(&s);
    s.t[1].ne[0] = 16; /* Q8_0 blocks are 32 */
    expect_fail(&s, "w.q8: ne[0] = 16");
    defaults(&s);
    s.t[1].ne[0] = 32;
    s.t[1].ne[1] = 1ull << 58; /* a huge tensor of whole blocks */
    expect_fail(&s, "w.q8");
}

static void test_long_name(void **state) {
    (void)state;
    struct gspec s;
    defaults(&s);
    char *name = malloc(70000);
    assert_non_null(name);
    memset(name, 'n', 69999);
    name[69999] = '\0';
    s.t[0].name = name;
    expect_fail(&s, "longer than");
    name[1000] = '\0'; /* 1000 bytes is fine */
    struct wbuf b;
    build(&s, &b);
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN];
    int rc = gguf_open_memory(b.p, b.n, &ctx, err);
    if (rc != 0) fail_msg("open: %s", err);
    assert_int_equal(gguf_tensor_find(ctx, name), 0);
    gguf_close(ctx);
    free(b.p);
    free(name);
}

/* ---- the real model -------------------------------------------------------- */

static void test_real_model(void **state) {
    (void)state;
    const char *path = lp_test_path("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lp_test_exists(path)) LP_SKIP("%s not present (run ./build.sh)", path);
    struct gguf_ctx *ctx;
    char err[LP_ERR_LEN];
    int rc = gguf_open(path, &ctx, err);
    if (rc != 0) fail_msg("open: %s", err);
    assert_int_equal(gguf_version(ctx), 3);
    assert_int_equal(gguf_tensor_count(ctx), 272);
    assert_int_equal(gguf_kv_count(ctx), 33);
    uint32_t u;
    assert_int_equal(gguf_get_u32(ctx, "llama.block_count", &u), 0);
    assert_int_equal(u, 30);
    assert_int_equal(gguf_get_u32(ctx, "llama.embedding_length", &u), 0);
    assert_int_equal(u, 576);
    struct gguf_str s;
    assert_int_equal(gguf_get_str(ctx, "general.architecture", &s), 0);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    int et;
    uint64_t n;
    assert_int_equal(gguf_get_arr(ctx, "tokenizer.ggml.tokens", &et, &n), 0);
    assert_int_equal(et, GGUF_TYPE_STRING);
    assert_int_equal(n, 49152);
    assert_non_null(gguf_arr_str(ctx, "tokenizer.ggml.tokens", 49151).ptr);
    int64_t i = gguf_tensor_find(ctx, "token_embd.weight");
    assert_true(i >= 0);
    struct lp_tensor t;
    gguf_tensor_get(ctx, i, &t);
    assert_string_equal(t.name, "token_embd.weight");
    assert_int_equal(t.type, LP_TYPE_Q8_0);
    assert_int_equal(t.n_dims, 2);
    assert_int_equal(t.ne[0], 576);
    assert_int_equal(t.ne[1], 49152);
    assert_int_equal(t.nbytes, (size_t)576 / 32 * 34 * 49152);
    /* Every tensor is findable by its name and of a supported type. */
    for (int64_t k = 0; k < gguf_tensor_count(ctx); k++) {
        gguf_tensor_get(ctx, k, &t);
        assert_int_equal(gguf_tensor_find(ctx, t.name), k);
        assert_non_null(lp_type_get(t.type));
    }
    gguf_close(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),         cmocka_unit_test(test_no_tensors),
        cmocka_unit_test(test_open_file),     cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_header),        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_lying_lengths), cmocka_unit_test(test_kv_errors),
        cmocka_unit_test(test_alignment),     cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_tensor_errors), cmocka_unit_test(test_long_name),
        cmocka_unit_test(test_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
