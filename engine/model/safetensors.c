/* safetensors.c: a validating reader for Hugging Face safetensors files and
 * sharded checkpoints (model.safetensors.index.json). The JSON header is
 * parsed by cJSON; what is checked by hand is the framing (header length,
 * UTF-8), the tensor table (dtype, shape, byte ranges) and the shard map. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lp_common.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u) /* as the reference implementation */
#define ST_MAX_INDEX (100u * 1000u * 1000u)  /* index json files */
#define ST_MAX_EXACT 9007199254740992.0      /* 2^53: larger JSON numbers are inexact */

/* One mapped (or borrowed) file. */
struct st_file {
    const uint8_t *data;
    size_t size;
    int mapped;
    char *name; /* for messages: the path, or "<memory>" */
};

struct st_tensor {
    char *name; /* owned */
    int type;
    int n_dims;
    int64_t ne[LP_MAX_DIMS];
    const uint8_t *data;
    size_t nbytes;
    int file; /* index into files */
};

struct st_meta {
    char *key;
    char *val;
};

struct st_ctx {
    struct st_file *files;
    int n_files;
    struct st_tensor *tensors;
    int64_t n_tensors, cap_tensors;
    struct st_meta *meta;
    int64_t n_meta, cap_meta;
    int64_t *sorted; /* tensor indices sorted by name */
};

/* ---- small helpers --------------------------------------------------------- */

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF); NUL
 * bytes are refused too, as no JSON text needs one. Returns the offset of the
 * first bad byte, or `n` when all is well. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len > n - i) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns a key of `obj` that appears twice (cJSON keeps both), or NULL. */
static const char *json_dup_key(const cJSON *obj) {
    size_t n = 0, i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2) return NULL;
    const char **keys = xmalloc(n * sizeof *keys);
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, str_cmp);
    const char *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
    free(keys);
    return dup;
}

/* A JSON number that is a non-negative integer represented exactly. */
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_EXACT)) return -1;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return -1;
    *v = u;
    return 0;
}

static int dtype_parse(const char *name, int *type, size_t *size) {
    static const struct {
        const char *name;
        int type; /* -1: a safetensors dtype we do not support */
        size_t size;
    } dtypes[] = {
        {"F32", LP_TYPE_F32, 4}, {"F16", LP_TYPE_F16, 2}, {"BF16", LP_TYPE_BF16, 2},
        {"F64", -1, 8},          {"I64", -1, 8},          {"U64", -1, 8},
        {"I32", -1, 4},          {"U32", -1, 4},          {"I16", -1, 2},
        {"U16", -1, 2},          {"I8", -1, 1},           {"U8", -1, 1},
        {"BOOL", -1, 1},         {"F8_E4M3", -1, 1},      {"F8_E5M2", -1, 1},
        {"F8_E8M0", -1, 1},      {"F4", -1, 1},           {"F6_E2M3", -1, 1},
        {"F6_E3M2", -1, 1},      {"C64", -1, 8},
    };
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strcmp(name, dtypes[i].name) == 0) {
            *type = dtypes[i].type;
            *size = dtypes[i].size;
            return 0;
        }
    }
    return -1;
}

static struct st_tensor *ctx_add_tensor(struct st_ctx *ctx) {
    if (ctx->n_tensors == ctx->cap_tensors) {
        ctx->cap_tensors = ctx->cap_tensors ? ctx->cap_tensors * 2 : 16;
        ctx->tensors = xrealloc(ctx->tensors, (size_t)ctx->cap_tensors * sizeof *ctx->tensors);
    }
    struct st_tensor *t = &ctx->tensors[ctx->n_tensors++];
    memset(t, 0, sizeof *t);
    return t;
}

/* ---- one file -------------------------------------------------------------- */

/* A tensor's byte range, for the contiguity check. */
struct st_range {
    uint64_t begin, end;
    int64_t tensor; /* index into ctx->tensors */
};

