/* grpo_run.h - an offline GRPO run (`r1d grpo`): rule-verifiable tasks in,
 * a trained Hugging Face folder out. Each step samples G completions of P
 * training prompts through the serving engine (batched, paged, background
 * priority) on the policy's own current weights, scores them with the
 * rule rewards (rl/rewards.h), turns them into group advantages and updates
 * the policy with the GRPO loss (rl/grpo.h, rl/grpo_train.h) and AdamW.
 *
 * The policy's weights are the trainer's fp32 parameters themselves: the
 * engine runs on a view of them (the CPU backend aliases host weights), so
 * the next step's rollouts see the update with no copy. Rollouts and
 * updates alternate and never overlap. The prefix cache is off: cached KV
 * would belong to older weights. The reference model for the KL term is a
 * separate copy (PITFALLS.md), refreshed to the policy every ref_refresh
 * steps when asked.
 *
 * Evaluation runs the eval tasks with eval_samples completions each at
 * eval_temperature and reports pass@1 (mean accuracy over all samples),
 * the format rate and the mean completion length; at step 0 (the starting
 * point), every eval_every steps and at the end.
 *
 * Checkpoints are OUT/checkpoint-STEP folders (weights, config, tokenizer)
 * plus trainer_state.json with the step and the last metrics, and OUT/last
 * pointing at the newest; the final weights are always saved. */
#ifndef R1D_RL_GRPO_RUN_H
#define R1D_RL_GRPO_RUN_H

#include <stdint.h>

#include <jansson.h>

#include "../common/status.h"
#include "../engine/model/model.h"
#include "../engine/text/template.h"
#include "../engine/text/tokenizer.h"
#include "grpo.h"
#include "optim.h"
#include "rewards.h"

/* One task ready to sample: its rendered, tokenized prompt and checker. */
typedef struct r1d_grpo_task {
  char id[136];
  int32_t *prompt; /* [n_prompt] */
  int n_prompt;
  int prompt_in_think; /* the rendered prompt ends inside <think> */
  json_t *checker;     /* a reference owned by the task; NULL: a general
                          prompt (only a preference scorer judges it) */
  json_t *messages;    /* the prompt as chat messages (a reference) */
} r1d_grpo_task;

/* Renders task (storage/tasks.h's normalised JSON: "prompt" or "messages",
 * "checker") with the chat template (add_generation_prompt) and tokenizes
 * it. R1D_EINVAL names what is missing. */
int r1d_grpo_task_prepare(const json_t *task, const r1d_template *tmpl,
                          const r1d_tokenizer *tok, r1d_grpo_task *out,
                          r1d_error *err);
/* The same, but a task without a checker is a general prompt (alignment
 * RL: a reward model judges its completions) instead of an error. */
int r1d_grpo_task_prepare_general(const json_t *task, const r1d_template *tmpl,
                                  const r1d_tokenizer *tok, r1d_grpo_task *out,
                                  r1d_error *err);

/* A preference scorer (alignment RL, stage 4): scores[i] for the completion
 * texts[i] of task t, higher is better. Returns 0 or an error. */
typedef int (*r1d_preference_fn)(void *user, const r1d_grpo_task *t,
                                 const char *const *texts, int n,
                                 double *scores, r1d_error *err);
void r1d_grpo_task_free(r1d_grpo_task *t);

