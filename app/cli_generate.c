/* cli_generate.c: `loraplex generate` and `loraplex tokenize`, the stable
 * command-line interface that checks and scripts drive the engine through.
 * The JSON shapes printed here are part of that interface. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "forward.h"
#include "generate.h"
#include "lora/adapter.h"
#include "lp_common.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#define KV_BLOCK 16

static void gen_usage(FILE *f) {
    fprintf(f,
            "usage: loraplex generate --model PATH (--prompt TEXT | --prompt-ids ID,ID,... |\n"
            "                         --batch FILE.jsonl) [options]\n"
            "  --model PATH        GGUF file or Hugging Face model directory\n"
            "  --prompt TEXT       the prompt (tokenized with the model's tokenizer)\n"
            "  --prompt-ids LIST   the prompt as comma-separated token ids\n"
            "  --batch FILE        one JSON object per line: {\"prompt\", \"max_tokens\",\n"
            "                      \"temperature\", \"seed\", \"adapter\": PATH|null, ...};\n"
            "                      all lines share batches, whatever their adapters\n"
            "  --adapter PATH      a LoRA adapter: PEFT directory or GGUF LoRA file\n"
            "  --merge             merge the adapter into a copy of the weights (one adapter)\n"
            "  --chat              wrap the prompt as one user message in the chat template\n"
            "  --chat-template N   override the template: chatml, llama3, llama2, mistral\n"
            "  --max-tokens N      new tokens at most (default 64)\n"
            "  --temperature T     0 = greedy (default 0)\n"
            "  --top-p P  --top-k K  --min-p P  --repetition-penalty R\n"
            "  --seed S            makes sampled output reproducible\n"
            "  --logprobs K        top-K logprobs of each generated token (<= %d)\n"
            "  --stop TEXT         stop string (repeatable)\n"
            "  --ignore-eos        keep generating past end-of-generation tokens\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "  --json              print one JSON object per request\n"
            "  --stats             print timing to stderr\n",
            LP_MAX_LOGPROBS);
}

static int parse_float(const char *s, float *v) {
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *v = (float)d;
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *v) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

/* "1,2,3" -> ids (new array). */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *a = xmalloc(cap * sizeof *a);
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX) {
            free(a);
            return -1;
        }
        if (k == cap) a = xrealloc(a, (cap *= 2) * sizeof *a);
        a[k++] = (int32_t)x;
        p = end;
        if (*p == ',')
            p++;
        else if (*p) {
            free(a);
            return -1;
        }
    }
    *ids = a;
    *n = k;
    return 0;
}

struct gen_opts {
    const char *model, *prompt, *prompt_ids, *batch, *chat_template, *adapter;
    int chat, json, stats, ignore_eos, logprobs, threads, max_tokens, merge;
    struct lp_sampling sampling;
    const char *stop[16];
    int n_stop;
};

/* Turns the prompt text into ids, through the chat template if asked. */
static int encode_prompt(const struct lp_model *m, const struct gen_opts *o, const char *text,
                         int32_t **ids, size_t *n, char *err) {
    if (!o->chat) return lp_tokenizer_encode(m->tok, text, strlen(text), 1, 1, ids, n, err);
    struct lp_chat_template t;
    int32_t bos = lp_tokenizer_bos(m->tok), eos = lp_tokenizer_eos(m->tok);
    const char *bos_text = bos >= 0 ? lp_tokenizer_token_text(m->tok, bos) : NULL;
    const char *eos_text = eos >= 0 ? lp_tokenizer_token_text(m->tok, eos) : NULL;
    int rc = o->chat_template
                 ? lp_chat_template_from_name(o->chat_template, bos_text, eos_text, &t, err)
                 : lp_chat_template_detect(m->chat_template, bos_text, eos_text, &t, err);
    if (rc) return rc;
    struct lp_chat_msg msg = {"user", text};
    char *rendered = NULL;
    rc = lp_chat_template_render(&t, &msg, 1, 1, &rendered, err);
    lp_chat_template_clear(&t);
    if (rc) return rc;
    /* The template already wrote BOS where the model wants one. */
    rc = lp_tokenizer_encode(m->tok, rendered, strlen(rendered), 0, 1, ids, n, err);
    free(rendered);
    return rc;
}