static int range_cmp(const void *a, const void *b) {
    const struct st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int parse_metadata(struct st_ctx *ctx, const cJSON *m, char *err) {
    if (!cJSON_IsObject(m)) return lp_err(err, LP_EFORMAT, "__metadata__ is not an object");
    const char *dup = json_dup_key(m);
    if (dup) return lp_err(err, LP_EFORMAT, "__metadata__: key \"%.64s\" appears twice", dup);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return lp_err(err, LP_EFORMAT, "__metadata__: value of \"%.64s\" is not a string",
                          c->string);
        if (ctx->n_meta == ctx->cap_meta) {
            ctx->cap_meta = ctx->cap_meta ? ctx->cap_meta * 2 : 8;
            ctx->meta = xrealloc(ctx->meta, (size_t)ctx->cap_meta * sizeof *ctx->meta);
        }
        ctx->meta[ctx->n_meta].key = xstrdup(c->string);
        ctx->meta[ctx->n_meta].val = xstrdup(c->valuestring);
        ctx->n_meta++;
    }
    return 0;
}

/* Parses one tensor entry of the header into ctx; fills its byte range. */
static int parse_entry(struct st_ctx *ctx, const cJSON *e, int file, struct st_range *rg,
                       char *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return lp_err(err, LP_EFORMAT, "tensor %.64s: not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return lp_err(err, LP_EFORMAT, "tensor %.64s: no dtype string", name);
    if (!cJSON_IsArray(shape)) return lp_err(err, LP_EFORMAT, "tensor %.64s: no shape array", name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return lp_err(err, LP_EFORMAT, "tensor %.64s: data_offsets is not [begin, end]", name);
    const char *dup = json_dup_key(e);
    if (dup) return lp_err(err, LP_EFORMAT, "tensor %.64s: key \"%.32s\" appears twice", name, dup);
    int type;
    size_t esize;
    if (dtype_parse(dt->valuestring, &type, &esize) != 0)
        return lp_err(err, LP_EFORMAT, "tensor %.64s: unknown dtype \"%.16s\"", name,
                      dt->valuestring);
    if (type < 0)
        return lp_err(err, LP_EUNSUPPORTED,
                      "tensor %.64s: dtype %s is not supported (only F32, F16, BF16)", name,
                      dt->valuestring);
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > LP_MAX_DIMS)
        return lp_err(err, LP_EUNSUPPORTED, "tensor %.64s: %d dimensions (at most %d)", name,
                      n_dims, LP_MAX_DIMS);
    struct st_tensor *t = ctx_add_tensor(ctx);
    t->name = xstrdup(name);
    t->type = type;
    t->file = file;
    t->n_dims = n_dims > 0 ? n_dims : 1; /* a scalar is a 1-element vector */
    for (int d = 0; d < LP_MAX_DIMS; d++)
        t->ne[d] = 1;
    uint64_t nelem = 1;
    int d = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        uint64_t v;
        if (json_uint(c, &v) != 0)
            return lp_err(err, LP_EFORMAT, "tensor %.64s: shape[%d] is not a non-negative integer",
                          name, d);
        if (v != 0 && nelem > (uint64_t)INT64_MAX / v)
            return lp_err(err, LP_EFORMAT, "tensor %.64s: element count overflows", name);
        nelem *= v;
        t->ne[n_dims - 1 - d] = (int64_t)v; /* GGML order: innermost first */
    }
    uint64_t begin, end;
    if (json_uint(offs->child, &begin) != 0 || json_uint(offs->child->next, &end) != 0 ||
        end < begin)
        return lp_err(err, LP_EFORMAT, "tensor %.64s: data_offsets are not 0 <= begin <= end",
                      name);
    if (nelem > SIZE_MAX / esize || end - begin != nelem * esize)
        return lp_err(err, LP_EFORMAT,
                      "tensor %.64s: data_offsets span %llu bytes but shape x dtype needs %llu",
                      name, (unsigned long long)(end - begin), (unsigned long long)(nelem * esize));
    t->nbytes = (size_t)(end - begin);
    rg->begin = begin;
    rg->end = end;
    rg->tensor = ctx->n_tensors - 1;
    return 0;
}

