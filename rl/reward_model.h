/* reward_model.h - a preference reward model for stage 4 of the R1 recipe
 * (alignment RL): a causal LM of the family r1d loads, used as a judge, and
 * trained from chosen/rejected pairs with the Bradley-Terry loss.
 *
 * Score. The input is the chat template's rendering of the conversation
 * (prompt messages + one assistant turn holding the answer) followed by a
 * fixed judge suffix (default "\nGood answer?"); the score is
 *   r = z_GOOD - z_BAD
 * the difference of the next-token logits at the last position of two fixed
 * tokens (default the first tokens of "Y" and "N"). It equals
 * logprob(GOOD) - logprob(BAD), so the judge needs no new head: any model
 * folder is a (poor) reward model before training, the trained one is again
 * a plain Hugging Face folder, and the gradient of r is a logprob gradient
 * (engine/model/train.h's r1d_train_backward_weighted): each sequence is
 * packed twice, once with target GOOD at its last row and weight w, once
 * with target BAD and weight -w; the softmax terms of the two cancel and
 * what remains is w (onehot(GOOD) - onehot(BAD)) on the logits.
 *
 * Answer only. A completion's text after its last "</think>" is scored (the
 * R1 paper's helpfulness reward model judged only the final summary: the
 * thought is the policy's scratch space, and judging it invites reward
 * hacking of the reasoning). A completion without "</think>" is scored
 * whole: r1d cannot tell a non-reasoning answer from a thought cut short,
 * and the format reward of the RL run is what penalises the latter.
 * Leading and trailing whitespace of the answer is dropped.
 *
 * Prompts: a JSON string (one user message), an array of chat messages, or
 * NULL / JSON null (no conversation: BOS + the text + suffix, for TRL's
 * plain {"chosen", "rejected"} rows). A folder whose chat template r1d does
 * not know renders "role: content" lines instead ("plain").
 *
 * Sequences longer than max_len tokens keep their LAST max_len tokens (the
 * answer and the suffix are what the score reads). Scoring packs several
 * sequences per forward with the row-invariant kernels, so a score does not
 * depend on the batch it is computed in (deterministic).
 *
 * Loss, per pair, m = r_chosen - r_rejected:
 *   L = softplus(-m) + center_coef * (r_chosen + r_rejected)^2
 * averaged over the pairs of a step (the second term, TRL's
 * center_rewards_coefficient, keeps scores near 0 so they mix with rule
 * rewards). Metrics: accuracy = share of pairs with m > 0 (ties count as
 * wrong), mean margin, and for the eval pairs a 95% Wilson interval.
 *
 * The saved folder: model weights (fp32) + the source's config/tokenizer
 * files + reward_model.json {"kind": "lm-judge", "suffix", "good_token",
 * "bad_token", "good_text", "bad_text", "template", "answer_only": true,
 * "max_len"} + rm_state.json (settings and final metrics).
 *
 * Threads: one r1d_reward_model is used by one thread at a time. */
#ifndef R1D_RL_REWARD_MODEL_H
#define R1D_RL_REWARD_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "../engine/model/train.h"
#include "../engine/text/tokenizer.h"
#include "optim.h"

#define R1D_RM_DEFAULT_SUFFIX "\nGood answer?"
#define R1D_RM_DEFAULT_GOOD "Y"
#define R1D_RM_DEFAULT_BAD "N"

typedef struct r1d_reward_model r1d_reward_model;

typedef struct r1d_rm_options {
  int threads;    /* CPU threads (r1d_cpu_backend_init); <= 0: default */
  int max_len;    /* tokens per scored sequence; 0: min(1024, model max) */
  int max_tokens; /* tokens per packed forward; 0: 4 * max_len (>= that) */
  int recompute;  /* activation checkpointing in training (train.h) */
  /* a folder without reward_model.json (a base model): the judge's
   * settings; NULL: the defaults above. A reward_model.json wins. */
  const char *suffix, *good_text, *bad_text;
  const char *template_name; /* chat template override, NULL: the folder's */
} r1d_rm_options;

/* Loads a reward model: a folder written by r1d_rm_train (its
 * reward_model.json), or any model folder r1d loads (the default judge
 * settings; training starts from it). R1D_EINVAL when GOOD and BAD are the
 * same token or the json is malformed. */
