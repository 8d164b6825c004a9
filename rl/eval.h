/* eval.h - the evaluation of `r1d eval` (RL.md, "Evaluation"): k sampled
 * completions per task at temperature 0.6 / top_p 0.95 through the serving
 * engine, each scored with the rule rewards (rl/rewards.h), aggregated into
 * the numbers the R1 paper reports, each with a 95% interval over tasks.
 *
 * Metrics (means over tasks of per-task values, so every task weighs the
 * same whatever k is):
 *   pass1         format-agnostic accuracy: the checker on the answer
 *                 extracted best-effort even from a malformed completion,
 *                 averaged over the k samples;
 *   strict_pass1  correct AND well formed (one closed thought, a non-empty
 *                 answer): the R1 "strict" accuracy. The gap between the
 *                 two is how much of a score is format, not reasoning;
 *   cons          cons@k: the majority vote over the k extracted answers,
 *                 checked by the task's checker (see r1d_eval_majority);
 *   pass_k        any of the k samples correct;
 *   format_rate   share of well-formed samples;
 *   language      mean language consistency of the thoughts (share of the
 *                 thought's words in the target script);
 *   readable      share of samples well formed AND single-script
 *                 (consistency exactly 1.0);
 *   mean_len      completion tokens; truncated_rate: share cut by the
 *                 length limit.
 *
 * Intervals: every metric's `ci` is a 95% half-width over tasks (the k
 * samples of one task are correlated, so samples are not the unit). For
 * the shares of samples (pass1, strict_pass1, cons, pass_k, format_rate,
 * readable, truncated_rate), when every per-task value is 0 or 1 (cons and
 * pass_k always, all of them when k == 1, or by chance) the Wilson score
 * interval is used: it stays honest at 0% and 100%, where the normal one
 * collapses to zero width; ci is then half its width and [lo, hi] the
 * interval itself, whose centre is pulled towards 0.5 (so value +- ci is
 * not exactly [lo, hi]). Otherwise, and always for language and mean_len
 * (not counts of successes), the normal approximation over the per-task
 * means, 1.96 * s / sqrt(n) with the sample standard deviation s, and
 * [lo, hi] = value +- ci clamped to [0, 1] (lengths: to >= 0). One task
 * and no Wilson: ci 0 (no spread to measure).
 *
 * The aggregation (r1d_eval_aggregate) is a pure function of per-sample
 * outcomes, apart from the sampling, so it is tested on hand-made data. */
#ifndef R1D_RL_EVAL_H
#define R1D_RL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../common/status.h"
#include "../engine/model/model.h"
#include "../engine/serve/engine.h"
#include "../engine/text/template.h"
#include "../engine/text/tokenizer.h"
#include "grpo_run.h"
#include "rewards.h"

typedef struct r1d_eval_config {
  int k;                  /* samples per task, 1..R1D_ENGINE_MAX_N (8) */
  float temperature;      /* 0.6 */
  float top_p;            /* 0.95 */
  int max_tokens;         /* per completion (256) */
  uint64_t seed;          /* 1; task i's sample j: seed + i * 1000003 + j */
  r1d_answer_style style; /* where the answer is (think) */
  char language[16];      /* target script of the thoughts ("latin") */
  int keep_samples;       /* 1: out->samples holds every sample's record */
} r1d_eval_config;

void r1d_eval_config_default(r1d_eval_config *c);

/* One sample, as the aggregation sees it. */
typedef struct r1d_eval_outcome {
  int correct;     /* the checker's verdict on the best-effort answer */
  int format_ok;   /* one closed thought and a non-empty answer */
  int truncated;   /* stopped by the length limit */
  int n_tokens;    /* completion tokens */
  double language; /* consistency of the thought, 0..1 */
  const char *key; /* the answer's vote key; NULL or "": no answer (no vote) */
} r1d_eval_outcome;

/* A sample's record for a samples JSONL: the outcome plus the texts. */
typedef struct r1d_eval_sample {
  r1d_eval_outcome o; /* o.key points to key */
  char *text;         /* the completion as generated (decoded) */
  char *thought;      /* the thought and the answer, as r1d_completion_split */
  char *answer;       /* cut them (answer best-effort) */
  char *key;
  double score;     /* the verdict's score (code: share of tests) */
  char detail[160]; /* the checker's one-line note */
} r1d_eval_sample;

typedef struct r1d_eval_metric {
  double value, ci; /* ci: 95% half-width */
  double lo, hi;    /* the 95% interval */
} r1d_eval_metric;

typedef struct r1d_eval_task_result {
  char id[136];
  double pass1, strict_pass1, format_rate, language, readable;
  double mean_len, truncated_rate;
  int cons, pass_k;
  int majority; /* sample index of the voted answer's first vote, -1 none */
  int votes;    /* samples that voted for it */
} r1d_eval_task_result;

typedef struct r1d_eval_result {
  r1d_eval_metric pass1, strict_pass1, cons, pass_k, format_rate, language,
      readable, mean_len, truncated_rate;
  int n_tasks, k;
  long tokens;                 /* completion tokens generated */
  double wall_s;               /* sampling and scoring */
  double tokens_per_s;         /* tokens / wall_s */
  r1d_eval_task_result *tasks; /* [n_tasks] */
  r1d_eval_sample *samples;    /* [n_tasks * k] with keep_samples, else NULL */
} r1d_eval_result;