/* Parses file `fi` of ctx and appends its tensors. */
static int parse_file(struct st_ctx *ctx, int fi, char *err) {
    const uint8_t *p = ctx->files[fi].data;
    size_t size = ctx->files[fi].size;
    if (size < 8) return lp_err(err, LP_EFORMAT, "file of %zu bytes has no header length", size);
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)p[k] << (8 * k);
    if (n > ST_MAX_HEADER)
        return lp_err(err, LP_EFORMAT, "header length %llu is over the %u byte limit",
                      (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return lp_err(err, LP_EFORMAT, "header length %llu exceeds the file (%zu bytes)",
                      (unsigned long long)n, size);
    const uint8_t *hdr = p + 8;
    const uint8_t *bytes = hdr + n;
    uint64_t nbytes = size - 8 - n;
    size_t bad = utf8_check(hdr, (size_t)n);
    if (bad != n) return lp_err(err, LP_EFORMAT, "header is not valid UTF-8 at byte %zu", bad);
    /* A NUL-terminated copy, so cJSON can never read past the header. */
    char *text = malloc((size_t)n + 1);
    if (!text)
        return lp_err(err, LP_ENOMEM, "out of memory for a %llu byte header",
                      (unsigned long long)n);
    memcpy(text, hdr, (size_t)n);
    text[n] = '\0';
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &endp, 0);
    int rc = 0;
    if (!root) {
        rc = lp_err(err, LP_EFORMAT, "header is not valid JSON (near byte %lld)",
                    (long long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : -1));
        goto done;
    }
    for (const char *q = endp; *q; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            rc = lp_err(err, LP_EFORMAT, "header has bytes after the JSON object");
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = lp_err(err, LP_EFORMAT, "header is not a JSON object");
        goto done;
    }
    const char *dup = json_dup_key(root);
    if (dup) {
        rc = lp_err(err, LP_EFORMAT, "tensor %.64s: name appears twice", dup);
        goto done;
    }
    int count = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        count++;
    struct st_range *rg = xmalloc((size_t)(count ? count : 1) * sizeof *rg);
    int nr = 0;
    for (const cJSON *c = root->child; c && rc == 0; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0)
            rc = parse_metadata(ctx, c, err);
        else
            rc = parse_entry(ctx, c, fi, &rg[nr++], err);
    }
    if (rc == 0) {
        /* Sorted by start, the ranges must tile [0, nbytes) exactly. */
        qsort(rg, (size_t)nr, sizeof *rg, range_cmp);
        uint64_t at = 0;
        for (int i = 0; i < nr && rc == 0; i++) {
            if (rg[i].begin < at)
                rc =
                    lp_err(err, LP_EFORMAT, "tensor %.64s: bytes %llu..%llu overlap another tensor",
                           ctx->tensors[rg[i].tensor].name, (unsigned long long)rg[i].begin,
                           (unsigned long long)rg[i].end);
            else if (rg[i].begin > at)
                rc = lp_err(err, LP_EFORMAT,
                            "tensor %.64s: starts at %llu, leaving a gap after byte %llu",
                            ctx->tensors[rg[i].tensor].name, (unsigned long long)rg[i].begin,
                            (unsigned long long)at);
            at = rg[i].end;
        }
        if (rc == 0 && at != nbytes)
            rc = lp_err(err, LP_EFORMAT, "tensors end at byte %llu but the data is %llu bytes",
                        (unsigned long long)at, (unsigned long long)nbytes);
    }
    /* The ranges are now known to lie inside the file: point at the data. */
    for (int i = 0; i < nr && rc == 0; i++)
        ctx->tensors[rg[i].tensor].data = bytes + rg[i].begin;
    free(rg);
done:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- files and shards ------------------------------------------------------ */

