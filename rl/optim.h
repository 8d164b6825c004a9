/* optim.h - the trainer's optimizer pieces, CPU fp32: AdamW computed the way
 * torch.optim.AdamW computes it (so our loss curves can be matched against
 * PyTorch's), global-norm gradient clipping, gradient accumulation helpers,
 * learning-rate schedules (HF transformers' formulas) and the optimizer state
 * for exact resume.
 *
 * The optimizer does not own parameters or gradients: the caller hands it a
 * list of tensors {name, param, grad, n, decay} that must stay valid (names
 * included) for the optimizer's life. It owns one 64-byte-aligned allocation
 * holding the AdamW moments m and v of every tensor.
 *
 * Every element's update is a pure function of that element's values and the
 * step's scalars, so results do not depend on the OpenMP thread count; the
 * gradient norm sums fixed-size chunks in a fixed order for the same reason. */
#ifndef R1D_RL_OPTIM_H
#define R1D_RL_OPTIM_H

#include <stddef.h>

#include "common/status.h"

/* One trainable tensor. decay = 0 puts it in the no-weight-decay group
 * (norms and biases, see r1d_optim_default_decay). */
typedef struct r1d_optim_tensor {
  const char *name; /* e.g. the HF tensor name; used in error messages */
  float *param;
  float *grad;
  size_t n; /* elements, > 0 */
  int decay;
} r1d_optim_tensor;

/* 0 for HF tensor names containing "norm" or ending in ".bias", else 1. */
int r1d_optim_default_decay(const char *hf_tensor_name);

/* torch.optim.AdamW's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
 * weight_decay 1e-2 (amsgrad and maximize off: not supported). The lr here
 * is only the base a schedule multiplies; r1d_optim_step takes the step's lr. */
typedef struct r1d_adamw_config {
  double lr;
  double beta1;
  double beta2;
  double eps;
  double weight_decay;
} r1d_adamw_config;

void r1d_adamw_config_default(r1d_adamw_config *cfg);
/* lr >= 0, 0 <= beta1, beta2 < 1, eps >= 0, weight_decay >= 0, all finite. */
int r1d_adamw_config_check(const r1d_adamw_config *cfg, r1d_error *err);

typedef struct r1d_optim r1d_optim;

/* Copies the tensor list (not the names or the data), zeroes m and v, step 0.
 * Rejects NULL pointers, n == 0, and two tensors sharing a param or grad. */
int r1d_optim_create(const r1d_adamw_config *cfg,
                     const r1d_optim_tensor *tensors, size_t n_tensors,
                     r1d_optim **out, r1d_error *err);
void r1d_optim_destroy(r1d_optim *opt);

/* One AdamW step at learning rate `lr` (the schedule's r1d_lr_at for this
 * step; lr must be finite and >= 0). Per element, with t the new step count:
 *   if weight_decay != 0 and the tensor decays: p *= (float)(1 - lr * wd)
 *   m = m + (1 - b1) * (g - m)                  (torch: exp_avg.lerp_)
 *   v = v * b2 + ((1 - b2) * g) * g             (mul_ then addcmul_)
 *   denom = sqrt(v) / sqrt(1 - b2^t) + eps      (bias_correction2_sqrt form)
 *   p = p + (-(lr / (1 - b1^t)) * m) / denom    (addcdiv_, value=-step_size)
 * The step scalars are computed in double (as Python does) and rounded to
 * float once; the element arithmetic is fp32 in that order. PyTorch's AVX2
 * lerp fuses its multiply-add, so the last bit of m may differ there. */
int r1d_optim_step(r1d_optim *opt, double lr, r1d_error *err);

/* Steps taken so far (torch's state["step"]). */
long r1d_optim_step_count(const r1d_optim *opt);
const r1d_adamw_config *r1d_optim_config(const r1d_optim *opt);
/* Replaces the hyperparameters (e.g. a changed weight decay on resume). */
int r1d_optim_set_config(r1d_optim *opt, const r1d_adamw_config *cfg,
                         r1d_error *err);

