/* peft.c: reads a PEFT LoRA directory (adapter_config.json + adapter_model.safetensors)
 * and decides which modules it adapts the way PEFT 0.21 does (check_target_module_exists,
 * get_pattern_key), with the same regexes run by PCRE2. Every config option that
 * changes the math is honoured or refused by name; pickles are never opened. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lp_common.h"
#include "../model/model.h"
#include "../model/safetensors.h"
#include "adapter_build.h"

#define PEFT_MAX_CONFIG (1 << 20) /* adapter_config.json bytes */
#define PEFT_MAX_PATTERN 1024     /* bytes of one user regex */
#define PEFT_MAX_LIST 4096        /* entries of one list option */
#define PEFT_MATCH_LIMIT 20000    /* PCRE2 backtracking budget per match (names are short) */

/* ---- regexes (Python re semantics for the patterns PEFT builds) ---------------- */

struct peft_re {
    pcre2_code *re;
    pcre2_match_data *md;
};

struct peft_regexes {
    pcre2_match_context *mctx;
};

static int re_compile(struct peft_re *r, const char *prefix, const char *pat, const char *suffix,
                      const char *what, char *err) {
    if (strlen(pat) > PEFT_MAX_PATTERN)
        return lp_err(err, LP_ERANGE, "adapter_config.json: %s longer than %d bytes", what,
                      PEFT_MAX_PATTERN);
    size_t n = strlen(prefix) + strlen(pat) + strlen(suffix) + 1;
    char *full = xmalloc(n);
    snprintf(full, n, "%s%s%s", prefix, pat, suffix);
    int ec;
    PCRE2_SIZE eo;
    r->re = pcre2_compile((PCRE2_SPTR)full, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    free(full);
    if (!r->re) {
        PCRE2_UCHAR msg[96];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lp_err(err, LP_EFORMAT, "adapter_config.json: %s '%.60s' is not a valid regex: %s",
                      what, pat, (char *)msg);
    }
    r->md = pcre2_match_data_create_from_pattern(r->re, NULL);
    ENSURE(r->md != NULL);
    return LP_OK;
}

static void re_free(struct peft_re *r) {
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->re);
    r->md = NULL;
    r->re = NULL;
}

/* 1 on a match, 0 on none, LP_ERANGE when the regex runs out of budget.
 * `full` asks for re.fullmatch, else re.match (anchored at the start). */
