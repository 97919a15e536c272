/* generate.c: runs requests to completion, step by step. Each step carries
 * one token of every decoding sequence and fills the rest of the token budget
 * with prompt chunks (chunked prefill). KV blocks for a request's whole
 * prompt + max_tokens are reserved when it is admitted, so nothing is ever
 * preempted here; requests that do not fit wait for blocks to free up. */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "kv_cache.h"
#include "lp_common.h"
#include "tokenizer/tokenizer.h"

enum seq_state { SEQ_WAITING, SEQ_RUNNING, SEQ_DONE };

struct seq {
    const struct lp_gen_request *req;
    struct lp_gen_result *res;
    int state;
    struct kv_seq kv;
    size_t n_fed; /* prompt tokens already in the cache */
    int32_t next; /* the token to feed when decoding */
    struct lp_sampler *sampler;
    struct lp_detok detok;
    char *text; /* growing output text */
    size_t text_len, text_cap;
    size_t cap_tokens;
};

static void text_append(struct seq *s, const char *p, size_t n) {
    if (s->text_len + n + 1 > s->text_cap) {
        s->text_cap = (s->text_len + n + 1) * 2;
        s->text = xrealloc(s->text, s->text_cap);
    }
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    s->text[s->text_len] = 0;
}

/* Returns 1 and truncates the text if it now contains a stop string. Only the
 * tail that the last token could have completed is searched. */
static int check_stop(struct seq *s, size_t added) {
    const struct lp_gen_request *r = s->req;
    for (int i = 0; i < r->n_stop; i++) {
        size_t sl = strlen(r->stop[i]);
        if (sl == 0 || sl > s->text_len) continue;
        size_t from = s->text_len > sl + added ? s->text_len - sl - added : 0;
        char *hit = NULL;
        for (size_t p = from; p + sl <= s->text_len; p++)
            if (!memcmp(s->text + p, r->stop[i], sl)) {
                hit = s->text + p;
                break;
            }
        if (hit) {
            s->text_len = (size_t)(hit - s->text);
            s->text[s->text_len] = 0;
            return 1;
        }
    }
    return 0;
}

static void finish(struct kv_cache *kv, struct seq *s, const char *reason) {
    char buf[16];
    size_t n = lp_detok_flush(&s->detok, buf, sizeof buf);
    if (n && reason[0] == 'l') text_append(s, buf, n);
    s->res->finish_reason = reason;
    s->res->text = s->text ? s->text : xstrdup("");
    s->text = NULL;
    kv_seq_clear(kv, &s->kv);
    lp_sampler_destroy(s->sampler);
    s->sampler = NULL;
    s->state = SEQ_DONE;
}

void lp_gen_result_clear(struct lp_gen_result *r) {
    free(r->tokens);
    free(r->text);
    free(r->top_ids);
    free(r->top_lps);
    free(r->token_lps);
    memset(r, 0, sizeof *r);
}

