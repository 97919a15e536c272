/* chat_template.c: recognises the model's Jinja chat template as one of the
 * formats we render by hand (ChatML with an optional default system prompt,
 * Llama 3, Llama 2 [INST]) and renders messages exactly as transformers'
 * apply_chat_template does for those templates. No Jinja engine: a template
 * we do not recognise is refused with a reason, never guessed. */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "lp_common.h"
#include "tok_internal.h"

/* ------------------------------------------------------------------ buffer */

struct sbuf {
    char *s;
    size_t n, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(struct sbuf *b, const char *s) {
    if (s) sb_add(b, s, strlen(s));
}

/* Python's str.isspace(), which is what Jinja's trim and str.strip() strip:
 * Unicode White_Space plus the separators U+001C..U+001F. */
static int py_isspace(uint32_t cp) { return tok_is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

/* Appends s stripped of leading and trailing Python whitespace. */
static void sb_strip(struct sbuf *b, const char *s) {
    size_t n = strlen(s), a = 0, e = n;
    while (a < n) {
        int k;
        uint32_t cp = tok_utf8_decode(s + a, n - a, &k);
        if (!py_isspace(cp)) break;
        a += (size_t)k;
    }
    while (e > a) {
        size_t p = e - 1;
        while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80)
            p--;
        int k;
        uint32_t cp = tok_utf8_decode(s + p, e - p, &k);
        if ((size_t)k != e - p || !py_isspace(cp)) break;
        e = p;
    }
    sb_add(b, s + a, e - a);
}

/* ------------------------------------------------------------------ detect */

static void fill(struct lp_chat_template *out, int kind, const char *bos, const char *eos) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->bos_text = bos ? xstrdup(bos) : NULL;
    out->eos_text = eos ? xstrdup(eos) : NULL;
}

/* ChatML templates that add a system message when the conversation has none
 * spell it as one string literal: '<|im_start|>system\n...<|im_end|>'. Finds
 * such a literal (text without quotes or Jinja between the markers) and
 * returns its unescaped text, or NULL. */
static char *chatml_default_system(const char *j) {
    static const char start[] = "<|im_start|>system";
    for (const char *p = strstr(j, start); p; p = strstr(p + 1, start)) {
        const char *q = p + sizeof start - 1;
        if (*q == '\n')
            q++;
        else if (q[0] == '\\' && q[1] == 'n')
            q += 2;
        else
            continue;
        const char *e = strstr(q, "<|im_end|>");
        if (!e) return NULL;
        /* the literal must not end or be spliced before <|im_end|> */
        int literal = 1;
        for (const char *c = q; c < e; c++) {
            if (*c == '\\')
                c++; /* an escaped character is part of the literal */
            else if (*c == '\'' || *c == '"' || *c == '{' || *c == '}')
                literal = 0;
        }
        if (!literal || e == q) continue;
        /* and the template must test for a missing system message */
        if (!strstr(j, "!= 'system'") && !strstr(j, "!= \"system\"") && !strstr(j, "== 'system'") &&
            !strstr(j, "== \"system\""))
            return NULL;
        struct sbuf b = {0};
        for (const char *c = q; c < e; c++) {
            if (*c == '\\' && c + 1 < e) {
                char n = *++c;
                char r = n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
                sb_add(&b, &r, 1);
            } else {
                sb_add(&b, c, 1);
            }
        }
        return b.s;
    }
    return NULL;
}

int lp_chat_template_detect(const char *jinja, const char *bos_text, const char *eos_text,
                            struct lp_chat_template *out, char *err) {
    if (!out) return lp_err(err, LP_EINVAL, "bad arguments");
    memset(out, 0, sizeof *out);
    if (!jinja || !*jinja)
        return lp_err(err, LP_EUNSUPPORTED,
                      "the model has no chat template; name one (chatml, llama3, llama2)");
    if (strstr(jinja, "<|im_start|>") && strstr(jinja, "<|im_end|>")) {
        if (strstr(jinja, "<think>") || strstr(jinja, "reasoning_content"))
            return lp_err(err, LP_EUNSUPPORTED,
                          "ChatML template with reasoning (<think>) handling is not supported; "
                          "name \"chatml\" to render plain ChatML");
        fill(out, LP_CHAT_CHATML, bos_text, eos_text);
        out->default_system = chatml_default_system(jinja);
        return LP_OK;
    }
    if (strstr(jinja, "<|start_header_id|>") && strstr(jinja, "<|end_header_id|>") &&
        strstr(jinja, "<|eot_id|>")) {
        if (strstr(jinja, "Cutting Knowledge Date") || strstr(jinja, "date_string"))
            return lp_err(err, LP_EUNSUPPORTED,
                          "Llama 3.1+ template (dated system preamble, tools) is not supported; "
                          "name \"llama3\" to render the Llama 3 format");
        if (!strstr(jinja, "trim"))
            return lp_err(err, LP_EUNSUPPORTED,
                          "Llama 3 style template that does not trim content is not supported");
        fill(out, LP_CHAT_LLAMA3, bos_text, eos_text);
        return LP_OK;
    }
    if (strstr(jinja, "[INST]") && strstr(jinja, "[/INST]")) {
        if (!strstr(jinja, "<<SYS>>"))
            return lp_err(err, LP_EUNSUPPORTED,
                          "[INST] template without <<SYS>> (Mistral style) is not supported; name "
                          "\"llama2\" to render the Llama 2 layout");
        fill(out, LP_CHAT_LLAMA2, bos_text, eos_text);
        return LP_OK;
    }
    return lp_err(err, LP_EUNSUPPORTED,
                  "unrecognised chat template (known: ChatML, Llama 3, Llama 2); name one with "
                  "chatml, llama3 or llama2");
}

