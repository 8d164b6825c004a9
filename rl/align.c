/* align.c - see align.h. */
#include "align.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int r1d_align_score(void *user, const r1d_grpo_task *t,
                    const char *const *texts, int n, double *scores,
                    r1d_error *err) {
  const json_t **prompts = malloc((size_t)n * sizeof *prompts);
  if (!prompts) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (int i = 0; i < n; i++)
    prompts[i] = t->messages;
  int rc = r1d_reward_model_score(user, (const json_t *const *)prompts, texts,
                                  n, scores, err);
  free(prompts);
  return rc;
}

static int task_push(r1d_grpo_task **v, int *n, int *cap,
                     const r1d_grpo_task *t) {
  if (*n == *cap) {
    int c = *cap ? 2 * *cap : 64;
    r1d_grpo_task *nv = realloc(*v, (size_t)c * sizeof *nv);
    if (!nv) return R1D_ENOMEM;
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = *t;
  return R1D_OK;
}

int r1d_align_general_tasks(const r1d_pref_pair *pairs, size_t n_pairs,
                            int max_tasks, const r1d_template *tmpl,
                            const r1d_tokenizer *tok, r1d_grpo_task **tasks,
                            int *n, int *cap, r1d_error *err) {
  json_t *seen = json_object(); /* canonical prompt JSON -> true */
  int rc = seen ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory"), added = 0;
  for (size_t i = 0; rc == 0 && i < n_pairs && added < max_tasks; i++) {
    const json_t *p = pairs[i].prompt;
    if (!p || json_is_null(p)) continue; /* a plain pair: no prompt to ask */
    char *key = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!key) {
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
      break;
    }
    int dup = json_object_get(seen, key) != NULL;
    if (!dup) json_object_set_new(seen, key, json_true());
    free(key);
    if (dup) continue;
    char id[64];
    snprintf(id, sizeof id, "pref-%zu", i);
    json_t *task = json_is_string(p)
                       ? json_pack("{s:s, s:O}", "id", id, "prompt", p)
                       : json_pack("{s:s, s:O}", "id", id, "messages", p);
    r1d_grpo_task t;
    rc = task ? r1d_grpo_task_prepare_general(task, tmpl, tok, &t, err)
              : r1d_fail(err, R1D_ENOMEM, "out of memory");
    json_decref(task);
    if (rc) break;
    if (task_push(tasks, n, cap, &t)) {
      r1d_grpo_task_free(&t);
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    }
    added++;
  }
  json_decref(seen);
  return rc;
}