static cJSON *result_json(const int32_t *prompt, size_t n_prompt, const struct lp_gen_result *r,
                          int K) {
    cJSON *o = cJSON_CreateObject();
    cJSON *pt = cJSON_AddArrayToObject(o, "prompt_tokens");
    for (size_t i = 0; i < n_prompt; i++)
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(prompt[i]));
    cJSON *tk = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < r->n_tokens; i++)
        cJSON_AddItemToArray(tk, cJSON_CreateNumber(r->tokens[i]));
    cJSON_AddStringToObject(o, "text", r->text ? r->text : "");
    cJSON_AddStringToObject(o, "finish_reason", r->finish_reason ? r->finish_reason : "length");
    if (K > 0) {
        cJSON *lp = cJSON_AddArrayToObject(o, "logprobs");
        for (size_t i = 0; i < r->n_tokens; i++) {
            cJSON *step = cJSON_CreateArray();
            for (int k = 0; k < K; k++) {
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateNumber(r->top_ids[i * K + k]));
                cJSON_AddItemToArray(pair, cJSON_CreateNumber(r->top_lps[i * K + k]));
                cJSON_AddItemToArray(step, pair);
            }
            cJSON_AddItemToArray(lp, step);
        }
    }
    return o;
}

/* One request of a --batch file. */
struct batch_line {
    int32_t *ids;
    size_t n_ids;
    char *adapter; /* path or NULL for the base model, owned */
    struct lp_gen_request req;
};

static int json_num(const cJSON *o, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    return 1;
}

static int parse_batch_line(const struct lp_model *m, const struct gen_opts *o, const char *line,
                            int lineno, struct batch_line *bl, char *err) {
    cJSON *j = cJSON_Parse(line);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lp_err(err, LP_EINVAL, "batch line %d: not a JSON object", lineno);
    }
    bl->req = (struct lp_gen_request){0};
    struct lp_sampling *sp = &bl->req.sampling;
    *sp = o->sampling;
    bl->req.max_tokens = o->max_tokens;
    bl->req.logprobs = o->logprobs;
    bl->req.ignore_eos = o->ignore_eos;
    bl->req.stop = o->stop;
    bl->req.n_stop = o->n_stop;
    int rc = LP_OK;
    double v;
    int k;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(j, "adapter");
    const cJSON *pids = cJSON_GetObjectItemCaseSensitive(j, "prompt_ids");
    if (!cJSON_IsString(p) && !cJSON_IsArray(pids)) {
        rc = lp_err(err, LP_EINVAL,
                    "batch line %d: needs \"prompt\" (a string) or \"prompt_ids\" (token ids)",
                    lineno);
        goto out;
    }
    if (ad && !cJSON_IsNull(ad)) {
        if (!cJSON_IsString(ad) || !ad->valuestring[0]) {
            rc =
                lp_err(err, LP_EINVAL, "batch line %d: \"adapter\" must be a path or null", lineno);
            goto out;
        }
        bl->adapter = xstrdup(ad->valuestring);
    }
    static const char *const keys[] = {"max_tokens", "temperature", "seed", "top_p", "top_k"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if ((k = json_num(j, keys[i], &v)) == 0) continue;
        if (k < 0 || v < 0 || v > 1e18) {
            rc = lp_err(err, LP_EINVAL, "batch line %d: \"%s\" must be a non-negative number",
                        lineno, keys[i]);
            goto out;
        }
        switch (i) {
        case 0: bl->req.max_tokens = v > (1 << 20) ? (1 << 20) : (int)v; break;
        case 1: sp->temperature = (float)v; break;
        case 2: sp->seed = (uint64_t)v, sp->has_seed = 1; break;
        case 3: sp->top_p = (float)v; break;
        case 4: sp->top_k = v > (1 << 24) ? (1 << 24) : (int)v; break;
        }
    }
    if (cJSON_IsArray(pids)) {
        int np = cJSON_GetArraySize(pids);
        if (np <= 0 || np > (1 << 20)) {
            rc = lp_err(err, LP_EINVAL, "batch line %d: \"prompt_ids\" is empty or too long",
                        lineno);
            goto out;
        }
        bl->ids = xmalloc((size_t)np * sizeof(int32_t));
        bl->n_ids = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, pids) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX ||
                e->valuedouble != (double)(int32_t)e->valuedouble) {
                rc = lp_err(err, LP_EINVAL, "batch line %d: \"prompt_ids\" must hold token ids",
                            lineno);
                goto out;
            }
            bl->ids[bl->n_ids++] = (int32_t)e->valuedouble;
        }
    } else {
        rc = encode_prompt(m, o, p->valuestring, &bl->ids, &bl->n_ids, err);
    }
    bl->req.prompt = bl->ids;
    bl->req.n_prompt = bl->n_ids;