/* Sets every gradient to 0.0f (torch's zero_grad(set_to_none=False)). */
void r1d_optim_zero_grad(r1d_optim *opt);

/* Multiplies every gradient by `factor`. Gradient accumulation over k
 * micro-batches: the preferred form divides each micro-batch's loss by k
 * before backward (as HF Trainer does); when the losses were summed instead,
 * call this once with 1.0f / k before clipping and stepping. */
void r1d_optim_scale_grads(r1d_optim *opt, float factor);

/* Global L2 norm of all gradients: sqrt of the sum of squares in double. */
double r1d_optim_grad_norm(const r1d_optim *opt);

/* Like torch.nn.utils.clip_grad_norm_: total = r1d_optim_grad_norm, and when
 * max_norm / (total + 1e-6) < 1 every gradient is multiplied by that scale
 * (rounded to float). *total_norm (may be NULL) receives the pre-clip norm.
 * A non-finite total returns R1D_ERANGE and leaves the gradients untouched so
 * the caller can skip the step or stop. max_norm must be finite and > 0. */
int r1d_optim_clip_grad_norm(r1d_optim *opt, double max_norm,
                             double *total_norm, r1d_error *err);

/* ---- state for exact resume ----
 * Two ways: (1) a flat little-endian byte buffer (native byte order; we only
 * run on little-endian hosts):
 *   "R1DADAMW" | u32 version (1) | u32 n_tensors | i64 step |
 *   u64 n[n_tensors] | for each tensor: f32 m[n], f32 v[n]
 * (no padding); or (2) r1d_optim_tensor_state's pointers plus
 * r1d_optim_set_step, for checkpoint code that writes m and v as
 * safetensors tensors. Parameters are not part of the state. */
size_t r1d_optim_state_bytes(const r1d_optim *opt);
int r1d_optim_state_save(const r1d_optim *opt, void *buf, size_t cap,
                         r1d_error *err);
/* Checks magic, version, the tensor count and each tensor's size against
 * this optimizer; nothing is changed on error. */
int r1d_optim_state_load(r1d_optim *opt, const void *buf, size_t len,
                         r1d_error *err);

size_t r1d_optim_tensor_count(const r1d_optim *opt);
/* m and v of tensor i (n floats each, 64-byte aligned); R1D_ERANGE if i is
 * out of range. */
int r1d_optim_tensor_state(r1d_optim *opt, size_t i, float **m, float **v);
int r1d_optim_set_step(r1d_optim *opt, long step, r1d_error *err);

/* ---- learning-rate schedules ---- */
typedef enum r1d_lr_kind {
  R1D_LR_CONSTANT = 0,
  R1D_LR_WARMUP_CONSTANT, /* HF get_constant_schedule_with_warmup */
  R1D_LR_WARMUP_COSINE,   /* HF get_cosine_with_min_lr_schedule_with_warmup,
                             num_cycles 0.5 */
} r1d_lr_kind;

typedef struct r1d_lr_schedule {
  r1d_lr_kind kind;
  double lr;         /* peak (base) learning rate, > 0 */
  double min_lr;     /* cosine floor, 0 <= min_lr <= lr (cosine only) */
  long warmup_steps; /* >= 0; warmup kinds only */
  long total_steps;  /* cosine: > 0 and >= warmup_steps */
} r1d_lr_schedule;

int r1d_lr_schedule_check(const r1d_lr_schedule *s, r1d_error *err);

/* The lr for optimizer step `step` (0-based, step in [0, total_steps)):
 *   warmup (step < W):  lr * step / max(1, W)   (0 at step 0, as HF)
 *   cosine after:       progress = (step - W) / max(1, T - W),
 *                       f = 0.5 * (1 + cos(pi * progress)),
 *                       lr * (f * (1 - min_lr/lr) + min_lr/lr)
 * Steps below 0 count as 0; cosine steps at or past T give min_lr. Assumes
 * the schedule passed r1d_lr_schedule_check. */
double r1d_lr_at(const r1d_lr_schedule *s, long step);

#endif