static int re_run(const struct peft_re *r, pcre2_match_context *mctx, const char *s, int full) {
    uint32_t opt = PCRE2_ANCHORED | (full ? PCRE2_ENDANCHORED : 0);
    int rc = pcre2_match(r->re, (PCRE2_SPTR)s, strlen(s), 0, opt, r->md, mctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    return LP_ERANGE;
}

/* ---- the config ----------------------------------------------------------------- */

struct peft_pattern {
    char *key;
    struct peft_re re; /* (.*\.)?(KEY)$ */
    double value;
};

enum { TM_LIST, TM_REGEX, TM_ALL_LINEAR };

struct peft_cfg {
    int r;
    double alpha;
    int rslora;
    struct peft_pattern *rank_pat, *alpha_pat;
    int n_rank_pat, n_alpha_pat;
    int tm_kind;
    char **tm; /* TM_LIST names */
    int n_tm;
    struct peft_re tm_re; /* TM_REGEX */
    int ex_kind;          /* 0 none, TM_LIST or TM_REGEX */
    char **ex;
    int n_ex;
    struct peft_re ex_re;
    int has_layers; /* layers_to_transform given (non-empty) */
    int layers_is_int;
    int64_t *layers;
    int n_layers;
    struct peft_re *lpat; /* layers_pattern regexes, or the default one */
    int n_lpat;
    pcre2_match_context *mctx;
};

static void strlist_free(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void cfg_clear(struct peft_cfg *c) {
    for (int i = 0; i < c->n_rank_pat; i++) {
        free(c->rank_pat[i].key);
        re_free(&c->rank_pat[i].re);
    }
    for (int i = 0; i < c->n_alpha_pat; i++) {
        free(c->alpha_pat[i].key);
        re_free(&c->alpha_pat[i].re);
    }
    free(c->rank_pat);
    free(c->alpha_pat);
    strlist_free(c->tm, c->n_tm);
    re_free(&c->tm_re);
    strlist_free(c->ex, c->n_ex);
    re_free(&c->ex_re);
    free(c->layers);
    for (int i = 0; i < c->n_lpat; i++)
        re_free(&c->lpat[i]);
    free(c->lpat);
    pcre2_match_context_free(c->mctx);
    memset(c, 0, sizeof *c);
}

/* JSON truthiness as Python's bool() sees the loaded value. */
static int truthy(const cJSON *v) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return 1;
}

static int get_int(const cJSON *v, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   char *err) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return lp_err(err, LP_EFORMAT, "adapter_config.json: %s must be an integer in %lld..%lld",
                      key, (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return LP_OK;
}

static int get_bool(const cJSON *o, const char *key, int *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v || cJSON_IsNull(v)) return LP_OK;
    if (!cJSON_IsBool(v))
        return lp_err(err, LP_EFORMAT, "adapter_config.json: %s must be true or false", key);
    *out = cJSON_IsTrue(v);
    return LP_OK;
}

/* A JSON list of strings (or one string when `one_ok`) into a new vector. */
static int get_strlist(const cJSON *v, const char *key, char ***out, int *n, char *err) {
    *out = NULL;
    *n = 0;
    if (cJSON_IsString(v)) {
        *out = xmalloc(sizeof(char *));
        (*out)[0] = xstrdup(v->valuestring);
        *n = 1;
        return LP_OK;
    }
    if (!cJSON_IsArray(v))
        return lp_err(err, LP_EFORMAT, "adapter_config.json: %s must be a list of strings", key);
    int cnt = cJSON_GetArraySize(v);
    if (cnt > PEFT_MAX_LIST)
        return lp_err(err, LP_ERANGE, "adapter_config.json: %s has more than %d entries", key,
                      PEFT_MAX_LIST);
    *out = xcalloc((size_t)cnt + 1, sizeof(char *));
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) {
            strlist_free(*out, *n);
            *out = NULL;
            *n = 0;
            return lp_err(err, LP_EFORMAT, "adapter_config.json: %s must be a list of strings",
                          key);
        }
        (*out)[(*n)++] = xstrdup(e->valuestring);
    }
    return LP_OK;
}

static int parse_patterns(const cJSON *o, const char *key, int is_rank, struct peft_pattern **out,
                          int *n, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return LP_OK;
    if (!cJSON_IsObject(v))
        return lp_err(err, LP_EFORMAT, "adapter_config.json: %s must be an object", key);
    int cnt = cJSON_GetArraySize(v);
    if (cnt > PEFT_MAX_LIST)
        return lp_err(err, LP_ERANGE, "adapter_config.json: %s has more than %d keys", key,
                      PEFT_MAX_LIST);
    *out = xcalloc((size_t)cnt + 1, sizeof **out);
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        struct peft_pattern *p = &(*out)[*n];
        char what[64];
        snprintf(what, sizeof what, "%s key", key);
        if (is_rank) {
            int64_t r;
            char k2[80];
            snprintf(k2, sizeof k2, "%s['%.40s']", key, e->string);
            int rc = get_int(e, k2, 1, LP_ADAPTER_MAX_RANK, &r, err);
            if (rc) return rc;
            p->value = (double)r;
        } else {
            if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
                return lp_err(err, LP_EFORMAT, "adapter_config.json: %s['%.40s'] must be a number",
                              key, e->string);
            p->value = e->valuedouble;
        }
        int rc = re_compile(&p->re, "(.*\\.)?(", e->string, ")$", what, err);
        if (rc) return rc;
        p->key = xstrdup(e->string);
        (*n)++;
    }
    return LP_OK;
}