out:
    cJSON_Delete(j);
    return rc;
}

static int read_batch(const struct lp_model *m, const struct gen_opts *o, struct batch_line **out,
                      int *n_out, char *err) {
    FILE *f = fopen(o->batch, "r");
    if (!f) return lp_err(err, LP_ENOTFOUND, "%s: %s", o->batch, strerror(errno));
    struct batch_line *lines = NULL;
    int n = 0, cap = 0, lineno = 0, rc = LP_OK;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t len;
    while ((len = getline(&buf, &bcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = 0;
        if (len == 0) continue;
        if (n == cap) lines = xrealloc(lines, (size_t)(cap = cap ? cap * 2 : 16) * sizeof *lines);
        memset(&lines[n], 0, sizeof lines[n]);
        if ((rc = parse_batch_line(m, o, buf, lineno, &lines[n], err)) != LP_OK) {
            free(lines[n].ids);
            free(lines[n].adapter);
            break;
        }
        n++;
    }
    free(buf);
    fclose(f);
    if (rc == LP_OK && n == 0) rc = lp_err(err, LP_EINVAL, "%s: no requests", o->batch);
    if (rc != LP_OK) {
        for (int i = 0; i < n; i++) {
            free(lines[i].ids);
            free(lines[i].adapter);
        }
        free(lines);
        return rc;
    }
    *out = lines;
    *n_out = n;
    return LP_OK;
}

static int parse_gen_opts(int argc, char **argv, struct gen_opts *o) {
    enum {
        O_MODEL = 1000,
        O_ADAPTER,
        O_MERGE,
        O_PROMPT,
        O_IDS,
        O_BATCH,
        O_CHAT,
        O_TMPL,
        O_MAX,
        O_TEMP,
        O_TOPP,
        O_TOPK,
        O_MINP,
        O_REP,
        O_SEED,
        O_LOGPROBS,
        O_STOP,
        O_IGN,
        O_THREADS,
        O_JSON,
        O_STATS,
        O_HELP
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"adapter", required_argument, 0, O_ADAPTER},
        {"merge", no_argument, 0, O_MERGE},
        {"prompt", required_argument, 0, O_PROMPT},
        {"prompt-ids", required_argument, 0, O_IDS},
        {"batch", required_argument, 0, O_BATCH},
        {"chat", no_argument, 0, O_CHAT},
        {"chat-template", required_argument, 0, O_TMPL},
        {"max-tokens", required_argument, 0, O_MAX},
        {"temperature", required_argument, 0, O_TEMP},
        {"top-p", required_argument, 0, O_TOPP},
        {"top-k", required_argument, 0, O_TOPK},
        {"min-p", required_argument, 0, O_MINP},
        {"repetition-penalty", required_argument, 0, O_REP},
        {"seed", required_argument, 0, O_SEED},
        {"logprobs", required_argument, 0, O_LOGPROBS},
        {"stop", required_argument, 0, O_STOP},
        {"ignore-eos", no_argument, 0, O_IGN},
        {"threads", required_argument, 0, O_THREADS},
        {"json", no_argument, 0, O_JSON},
        {"stats", no_argument, 0, O_STATS},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    lp_sampling_default(&o->sampling);
    o->max_tokens = 64;
    optind = 1;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_ADAPTER: o->adapter = optarg; break;
        case O_MERGE: o->merge = 1; break;
        case O_PROMPT: o->prompt = optarg; break;
        case O_IDS: o->prompt_ids = optarg; break;
        case O_BATCH: o->batch = optarg; break;
        case O_CHAT: o->chat = 1; break;
        case O_TMPL:
            o->chat_template = optarg;
            o->chat = 1;
            break;
        case O_MAX:
            if (parse_int(optarg, 0, 1 << 20, &v)) goto bad;
            o->max_tokens = (int)v;
            break;
        case O_TEMP:
            if (parse_float(optarg, &o->sampling.temperature)) goto bad;
            break;
        case O_TOPP:
            if (parse_float(optarg, &o->sampling.top_p)) goto bad;
            break;
        case O_MINP:
            if (parse_float(optarg, &o->sampling.min_p)) goto bad;
            break;
        case O_REP:
            if (parse_float(optarg, &o->sampling.repetition_penalty)) goto bad;
            break;
        case O_TOPK:
            if (parse_int(optarg, 0, 1 << 24, &v)) goto bad;
            o->sampling.top_k = (int)v;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end) goto bad;
            o->sampling.seed = s;
            o->sampling.has_seed = 1;
            break;
        }
        case O_LOGPROBS:
            if (parse_int(optarg, 0, LP_MAX_LOGPROBS, &v)) goto bad;
            o->logprobs = (int)v;
            break;
        case O_STOP:
            if (o->n_stop >= 16) goto bad;
            o->stop[o->n_stop++] = optarg;
            break;
        case O_IGN: o->ignore_eos = 1; break;
        case O_THREADS:
            if (parse_int(optarg, 0, 1024, &v)) goto bad;
            o->threads = (int)v;
            break;
        case O_JSON: o->json = 1; break;
        case O_STATS: o->stats = 1; break;
        case O_HELP:
        case 'h': gen_usage(stdout); return 1;
        default: gen_usage(stderr); return -1;
        }
        continue;
    bad:
        fprintf(stderr, "loraplex generate: bad value '%s' for --%s\n", optarg,
                opts[c - O_MODEL].name);
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "loraplex generate: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->model || (!!o->prompt + !!o->prompt_ids + !!o->batch) != 1) {
        fprintf(stderr,
                "loraplex generate: need --model and one of --prompt, --prompt-ids, --batch\n");
        gen_usage(stderr);
        return -1;
    }
    return 0;
}