static int file_map(const char *path, struct st_file *f, char *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lp_err(err, LP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lp_err(err, LP_EIO, "%s: not a readable regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return lp_err(err, LP_EFORMAT, "%s: file of %lld bytes has no header length", path,
                      (long long)st.st_size);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return lp_err(err, LP_EIO, "%s: too large to map", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lp_err(err, LP_EIO, "%s: cannot mmap: %s", path, strerror(e));
    f->data = map;
    f->size = (size_t)st.st_size;
    f->mapped = 1;
    f->name = xstrdup(path);
    return 0;
}

/* Sorts tensor names; a name twice (in one file or two shards) is an error. */
static int ctx_index(struct st_ctx *ctx, char *err) {
    int64_t n = ctx->n_tensors;
    ctx->sorted = xmalloc((size_t)(n ? n : 1) * sizeof *ctx->sorted);
    /* Sort (name, index) pairs; str_cmp reads the name, the first member. */
    struct pair {
        const char *name;
        int64_t idx;
    } *pairs = xmalloc((size_t)(n ? n : 1) * sizeof *pairs);
    for (int64_t i = 0; i < n; i++)
        pairs[i] = (struct pair){ctx->tensors[i].name, i};
    if (n > 1) qsort(pairs, (size_t)n, sizeof *pairs, str_cmp);
    int rc = 0;
    for (int64_t i = 0; i < n; i++) {
        ctx->sorted[i] = pairs[i].idx;
        if (i > 0 && rc == 0 && strcmp(pairs[i - 1].name, pairs[i].name) == 0) {
            const struct st_tensor *a = &ctx->tensors[pairs[i - 1].idx];
            const struct st_tensor *b = &ctx->tensors[pairs[i].idx];
            if (a->file == b->file)
                rc = lp_err(err, LP_EFORMAT, "tensor %.64s: name appears twice", a->name);
            else
                rc = lp_err(err, LP_EFORMAT, "tensor %.64s: in two shards, %s and %s", a->name,
                            ctx->files[a->file].name, ctx->files[b->file].name);
        }
    }
    free(pairs);
    return rc;
}

static int read_small_file(const char *path, size_t max, char **out, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lp_err(err, LP_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > max) {
            rc = lp_err(err, LP_EFORMAT, "%s: larger than %zu bytes", path, max);
            break;
        }
        if (got == 0) break;
    }
    if (rc == 0 && ferror(f)) rc = lp_err(err, LP_EIO, "%s: read error", path);
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        return lp_err(err, LP_EFORMAT, "%s: contains a NUL byte", path);
    }
    *out = buf;
    return 0;
}

