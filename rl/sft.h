/* sft.h - supervised fine-tuning and pretraining runs: packed documents
 * (rl/sft_data.h) through the training pass (engine/model/train.h) and
 * AdamW (rl/optim.h), with gradient accumulation, an eval split,
 * checkpoints every N steps and exact resume.
 *
 * A step is one optimizer update over grad_accum packs. Its loss is the mean
 * over every counted target of those packs (each pack's backward is scaled
 * by its share of the step's targets), so accumulation computes exactly the
 * loss of one big batch, however the tokens fall into packs.
 *
 * The packs are visited as one stream over epochs: epoch e in the order
 * r1d_pack_order(seed, e). Pack number g of the run (0-based) is pack
 * g mod P of epoch g / P, so resuming at step s needs only s.
 *
 * Checkpoints: OUT/checkpoint-STEP, a Hugging Face folder (fp32
 * model.safetensors unless bf16, the model's config and tokenizer files)
 * plus trainer_state.json (step, settings, data fingerprint, last loss) and
 * optimizer.bin (AdamW moments, rl/optim.h's format). OUT/last is a
 * symbolic link to the newest one, replaced atomically. Resuming loads the
 * weights and optimizer of OUT/last and replays the same packs from its
 * step: the loss curve continues as if the run had never stopped. */
#ifndef R1D_RL_SFT_H
#define R1D_RL_SFT_H

#include <stdint.h>

#include "../common/status.h"
#include "../engine/model/train.h"
#include "../kernels/backend.h"
#include "optim.h"
#include "sft_data.h"

typedef struct r1d_sft_config {
  const char *src_dir; /* the model folder: config/tokenizer files to copy */
  const char *out_dir;
  const char *kind; /* "sft" or "pretrain": recorded in the state */
  int max_tokens;   /* tokens per pack */
  int grad_accum;   /* packs per optimizer step, >= 1 */
  double epochs;    /* > 0; used when max_steps is 0 */
  long max_steps;   /* > 0 overrides epochs */
  r1d_adamw_config adamw;
  r1d_lr_schedule sched; /* total_steps is filled in by the run */
  double warmup_ratio;   /* > 0: warmup_steps = ratio * total steps */
  double clip;           /* global-norm clipping, 0 = off */
  long save_every;       /* steps between checkpoints, 0 = only at the end */
  int save_limit;        /* keep this many newest checkpoints, 0 = all */
  int save_bf16;         /* BF16 weights in checkpoints (no exact resume) */
  long eval_every;       /* steps between evals, 0 = only at the end */
  uint64_t seed;
  const char *resume_dir; /* a checkpoint folder to continue from, or NULL */
  /* NULL: the host trainer (engine/model/train.h); else the device trainer
   * (train_device.h) on this backend, with the host optimizer holding a
   * mirror of its AdamW state for checkpoints */
  const r1d_backend *device;
  int recompute; /* host trainer: rebuild layer activations in the backward */
} r1d_sft_config;

typedef struct r1d_sft_metrics {
  long step, total_steps; /* step counts from 1 */
  double epoch;           /* fractional */
  double loss, lr, grad_norm;
  long tokens;         /* tokens of this step */
  long counted;        /* targets of this step */
  double elapsed_s;    /* since this process started training */
  double tokens_per_s; /* over this process's steps */
  double eta_s;
  int is_eval;      /* 1: an eval line; loss is the eval loss */
  long eval_tokens; /* targets the eval loss is over */
} r1d_sft_metrics;

typedef struct r1d_sft_hooks {
  void (*on_metrics)(void *user, const r1d_sft_metrics *m);
  /* After a checkpoint is in place (path is OUT/checkpoint-STEP). */
  void (*on_checkpoint)(void *user, const char *path, long step, double loss);
  /* Polled between steps: non-zero stops the run at this step boundary,
   * after a checkpoint (a signal handler sets it). */
  volatile int *stop;
  void *user;
} r1d_sft_hooks;

/* The checkpoint OUT/last points to, as a path, or R1D_ENOTFOUND. */
int r1d_sft_last_checkpoint(const char *out_dir, char *path, size_t cap,
                            r1d_error *err);

/* Trains tm (loaded from cfg->resume_dir when resuming) on train; eval may
 * be NULL or empty. Stops with R1D_ERANGE when a loss or the gradient norm
 * is not finite (nothing of that step is applied or saved; the message names
 * the last good checkpoint), and with the checkpoint's error when one cannot
 * be written (the previous one is intact). *final_step (may be NULL)
 * receives the last completed step. */
int r1d_sft_run(const r1d_sft_config *cfg, r1d_train_model *tm,
                const r1d_dataset *train, const r1d_dataset *eval,
                const r1d_sft_hooks *hooks, long *final_step, r1d_error *err);

#endif
