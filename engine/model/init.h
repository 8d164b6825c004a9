/* init.h - `r1d model init`: a complete Hugging Face model folder with seeded
 * random weights, so r1d (and transformers) can load and serve something on a
 * fresh machine before any training: config.json, generation_config.json,
 * model.safetensors, a byte-level tokenizer.json carrying the R1 chat and
 * <think>/</think>/<answer>/</answer> tokens, and tokenizer_config.json with
 * an R1-distill-style chat template. */
#ifndef R1D_ENGINE_MODEL_INIT_H
#define R1D_ENGINE_MODEL_INIT_H

#include <stdint.h>

#include "../../common/status.h"
#include "config.h"

/* Presets: "micro" (~0.1M parameters besides the embedding: hidden 64, 2
 * layers; the smaller student for distillation), "tiny" (~1M) and "small"
 * (~100M). Fills cfg for r1d's byte-level tokenizer. */
int r1d_model_preset(r1d_arch arch, const char *preset, r1d_config *cfg,
                     r1d_error *err);

/* Writes the folder (created if missing; our files in it are replaced). A
 * folder holding model.safetensors.index.json or chat_template.jinja, which
 * loaders would prefer over what we write, is refused with R1D_EINVAL. */
int r1d_model_init_dir(const char *out_dir, const r1d_config *cfg,
                       uint64_t seed, r1d_error *err);

/* Makes cfg fit the tokenizer at tokenizer_json (`model init --tokenizer`):
 * vocab_size its number of ids rounded up to a multiple of 16, bos and eos
 * the ids of the bos_token / eos_token that tokenizer_config.json beside it
 * names (the R1 tokens of r1d_init_added_tokens when there is none). A
 * missing token fails with R1D_ENOTFOUND naming it. */
int r1d_model_use_tokenizer(r1d_config *cfg, const char *tokenizer_json,
                            r1d_error *err);

/* As r1d_model_init_dir, with a copy of tokenizer_json as the folder's
 * tokenizer.json (NULL: r1d's byte-level one), and a copy of the
 * tokenizer_config.json beside it if there is one (else ours). cfg should
 * come from r1d_model_use_tokenizer. */
int r1d_model_init_dir_tokenizer(const char *out_dir, const r1d_config *cfg,
                                 uint64_t seed, const char *tokenizer_json,
                                 r1d_error *err);

/* Writes dir/tokenizer_config.json as init does: the R1 bos/eos/pad names
 * and the R1-distill chat template (for `r1d tokenizer train`). */
int r1d_model_write_tokenizer_config(const char *dir, r1d_error *err);

/* The shapes the benchmarks take: the "tiny" and "small" Qwen2 presets, and
 * "qwen2-1.5b" (DeepSeek-R1-Distill-Qwen-1.5B's config.json). */
int r1d_model_shape(const char *shape, r1d_config *cfg, r1d_error *err);

/* A model in memory with seeded random weights of cfg's shapes (uniform,
 * std 0.02; norms 1, biases 0), for benchmarks; no files, no tokenizer. The
 * model's backend field is left empty (the runner takes one). */
struct r1d_model;
int r1d_model_random(const r1d_config *cfg, uint64_t seed,
                     struct r1d_model **out, r1d_error *err);

/* The added tokens of r1d's own tokenizer, in id order after the 256 bytes. */
extern const char *const r1d_init_added_tokens[];
extern const unsigned char r1d_init_added_special[];
extern const int r1d_init_n_added_tokens;

#endif
