/* rejection.h - rejection sampling (RL.md, stage 3 and distillation): a
 * model samples k completions of each prompt, and only the correct,
 * readable, single-language ones become SFT data for another model (the
 * base, in the R1 recipe, or a smaller student when distilling).
 *
 * A sample is kept when it is not truncated, is well formed (one closed
 * thought, a non-empty answer), passes the task's checker, its thought's
 * language consistency is at least min_language, and its text differs from
 * the samples already kept for that prompt; at most `keep` per prompt, the
 * first ones in sample order. Each rejected sample is counted under the
 * first test it fails, in that order.
 *
 * Rows are always in the R1-distill chat form, whatever template the
 * sampling model used: {"messages": [the task's user prompt (its "prompt"
 * or its "messages"), {"role": "assistant", "content":
 * "<think>\nTHOUGHT\n</think>\n\nANSWER"}]}. The SFT loader
 * (rl/sft_data.h) trains on that last turn, thought included, through the
 * student's own template, so R1-Zero samples (<answer> tags) train a chat
 * model as well. */
#ifndef R1D_RL_REJECTION_H
#define R1D_RL_REJECTION_H

#include <stdio.h>

#include <jansson.h>

#include "../common/status.h"
#include "eval.h"

typedef enum r1d_reject_reason {
  R1D_REJECT_KEPT = 0,
  R1D_REJECT_TRUNCATED, /* stopped by the length limit */
  R1D_REJECT_MALFORMED, /* no single closed thought + answer */
  R1D_REJECT_WRONG,     /* the checker says no */
  R1D_REJECT_MIXED,     /* language consistency below min_language */
  R1D_REJECT_DUPLICATE, /* the same text as one kept for the prompt */
  R1D_REJECT_SURPLUS,   /* good, but `keep` were kept already */
  R1D_REJECT_N
} r1d_reject_reason;

/* "kept", "truncated", "malformed", "wrong", "mixed_language",
 * "duplicate", "surplus". */
const char *r1d_reject_reason_name(r1d_reject_reason r);

typedef struct r1d_reject_config {
  r1d_eval_config sample; /* k (4), temperature (0.7), top_p (0.95),
                             max_tokens, seed, answer style, language */
  int keep;               /* per prompt (1) */
  double min_language;    /* 1.0: single-script thoughts only */
  /* Preference pairs, when set: for each prompt with a kept sample (or a
   * reference "solution" answer in its task) and a wrong, malformed or
   * mixed-language one, {"prompt", "chosen", "rejected"} with the two final
   * answers (what r1d rm trains on; a stand-in for user feedback when there
   * is none). NULL: none. */
  FILE *pairs;
} r1d_reject_config;

void r1d_reject_config_default(r1d_reject_config *c);

/* Decides for one prompt's k scored samples: reasons[j]. */
void r1d_reject_filter(const r1d_eval_sample *s, int k, int keep,
                       double min_language, r1d_reject_reason *reasons);

/* "<think>\nTHOUGHT\n</think>\n\nANSWER" (new string, NULL when out of
 * memory). */
char *r1d_reject_sft_content(const char *thought, const char *answer);

/* The SFT row of content as the reply to task's prompt: NULL when the task
 * has neither "prompt" (string) nor "messages" (array), or out of memory. */
json_t *r1d_reject_sft_row(const json_t *task, const char *content);

typedef struct r1d_reject_stats {
  long prompts, samples, accepted, prompts_kept;
  long reasons[R1D_REJECT_N]; /* [R1D_REJECT_KEPT] == accepted */
  long tokens;                /* completion tokens sampled */
  long pairs;                 /* preference pairs written */
  double wall_s;
} r1d_reject_stats;

/* Samples, filters and writes the rows of tasks[n] (prepared) whose JSON
 * objects are task_json[i] to out, one line each, in task order. Progress
 * as in r1d_eval_run. */
int r1d_rejection_run(r1d_engine *e, const r1d_tokenizer *tok,
                      const r1d_grpo_task *tasks, const json_t *task_json,
                      int n, const r1d_reject_config *cfg,
                      r1d_eval_progress_fn progress, void *user, FILE *out,
                      r1d_reject_stats *stats, r1d_error *err);

/* The stats as a JSON object (new reference; NULL when out of memory):
 * prompts, samples, accepted, accept_rate, prompts_kept, rejected: {reason:
 * count}, tokens, pairs, wall_s. */
json_t *r1d_reject_stats_json(const r1d_reject_stats *s);

#endif