/* Options that select a LoRA variant or change the forward pass: refused when set. */
static const struct {
    const char *key, *why;
} refused[] = {
    {"use_dora", "DoRA rescales the weight by a learned magnitude"},
    {"lora_bias", "a trained bias on lora_B"},
    {"modules_to_save", "full trained copies of modules"},
    {"target_parameters", "LoRA on raw parameters"},
    {"layer_replication", "layer replication changes the model's depth"},
    {"trainable_token_indices", "trained token embeddings"},
    {"use_qalora", "QA-LoRA pools the inputs"},
    {"alora_invocation_tokens", "activated LoRA applies only after invocation tokens"},
    {"invocation_string", "activated LoRA applies only after an invocation string"},
    {"velora_config", "a VeLoRA variant"},
    {"monteclora_config", "a MonteCLoRA variant"},
    {"use_bdlora", "block-diagonal LoRA"},
    {"arrow_config", "Arrow routing between adapters"},
    {"kasa_config", "a KaSA variant"},
};

/* Keys that never change the inference math (or that are checked elsewhere). */
/* clang-format off */
static const char *const known_keys[] = {
    "r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern", "target_modules",
    "exclude_modules", "layers_to_transform", "layers_pattern", "fan_in_fan_out", "bias",
    "peft_type", "task_type", "init_lora_weights", "auto_mapping", "peft_version",
    "base_model_name_or_path", "revision", "inference_mode", "lora_dropout", "megatron_config",
    "megatron_core", "loftq_config", "eva_config", "corda_config", "lora_ga_config",
    "qalora_group_size", "runtime_config", "ensure_weight_tying",
};
/* clang-format on */

/* Python's json keeps the last of duplicate keys, cJSON finds the first:
 * refuse them rather than read a different config than PEFT does. */
static const char *dup_key(const cJSON *o, int depth) {
    if (depth > 8) return NULL;
    int n = 0;
    for (const cJSON *e = o ? o->child : NULL; e; e = e->next, n++) {
        if (cJSON_IsObject(o) && n < PEFT_MAX_LIST)
            for (const cJSON *f = e->next; f; f = f->next)
                if (!strcmp(e->string, f->string)) return e->string;
        const char *d = dup_key(e, depth + 1);
        if (d) return d;
    }
    return NULL;
}

static int check_options(const cJSON *o, char *err) {
    const char *dup = dup_key(o, 0);
    if (dup) return lp_err(err, LP_EFORMAT, "adapter_config.json: key '%.60s' appears twice", dup);
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, refused[i].key);
        if (truthy(v))
            return lp_err(err, LP_EUNSUPPORTED,
                          "adapter_config.json: %s is set (%s); not supported", refused[i].key,
                          refused[i].why);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "peft_type");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA") != 0))
        return lp_err(err, LP_EUNSUPPORTED, "adapter_config.json: peft_type '%.40s' is not LORA",
                      cJSON_IsString(v) ? v->valuestring : "?");
    v = cJSON_GetObjectItemCaseSensitive(o, "bias");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, "none") != 0))
        return lp_err(err, LP_EUNSUPPORTED,
                      "adapter_config.json: bias '%.40s' trains base biases; only bias \"none\" is "
                      "supported",
                      cJSON_IsString(v) ? v->valuestring : "?");
    /* Inits that rewrite the base weights (W - BA) need the converted adapter. */
    v = cJSON_GetObjectItemCaseSensitive(o, "init_lora_weights");
    if (cJSON_IsString(v)) {
        static const char *const bad[] = {"pissa", "corda", "olora", "loftq", "lora_ga", "mica"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            if (strncmp(v->valuestring, bad[i], strlen(bad[i])) == 0 ||
                (i == 2 && !strcmp(v->valuestring, "OLoRA")))
                return lp_err(err, LP_EUNSUPPORTED,
                              "adapter_config.json: init_lora_weights '%.40s' changes the base "
                              "weights; save the adapter converted for the original base",
                              v->valuestring);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
        int known = 0;
        for (size_t i = 0; i < sizeof known_keys / sizeof *known_keys && !known; i++)
            known = !strcmp(e->string, known_keys[i]);
        for (size_t i = 0; i < sizeof refused / sizeof *refused && !known; i++)
            known = !strcmp(e->string, refused[i].key);
        if (!known && truthy(e))
            return lp_err(err, LP_EUNSUPPORTED,
                          "adapter_config.json: unknown option %.60s is set; refusing rather than "
                          "guessing what it changes",
                          e->string);
    }
    return LP_OK;
}