typedef struct r1d_grpo_run_config {
  const char *src_dir; /* the model folder: config/tokenizer files to copy */
  const char *out_dir;
  r1d_grpo_config grpo;
  r1d_reward_config reward;
  r1d_adamw_config adamw;
  r1d_lr_schedule sched; /* total_steps filled in from max_steps */
  double warmup_ratio;   /* > 0: warmup_steps = ratio * max_steps */
  double clip;           /* global gradient-norm clipping, 0 = off */
  int prompts_per_step;  /* P */
  long max_steps;        /* 0: evaluate only (no training, no checkpoint) */
  int num_iterations;    /* updates per rollout batch (mu), >= 1 */
  long ref_refresh;      /* steps between reference refreshes, 0 = never */
  int dynamic_sampling;  /* drop groups whose rewards are all equal */
  float temperature, top_p;
  int max_tokens;   /* tokens per training pack; 0: automatic */
  long save_every;  /* 0: only at the end */
  long eval_every;  /* 0: only at the start and the end */
  int eval_samples; /* completions per eval task (k), >= 1 */
  float eval_temperature;
  uint64_t seed;
  /* Alignment RL: with a scorer, every completion's reward gains
   * w_preference * sigmoid(score) from step preference_start * max_steps
   * on (R1 switched preference rewards on only for the last steps: longer
   * runs hacked the reward model). NULL: rule rewards only. */
  r1d_preference_fn preference;
  void *preference_user;
  double w_preference;
  double preference_start; /* 0..1, share of the run before it switches on */
} r1d_grpo_run_config;

void r1d_grpo_run_config_default(r1d_grpo_run_config *c);

/* Reads a job's config object (TRL's names where TRL has them) into c:
 * the GRPO fields of r1d_grpo_config_from_json, "rewards" (an object, see
 * r1d_reward_config_from_json), and "learning_rate", "lr_scheduler_type"
 * ("constant" | "cosine"), "warmup_ratio", "weight_decay",
 * "max_grad_norm", "max_steps" (0: evaluate only), "prompts_per_step",
 * "num_iterations", "ref_refresh_steps", "dynamic_sampling", "temperature",
 * "top_p", "eval_samples", "eval_temperature", "eval_steps", "save_steps",
 * "seed", "max_tokens". Absent keys keep c's values; an unknown key or a
 * bad value fails with R1D_EINVAL and err->msg starting with the field's
 * name, so a route answers 400 naming it. */
int r1d_grpo_run_config_from_json(const json_t *obj, r1d_grpo_run_config *c,
                                  r1d_error *err);

typedef struct r1d_grpo_metrics {
  long step, total_steps;
  int is_eval;
  /* training step (is_eval 0) */
  double reward_mean, reward_std; /* over the step's completions */
  double accuracy, format_rate;   /* mean of correct, of format_ok */
  double completion_len;          /* mean tokens */
  double truncated_rate;          /* share stopped by the length limit */
  int groups, flat_groups;        /* flat: all rewards equal (no signal) */
  double loss, kl, clip_ratio, lr, grad_norm;
  double preference; /* mean sigmoid(score) of the scorer, NAN when off */
  long tokens;       /* completion tokens trained on */
  /* where the step's time went, seconds */
  double t_rollout, t_reward, t_ref, t_backward, t_optim, t_step;
  double rollout_tokens_per_s;
  double elapsed_s, eta_s;
  /* evaluation (is_eval 1) */
  double eval_pass1, eval_format, eval_len;
  double eval_pass1_ci; /* 95% half-width (normal approximation) */
  double eval_gain;     /* pass@1 minus step 0's, task by task (0 at 0) */
  double eval_gain_ci;  /* its paired 95% half-width */
  int eval_tasks, eval_k;
} r1d_grpo_metrics;

typedef struct r1d_grpo_hooks {
  void (*on_metrics)(void *user, const r1d_grpo_metrics *m);
  void (*on_checkpoint)(void *user, const char *path, long step);
  volatile int *stop; /* non-zero: stop at the next step boundary, saving */
  void *user;
} r1d_grpo_hooks;

/* Trains m (CPU fp32 weights) with GRPO on the train tasks, evaluating on
 * the eval tasks (may be 0 of them). m's weights are not changed; the
 * result is in out_dir/last. Errors: bad settings (R1D_EINVAL naming the
 * option), a non-finite loss or gradient (R1D_ERANGE: nothing of that step
 * is applied; the message names the last checkpoint), a reward checker's
 * failure (its code), a checkpoint that cannot be written. */
int r1d_grpo_run(const r1d_grpo_run_config *c, const r1d_model *m,
                 const r1d_tokenizer *tok, const r1d_grpo_task *train,
                 int n_train, const r1d_grpo_task *eval, int n_eval,
                 const r1d_grpo_hooks *hooks, r1d_error *err);

#endif
