/* align.h - the glue of alignment RL (the R1 recipe's stage 4, `r1d align`
 * and the server's align jobs): a preference reward model (reward_model.h)
 * as GRPO's preference scorer (grpo_run.h), and the prompts of preference
 * pairs as general training tasks, which only the reward model judges. */
#ifndef R1D_RL_ALIGN_H
#define R1D_RL_ALIGN_H

#include <jansson.h>

#include "../common/status.h"
#include "grpo_run.h"
#include "reward_model.h"

/* An r1d_preference_fn: user is the r1d_reward_model; every completion is
 * scored against the task's prompt messages. */
int r1d_align_score(void *user, const r1d_grpo_task *t,
                    const char *const *texts, int n, double *scores,
                    r1d_error *err);

/* Appends to *tasks (a growing array of *n, capacity *cap) one general task
 * per distinct prompt of pairs[0..n_pairs), at most max_tasks. Returns 0 or
 * an error (a prompt the template cannot render). */
int r1d_align_general_tasks(const r1d_pref_pair *pairs, size_t n_pairs,
                            int max_tasks, const r1d_template *tmpl,
                            const r1d_tokenizer *tok, r1d_grpo_task **tasks,
                            int *n, int *cap, r1d_error *err);

#endif