/* Python's target_modules.lower() == "all-linear" */
static int is_all_linear(const char *s) {
    static const char want[] = "all-linear";
    for (size_t i = 0; i < sizeof want; i++) {
        char ch = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (ch != want[i]) return 0;
    }
    return 1;
}

static int parse_config(const cJSON *o, struct peft_cfg *c, char *err) {
    int rc = check_options(o, err);
    if (rc) return rc;
    c->mctx = pcre2_match_context_create(NULL);
    ENSURE(c->mctx != NULL);
    pcre2_set_match_limit(c->mctx, PEFT_MATCH_LIMIT);
    pcre2_set_depth_limit(c->mctx, PEFT_MATCH_LIMIT);

    /* PEFT's defaults when a key is absent: r = 8, lora_alpha = 8. */
    c->r = 8;
    c->alpha = 8;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "r");
    int64_t iv;
    if (v && (rc = get_int(v, "r", 1, LP_ADAPTER_MAX_RANK, &iv, err))) return rc;
    if (v) c->r = (int)iv;
    v = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha");
    if (v) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return lp_err(err, LP_EFORMAT, "adapter_config.json: lora_alpha must be a number");
        c->alpha = v->valuedouble;
    }
    if ((rc = get_bool(o, "use_rslora", &c->rslora, err))) return rc;
    int fifo;
    /* fan_in_fan_out describes the base weight's storage (GPT-2 Conv1D); lora_A
     * and lora_B are nn.Linear either way, and for Linear bases PEFT resets it
     * to false. So it never changes how A and B are read. */
    if ((rc = get_bool(o, "fan_in_fan_out", &fifo, err))) return rc;
    if ((rc = parse_patterns(o, "rank_pattern", 1, &c->rank_pat, &c->n_rank_pat, err))) return rc;
    if ((rc = parse_patterns(o, "alpha_pattern", 0, &c->alpha_pat, &c->n_alpha_pat, err)))
        return rc;

    v = cJSON_GetObjectItemCaseSensitive(o, "target_modules");
    if (!v || cJSON_IsNull(v)) {
        /* PEFT's default for llama and qwen2 (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
         */
        c->tm_kind = TM_LIST;
        c->tm = xcalloc(2, sizeof(char *));
        c->tm[0] = xstrdup("q_proj");
        c->tm[1] = xstrdup("v_proj");
        c->n_tm = 2;
    } else if (cJSON_IsString(v)) {
        if (is_all_linear(v->valuestring))
            c->tm_kind = TM_ALL_LINEAR;
        else {
            c->tm_kind = TM_REGEX;
            if ((rc = re_compile(&c->tm_re, "", v->valuestring, "", "target_modules", err)))
                return rc;
        }
    } else {
        c->tm_kind = TM_LIST;
        if ((rc = get_strlist(v, "target_modules", &c->tm, &c->n_tm, err))) return rc;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "exclude_modules");
    if (cJSON_IsString(v)) {
        c->ex_kind = TM_REGEX;
        if ((rc = re_compile(&c->ex_re, "", v->valuestring, "", "exclude_modules", err))) return rc;
    } else if (v && !cJSON_IsNull(v)) {
        c->ex_kind = TM_LIST;
        if ((rc = get_strlist(v, "exclude_modules", &c->ex, &c->n_ex, err))) return rc;
    }

    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(o, "layers_to_transform");
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(o, "layers_pattern");
    int lt_set = lt && !cJSON_IsNull(lt), lp_set = lp && !cJSON_IsNull(lp);
    if ((c->tm_kind != TM_LIST) && (lt_set || lp_set))
        return lp_err(err, LP_EFORMAT,
                      "adapter_config.json: %s cannot be used when target_modules is a string "
                      "(PEFT refuses it too)",
                      lt_set ? "layers_to_transform" : "layers_pattern");
    if (truthy(lp) && !lt_set)
        return lp_err(err, LP_EFORMAT,
                      "adapter_config.json: layers_pattern needs layers_to_transform");
    if (lt_set) {
        if (cJSON_IsNumber(lt)) {
            c->layers = xmalloc(sizeof *c->layers);
            if ((rc = get_int(lt, "layers_to_transform", 0, INT32_MAX, &c->layers[0], err)))
                return rc;
            c->n_layers = 1;
            c->layers_is_int = 1;
            c->has_layers = 1;
        } else if (cJSON_IsArray(lt)) {
            int cnt = cJSON_GetArraySize(lt);
            if (cnt > PEFT_MAX_LIST)
                return lp_err(err, LP_ERANGE, "adapter_config.json: layers_to_transform too long");
            c->layers = xcalloc((size_t)cnt + 1, sizeof *c->layers);
            const cJSON *e;
            cJSON_ArrayForEach(e, lt) {
                if ((rc = get_int(e, "layers_to_transform[]", 0, INT32_MAX, &c->layers[c->n_layers],
                                  err)))
                    return rc;
                c->n_layers++;
            }
            c->has_layers = cnt > 0;
        } else {
            return lp_err(err, LP_EFORMAT,
                          "adapter_config.json: layers_to_transform must be an integer or a list");
        }
    }
    if (c->has_layers) {
        char **pats = NULL;
        int np = 0;
        if (truthy(lp) && (rc = get_strlist(lp, "layers_pattern", &pats, &np, err))) return rc;
        if (np == 0) {
            c->lpat = xcalloc(1, sizeof *c->lpat);
            rc = re_compile(&c->lpat[0], "", ".*?\\.[^.]*\\.(?P<idx>\\d+)\\.", "", "layers_pattern",
                            err);
            c->n_lpat = rc ? 0 : 1;
        } else {
            c->lpat = xcalloc((size_t)np, sizeof *c->lpat);
            for (int i = 0; i < np && rc == LP_OK; i++) {
                rc = re_compile(&c->lpat[i], "(?:^|.*?\\.)", pats[i], "\\.(?P<idx>\\d+)\\.",
                                "layers_pattern", err);
                if (rc == LP_OK) c->n_lpat++;
            }
        }
        strlist_free(pats, np);
        if (rc) return rc;
    }
    return LP_OK;
}

