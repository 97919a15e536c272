/* gguf.c: a validating reader for GGUF v2/v3 files. The file is untrusted:
 * every count, length and offset is checked against the bytes that remain
 * before it is used, and every read goes through memcpy (the file is
 * little-endian and its fields are unaligned). Written by hand because no
 * well-kept C library reads GGUF without also bringing ggml along. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lp_common.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME (64 * 1024) /* tensor names longer than this are refused */
#define GGUF_HEADER_BYTES 24      /* magic, version, tensor_count, kv_count */
#define GGUF_MIN_KV_BYTES 13      /* key length, type, one-byte value */
#define GGUF_MIN_TENSOR_BYTES 32  /* name length, n_dims, one dim, type, offset */

struct gguf_kv {
    struct gguf_str key;
    int type;              /* enum gguf_vtype */
    const uint8_t *val;    /* scalar value bytes, or first array element */
    struct gguf_str str;   /* GGUF_TYPE_STRING */
    int arr_type;          /* GGUF_TYPE_ARRAY: element type */
    uint64_t arr_n;        /* GGUF_TYPE_ARRAY: element count */
    struct gguf_str *strs; /* string arrays: arr_n entries, owned */
};

struct gguf_tensor {
    char *name; /* owned, NUL-terminated copy */
    int type;
    int n_dims;
    int64_t ne[LP_MAX_DIMS];
    uint64_t offset; /* from the start of the data section */
    size_t nbytes;
};

/* A name and the index it belongs to, sorted for duplicate checks and lookup. */
struct gguf_name {
    const char *ptr;
    uint64_t len;
    int64_t idx;
};

struct gguf_ctx {
    const uint8_t *data; /* the whole file */
    size_t size;
    int mapped; /* data came from mmap and is unmapped at close */
    uint32_t version;
    uint64_t alignment;
    size_t data_start; /* offset of the data section in the file */
    int64_t n_kv;
    struct gguf_kv *kv;
    struct gguf_name *kv_sorted;
    int64_t n_tensors;
    struct gguf_tensor *tensors;
    struct gguf_name *t_sorted;
};

/* A bounded cursor over the file. */
struct gguf_reader {
    const uint8_t *p;
    size_t size;
    size_t pos;
};

static size_t reader_left(const struct gguf_reader *r) { return r->size - r->pos; }