/* An adapter's targets as the forward takes them: [n_layer * LP_PROJ_COUNT]. */
static struct lp_lora_target *adapter_targets(const struct lp_model *m,
                                              const struct lp_adapter *ad) {
    size_t nt = (size_t)m->cfg.n_layer * LP_PROJ_COUNT;
    struct lp_lora_target *t = xcalloc(nt, sizeof *t);
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int p = 0; p < LP_PROJ_COUNT; p++) {
            const struct lp_lora_target *x = lp_adapter_target(ad, l, p);
            if (x) t[(size_t)l * LP_PROJ_COUNT + p] = *x;
        }
    return t;
}

/* Copies an adapter into forward slot `slot`, or merges it into the weights. */
static int load_slot(struct lp_forward *f, const struct lp_model *m, int slot,
                     const struct lp_adapter *ad, int merge, char *err) {
    struct lp_lora_target *t = adapter_targets(m, ad);
    int rc = merge ? lp_forward_merge(f, t, err) : lp_forward_slot_load(f, slot, t, err);
    free(t);
    return rc;
}

int cli_generate(int argc, char **argv) {
    struct gen_opts o;
    int prc = parse_gen_opts(argc, argv, &o);
    if (prc) return prc > 0 ? 0 : 2;
    char err[LP_ERR_LEN] = "";
    struct lp_model *m = NULL;
    struct lp_backend *be = NULL;
    struct lp_forward *f = NULL;
    struct batch_line *lines = NULL;
    struct lp_gen_result *res = NULL;
    struct lp_gen_request *reqs = NULL;
    int n = 0, status = 1, rc, n_adapters = 0;
    struct {
        const char *path; /* borrowed from a batch line */
        struct lp_adapter *ad;
    } *adapters = NULL;
    double *slot_ms = NULL; /* [n_adapters] host -> slot load times */
    double t0 = lp_time_now();
    if ((rc = lp_model_load(o.model, &m, err)) != LP_OK) goto fail;
    double t_load = lp_time_now() - t0;
    if (o.batch) {
        if ((rc = read_batch(m, &o, &lines, &n, err)) != LP_OK) goto fail;
    } else {
        lines = xcalloc(1, sizeof *lines);
        n = 1;
        if (o.prompt_ids) {
            if (parse_ids(o.prompt_ids, &lines[0].ids, &lines[0].n_ids) || lines[0].n_ids == 0) {
                rc = lp_err(err, LP_EINVAL, "--prompt-ids: expected comma-separated token ids");
                goto fail;
            }
        } else if ((rc = encode_prompt(m, &o, o.prompt, &lines[0].ids, &lines[0].n_ids, err))) {
            goto fail;
        }
        if (o.adapter) lines[0].adapter = xstrdup(o.adapter);
        lines[0].req = (struct lp_gen_request){.prompt = lines[0].ids,
                                               .n_prompt = lines[0].n_ids,
                                               .sampling = o.sampling,
                                               .max_tokens = o.max_tokens,
                                               .ignore_eos = o.ignore_eos,
                                               .logprobs = o.logprobs,
                                               .stop = o.stop,
                                               .n_stop = o.n_stop};
    }
    /* each distinct adapter is loaded once and gets one slot */
    adapters = xcalloc((size_t)n, sizeof *adapters);
    int max_rank = 0;
    double t_adapters = lp_time_now();
    for (int i = 0; i < n; i++) {
        if (!lines[i].adapter) continue;
        int k = 0;
        while (k < n_adapters && strcmp(adapters[k].path, lines[i].adapter))
            k++;
        if (k == n_adapters) {
            adapters[k].path = lines[i].adapter;
            if ((rc = lp_adapter_load(lines[i].adapter, m, &adapters[k].ad, err)) != LP_OK)
                goto fail;
            if (lp_adapter_max_rank(adapters[k].ad) > max_rank)
                max_rank = lp_adapter_max_rank(adapters[k].ad);
            n_adapters++;
        }
        lines[i].req.adapter = k + 1;
    }
    t_adapters = lp_time_now() - t_adapters;
    if (o.merge) {
        if (n_adapters != 1) {
            rc = lp_err(err, LP_EINVAL, "--merge needs exactly one adapter (found %d)", n_adapters);
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            if (!lines[i].adapter) {
                rc = lp_err(err, LP_EINVAL, "--merge: every request must use the adapter");
                goto fail;
            }
            lines[i].req.adapter = 0; /* the weights are the adapter now */
        }
    }
    reqs = xcalloc((size_t)n, sizeof *reqs);
    res = xcalloc((size_t)n, sizeof *res);
    long blocks = 0;
    for (int i = 0; i < n; i++) {
        reqs[i] = lines[i].req;
        blocks += ((long)reqs[i].n_prompt + reqs[i].max_tokens + KV_BLOCK - 1) / KV_BLOCK;
    }
    if (blocks > (1L << 20)) {
        rc = lp_err(err, LP_ERANGE, "the requests need %ld KV blocks: too many", blocks);
        goto fail;
    }
    if (!(be = lp_cpu_backend_create(o.threads))) {
        rc = lp_err(err, LP_ENOMEM, "cannot create the CPU backend");
        goto fail;
    }
    struct lp_forward_params fp = {.max_tokens = 256,
                                   .max_logits = n < 64 ? n : 64,
                                   .n_blocks = (int)blocks,
                                   .block_size = KV_BLOCK,
                                   .n_slots = o.merge ? 0 : n_adapters,
                                   .max_rank = max_rank};
    if ((rc = lp_forward_create(be, m, &fp, &f, err)) != LP_OK) goto fail;
    /* host -> slot load time of each adapter, for --stats */
    double t_slots = lp_time_now();
    slot_ms = xcalloc((size_t)(n_adapters ? n_adapters : 1), sizeof *slot_ms);
    for (int k = 0; k < n_adapters; k++) {
        double t = lp_time_now();
        if ((rc = load_slot(f, m, k, adapters[k].ad, o.merge, err)) != LP_OK) goto fail;
        slot_ms[k] = (lp_time_now() - t) * 1e3;
    }
    t_slots = lp_time_now() - t_slots;
    struct lp_gen_stats st;
    if ((rc = lp_generate(f, m->tok, reqs, n, res, &st, err)) != LP_OK) goto fail;
    for (int i = 0; i < n; i++) {
        if (o.json) {
            cJSON *j = result_json(reqs[i].prompt, reqs[i].n_prompt, &res[i], o.logprobs);
            char *s = cJSON_PrintUnformatted(j);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(j);
        } else {
            printf("%s\n", res[i].text);
        }
    }
    if (o.stats && n_adapters > 0) {
        fprintf(stderr, "adapters: %d parsed in %.3f s, loaded into slots in %.3f s\n", n_adapters,
                t_adapters, t_slots);
        fprintf(stderr, "slot load ms:");
        for (int k = 0; k < n_adapters; k++)
            fprintf(stderr, " %.3f/r%d", slot_ms[k], lp_adapter_max_rank(adapters[k].ad));
        fprintf(stderr, "\n");
    }
    if (o.stats)
        fprintf(stderr,
                "load %.3f s; prefill %ld tok in %.3f s (%.1f tok/s); decode %ld tok in %.3f s "
                "(%.1f tok/s); %d steps; %d threads\n",
                t_load, st.prefill_tokens, st.prefill_s,
                st.prefill_s > 0 ? st.prefill_tokens / st.prefill_s : 0.0, st.decode_tokens,
                st.decode_s, st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0.0, st.steps,
                be->n_threads);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "loraplex generate: %s\n", err[0] ? err : lp_strerror(rc));