void r1d_eval_result_free(r1d_eval_result *r);

/* The vote key of an answer (the text r1d_completion_split extracted):
 * the content of the last complete \boxed{} / \fbox{} when there is one;
 * then, for checker type "math" (or NULL), the number it states in
 * canonical form - "632", "632.0", "632.", "$632$", "\boxed{632}",
 * "1,234" -> "1234" style integers, "0.5", "1/2", "\frac{1}{2}" -> "1/2" -
 * taken from the whole answer, else from its last number-like word
 * (as the math checker does); for other checkers, and answers with no
 * number, the text with white space runs collapsed, `$` and a trailing
 * period dropped; for "countdown" all white space and a trailing
 * "= N" are dropped. A new string ("" for an empty answer), NULL when out
 * of memory. */
char *r1d_eval_answer_key(const char *answer, size_t len,
                          const char *checker_type);

/* The majority vote over k outcomes: the most frequent non-empty key, ties
 * to the key whose first vote came first. Returns the index of that first
 * vote (its verdict is the vote's verdict: equal keys mean equal answers
 * to the checker) and its count in *votes (may be NULL), or -1 (and 0)
 * when no sample has an answer. */
int r1d_eval_majority(const r1d_eval_outcome *s, int k, int *votes);

/* Wilson 95% interval of s successes in n trials: *lo, *hi; returns the
 * half-width. n == 0: 0 and [0, 1]. */
double r1d_eval_wilson(int s, int n, double *lo, double *hi);

/* Aggregates n_tasks * k outcomes (task i's samples at i * k .. i * k + k
 * - 1) into out's metrics and out->tasks (allocated here; ids left empty).
 * Keeps out->samples, tokens, wall_s. R1D_EINVAL for n_tasks < 1 or
 * k < 1. */
int r1d_eval_aggregate(const r1d_eval_outcome *s, int n_tasks, int k,
                       r1d_eval_result *out, r1d_error *err);

/* Scores one completion: the rule reward's split and verdict, the language
 * of the thought and the vote key, into out (strings owned by out; free
 * with r1d_eval_sample_free). Used by eval and rejection sampling. */
int r1d_eval_score(const r1d_eval_config *cfg, const json_t *checker,
                   const char *completion, int prompt_in_think, int n_tokens,
                   int truncated, r1d_eval_sample *out, r1d_error *err);
void r1d_eval_sample_free(r1d_eval_sample *s);

/* Answers that are equal to the math checker but got different keys
 * ("\frac{3}{4}" vs "0.75" with a tolerance, units, ...): each key is
 * replaced by the first earlier key the checker accepts as equal, so the
 * vote counts them together. A no-op for other checker types. */
int r1d_eval_merge_keys(r1d_eval_sample *s, int k, const json_t *checker,
                        r1d_error *err);

/* Called after each batch of tasks is sampled and scored. */
typedef void (*r1d_eval_progress_fn)(void *user, int tasks_done, int n_tasks,
                                     double elapsed_s);

/* Prepares tasks (storage/tasks.h's normalised task objects, a JSON array)
 * as r1d_grpo_task_prepare does: *out = [n] (free with
 * r1d_eval_tasks_free). An error names the task. */
int r1d_eval_tasks_prepare(const json_t *tasks, const r1d_template *tmpl,
                           const r1d_tokenizer *tok, r1d_grpo_task **out,
                           int *n, r1d_error *err);
void r1d_eval_tasks_free(r1d_grpo_task *t, int n);

/* A model ready to sample from, for the commands that do (eval,
 * rejection-sample, distill): CPU weights, tokenizer, chat template (the
 * folder's, or template_name's), and an engine once started. */
typedef struct r1d_eval_model {
  r1d_model *model;
  r1d_tokenizer *tok;
  r1d_template *tmpl;
  r1d_engine *engine;
} r1d_eval_model;

/* Loads dir (threads 0: all cores); no engine yet. */
int r1d_eval_model_open(const char *dir, const char *template_name, int threads,
                        r1d_eval_model *out, r1d_error *err);
/* Starts the engine for prompts of up to max_prompt tokens followed by
 * max_tokens generated ones: R1D_EINVAL naming both when that exceeds the
 * model's context. */
int r1d_eval_model_start(r1d_eval_model *m, int max_prompt, int max_tokens,
                         r1d_error *err);
void r1d_eval_model_close(r1d_eval_model *m);

/* Samples cfg->k completions of each task through e (background priority,
 * the live weights), scores and aggregates them into out (zeroed first;
 * free with r1d_eval_result_free). out->tasks carry the task ids. Errors:
 * bad settings (R1D_EINVAL naming the option), the engine's or a
 * checker's failure (their code, naming the task). */
int r1d_eval_run(r1d_engine *e, const r1d_tokenizer *tok,
                 const r1d_grpo_task *tasks, int n, const r1d_eval_config *cfg,
                 r1d_eval_progress_fn progress, void *user,
                 r1d_eval_result *out, r1d_error *err);

/* Adds out's metrics to obj as "pass1", "pass1_ci", ... (all nine metrics
 * with their _ci), plus "n_tasks", "k", "tokens", "wall_s",
 * "tokens_per_s". R1D_ENOMEM on failure. */
int r1d_eval_result_to_json(const r1d_eval_result *r, json_t *obj);

#endif