/* ---- which modules the config selects ------------------------------------------- */

static int ends_with_dot(const char *key, const char *t) {
    size_t n = strlen(key), k = strlen(t);
    return n > k && key[n - k - 1] == '.' && memcmp(key + n - k, t, k) == 0;
}

static int in_list(char **v, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], key)) return 1;
    return 0;
}

/* check_target_module_exists for `key`: 1 targeted, 0 not, < 0 error. */
static int peft_targets(const struct peft_cfg *c, const char *key, int is_linear, char *err) {
    int m;
    if (c->ex_kind == TM_REGEX) {
        if ((m = re_run(&c->ex_re, c->mctx, key, 1)) < 0) goto toolong;
        if (m) return 0;
    } else if (c->ex_kind == TM_LIST) {
        if (in_list(c->ex, c->n_ex, key)) return 0;
        for (int i = 0; i < c->n_ex; i++)
            if (ends_with_dot(key, c->ex[i])) return 0;
    }
    if (c->tm_kind == TM_ALL_LINEAR) return is_linear && strcmp(key, "lm_head") != 0;
    if (c->tm_kind == TM_REGEX) {
        if ((m = re_run(&c->tm_re, c->mctx, key, 1)) < 0) goto toolong;
        return m;
    }
    if (in_list(c->tm, c->n_tm, key)) return 1;
    int found = 0;
    for (int i = 0; i < c->n_tm && !found; i++)
        found = ends_with_dot(key, c->tm[i]);
    if (!found || !c->has_layers) return found;
    /* layers_to_transform: the first numbered segment after a layers_pattern */
    for (int i = 0; i < c->n_lpat; i++) {
        if ((m = re_run(&c->lpat[i], c->mctx, key, 0)) < 0) goto toolong;
        if (!m) continue;
        PCRE2_UCHAR *sub;
        PCRE2_SIZE len;
        if (pcre2_substring_get_byname(c->lpat[i].md, (PCRE2_SPTR) "idx", &sub, &len) != 0)
            return 0;
        long long idx = len > 12 ? -1 : strtoll((char *)sub, NULL, 10);
        pcre2_substring_free(sub);
        for (int j = 0; j < c->n_layers; j++)
            if (c->layers[j] == idx) return 1;
        return 0;
    }
    return 0;
toolong:
    return lp_err(err, LP_ERANGE, "adapter_config.json: a regex needs too much backtracking on %s",
                  key);
}

