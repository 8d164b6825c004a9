/* checkpoint.h - writing trained weights as a Hugging Face model folder that
 * `r1d serve` and transformers load: model.safetensors plus the source
 * folder's config, generation config, tokenizer and chat-template files.
 *
 * Crash safety: everything is written into DIR.tmp-PID, each file fsynced,
 * then the folder is renamed into place (an existing DIR is first renamed
 * aside and removed only after the new one is in). A failure at any point
 * (disk full, a missing source file) removes the temporary folder and
 * leaves an existing DIR as it was. */
#ifndef R1D_ENGINE_MODEL_CHECKPOINT_H
#define R1D_ENGINE_MODEL_CHECKPOINT_H

#include <stddef.h>

#include "../../common/status.h"
#include "config.h"
#include "weights.h"

/* Writes w (shapes from cfg) as out_dir, with the source's config.json
 * (required; its torch_dtype set to what the weights are stored as) and
 * whichever of generation_config.json, tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json and chat_template.jinja
 * exist in src_dir. bf16: store BF16 instead of F32. */
int r1d_checkpoint_write(const char *src_dir, const r1d_config *cfg,
                         const r1d_weights *w, int bf16, const char *out_dir,
                         r1d_error *err);

/* A file written into the checkpoint folder beside the weights (trainer
 * state, optimizer moments), under the same crash safety. */
typedef struct r1d_checkpoint_file {
  const char *name; /* a plain file name */
  const void *data;
  size_t len;
} r1d_checkpoint_file;

int r1d_checkpoint_write_extra(const char *src_dir, const r1d_config *cfg,
                               const r1d_weights *w, int bf16,
                               const r1d_checkpoint_file *extra, int n_extra,
                               const char *out_dir, r1d_error *err);

/* The folder of a training run's checkpoint at `step`: name gets
 * "checkpoint-STEP", dir "OUT_DIR/checkpoint-STEP". R1D_EINVAL when the
 * path does not fit dir_cap. */
int r1d_checkpoint_step_dir(const char *out_dir, long step, char *dir,
                            size_t dir_cap, char name[64], r1d_error *err);

/* Points out_dir/last at out_dir/name (a relative symbolic link), replacing
 * an older link in one rename, so a reader never sees no link. */
int r1d_checkpoint_link_last(const char *out_dir, const char *name,
                             r1d_error *err);

/* Removes a checkpoint folder (its files, then itself); quiet. */
void r1d_checkpoint_remove(const char *dir);

#endif