static int reader_bytes(struct gguf_reader *r, void *dst, size_t n) {
    if (n > reader_left(r)) return -1;
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static int reader_u32(struct gguf_reader *r, uint32_t *v) {
    uint8_t b[4];
    if (reader_bytes(r, b, 4) != 0) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int reader_u64(struct gguf_reader *r, uint64_t *v) {
    uint32_t lo, hi;
    if (reader_u32(r, &lo) != 0 || reader_u32(r, &hi) != 0) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* A length-prefixed string; the length is bounded by what remains. */
static int reader_str(struct gguf_reader *r, struct gguf_str *s) {
    uint64_t len;
    if (reader_u64(r, &len) != 0) return -1;
    if (len > reader_left(r)) return -2;
    s->ptr = (const char *)(r->p + r->pos);
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

static int vtype_size(int type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0; /* string, array or invalid */
    }
}

static int vtype_valid(uint32_t type) { return type <= GGUF_TYPE_FLOAT64; }

/* Prints at most 64 bytes of a file string, replacing what is not printable,
 * so that error messages stay one readable line. */
static const char *str_show(struct gguf_str s, char buf[80]) {
    size_t n = s.len < 64 ? (size_t)s.len : 64, j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s.len > 64) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

static int name_cmp(const void *a, const void *b) {
    const struct gguf_name *x = a, *y = b;
    uint64_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->ptr, y->ptr, (size_t)n) : 0;
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Binary search of a sorted name table; -1 when absent. */
static int64_t name_find(const struct gguf_name *t, int64_t n, const char *name) {
    struct gguf_name key = {name, strlen(name), -1};
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(&t[mid], &key);
        if (c == 0) return t[mid].idx;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Sorts names and returns the index of the first of a duplicate pair, or -1. */
static int64_t name_sort_dup(struct gguf_name *t, int64_t n) {
    if (n > 1) qsort(t, (size_t)n, sizeof *t, name_cmp);
    for (int64_t i = 1; i < n; i++)
        if (name_cmp(&t[i - 1], &t[i]) == 0) return i;
    return -1;
}

static int parse_kv(struct gguf_ctx *ctx, struct gguf_reader *r, int64_t i, char *err) {
    struct gguf_kv *kv = &ctx->kv[i];
    char show[80];
    int rc = reader_str(r, &kv->key);
    if (rc == -1) return lp_err(err, LP_EFORMAT, "kv %lld: file ends inside the key", (long long)i);
    if (rc == -2)
        return lp_err(err, LP_EFORMAT, "kv %lld: key length exceeds the file", (long long)i);
    if (kv->key.len == 0) return lp_err(err, LP_EFORMAT, "kv %lld: empty key", (long long)i);
    const char *key = str_show(kv->key, show);
    uint32_t type;
    if (reader_u32(r, &type) != 0)
        return lp_err(err, LP_EFORMAT, "key %s: file ends before the value type", key);
    if (!vtype_valid(type))
        return lp_err(err, LP_EFORMAT, "key %s: invalid value type %u", key, type);
    kv->type = (int)type;
    kv->val = r->p + r->pos;
    if (type == GGUF_TYPE_STRING) {
        rc = reader_str(r, &kv->str);
        if (rc != 0) return lp_err(err, LP_EFORMAT, "key %s: string length exceeds the file", key);
        return 0;
    }
    if (type != GGUF_TYPE_ARRAY) {
        uint8_t v[8];
        if (reader_bytes(r, v, (size_t)vtype_size((int)type)) != 0)
            return lp_err(err, LP_EFORMAT, "key %s: file ends inside the value", key);
        if (type == GGUF_TYPE_BOOL && v[0] > 1)
            return lp_err(err, LP_EFORMAT, "key %s: bool value %u is not 0 or 1", key, v[0]);
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (reader_u32(r, &et) != 0 || reader_u64(r, &n) != 0)
        return lp_err(err, LP_EFORMAT, "key %s: file ends inside the array header", key);
    if (et == GGUF_TYPE_ARRAY)
        return lp_err(err, LP_EUNSUPPORTED, "key %s: nested arrays are not supported", key);
    if (!vtype_valid(et))
        return lp_err(err, LP_EFORMAT, "key %s: invalid array element type %u", key, et);
    kv->arr_type = (int)et;
    kv->arr_n = n;
    kv->val = r->p + r->pos;
    if (et != GGUF_TYPE_STRING) {
        uint64_t es = (uint64_t)vtype_size((int)et);
        if (n > reader_left(r) / es)
            return lp_err(err, LP_EFORMAT, "key %s: array of %llu elements exceeds the file", key,
                          (unsigned long long)n);
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t j = 0; j < n; j++)
                if (kv->val[j] > 1)
                    return lp_err(err, LP_EFORMAT, "key %s: element %llu: bool value %u", key,
                                  (unsigned long long)j, kv->val[j]);
        r->pos += (size_t)(n * es);
        return 0;
    }
    /* Every string takes at least its 8-byte length. */
    if (n > reader_left(r) / 8)
        return lp_err(err, LP_EFORMAT, "key %s: array of %llu strings exceeds the file", key,
                      (unsigned long long)n);
    kv->strs = malloc(n ? (size_t)n * sizeof *kv->strs : 1);
    if (!kv->strs)
        return lp_err(err, LP_ENOMEM, "key %s: out of memory for %llu strings", key,
                      (unsigned long long)n);
    for (uint64_t j = 0; j < n; j++)
        if (reader_str(r, &kv->strs[j]) != 0)
            return lp_err(err, LP_EFORMAT, "key %s: string %llu exceeds the file", key,
                          (unsigned long long)j);
    return 0;
}

static int parse_tensor(struct gguf_ctx *ctx, struct gguf_reader *r, int64_t i, char *err) {
    struct gguf_tensor *t = &ctx->tensors[i];
    struct gguf_str name;
    int rc = reader_str(r, &name);
    if (rc == -1)
        return lp_err(err, LP_EFORMAT, "tensor %lld: file ends inside the name", (long long)i);
    if (rc == -2)
        return lp_err(err, LP_EFORMAT, "tensor %lld: name length exceeds the file", (long long)i);
    if (name.len == 0) return lp_err(err, LP_EFORMAT, "tensor %lld: empty name", (long long)i);
    if (name.len > GGUF_MAX_NAME)
        return lp_err(err, LP_EFORMAT, "tensor %lld: name of %llu bytes is longer than %d",
                      (long long)i, (unsigned long long)name.len, GGUF_MAX_NAME);
    if (memchr(name.ptr, '\0', (size_t)name.len))
        return lp_err(err, LP_EFORMAT, "tensor %lld: name contains a NUL byte", (long long)i);
    t->name = xstrndup(name.ptr, (size_t)name.len);
    const char *nm = t->name;
    char show[80];
    if (name.len > 64) nm = str_show(name, show);

    uint32_t n_dims;
    if (reader_u32(r, &n_dims) != 0)
        return lp_err(err, LP_EFORMAT, "tensor %s: file ends before n_dims", nm);
    if (n_dims < 1 || n_dims > LP_MAX_DIMS)
        return lp_err(err, LP_EFORMAT, "tensor %s: n_dims %u is not in 1..%d", nm, n_dims,
                      LP_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t nelem = 1;
    for (int d = 0; d < LP_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if (reader_u64(r, &ne) != 0)
            return lp_err(err, LP_EFORMAT, "tensor %s: file ends inside the dims", nm);
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return lp_err(err, LP_EFORMAT, "tensor %s: dim %u is %llu", nm, d,
                          (unsigned long long)ne);
        if (nelem > (uint64_t)INT64_MAX / ne)
            return lp_err(err, LP_EFORMAT, "tensor %s: element count overflows", nm);
        nelem *= ne;
        t->ne[d] = (int64_t)ne;
    }
    uint32_t type;
    if (reader_u32(r, &type) != 0 || reader_u64(r, &t->offset) != 0)
        return lp_err(err, LP_EFORMAT, "tensor %s: file ends before type and offset", nm);
    const struct lp_type_traits *tt = lp_type_get((int)type);
    if (type > INT32_MAX || !tt)
        return lp_err(err, LP_EUNSUPPORTED, "tensor %s: type %u is not supported", nm, type);
    t->type = (int)type;
    if ((uint64_t)t->ne[0] % (uint64_t)tt->block_elems != 0)
        return lp_err(err, LP_EFORMAT, "tensor %s: ne[0] = %lld is not a multiple of %s's block %d",
                      nm, (long long)t->ne[0], tt->name, tt->block_elems);
    t->nbytes = lp_type_nbytes(t->type, nelem);
    if (t->nbytes == 0) return lp_err(err, LP_EFORMAT, "tensor %s: byte size overflows", nm);
    return 0;
}

/* Integer value of a scalar kv, when it has an integer type. */
static int kv_int(const struct gguf_kv *kv, int *is_signed, uint64_t *u, int64_t *s) {
    const uint8_t *p = kv->val;
    *is_signed = 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: *u = p[0]; return 0;
    case GGUF_TYPE_UINT16: *u = (uint64_t)p[0] | (uint64_t)p[1] << 8; return 0;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64: {
        int n = vtype_size(kv->type);
        *u = 0;
        for (int b = 0; b < n; b++)
            *u |= (uint64_t)p[b] << (8 * b);
        return 0;
    }
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64: {
        int n = vtype_size(kv->type);
        uint64_t x = 0;
        for (int b = 0; b < n; b++)
            x |= (uint64_t)p[b] << (8 * b);
        if (n < 8 && (x >> (8 * n - 1)) & 1) x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        memcpy(s, &x, 8);
        *is_signed = 1;
        return 0;
    }
    default: return -1;
    }
}

static int find_alignment(struct gguf_ctx *ctx, char *err) {
    uint32_t a;
    int rc = gguf_get_u32(ctx, "general.alignment", &a);
    if (rc == LP_ENOTFOUND) {
        ctx->alignment = GGUF_DEFAULT_ALIGNMENT;
        return 0;
    }
    if (rc != 0)
        return lp_err(err, LP_EFORMAT, "key general.alignment: not a 32-bit unsigned integer");
    if (a == 0 || (a & (a - 1)) != 0)
        return lp_err(err, LP_EFORMAT, "key general.alignment: %u is not a power of two", a);
    ctx->alignment = a;
    return 0;
}

static int parse(struct gguf_ctx *ctx, char *err) {
    struct gguf_reader r = {ctx->data, ctx->size, 0};
    char magic[4];
    if (ctx->size < GGUF_HEADER_BYTES)
        return lp_err(err, LP_EFORMAT, "file of %zu bytes is too small for a GGUF header",
                      ctx->size);
    reader_bytes(&r, magic, 4);
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return lp_err(err, LP_EFORMAT, "not a GGUF file (bad magic)");
    reader_u32(&r, &ctx->version);
    if (ctx->version == 1)
        return lp_err(err, LP_EUNSUPPORTED, "GGUF version 1 is not supported (only 2 and 3)");
    if (ctx->version != 2 && ctx->version != 3) {
        if ((ctx->version & 0xffff) == 0)
            return lp_err(err, LP_EUNSUPPORTED, "GGUF version 0x%08x: a big-endian file?",
                          ctx->version);
        return lp_err(err, LP_EUNSUPPORTED, "GGUF version %u is not supported (only 2 and 3)",
                      ctx->version);
    }
    uint64_t n_tensors = 0, n_kv = 0; /* both read: the header size was checked */
    reader_u64(&r, &n_tensors);
    reader_u64(&r, &n_kv);
    /* Each record takes a minimum of bytes; counts that could not fit in the
     * rest of the file are lies, caught before anything is allocated. */
    uint64_t left = reader_left(&r);
    if (n_kv > left / GGUF_MIN_KV_BYTES)
        return lp_err(err, LP_EFORMAT, "kv_count %llu cannot fit in the file",
                      (unsigned long long)n_kv);
    if (n_tensors > left / GGUF_MIN_TENSOR_BYTES ||
        n_kv * GGUF_MIN_KV_BYTES + n_tensors * GGUF_MIN_TENSOR_BYTES > left)
        return lp_err(err, LP_EFORMAT, "tensor_count %llu cannot fit in the file",
                      (unsigned long long)n_tensors);

    ctx->kv = xcalloc(n_kv ? (size_t)n_kv : 1, sizeof *ctx->kv);
    ctx->n_kv = (int64_t)n_kv;
    for (int64_t i = 0; i < ctx->n_kv; i++) {
        int rc = parse_kv(ctx, &r, i, err);
        if (rc != 0) return rc; /* gguf_close frees the entries parsed so far */
    }
    ctx->kv_sorted = xmalloc((n_kv ? (size_t)n_kv : 1) * sizeof *ctx->kv_sorted);
    for (int64_t i = 0; i < ctx->n_kv; i++)
        ctx->kv_sorted[i] = (struct gguf_name){ctx->kv[i].key.ptr, ctx->kv[i].key.len, i};
    int64_t dup = name_sort_dup(ctx->kv_sorted, ctx->n_kv);
    if (dup >= 0) {
        char show[80];
        struct gguf_str k = {ctx->kv_sorted[dup].ptr, ctx->kv_sorted[dup].len};
        return lp_err(err, LP_EFORMAT, "key %s: appears twice", str_show(k, show));
    }
    int rc = find_alignment(ctx, err);
    if (rc != 0) return rc;

    ctx->tensors = xcalloc(n_tensors ? (size_t)n_tensors : 1, sizeof *ctx->tensors);
    ctx->n_tensors = (int64_t)n_tensors;
    for (int64_t i = 0; i < ctx->n_tensors; i++) {
        rc = parse_tensor(ctx, &r, i, err);
        if (rc != 0) return rc;
    }
    ctx->t_sorted = xmalloc((n_tensors ? (size_t)n_tensors : 1) * sizeof *ctx->t_sorted);
    for (int64_t i = 0; i < ctx->n_tensors; i++)
        ctx->t_sorted[i] =
            (struct gguf_name){ctx->tensors[i].name, strlen(ctx->tensors[i].name), i};
    dup = name_sort_dup(ctx->t_sorted, ctx->n_tensors);
    if (dup >= 0)
        return lp_err(err, LP_EFORMAT, "tensor %s: name appears twice", ctx->t_sorted[dup].ptr);

    /* The data section starts at the next multiple of the alignment. */
    uint64_t a = ctx->alignment;
    uint64_t start = ((uint64_t)r.pos + a - 1) / a * a;
    if (ctx->n_tensors > 0 && start > ctx->size)
        return lp_err(err, LP_EFORMAT, "data section at %llu starts past the end of the file (%zu)",
                      (unsigned long long)start, ctx->size);
    ctx->data_start = (size_t)(start < ctx->size ? start : ctx->size);
    uint64_t avail = ctx->size - ctx->data_start;

    /* Tensors are laid out in order, each at the running size padded to the
     * alignment (llama.cpp checks the same), and each lies inside the file. */
    uint64_t expect = 0;
    for (int64_t i = 0; i < ctx->n_tensors; i++) {
        const struct gguf_tensor *t = &ctx->tensors[i];
        if (t->offset != expect)
            return lp_err(err, LP_EFORMAT, "tensor %s: offset %llu != expected %llu", t->name,
                          (unsigned long long)t->offset, (unsigned long long)expect);
        if (t->nbytes > avail || t->offset > avail - t->nbytes)
            return lp_err(err, LP_EFORMAT,
                          "tensor %s: bytes %llu..%llu of the data section lie past the end of "
                          "the file (%llu bytes of data)",
                          t->name, (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->nbytes), (unsigned long long)avail);
        uint64_t end = t->offset + t->nbytes;
        expect = (end + a - 1) / a * a; /* cannot overflow: end <= file size */
    }
    return 0;
}

int gguf_open_memory(const void *data, size_t size, struct gguf_ctx **out, char *err) {
    *out = NULL;
    if (!data && size) return lp_err(err, LP_EINVAL, "gguf_open_memory: NULL buffer");
    struct gguf_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->data = data;
    ctx->size = size;
    int rc = parse(ctx, err);
    if (rc != 0) {
        gguf_close(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int gguf_open(const char *path, struct gguf_ctx **out, char *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lp_err(err, LP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lp_err(err, LP_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lp_err(err, LP_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < GGUF_HEADER_BYTES) {
        close(fd);
        return lp_err(err, LP_EFORMAT, "%s: file of %lld bytes is too small for a GGUF header",
                      path, (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return lp_err(err, LP_EIO, "%s: too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lp_err(err, LP_EIO, "%s: cannot mmap: %s", path, strerror(e));
    char msg[LP_ERR_LEN];
    struct gguf_ctx *ctx;
    int rc = gguf_open_memory(map, size, &ctx, msg);
    if (rc != 0) {
        munmap(map, size);
        return lp_err(err, rc, "%s: %s", path, msg);
    }
    ctx->mapped = 1;
    *out = ctx;
    return 0;
}

void gguf_close(struct gguf_ctx *ctx) {
    if (!ctx) return;
    if (ctx->kv)
        for (int64_t i = 0; i < ctx->n_kv; i++)
            free(ctx->kv[i].strs);
    if (ctx->tensors)
        for (int64_t i = 0; i < ctx->n_tensors; i++)
            free(ctx->tensors[i].name);
    free(ctx->kv);
    free(ctx->kv_sorted);
    free(ctx->tensors);
    free(ctx->t_sorted);
    if (ctx->mapped) munmap((void *)ctx->data, ctx->size);
    free(ctx);
}

uint32_t gguf_version(const struct gguf_ctx *ctx) { return ctx->version; }

int64_t gguf_kv_count(const struct gguf_ctx *ctx) { return ctx->n_kv; }

int64_t gguf_kv_find(const struct gguf_ctx *ctx, const char *key) {
    return name_find(ctx->kv_sorted, ctx->n_kv, key);
}

struct gguf_str gguf_kv_key(const struct gguf_ctx *ctx, int64_t i) {
    ENSURE(i >= 0 && i < ctx->n_kv);
    return ctx->kv[i].key;
}

int gguf_kv_type(const struct gguf_ctx *ctx, int64_t i) {
    ENSURE(i >= 0 && i < ctx->n_kv);
    return ctx->kv[i].type;
}

static const struct gguf_kv *kv_get(const struct gguf_ctx *ctx, const char *key) {
    int64_t i = gguf_kv_find(ctx, key);
    return i < 0 ? NULL : &ctx->kv[i];
}

int gguf_get_u32(const struct gguf_ctx *ctx, const char *key, uint32_t *v) {
    int64_t i64;
    int rc = gguf_get_i64(ctx, key, &i64);
    if (rc == 0 && (i64 < 0 || i64 > (int64_t)UINT32_MAX)) return LP_EFORMAT;
    if (rc == 0) *v = (uint32_t)i64;
    return rc;
}

int gguf_get_i64(const struct gguf_ctx *ctx, const char *key, int64_t *v) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    if (!kv) return LP_ENOTFOUND;
    int is_signed;
    uint64_t u;
    int64_t s;
    if (kv_int(kv, &is_signed, &u, &s) != 0) return LP_EFORMAT;
    if (is_signed) {
        *v = s;
        return 0;
    }
    if (u > (uint64_t)INT64_MAX) return LP_EFORMAT;
    *v = (int64_t)u;
    return 0;
}

int gguf_get_f32(const struct gguf_ctx *ctx, const char *key, float *v) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    if (!kv) return LP_ENOTFOUND;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        uint32_t b = (uint32_t)kv->val[0] | (uint32_t)kv->val[1] << 8 | (uint32_t)kv->val[2] << 16 |
                     (uint32_t)kv->val[3] << 24;
        memcpy(v, &b, 4);
        return 0;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        uint64_t b = 0;
        for (int k = 0; k < 8; k++)
            b |= (uint64_t)kv->val[k] << (8 * k);
        double d;
        memcpy(&d, &b, 8);
        *v = (float)d;
        return 0;
    }
    return LP_EFORMAT;
}

int gguf_get_bool(const struct gguf_ctx *ctx, const char *key, int *v) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    if (!kv) return LP_ENOTFOUND;
    if (kv->type != GGUF_TYPE_BOOL) return LP_EFORMAT;
    *v = kv->val[0] != 0;
    return 0;
}

int gguf_get_str(const struct gguf_ctx *ctx, const char *key, struct gguf_str *v) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    if (!kv) return LP_ENOTFOUND;
    if (kv->type != GGUF_TYPE_STRING) return LP_EFORMAT;
    *v = kv->str;
    return 0;
}

int gguf_get_arr(const struct gguf_ctx *ctx, const char *key, int *elem_type, uint64_t *count) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    if (!kv) return LP_ENOTFOUND;
    if (kv->type != GGUF_TYPE_ARRAY) return LP_EFORMAT;
    *elem_type = kv->arr_type;
    *count = kv->arr_n;
    return 0;
}

struct gguf_str gguf_arr_str(const struct gguf_ctx *ctx, const char *key, uint64_t idx) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    struct gguf_str none = {NULL, 0};
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || idx >= kv->arr_n)
        return none;
    return kv->strs[idx];
}

const void *gguf_arr_data(const struct gguf_ctx *ctx, const char *key) {
    const struct gguf_kv *kv = kv_get(ctx, key);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type == GGUF_TYPE_STRING) return NULL;
    return kv->val;
}

int64_t gguf_tensor_count(const struct gguf_ctx *ctx) { return ctx->n_tensors; }

int64_t gguf_tensor_find(const struct gguf_ctx *ctx, const char *name) {
    return name_find(ctx->t_sorted, ctx->n_tensors, name);
}

void gguf_tensor_get(const struct gguf_ctx *ctx, int64_t i, struct lp_tensor *t) {
    ENSURE(i >= 0 && i < ctx->n_tensors);
    const struct gguf_tensor *gt = &ctx->tensors[i];
    t->name = gt->name;
    t->type = gt->type;
    t->n_dims = gt->n_dims;
    memcpy(t->ne, gt->ne, sizeof t->ne);
    t->data = ctx->data + ctx->data_start + gt->offset;
    t->nbytes = gt->nbytes;
}
