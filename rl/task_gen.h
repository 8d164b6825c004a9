/* task_gen.h - built-in generators of rule-verifiable tasks, for `r1d grpo
 * --task-gen` and `r1d tasks gen`: seeded, each problem unique, train and
 * eval splits that never share a problem. The tasks have the shape
 * storage/tasks.h stores ({"id", "prompt", "checker", "split", "source"}),
 * so they import, export and train like any other, plus a worked solution
 * that the task store keeps as an extra top-level field:
 *   "solution": {"thought": "7 + 5 = 12, write 2 carry 1\n...",
 *                "answer": "632"}
 * The thought is a short English scratchpad, one step per line, small
 * enough for a character-level model to imitate (cold-start SFT,
 * pretraining text); the answer is what the task's checker accepts (the
 * value; countdown: an expression).
 *
 * A spec is NAME[:LEVEL][:STYLE]. Levels (the ranges are the generators'):
 *   addition[:D]    D-digit + D-digit (default 2; 1..9); carries occur at
 *                   every level (level 1: 0..9 + 0..9); math checker
 *   multiply[:D]    a D-digit number (default 2; 1..6; level 1: 2..9) times
 *                   a one-digit number 2..9, with carries; math checker
 *   multistep[:N]   an expression of N operations (default 3; 1..8) over
 *                   + - * and numbers 1..20 (1..9 after a *), evaluated
 *                   with the usual precedence; math checker
 *   countdown[:N]   N numbers (default 4; 2..6) from 1..25 and a target in
 *                   1..999 reachable with each used once (+ - * / with
 *                   exact division); countdown checker
 * STYLE is natural (default: "What is 347 + 285?", "What is 47 * 8?",
 * "What is 3 + 4 * 5 - 2?", "Use 3, 7, 25, 4 to make 31 with + - * /, each
 * once.") or plain (the terse "347+285=" form; countdown "Using the numbers
 * [3, 7, 25, 4], make 31. Use each number exactly once with + - * /.").
 *
 * Uniqueness is by the problem, not its wording: the operands in order for
 * addition, multiply and multistep (347 + 285 and 285 + 347 are two
 * problems, with two different scratchpads), the multiset of numbers and
 * the target for countdown. So both styles draw the same problems from the
 * same seed, and no phrasing puts a problem in both splits. */
#ifndef R1D_RL_TASK_GEN_H
#define R1D_RL_TASK_GEN_H

#include <stdint.h>

#include <jansson.h>

#include "../common/status.h"

typedef enum r1d_prompt_style {
  R1D_PROMPT_NATURAL = 0,
  R1D_PROMPT_PLAIN = 1,
} r1d_prompt_style;

typedef struct r1d_task_gen_opts {
  r1d_prompt_style style; /* a STYLE in the spec wins over this */
  /* 1: the solution also carries "thought_zh" (the same steps with Chinese
   * connective words: "7 加 5 得 12，写 2 进 1") and "thought_short" (one
   * sentence, "I add the numbers."), for pretraining text that mixes
   * languages and lengths as a web-trained base model would. */
  int extra_thoughts;
} r1d_task_gen_opts;

/* A new JSON array of n_train tasks of split "train" then n_eval of split
 * "eval". opts NULL: natural prompts, no extra thoughts. R1D_EINVAL names
 * an unknown generator, a bad level or style; R1D_ERANGE when the generator
 * has fewer distinct problems than asked for. */
int r1d_task_gen_ex(const char *spec, int n_train, int n_eval, uint64_t seed,
                    const r1d_task_gen_opts *opts, json_t **out,
                    r1d_error *err);

/* Called with each task in turn (the callee takes no reference: incref to
 * keep it); a non-zero return stops the generation and is returned. */
typedef int (*r1d_task_gen_fn)(void *user, json_t *task, r1d_error *err);

/* Like r1d_task_gen_ex, one task at a time, without holding them all (a
 * million tasks as JSON objects take gigabytes). */
int r1d_task_gen_each(const char *spec, int n_train, int n_eval, uint64_t seed,
                      const r1d_task_gen_opts *opts, r1d_task_gen_fn fn,
                      void *user, r1d_error *err);

/* r1d_task_gen_ex with opts NULL. */
int r1d_task_gen(const char *spec, int n_train, int n_eval, uint64_t seed,
                 json_t **out, r1d_error *err);

#endif