done:
    for (int i = 0; i < n; i++) {
        if (res) lp_gen_result_clear(&res[i]);
        if (lines) {
            free(lines[i].ids);
            free(lines[i].adapter);
        }
    }
    for (int k = 0; k < n_adapters; k++)
        lp_adapter_destroy(adapters[k].ad);
    free(adapters);
    free(slot_ms);
    free(res);
    free(reqs);
    free(lines);
    lp_forward_destroy(f);
    if (be) be->ops->destroy(be);
    lp_model_destroy(m);
    return status;
}

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    int json = 0, no_special = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--no-special"))
            no_special = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: loraplex tokenize --model PATH --text TEXT [--no-special] [--json]\n");
            return 0;
        } else {
            fprintf(stderr, "loraplex tokenize: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model || !text) {
        fprintf(stderr, "usage: loraplex tokenize --model PATH --text TEXT [--json]\n");
        return 2;
    }
    char err[LP_ERR_LEN] = "";
    struct lp_model *m = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = lp_model_load(model, &m, err);
    if (rc == LP_OK)
        rc = lp_tokenizer_encode(m->tok, text, strlen(text), !no_special, 1, &ids, &n, err);
    if (rc != LP_OK) {
        fprintf(stderr, "loraplex tokenize: %s\n", err);
        lp_model_destroy(m);
        return 1;
    }
    if (json) printf("{\"ids\":[");
    for (size_t i = 0; i < n; i++)
        printf(i ? (json ? ",%d" : " %d") : "%d", ids[i]);
    printf(json ? "]}\n" : "\n");
    free(ids);
    lp_model_destroy(m);
    return 0;
}