/* get_pattern_key: the value of the first pattern matching `key`, else `dflt`. */
static int pattern_value(const struct peft_cfg *c, const struct peft_pattern *p, int n,
                         const char *key, double dflt, double *out, char *err) {
    *out = dflt;
    for (int i = 0; i < n; i++) {
        int m = re_run(&p[i].re, c->mctx, key, 0);
        if (m < 0)
            return lp_err(err, LP_ERANGE,
                          "adapter_config.json: pattern '%.40s' needs too much "
                          "backtracking",
                          p[i].key);
        if (m) {
            *out = p[i].value;
            return LP_OK;
        }
    }
    return LP_OK;
}

/* Marks every module the config adapts, with its r and alpha. */
static int select_modules(const struct peft_cfg *c, struct lp_adapter_build *b, char *err) {
    static const char *const globals[] = {"model",      "model.embed_tokens", "model.layers",
                                          "model.norm", "model.rotary_emb",   "lm_head"};
    static const char *const per_layer[] = {
        "", ".self_attn", ".mlp", ".input_layernorm", ".post_attention_layernorm", ".mlp.act_fn"};
    char key[128];
    int any = 0, rc;
    for (size_t g = 0; g < sizeof globals / sizeof *globals; g++) {
        int lin = !strcmp(globals[g], "lm_head");
        if ((rc = peft_targets(c, globals[g], lin, err)) < 0) return rc;
        if (rc == 0) continue;
        if (!strcmp(globals[g], "model.embed_tokens") || lin)
            return lp_err(err, LP_EUNSUPPORTED,
                          "adapter_config.json: target_modules selects %s; LoRA on the embeddings "
                          "or lm_head is not supported",
                          globals[g]);
        return lp_err(err, LP_EFORMAT,
                      "adapter_config.json: target_modules selects %s, which is not a linear "
                      "layer (PEFT refuses it too)",
                      globals[g]);
    }
    for (int l = 0; l < b->n_layer; l++) {
        for (size_t k = 0; k < sizeof per_layer / sizeof *per_layer; k++) {
            snprintf(key, sizeof key, "model.layers.%d%s", l, per_layer[k]);
            if ((rc = peft_targets(c, key, 0, err)) < 0) return rc;
            if (rc)
                return lp_err(err, LP_EFORMAT,
                              "adapter_config.json: target_modules selects %s, which is not a "
                              "linear layer (PEFT refuses it too)",
                              key);
        }
        for (int p = 0; p < LP_PROJ_COUNT; p++) {
            lp_adapter_module_name(l, p, key, sizeof key);
            if ((rc = peft_targets(c, key, 1, err)) < 0) return rc;
            if (!rc) continue;
            struct lp_adapter_stage *s = lp_adapter_build_slot(b, l, p);
            double r, alpha;
            if ((rc = pattern_value(c, c->rank_pat, c->n_rank_pat, key, c->r, &r, err)) ||
                (rc = pattern_value(c, c->alpha_pat, c->n_alpha_pat, key, c->alpha, &alpha, err)))
                return rc;
            s->targeted = 1;
            s->rank = (int)r;
            s->alpha = (float)alpha;
            s->rslora = c->rslora;
            any = 1;
        }
    }
    if (!any)
        return lp_err(err, LP_EFORMAT,
                      "adapter_config.json: target_modules selects no module of the base model");
    return LP_OK;
}

/* ---- tensors -------------------------------------------------------------------- */