int r1d_reward_model_load(const char *dir, int threads, r1d_reward_model **out,
                          r1d_error *err);
int r1d_reward_model_load_ex(const char *dir, const r1d_rm_options *o,
                             r1d_reward_model **out, r1d_error *err);
void r1d_reward_model_free(r1d_reward_model *rm);

/* scores[i] = r of (prompts[i], completions[i]) for i < n (see the top).
 * prompts may be NULL (all NULL) and each may be NULL or JSON null.
 * R1D_EINVAL names the index of a malformed prompt. */
int r1d_reward_model_score(r1d_reward_model *rm, const json_t *const *prompts,
                           const char *const *completions, int n,
                           double *scores, r1d_error *err);

/* The token ids a (prompt, completion) is scored on (BOS, template, answer,
 * suffix, cut to max_len); the score is read at the last one. Appends to
 * *ids. */
int r1d_reward_model_encode(const r1d_reward_model *rm, const json_t *prompt,
                            const char *completion, r1d_ids *ids,
                            r1d_error *err);

/* The answer part of a completion (see "Answer only"): a pointer into it
 * and its length. */
const char *r1d_rm_answer(const char *completion, size_t *len);

/* Accessors (for tests and the RL code). */
r1d_train_model *r1d_reward_model_params(r1d_reward_model *rm);
int32_t r1d_reward_model_good_token(const r1d_reward_model *rm);
int32_t r1d_reward_model_bad_token(const r1d_reward_model *rm);
const char *r1d_reward_model_suffix(const r1d_reward_model *rm);
int r1d_reward_model_max_len(const r1d_reward_model *rm);

/* Writes rm as a model folder out_dir (crash-safe, engine/model/
 * checkpoint.h) with reward_model.json; state (may be NULL) is written as
 * rm_state.json. */
int r1d_reward_model_save(r1d_reward_model *rm, const char *out_dir,
                          const json_t *state, r1d_error *err);

/* ---- preference pairs ---------------------------------------------------
 * prompt: NULL, a JSON string or a messages array (owned reference);
 * chosen/rejected: the assistant texts (malloc'ed). */
typedef struct r1d_pref_pair {
  json_t *prompt;
  char *chosen;
  char *rejected;
} r1d_pref_pair;

typedef struct r1d_pref_set {
  r1d_pref_pair *pairs;
  size_t n, cap;
  long lines;     /* non-blank lines read */
  long bad_lines; /* reported and skipped */
} r1d_pref_set;

/* One row of TRL RewardTrainer's formats into *out:
 *   {"chosen": "...", "rejected": "..."}            plain texts, no prompt
 *   {"prompt": "...", "chosen": "...", "rejected": "..."}  the prompt is a
 *       user message (rendered with the chat template, unlike TRL, which
 *       concatenates raw text: the judge sees what the policy sees)
 *   {"prompt": [messages], "chosen": [assistant message], "rejected": [...]}
 *   {"chosen": [messages...], "rejected": [messages...]}  full
 *       conversations: the shared prefix is the prompt, the last message of
 *       each (an assistant one) the answer
 *   {"prompt": [messages], "chosen": "...", "rejected": "..."} (what
 *       storage/feedback_pairs.h writes; other keys are ignored)
 * An assistant message's content is the text scored (its reasoning_content
 * is not). R1D_EINVAL with a message for anything else, and for a pair
 * whose chosen and rejected texts are equal (no preference). */
int r1d_pref_pair_from_json(json_t *row, r1d_pref_pair *out, r1d_error *err);
void r1d_pref_pair_clear(r1d_pref_pair *p);

typedef void (*r1d_pref_bad_line_fn)(void *user, long line, const char *msg);

/* Appends the pairs of a JSONL file ("-" is stdin). A bad line is reported
 * through on_bad (may be NULL) with its 1-based number and skipped; with
 * strict it fails the load (R1D_EINVAL, "LINE: msg"). R1D_EIO when the file
 * cannot be read. */
int r1d_pref_load_jsonl(const char *path, int strict,
                        r1d_pref_bad_line_fn on_bad, void *user,
                        r1d_pref_set *set, r1d_error *err);
/* Appends the rows of a JSON array (e.g. r1d_feedback_pairs_collect's);
 * a bad row is reported with its index + 1 as the line. */
int r1d_pref_add_json_array(json_t *rows, int strict,
                            r1d_pref_bad_line_fn on_bad, void *user,
                            r1d_pref_set *set, r1d_error *err);
