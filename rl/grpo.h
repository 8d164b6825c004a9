/* grpo.h - the maths of GRPO (RL.md; DeepSeekMath, DAPO, Dr. GRPO) as TRL
 * computes it: group advantages, the clipped surrogate with a k3 KL penalty
 * per completion token, the three loss reductions, and every token's
 * gradient with respect to its own logprob. The training backward takes
 * that gradient through log-softmax into the model
 * (r1d_train_backward_weighted, engine/model/train.h), so the objective
 * lives here and the model knows nothing of RL.
 *
 * Per completion o_i of a group of G, token t (lp = log pi_theta, lp_old =
 * the policy that sampled, lp_ref = the reference model):
 *   A_i       = r_i - mean(r_group)   [/ (std + 1e-4), std unbiased: over
 *                                     the group, or over the whole batch]
 *   ratio     = exp(lp - lp_old)
 *   surrogate = min(ratio A_i, clip(ratio, 1 - eps_low, 1 + eps_high) A_i)
 *   kl        = exp(lp_ref - lp) - (lp_ref - lp) - 1      (k3, >= 0)
 *   l_it      = -(surrogate - beta kl)
 *   loss      = sum_it w_it l_it, with the reduction's weights:
 *     grpo     w_it = 1 / (N |o_i|)        mean per sequence, then over N
 *     dapo     w_it = 1 / sum_i |o_i|      token-level mean of the batch
 *     dr_grpo  w_it = 1 / (N L_max)        L_max = max completion length
 *   (N = the completions of the whole optimizer step, so gradient
 *   accumulation over micro-batches gives exactly one big batch's loss).
 *   dl_it/dlp = -A_i ratio where the unclipped branch is active, else 0,
 *               + beta (1 - exp(lp_ref - lp)).
 * With lp_old == lp (one update per rollout) the ratio is 1 and the loss is
 * ~0 while the gradient is REINFORCE with the group mean as baseline. */
#ifndef R1D_RL_GRPO_H
#define R1D_RL_GRPO_H

#include <stddef.h>

#include <jansson.h>

#include "../common/status.h"

typedef enum r1d_grpo_scale {
  R1D_GRPO_SCALE_GROUP = 0, /* divide by the group's std (GRPO) */
  R1D_GRPO_SCALE_BATCH = 1, /* divide by the batch's std */
  R1D_GRPO_SCALE_NONE = 2,  /* no division (Dr. GRPO) */
} r1d_grpo_scale;

typedef enum r1d_grpo_loss_type {
  R1D_GRPO_LOSS_GRPO = 0,
  R1D_GRPO_LOSS_DAPO = 1,
  R1D_GRPO_LOSS_DR_GRPO = 2,
} r1d_grpo_loss_type;

typedef struct r1d_grpo_config {
  int group_size; /* G >= 2 */
  r1d_grpo_scale scale_rewards;
  r1d_grpo_loss_type loss_type;
  double eps_low, eps_high; /* clip range of the ratio, >= 0 */
  double beta;              /* KL weight, >= 0 (0: no reference model) */
  int max_completion_len;   /* dr_grpo's L_max, > 0 */
} r1d_grpo_config;

/* TRL's defaults: G 8, group scaling, dapo, eps 0.2/0.2, beta 0, L 256. */
void r1d_grpo_config_default(r1d_grpo_config *c);

/* Range checks; err names the field ("group_size must be >= 2"). */
int r1d_grpo_config_check(const r1d_grpo_config *c, r1d_error *err);

/* Name <-> value of the enums ("group", "batch", "none"; "grpo", "dapo",
 * "dr_grpo"). parse returns -1 for an unknown name. */
const char *r1d_grpo_scale_name(r1d_grpo_scale s);
int r1d_grpo_scale_parse(const char *name);
const char *r1d_grpo_loss_name(r1d_grpo_loss_type t);
int r1d_grpo_loss_parse(const char *name);

/* Advantages of n_groups groups of G consecutive rewards (rewards[g*G + i]),
 * into adv[n_groups * G]. Writes into *n_flat (may be NULL) how many groups
 * had all rewards equal (advantage 0: no signal). */
void r1d_grpo_advantages(const r1d_grpo_config *c, const double *rewards,
                         int n_groups, double *adv, int *n_flat);

/* Running sums over the tokens of a step, for the metrics. */
typedef struct r1d_grpo_stats {
  double loss;       /* sum w_it l_it: the step's loss */
  double kl_sum;     /* sum of k3 over tokens (beta > 0 only) */
  double ratio_sum;  /* sum of ratios */
  long tokens;       /* completion tokens seen */
  long clipped_low;  /* ratio < 1 - eps_low with A < 0 (clip active) */
  long clipped_high; /* ratio > 1 + eps_high with A > 0 */
  double nonfinite;  /* tokens whose lp, ratio or kl was not finite */
} r1d_grpo_stats;

/* The reduction weight w of every token of one completion of n_tokens,
 * in a step of n_seqs completions holding total_tokens tokens. */
double r1d_grpo_token_weight(const r1d_grpo_config *c, int n_tokens, int n_seqs,
                             long total_tokens);

/* One completion's n tokens: lp (current policy), lp_old (NULL: lp itself,
 * the ratio is then exactly 1), lp_ref (read only when beta > 0). Writes
 * dlp[t] = w * dl_t/dlp_t and adds to st. */
void r1d_grpo_sequence(const r1d_grpo_config *c, double advantage, double w,
                       int n, const float *lp, const float *lp_old,
                       const float *lp_ref, float *dlp, r1d_grpo_stats *st);

/* Reads a job config's GRPO fields into c: "num_generations" (G),
 * "scale_rewards" ("group"|"batch"|"none", or true/false as TRL's older
 * bool), "loss_type", "epsilon" (both bounds), "epsilon_low",
 * "epsilon_high", "beta", "max_completion_length". Absent keys keep c's
 * values; unknown keys are not looked at. Errors name the field. */
int r1d_grpo_config_from_json(const json_t *obj, r1d_grpo_config *c,
                              r1d_error *err);

#endif