/* Parses "model.layers.N.self_attn.q_proj" into (N, proj); -1 if not that form. */
static int parse_module(const char *m, size_t len, int *layer, int *proj) {
    static const char pre[] = "model.layers.";
    if (len < sizeof pre || memcmp(m, pre, sizeof pre - 1) != 0) return -1;
    size_t i = sizeof pre - 1;
    if (m[i] < '0' || m[i] > '9' || (m[i] == '0' && i + 1 < len && m[i + 1] != '.')) return -1;
    long long l = 0;
    while (i < len && m[i] >= '0' && m[i] <= '9' && l < 100000000)
        l = l * 10 + (m[i++] - '0');
    if (i >= len || m[i] != '.') return -1;
    i++;
    for (int p = 0; p < LP_PROJ_COUNT; p++) {
        char tail[32];
        snprintf(tail, sizeof tail, "%s.%s", p <= LP_PROJ_O ? "self_attn" : "mlp",
                 lp_adapter_proj_name(p));
        if (len - i == strlen(tail) && memcmp(m + i, tail, len - i) == 0) {
            *layer = (int)l;
            *proj = p;
            return 0;
        }
    }
    return -1;
}

static int stage_tensor(struct lp_adapter_build *b, const struct lp_tensor *t, char *err) {
    static const char pre[] = "base_model.model.";
    const char *name = t->name;
    size_t n = strlen(name);
    const char *suffixes[] = {".lora_A.weight", ".lora_B.weight"};
    int which = -1;
    size_t mlen = 0;
    for (int k = 0; k < 2; k++) {
        size_t sl = strlen(suffixes[k]);
        if (n > sl && !strcmp(name + n - sl, suffixes[k])) {
            which = k;
            mlen = n - sl;
        }
    }
    if (which < 0) {
        if (strstr(name, "lora_magnitude_vector"))
            return lp_err(err, LP_EUNSUPPORTED, "tensor %s: use_dora (DoRA) is not supported",
                          name);
        if (strstr(name, ".lora_B.bias") || strstr(name, ".lora_A.bias"))
            return lp_err(err, LP_EUNSUPPORTED, "tensor %s: lora_bias is not supported", name);
        if (strstr(name, "lora_embedding_"))
            return lp_err(err, LP_EUNSUPPORTED, "tensor %s: LoRA on embed_tokens is not supported",
                          name);
        if (strstr(name, "embed_tokens") || strstr(name, "lm_head"))
            return lp_err(err, LP_EUNSUPPORTED,
                          "tensor %s: trained embed_tokens / lm_head weights are not supported",
                          name);
        return lp_err(err, LP_EFORMAT, "tensor %s: not a lora_A/lora_B weight", name);
    }
    if (mlen < sizeof pre || memcmp(name, pre, sizeof pre - 1) != 0)
        return lp_err(err, LP_EFORMAT, "tensor %s: name does not start with %s", name, pre);
    const char *mod = name + sizeof pre - 1;
    size_t ml = mlen - (sizeof pre - 1);
    int layer, proj;
    if (parse_module(mod, ml, &layer, &proj) != 0) {
        if ((ml == 18 && !memcmp(mod, "model.embed_tokens", 18)) ||
            (ml == 7 && !memcmp(mod, "lm_head", 7)))
            return lp_err(err, LP_EUNSUPPORTED, "tensor %s: LoRA on %.*s is not supported", name,
                          (int)ml, mod);
        return lp_err(err, LP_EFORMAT, "tensor %s: unknown module %.*s", name,
                      (int)(ml > 80 ? 80 : ml), mod);
    }
    if (layer >= b->n_layer)
        return lp_err(err, LP_EFORMAT, "tensor %s: layer %d but the base model has %d layers", name,
                      layer, b->n_layer);
    struct lp_adapter_stage *s = lp_adapter_build_slot(b, layer, proj);
    if (!s->targeted)
        return lp_err(err, LP_EFORMAT,
                      "tensor %s: adapter_config.json does not target this module "
                      "(target_modules, layers_to_transform, exclude_modules)",
                      name);
    if (which == 0) {
        s->a = *t;
        s->has_a = 1;
    } else {
        s->b = *t;
        s->has_b = 1;
    }
    return LP_OK;
}

