/* adapter.h: a LoRA adapter parsed, validated against its base model and held
 * in host memory as f32: for each (layer, projection) it targets, A [rank, in]
 * and B [out, rank] and the scale PEFT applies (alpha / r, or alpha / sqrt(r)
 * with rslora; rank_pattern / alpha_pattern resolved per module). Read from a
 * PEFT directory (adapter_config.json + adapter_model.safetensors) or a GGUF
 * LoRA file as llama.cpp writes it. Never unpickles. */
#ifndef LP_ADAPTER_H
#define LP_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "../forward.h" /* enum lp_proj */

struct lp_model;
struct lp_adapter;

/* struct lp_lora_target (one targeted projection) is in forward.h. */

/* Loads `path` (a PEFT directory, its adapter_config.json, or a .gguf LoRA
 * file) and checks it against `base`: layer count, every A/B shape against
 * its projection, dtypes (F32/F16/BF16), complete A/B pairs, and every PEFT
 * option that changes the math (honoured or refused by name). *out is a new
 * adapter (lp_adapter_destroy). Errors name the key, tensor or module. */
int lp_adapter_load(const char *path, const struct lp_model *base, struct lp_adapter **out,
                    char *err);
void lp_adapter_destroy(struct lp_adapter *a); /* NULL is a no-op */

/* The target for (layer, proj), or NULL when the adapter does not touch it. */
const struct lp_lora_target *lp_adapter_target(const struct lp_adapter *a, int layer, int proj);

int lp_adapter_max_rank(const struct lp_adapter *a);
/* Bytes of A and B held in memory. */
size_t lp_adapter_bytes(const struct lp_adapter *a);

#endif
