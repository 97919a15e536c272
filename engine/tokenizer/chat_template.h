/* chat_template.h: the chat formats we render without a Jinja engine:
 * ChatML, Llama 3 and Llama 2 / Mistral [INST], recognised from the model's
 * template string or named by a per-component override. An unrecognised
 * template is an error for chat requests, never a guess. */
#ifndef LP_CHAT_TEMPLATE_H
#define LP_CHAT_TEMPLATE_H

#include <stddef.h>

enum lp_chat_kind {
    LP_CHAT_UNKNOWN = 0,
    LP_CHAT_CHATML = 1,
    LP_CHAT_LLAMA3 = 2,
    LP_CHAT_LLAMA2 = 3, /* [INST] ... [/INST], also Mistral */
};

struct lp_chat_template {
    int kind;             /* enum lp_chat_kind */
    char *default_system; /* system prompt the template inserts when the
                             conversation has none, or NULL; owned */
    char *bos_text;       /* e.g. "<s>" or "<|begin_of_text|>", owned or NULL */
    char *eos_text;       /* owned or NULL */
};

struct lp_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
};

/* Recognises the model's Jinja template text (NULL or "" -> UNKNOWN). Fills
 * *out (clear with lp_chat_template_clear). Returns LP_OK or LP_EUNSUPPORTED
 * with a reason in err. */
int lp_chat_template_detect(const char *jinja, const char *bos_text, const char *eos_text,
                            struct lp_chat_template *out, char *err);
/* Override by name: "chatml", "llama3", "llama2", "mistral". */
int lp_chat_template_from_name(const char *name, const char *bos_text, const char *eos_text,
                               struct lp_chat_template *out, char *err);
void lp_chat_template_clear(struct lp_chat_template *t);

/* Renders messages exactly as Hugging Face's apply_chat_template does for
 * that template; add_generation_prompt appends the assistant header. *out is
 * a new malloc'ed string. Roles the format cannot express are an error. */
int lp_chat_template_render(const struct lp_chat_template *t, const struct lp_chat_msg *msgs,
                            int n_msgs, int add_generation_prompt, char **out, char *err);

#endif