/* ---- entry points ---------------------------------------------------------------- */

static int peft_load(const char *cfg_text, size_t cfg_len, struct st_ctx *st,
                     const struct lp_model *base, struct lp_adapter **out, char *err) {
    cJSON *o = cJSON_ParseWithLength(cfg_text, cfg_len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return lp_err(err, LP_EFORMAT, "adapter_config.json: not a JSON object");
    }
    struct peft_cfg c;
    memset(&c, 0, sizeof c);
    struct lp_adapter_build b;
    lp_adapter_build_init(&b, base);
    b.what = "adapter_config.json";
    /* PEFT adapters are in HF row order; a GGUF llama base has q/k rows permuted. */
    b.qk_permute = base->cfg.rope_interleaved ? 1 : 0;
    int rc = parse_config(o, &c, err);
    if (rc == LP_OK) rc = select_modules(&c, &b, err);
    for (int64_t i = 0; rc == LP_OK && i < st_tensor_count(st); i++) {
        struct lp_tensor t;
        st_tensor_get(st, i, &t);
        rc = stage_tensor(&b, &t, err);
    }
    if (rc == LP_OK) rc = lp_adapter_build_finish(&b, out, err);
    lp_adapter_build_clear(&b);
    cfg_clear(&c);
    cJSON_Delete(o);
    return rc;
}

int lp_peft_load_memory(const char *config, size_t config_len, const void *st_data, size_t st_len,
                        const struct lp_model *base, struct lp_adapter **out, char *err) {
    *out = NULL;
    if (config_len > PEFT_MAX_CONFIG)
        return lp_err(err, LP_ERANGE, "adapter_config.json: larger than %d bytes", PEFT_MAX_CONFIG);
    struct st_ctx *st = NULL;
    char sterr[LP_ERR_LEN];
    int rc = st_open_memory(st_data, st_len, &st, sterr);
    if (rc) return lp_err(err, rc, "adapter_model.safetensors: %s", sterr);
    rc = peft_load(config, config_len, st, base, out, err);
    st_close(st);
    return rc;
}

static int read_text(const char *path, char **out, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lp_err(err, LP_EIO, "%s: cannot open", path);
    char *buf = xmalloc(PEFT_MAX_CONFIG + 1);
    size_t n = fread(buf, 1, PEFT_MAX_CONFIG + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > PEFT_MAX_CONFIG) {
        free(buf);
        return bad ? lp_err(err, LP_EIO, "%s: read error", path)
                   : lp_err(err, LP_ERANGE, "%s: larger than %d bytes", path, PEFT_MAX_CONFIG);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return LP_OK;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int lp_peft_load_dir(const char *dir, const struct lp_model *base, struct lp_adapter **out,
                     char *err) {
    *out = NULL;
    char cfg_path[4096], st_path[4096], bin_path[4096];
    if (strlen(dir) > 3000) return lp_err(err, LP_EINVAL, "adapter path too long");
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", dir);
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", dir);
    snprintf(bin_path, sizeof bin_path, "%s/adapter_model.bin", dir);
    if (!is_file(cfg_path))
        return lp_err(err, LP_ENOTFOUND, "%s: no adapter_config.json (not a PEFT adapter)", dir);
    if (!is_file(st_path)) {
        if (is_file(bin_path))
            return lp_err(err, LP_EUNSUPPORTED,
                          "adapter_model.bin is a pickle; convert it to safetensors (never "
                          "unpickled)");
        return lp_err(err, LP_ENOTFOUND, "%s: no adapter_model.safetensors", dir);
    }
    char *text = NULL;
    size_t len = 0;
    int rc = read_text(cfg_path, &text, &len, err);
    if (rc) return rc;
    struct st_ctx *st = NULL;
    char sterr[LP_ERR_LEN];
    rc = st_open(st_path, &st, sterr);
    if (rc) {
        free(text);
        return lp_err(err, rc, "adapter_model.safetensors: %s", sterr);
    }
    rc = peft_load(text, len, st, base, out, err);
    st_close(st);
    free(text);
    return rc;
}