int lp_generate(struct lp_forward *f, const struct lp_tokenizer *tok,
                const struct lp_gen_request *reqs, int n, struct lp_gen_result *res,
                struct lp_gen_stats *stats, char *err) {
    const struct lp_forward_params *fp = lp_forward_params_get(f);
    /* logits rows span the model's vocabulary (it may be padded past the
     * tokenizer's); ids the tokenizer lacks decode to nothing */
    const int n_vocab = lp_forward_n_vocab(f);
    struct lp_gen_stats st = {0};
    int rc = LP_OK;
    for (int i = 0; i < n; i++) {
        const struct lp_gen_request *r = &reqs[i];
        if (r->n_prompt == 0) return lp_err(err, LP_EINVAL, "request %d: empty prompt", i);
        if (r->max_tokens < 0 || r->logprobs < 0 || r->logprobs > LP_MAX_LOGPROBS)
            return lp_err(err, LP_EINVAL, "request %d: bad max_tokens or logprobs", i);
        long need = (long)r->n_prompt + r->max_tokens;
        if ((need + fp->block_size - 1) / fp->block_size > fp->n_blocks)
            return lp_err(err, LP_ERANGE,
                          "request %d: %ld tokens do not fit the KV cache (%d tokens)", i, need,
                          fp->n_blocks * fp->block_size);
        for (size_t j = 0; j < r->n_prompt; j++)
            if (r->prompt[j] < 0 || r->prompt[j] >= n_vocab)
                return lp_err(err, LP_EINVAL, "request %d: token id %d out of range", i,
                              r->prompt[j]);
        if (r->adapter < 0 || r->adapter > fp->n_slots)
            return lp_err(err, LP_EINVAL, "request %d: adapter slot %d does not exist", i,
                          r->adapter - 1);
        if ((rc = lp_sampling_validate(&r->sampling, n_vocab, err)) != LP_OK) return rc;
    }
    struct kv_cache *kv = kv_cache_create(fp->n_blocks, fp->block_size);
    struct seq *seqs = xcalloc((size_t)(n > 0 ? n : 1), sizeof *seqs);
    const int T = fp->max_tokens;
    int32_t *tokens = xmalloc((size_t)T * sizeof(int32_t));
    int32_t *pos = xmalloc((size_t)T * sizeof(int32_t));
    int32_t *seq_of = xmalloc((size_t)T * sizeof(int32_t));
    int32_t *slot = xmalloc((size_t)T * sizeof(int32_t));
    int32_t *logit_rows = xmalloc((size_t)fp->max_logits * sizeof(int32_t));
    int32_t *row_seq = xmalloc((size_t)fp->max_logits * sizeof(int32_t));
    int32_t *step_seqs = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    int32_t *step_ntok = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    struct lp_step_seg *segs = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *segs);
    int max_blocks = fp->n_blocks;
    int32_t *block_table = NULL;
    size_t bt_cap = 0;
    float *logits = malloc((size_t)fp->max_logits * n_vocab * sizeof(float));
    float *raw = malloc((size_t)n_vocab * sizeof(float)); /* a row before sampling */
    if (!logits || !raw) {
        rc = lp_err(err, LP_ENOMEM, "out of memory for logits");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        seqs[i].req = &reqs[i];
        seqs[i].res = &res[i];
        seqs[i].state = SEQ_WAITING;
        kv_seq_init(&seqs[i].kv);
    }
    int n_done = 0;
    while (n_done < n) {
        /* admit waiting requests in order while their whole budget fits */
        for (int i = 0; i < n; i++) {
            struct seq *s = &seqs[i];
            if (s->state != SEQ_WAITING) continue;
            int need = (int)s->req->n_prompt + s->req->max_tokens;
            if (kv_cache_seq_reserve(kv, &s->kv, need) != LP_OK) break;
            s->state = SEQ_RUNNING;
            s->sampler = lp_sampler_create(&s->req->sampling, n_vocab);
            lp_sampler_accept_prompt(s->sampler, s->req->prompt, s->req->n_prompt);
            lp_detok_init(&s->detok);
            s->cap_tokens = (size_t)s->req->max_tokens;
            s->res->tokens = xmalloc((s->cap_tokens ? s->cap_tokens : 1) * sizeof(int32_t));
            s->res->token_lps = xmalloc((s->cap_tokens ? s->cap_tokens : 1) * sizeof(float));
            if (s->req->logprobs > 0) {
                size_t m = (s->cap_tokens ? s->cap_tokens : 1) * (size_t)s->req->logprobs;
                s->res->top_ids = xmalloc(m * sizeof(int32_t));
                s->res->top_lps = xmalloc(m * sizeof(float));
            }
            if (s->req->max_tokens == 0) {
                finish(kv, s, "length");
                n_done++;
            }
        }
        /* choose the step's work: one token of every decoding sequence, then
         * prompt chunks up to the token budget */
        int nt = 0, nl = 0, ns = 0, has_prefill = 0;
        for (int i = 0; i < n && nt < T && nl < fp->max_logits; i++) {
            struct seq *s = &seqs[i];
            if (s->state != SEQ_RUNNING || s->n_fed < s->req->n_prompt) continue;
            step_seqs[ns] = i;
            step_ntok[ns++] = 1;
            nt++;
            nl++;
        }
        for (int i = 0; i < n && nt < T; i++) {
            struct seq *s = &seqs[i];
            if (s->state != SEQ_RUNNING || s->n_fed >= s->req->n_prompt) continue;
            size_t left = s->req->n_prompt - s->n_fed;
            int chunk = (int)(left < (size_t)(T - nt) ? left : (size_t)(T - nt));
            int last = s->n_fed + (size_t)chunk == s->req->n_prompt;
            if (last && nl >= fp->max_logits) continue; /* its logits row must wait */
            step_seqs[ns] = i;
            step_ntok[ns++] = chunk;
            nt += chunk;
            nl += last;
            has_prefill = 1;
        }
        /* order the sequences by adapter (stable), so that each adapter's
         * tokens are contiguous: one segment per adapter */
        for (int k = 1; k < ns; k++) {
            int si = step_seqs[k], sn = step_ntok[k], j = k;
            while (j > 0 && reqs[step_seqs[j - 1]].adapter > reqs[si].adapter) {
                step_seqs[j] = step_seqs[j - 1];
                step_ntok[j] = step_ntok[j - 1];
                j--;
            }
            step_seqs[j] = si;
            step_ntok[j] = sn;
        }
        /* lay out the tokens */
        nt = nl = 0;
        int n_segs = 0, any_adapter = 0;
        for (int k = 0; k < ns; k++) {
            struct seq *s = &seqs[step_seqs[k]];
            int decoding = s->n_fed >= s->req->n_prompt;
            int slot_id = s->req->adapter - 1;
            any_adapter |= slot_id >= 0;
            if (n_segs == 0 || segs[n_segs - 1].slot != slot_id)
                segs[n_segs++] = (struct lp_step_seg){.start = nt, .len = 0, .slot = slot_id};
            segs[n_segs - 1].len += step_ntok[k];
            for (int j = 0; j < step_ntok[k]; j++) {
                int p = decoding ? s->kv.n_tokens : (int)s->n_fed + j;
                tokens[nt] = decoding ? s->next : s->req->prompt[p];
                pos[nt] = p;
                seq_of[nt] = k;
                slot[nt] = kv_seq_slot(kv, &s->kv, p);
                nt++;
            }
            if (decoding || s->n_fed + (size_t)step_ntok[k] == s->req->n_prompt) {
                logit_rows[nl] = nt - 1;
                row_seq[nl++] = step_seqs[k];
            }
        }
        if (nt == 0) {
            rc = lp_err(err, LP_EBUSY, "generate: no request could be scheduled");
            goto out;
        }
        /* block tables of the sequences in this step */
        max_blocks = 1;
        for (int k = 0; k < ns; k++)
            if (seqs[step_seqs[k]].kv.n_blocks > max_blocks)
                max_blocks = seqs[step_seqs[k]].kv.n_blocks;
        if ((size_t)ns * max_blocks > bt_cap) {
            bt_cap = (size_t)ns * max_blocks * 2;
            block_table = xrealloc(block_table, bt_cap * sizeof(int32_t));
        }
        for (int k = 0; k < ns; k++) {
            const struct kv_seq *kvs = &seqs[step_seqs[k]].kv;
            memcpy(block_table + (size_t)k * max_blocks, kvs->blocks,
                   (size_t)kvs->n_blocks * sizeof(int32_t));
        }
        struct lp_step step = {
            .tokens = tokens,
            .attn = {.n_tokens = nt,
                     .pos = pos,
                     .seq = seq_of,
                     .slot = slot,
                     .n_seqs = ns,
                     .max_blocks = max_blocks,
                     .block_table = block_table,
                     .block_size = fp->block_size},
            .n_logits = nl,
            .logit_rows = logit_rows,
            .n_segs = any_adapter ? n_segs : 0,
            .segs = segs,
        };
        double t0 = lp_time_now();
        if ((rc = lp_forward_step(f, &step, logits, err)) != LP_OK) goto out;
        double dt = lp_time_now() - t0;
        st.steps++;
        if (has_prefill) {
            st.prefill_s += dt;
        } else {
            st.decode_s += dt;
        }
        /* advance: positions written, prompt fed */
        for (int k = 0; k < ns; k++) {
            struct seq *s = &seqs[step_seqs[k]];
            int fed = 0;
            for (int t = 0; t < nt; t++)
                fed += seq_of[t] == k;
            s->kv.n_tokens += fed;
            if (s->n_fed < s->req->n_prompt) {
                s->n_fed += (size_t)fed;
                st.prefill_tokens += fed;
            } else {
                st.decode_tokens += fed;
            }
        }
        /* sample the rows that produced logits */
        for (int r = 0; r < nl; r++) {
            struct seq *s = &seqs[row_seq[r]];
            float *row = logits + (size_t)r * n_vocab;
            struct lp_gen_result *o = s->res;
            size_t ti = o->n_tokens;
            int K = s->req->logprobs;
            /* logprobs of the raw logits, before the sampler changes them */
            int32_t top_ids[LP_MAX_LOGPROBS];
            float top_lps[LP_MAX_LOGPROBS];
            if (K > 0) lp_logprobs_top(row, n_vocab, K, top_ids, top_lps, -1, NULL);
            float chosen_lp = 0.0f;
            memcpy(raw, row, (size_t)n_vocab * sizeof(float));
            int32_t id = lp_sampler_sample(s->sampler, row);
            lp_logprobs_top(raw, n_vocab, 0, NULL, NULL, id, &chosen_lp);
            o->tokens[ti] = id;
            o->token_lps[ti] = chosen_lp;
            if (K > 0) {
                memcpy(o->top_ids + ti * K, top_ids, (size_t)K * sizeof(int32_t));
                memcpy(o->top_lps + ti * K, top_lps, (size_t)K * sizeof(float));
            }
            o->n_tokens++;
            s->next = id;
            if (!s->req->ignore_eos && lp_tokenizer_is_eog(tok, id)) {
                finish(kv, s, "stop");
                n_done++;
                continue;
            }
            char piece[LP_DETOK_MAX + 16];
            size_t pn = lp_detok_push(tok, &s->detok, id, 1, piece, sizeof piece);
            text_append(s, piece, pn);
            if (s->req->n_stop > 0 && pn > 0 && check_stop(s, pn)) {
                finish(kv, s, "stop");
                n_done++;
                continue;
            }
            if (o->n_tokens >= (size_t)s->req->max_tokens) {
                finish(kv, s, "length");
                n_done++;
            }
        }
    }
out:
    for (int i = 0; i < n; i++) {
        if (seqs[i].state == SEQ_RUNNING) {
            kv_seq_clear(kv, &seqs[i].kv);
            lp_sampler_destroy(seqs[i].sampler);
        }
        free(seqs[i].text);
        if (rc != LP_OK) lp_gen_result_clear(&res[i]);
    }
    if (rc == LP_OK) ENSURE(kv_cache_blocks_free(kv) == kv_cache_blocks_total(kv));
    if (stats) *stats = st;
    kv_cache_destroy(kv);
    free(seqs);
    free(tokens);
    free(pos);
    free(seq_of);
    free(slot);
    free(logit_rows);
    free(row_seq);
    free(step_seqs);
    free(step_ntok);
    free(segs);
    free(block_table);
    free(logits);
    free(raw);
    return rc;
}