/* Takes ownership of *p's contents (p is zeroed). */
int r1d_pref_set_push(r1d_pref_set *set, r1d_pref_pair *p, r1d_error *err);
void r1d_pref_set_free(r1d_pref_set *set);
/* Moves round(fraction * n) pairs (at least 1 when fraction > 0 and n > 1)
 * chosen by a seeded shuffle from set to eval. */
int r1d_pref_split(r1d_pref_set *set, double fraction, uint64_t seed,
                   r1d_pref_set *eval, r1d_error *err);

/* ---- training -------------------------------------------------------- */

typedef struct r1d_rm_config {
  const char *out_dir;      /* where the trained folder goes (with save) */
  int save;                 /* 1: write out_dir at the end (and when stopped) */
  double lr;                /* peak; 0: 1e-4 */
  double min_lr;            /* cosine floor */
  int constant_lr;          /* 1: warmup then constant; 0: warmup then cosine */
  double warmup_ratio;      /* share of the steps warming up, [0, 1) */
  double weight_decay;      /* AdamW; norms and biases never decay */
  double beta1, beta2, eps; /* 0: 0.9, 0.999, 1e-8 */
  double epochs;            /* used when max_steps is 0 */
  long max_steps;           /* > 0 overrides epochs */
  int batch_pairs;          /* pairs per optimizer step; 0: 8 */
  double clip;              /* global-norm clipping; 0 off */
  double center_coef;       /* see the loss above; 0 off */
  uint64_t seed;            /* pair order */
  long eval_every; /* steps between evals (and at start and end); 0: ends */
} r1d_rm_config;

typedef struct r1d_rm_eval {
  long pairs;
  double accuracy, lo, hi; /* share with m > 0 and its 95% Wilson interval */
  double loss;             /* mean softplus(-m) */
  double margin;           /* mean m */
  double score_mean;       /* mean of all 2 * pairs scores */
} r1d_rm_eval;

typedef struct r1d_rm_metrics {
  long step, total_steps; /* eval lines: the step they follow (0: before) */
  double epoch;
  int is_eval;
  /* a step: its pairs' mean loss, accuracy, margin; lr, pre-clip norm */
  double loss, accuracy, margin, lr, grad_norm;
  long pairs, tokens;
  double elapsed_s, pairs_per_s, eta_s;
  r1d_rm_eval eval; /* is_eval */
} r1d_rm_metrics;

typedef struct r1d_rm_hooks {
  void (*on_metrics)(void *user, const r1d_rm_metrics *m);
  volatile int *stop; /* polled between steps: stop (and save) */
  void *user;
} r1d_rm_hooks;

typedef struct r1d_rm_result {
  long steps;
  double train_loss, train_accuracy; /* the last step's */
  int has_eval;
  r1d_rm_eval eval_before, eval_after;
} r1d_rm_result;

/* Trains rm's weights in place on train[0..n) (eval may be NULL / m = 0)
 * and, with cfg->save, writes cfg->out_dir. R1D_ERANGE stops the run at a
 * non-finite loss or gradient norm (nothing of that step applied).
 * res may be NULL. */
int r1d_rm_train(const r1d_rm_config *cfg, r1d_reward_model *rm,
                 const r1d_pref_pair *train, size_t n,
                 const r1d_pref_pair *eval, size_t m, const r1d_rm_hooks *hooks,
                 r1d_rm_result *res, r1d_error *err);

/* Scores every pair and summarises (no gradient). */
int r1d_rm_evaluate(r1d_reward_model *rm, const r1d_pref_pair *pairs, size_t n,
                    r1d_rm_eval *out, r1d_error *err);

/* The mean loss of pairs[0..n) (the training forward), and with backward
 * its gradient ADDED to rm's gradients (zero them first): the building
 * block of a step, exposed for gradient checks. *accuracy and *margin
 * (may be NULL) get the pairs' share with m > 0 and mean m. */
int r1d_rm_loss(r1d_reward_model *rm, const r1d_pref_pair *pairs, size_t n,
                double center_coef, int backward, double *loss,
                double *accuracy, double *margin, r1d_error *err);

/* The 95% Wilson score interval of k successes in n trials. */
void r1d_wilson95(long k, long n, double *lo, double *hi);

#endif