static int shard_name_ok(const char *s) {
    return s[0] != '\0' && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

static int open_index(struct st_ctx *ctx, const char *path, char *err) {
    char *text = NULL;
    int rc = read_small_file(path, ST_MAX_INDEX, &text, err);
    if (rc != 0) return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lp_err(err, LP_EFORMAT, "%s: not a JSON object", path);
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    const char *dup;
    if (!cJSON_IsObject(wm)) {
        rc = lp_err(err, LP_EFORMAT, "%s: no weight_map object", path);
        goto done;
    }
    if ((dup = json_dup_key(wm)) != NULL) {
        rc = lp_err(err, LP_EFORMAT, "%s: weight_map names tensor %.64s twice", path, dup);
        goto done;
    }
    /* The directory of the index: shards must sit beside it. */
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    int n_entries = cJSON_GetArraySize(wm);
    const char **shard_of = xcalloc((size_t)(n_entries ? n_entries : 1), sizeof *shard_of);
    ctx->files = xcalloc((size_t)(n_entries ? n_entries : 1), sizeof *ctx->files);
    int k = 0;
    for (const cJSON *c = wm->child; c && rc == 0; c = c->next, k++) {
        if (!cJSON_IsString(c) || !shard_name_ok(c->valuestring)) {
            rc = lp_err(err, LP_EFORMAT, "%s: tensor %.64s: shard is not a plain file name", path,
                        c->string);
            break;
        }
        shard_of[k] = c->valuestring;
        int seen = 0;
        for (int j = 0; j < k && !seen; j++)
            seen = strcmp(shard_of[j], c->valuestring) == 0;
        if (seen) continue;
        size_t plen = dlen + strlen(c->valuestring) + 1;
        char *spath = xmalloc(plen);
        snprintf(spath, plen, "%.*s%s", (int)dlen, path, c->valuestring);
        char msg[LP_ERR_LEN];
        int fi = ctx->n_files;
        rc = file_map(spath, &ctx->files[fi], msg);
        if (rc == 0) {
            ctx->n_files++;
            rc = parse_file(ctx, fi, msg);
        }
        if (rc != 0) lp_err(err, rc, "%s: %s", spath, msg);
        free(spath);
    }
    if (rc == 0) rc = ctx_index(ctx, err);
    /* Every tensor of the map must be in the shard the map names. */
    k = 0;
    for (const cJSON *c = wm->child; c && rc == 0; c = c->next, k++) {
        int64_t i = st_tensor_find(ctx, c->string);
        const char *in = i >= 0 ? strrchr(ctx->files[ctx->tensors[i].file].name, '/') : NULL;
        in = in ? in + 1 : (i >= 0 ? ctx->files[ctx->tensors[i].file].name : NULL);
        if (i < 0)
            rc = lp_err(err, LP_EFORMAT, "tensor %.64s: in weight_map but in no shard", c->string);
        else if (strcmp(in, shard_of[k]) != 0)
            rc = lp_err(err, LP_EFORMAT, "tensor %.64s: weight_map says %s but it is in %s",
                        c->string, shard_of[k], in);
    }
    free(shard_of);
done:
    cJSON_Delete(root);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int st_open(const char *path, struct st_ctx **out, char *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return lp_err(err, errno == ENOENT ? LP_ENOTFOUND : LP_EIO, "%s: %s", path,
                      strerror(errno));
    struct st_ctx *ctx = xcalloc(1, sizeof *ctx);
    int rc;
    char *file = NULL;
    if (S_ISDIR(st.st_mode)) {
        size_t plen = strlen(path) + 64;
        file = xmalloc(plen);
        snprintf(file, plen, "%s/model.safetensors", path);
        if (access(file, F_OK) != 0) {
            snprintf(file, plen, "%s/model.safetensors.index.json", path);
            if (access(file, F_OK) != 0) {
                rc = lp_err(err, LP_ENOTFOUND,
                            "%s: no model.safetensors or model.safetensors.index.json", path);
                goto done;
            }
        }
    } else {
        file = xstrdup(path);
    }
    if (ends_with(file, ".json")) {
        rc = open_index(ctx, file, err);
    } else {
        char msg[LP_ERR_LEN];
        ctx->files = xcalloc(1, sizeof *ctx->files);
        rc = file_map(file, &ctx->files[0], err);
        if (rc == 0) {
            ctx->n_files = 1;
            rc = parse_file(ctx, 0, msg);
            if (rc == 0) rc = ctx_index(ctx, msg);
            if (rc != 0) lp_err(err, rc, "%s: %s", file, msg);
        }
    }
done:
    free(file);
    if (rc != 0) {
        st_close(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int st_open_memory(const void *data, size_t size, struct st_ctx **out, char *err) {
    *out = NULL;
    if (!data && size) return lp_err(err, LP_EINVAL, "st_open_memory: NULL buffer");
    struct st_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->files = xcalloc(1, sizeof *ctx->files);
    ctx->files[0] = (struct st_file){data, size, 0, xstrdup("<memory>")};
    ctx->n_files = 1;
    int rc = parse_file(ctx, 0, err);
    if (rc == 0) rc = ctx_index(ctx, err);
    if (rc != 0) {
        st_close(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

void st_close(struct st_ctx *ctx) {
    if (!ctx) return;
    for (int i = 0; i < ctx->n_files; i++) {
        if (ctx->files[i].mapped) munmap((void *)ctx->files[i].data, ctx->files[i].size);
        free(ctx->files[i].name);
    }
    for (int64_t i = 0; i < ctx->n_tensors; i++)
        free(ctx->tensors[i].name);
    for (int64_t i = 0; i < ctx->n_meta; i++) {
        free(ctx->meta[i].key);
        free(ctx->meta[i].val);
    }
    free(ctx->files);
    free(ctx->tensors);
    free(ctx->meta);
    free(ctx->sorted);
    free(ctx);
}

int64_t st_tensor_count(const struct st_ctx *ctx) { return ctx->n_tensors; }

int64_t st_tensor_find(const struct st_ctx *ctx, const char *name) {
    int64_t lo = 0, hi = ctx->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ctx->tensors[ctx->sorted[mid]].name, name);
        if (c == 0) return ctx->sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void st_tensor_get(const struct st_ctx *ctx, int64_t i, struct lp_tensor *t) {
    ENSURE(i >= 0 && i < ctx->n_tensors);
    const struct st_tensor *s = &ctx->tensors[i];
    t->name = s->name;
    t->type = s->type;
    t->n_dims = s->n_dims;
    memcpy(t->ne, s->ne, sizeof t->ne);
    t->data = s->data;
    t->nbytes = s->nbytes;
}

const char *st_metadata_get(const struct st_ctx *ctx, const char *key) {
    for (int64_t i = 0; i < ctx->n_meta; i++)
        if (strcmp(ctx->meta[i].key, key) == 0) return ctx->meta[i].val;
    return NULL;
}
