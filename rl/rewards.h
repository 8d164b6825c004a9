/* rewards.h - the rule-based reward of one completion (RL.md, "Rewards"):
 * a weighted sum of accuracy (the task's checker, rl/verifiers/verify.h, on
 * the extracted final answer), format (one well-formed thought followed by
 * a non-empty answer), language consistency (share of the thought's words
 * written in the target script) and an optional overlong penalty (DAPO's
 * soft punishment of completions near the length limit).
 *
 * The completion is the text the model generated after the prompt. With an
 * R1-distill template the prompt already ends inside `<think>`, so the
 * completion has no opening tag (prompt_in_think = 1); with the R1-Zero
 * template the completion carries `<think>…</think> <answer>…</answer>`. */
#ifndef R1D_RL_REWARDS_H
#define R1D_RL_REWARDS_H

#include <stddef.h>

#include <jansson.h>

#include "../common/status.h"
#include "verifiers/verify.h"

typedef enum r1d_answer_style {
  R1D_ANSWER_AFTER_THINK = 0, /* answer = text after `</think>` (R1 chat) */
  R1D_ANSWER_TAGS = 1, /* answer = inside <answer>…</answer> (R1-Zero) */
} r1d_answer_style;

typedef struct r1d_reward_config {
  double w_accuracy;      /* default 1.0 */
  double w_format;        /* default 0.0 */
  double w_language;      /* default 0.0 */
  r1d_answer_style style; /* default R1D_ANSWER_AFTER_THINK */
  char language[16];      /* target script of the thought: "latin" (default),
                              "han", "cyrillic", "arabic", ... */
  /* Overlong shaping (DAPO): with max_tokens > 0 and buffer > 0, a
   * completion of L tokens with max_tokens - buffer < L <= max_tokens gets
   * -w_overlong * (L - (max_tokens - buffer)) / buffer; truncated ones
   * (finish "length") get -w_overlong. 0 turns it off (default). */
  double w_overlong;
  size_t overlong_max_tokens;
  size_t overlong_buffer;
  /* Accuracy is scored on strict format only when set: an answer without a
   * well-formed thought counts as wrong (the R1 "strict" accuracy). */
  int strict_format;
} r1d_reward_config;

typedef struct r1d_completion_info {
  int prompt_in_think; /* the rendered prompt ended inside <think> */
  size_t n_tokens;     /* completion tokens generated */
  int truncated;       /* stopped by the length limit, not by EOS/stop */
} r1d_completion_info;

typedef struct r1d_reward {
  double total;    /* the weighted sum the trainer uses */
  double accuracy; /* 0..1 (the verdict's score) */
  double format;   /* 0 or 1 */
  double language; /* 0..1; 1 for a thought with no words */
  double overlong; /* <= 0, before its weight */
  int correct;     /* the checker's verdict on the extracted answer */
  int format_ok;   /* one well-formed thought and a non-empty answer */
  r1d_verdict verdict;
} r1d_reward;

/* The defaults listed in r1d_reward_config. */
void r1d_reward_config_default(r1d_reward_config *cfg);

/* Reads a job config's "rewards" object: {"accuracy": w, "format": w,
 * "language": w, "language_target": "latin", "answer_style": "think"|"tags",
 * "overlong": w, "overlong_max_tokens": n, "overlong_buffer": n,
 * "strict_format": bool}; absent keys keep cfg's values. A bad value fails
 * with R1D_EINVAL and err->msg starting with the field's name
 * ("rewards.format must be a number ..."), so a route can answer 400 with
 * it in `param`. */
int r1d_reward_config_from_json(const json_t *obj, r1d_reward_config *cfg,
                                r1d_error *err);

/* Splits a completion into thought and answer as the style says: the
 * answer's bytes are [*ans, *ans + *ans_len) within completion (no copy);
 * *thought likewise. Returns 1 when the format is well formed (exactly one
 * thought, closed, followed by a non-empty answer; for R1D_ANSWER_TAGS also
 * exactly one <answer>…</answer> after it), 0 otherwise; with a malformed
 * format the answer is the best effort (text after the last `</think>`, or
 * the whole completion; for R1D_ANSWER_TAGS the content of the last
 * <answer>…</answer> there when it has one). Thought and answer come
 * without surrounding white space. */
int r1d_completion_split(const char *completion, r1d_answer_style style,
                         int prompt_in_think, const char **thought,
                         size_t *thought_len, const char **ans,
                         size_t *ans_len);

/* Share of the words of `text` written in `script` (Unicode script of each
 * word's letters; digits, punctuation and LaTeX commands are not words).
 * 1.0 for a text with no words. */
double r1d_language_consistency(const char *text, size_t len,
                                const char *script);

/* Scores one completion against the task's checker (NULL: no accuracy
 * term, for general prompts that a reward model judges). Returns 0, or the
 * checker's error (a malformed checker spec, a sandbox that could not run). */
int r1d_reward_compute(const r1d_reward_config *cfg, const json_t *checker,
                       const char *completion, const r1d_completion_info *info,
                       r1d_reward *out, r1d_error *err);

#endif