int lp_chat_template_from_name(const char *name, const char *bos_text, const char *eos_text,
                               struct lp_chat_template *out, char *err) {
    if (!out || !name) return lp_err(err, LP_EINVAL, "bad arguments");
    memset(out, 0, sizeof *out);
    int kind = LP_CHAT_UNKNOWN;
    if (!strcmp(name, "chatml"))
        kind = LP_CHAT_CHATML;
    else if (!strcmp(name, "llama3"))
        kind = LP_CHAT_LLAMA3;
    else if (!strcmp(name, "llama2") || !strcmp(name, "mistral"))
        kind = LP_CHAT_LLAMA2;
    if (kind == LP_CHAT_UNKNOWN)
        return lp_err(err, LP_EUNSUPPORTED,
                      "unknown chat template name \"%.40s\" (chatml, llama3, llama2, mistral)",
                      name);
    fill(out, kind, bos_text, eos_text);
    return LP_OK;
}

void lp_chat_template_clear(struct lp_chat_template *t) {
    if (!t) return;
    free(t->default_system);
    free(t->bos_text);
    free(t->eos_text);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ render */

static int render_llama2(const struct lp_chat_template *t, const struct lp_chat_msg *m, int n,
                         struct sbuf *b, char *err) {
    const char *sys = NULL;
    int start = 0;
    if (!strcmp(m[0].role, "system")) {
        sys = m[0].content;
        start = 1;
    }
    for (int i = start; i < n; i++) {
        int k = i - start;
        int user = !strcmp(m[i].role, "user");
        if (!user && strcmp(m[i].role, "assistant"))
            return lp_err(err, LP_EINVAL, "the Llama 2 format has no role \"%.32s\" here",
                          m[i].role);
        if (user != (k % 2 == 0))
            return lp_err(err, LP_EINVAL,
                          "conversation roles must alternate user/assistant/user/assistant/...");
        struct sbuf c = {0};
        if (k == 0 && sys) {
            sb_str(&c, "<<SYS>>\n");
            sb_str(&c, sys);
            sb_str(&c, "\n<</SYS>>\n\n");
        }
        sb_str(&c, m[i].content);
        if (user) {
            sb_str(b, t->bos_text);
            sb_str(b, "[INST] ");
            sb_strip(b, c.s ? c.s : "");
            sb_str(b, " [/INST]");
        } else {
            sb_str(b, " ");
            sb_strip(b, c.s ? c.s : "");
            sb_str(b, " ");
            sb_str(b, t->eos_text);
        }
        free(c.s);
    }
    return LP_OK;
}

int lp_chat_template_render(const struct lp_chat_template *t, const struct lp_chat_msg *msgs,
                            int n_msgs, int add_generation_prompt, char **out, char *err) {
    if (!t || !out || n_msgs < 0 || (n_msgs && !msgs))
        return lp_err(err, LP_EINVAL, "bad arguments");
    *out = NULL;
    for (int i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return lp_err(err, LP_EINVAL, "message %d has no role or content", i);
    /* transformers refuses an empty conversation for every template */
    if (n_msgs == 0) return lp_err(err, LP_EINVAL, "no messages to render");
    struct sbuf b = {0};
    sb_add(&b, "", 0);
    int rc = LP_OK;
    switch (t->kind) {
    case LP_CHAT_CHATML:
        for (int i = 0; i < n_msgs; i++) {
            if (i == 0 && t->default_system && strcmp(msgs[0].role, "system")) {
                sb_str(&b, "<|im_start|>system\n");
                sb_str(&b, t->default_system);
                sb_str(&b, "<|im_end|>\n");
            }
            sb_str(&b, "<|im_start|>");
            sb_str(&b, msgs[i].role);
            sb_str(&b, "\n");
            sb_str(&b, msgs[i].content);
            sb_str(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) sb_str(&b, "<|im_start|>assistant\n");
        break;
    case LP_CHAT_LLAMA3:
        for (int i = 0; i < n_msgs; i++) {
            if (i == 0) sb_str(&b, t->bos_text);
            sb_str(&b, "<|start_header_id|>");
            sb_str(&b, msgs[i].role);
            sb_str(&b, "<|end_header_id|>\n\n");
            sb_strip(&b, msgs[i].content);
            sb_str(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) sb_str(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case LP_CHAT_LLAMA2:
        /* The Llama 2 template ignores add_generation_prompt: the prompt ends
         * with [/INST] already. */
        rc = render_llama2(t, msgs, n_msgs, &b, err);
        break;
    default: rc = lp_err(err, LP_EUNSUPPORTED, "no chat template to render with");
    }
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return LP_OK;
}
