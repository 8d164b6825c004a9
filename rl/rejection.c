/* rejection.c - rejection sampling into SFT rows (rejection.h). Sampling
 * and scoring are r1d_eval_run's (the same rewards, seeds and answer
 * extraction as `r1d eval`, so an accept rate and a pass@1 measured on the
 * same settings agree); this file is the filter and the conversion of the
 * kept samples to R1-distill chat rows. */
#include "rejection.h"

#include <stdlib.h>
#include <string.h>

void r1d_reject_config_default(r1d_reject_config *c) {
  memset(c, 0, sizeof *c);
  r1d_eval_config_default(&c->sample);
  c->sample.k = 4;
  c->sample.temperature = 0.7f;
  c->keep = 1;
  c->min_language = 1.0;
}

const char *r1d_reject_reason_name(r1d_reject_reason r) {
  static const char *const names[R1D_REJECT_N] = {
      "kept",           "truncated", "malformed", "wrong",
      "mixed_language", "duplicate", "surplus"};
  return r >= 0 && r < R1D_REJECT_N ? names[r] : "?";
}

void r1d_reject_filter(const r1d_eval_sample *s, int k, int keep,
                       double min_language, r1d_reject_reason *reasons) {
  int kept = 0;
  for (int j = 0; j < k; j++) {
    const r1d_eval_outcome *o = &s[j].o;
    r1d_reject_reason r = R1D_REJECT_KEPT;
    if (o->truncated)
      r = R1D_REJECT_TRUNCATED;
    else if (!o->format_ok)
      r = R1D_REJECT_MALFORMED;
    else if (!o->correct)
      r = R1D_REJECT_WRONG;
    /* a small tolerance: the share is a ratio of word counts */
    else if (o->language < min_language - 1e-12)
      r = R1D_REJECT_MIXED;
    else {
      /* distinct by what the student would learn: thought and answer */
      for (int i = 0; i < j && r == R1D_REJECT_KEPT; i++)
        if (reasons[i] == R1D_REJECT_KEPT &&
            strcmp(s[i].thought ? s[i].thought : "",
                   s[j].thought ? s[j].thought : "") == 0 &&
            strcmp(s[i].answer ? s[i].answer : "",
                   s[j].answer ? s[j].answer : "") == 0)
          r = R1D_REJECT_DUPLICATE;
      if (r == R1D_REJECT_KEPT && kept >= keep) r = R1D_REJECT_SURPLUS;
    }
    reasons[j] = r;
    kept += r == R1D_REJECT_KEPT;
  }
}

char *r1d_reject_sft_content(const char *thought, const char *answer) {
  if (!thought) thought = "";
  if (!answer) answer = "";
  size_t n = strlen(thought) + strlen(answer) + 32;
  char *c = malloc(n);
  if (c) snprintf(c, n, "<think>\n%s\n</think>\n\n%s", thought, answer);
  return c;
}

json_t *r1d_reject_sft_row(const json_t *task, const char *content) {
  json_t *msgs = json_object_get(task, "messages");
  json_t *prompt = json_object_get(task, "prompt");
  json_t *m;
  if (json_is_array(msgs))
    m = json_deep_copy(msgs);
  else if (json_is_string(prompt))
    m = json_pack("[{s:s, s:O}]", "role", "user", "content", prompt);
  else
    return NULL;
  if (!m) return NULL;
  json_t *reply =
      json_pack("{s:s, s:s}", "role", "assistant", "content", content);
  if (!reply || json_array_append_new(m, reply)) {
    json_decref(m);
    return NULL;
  }
  return json_pack("{s:o}", "messages", m);
}

static int write_row(FILE *out, const json_t *task, const r1d_eval_sample *s,
                     r1d_error *err) {
  char *content = r1d_reject_sft_content(s->thought, s->answer);
  json_t *row = content ? r1d_reject_sft_row(task, content) : NULL;
  char *line = row ? json_dumps(row, JSON_COMPACT) : NULL;
  int rc = R1D_OK;
  if (!content || !line)
    rc = r1d_fail(err, content && !row ? R1D_EINVAL : R1D_ENOMEM,
                  content && !row ? "rejection: a task without a prompt"
                                  : "rejection: out of memory");
  else if (fprintf(out, "%s\n", line) < 0)
    rc = r1d_fail(err, R1D_EIO, "rejection: write failed");
  free(line);
  json_decref(row);
  free(content);
  return rc;
}

/* The prompt's preference pair: the first kept sample's answer (else the
 * task's reference "solution" answer) against the first one rejected for
 * being wrong, malformed or of mixed language (truncated ones have no
 * answer to judge; duplicates and surplus are good). *written = 1 when a
 * pair was written. */
static int write_pair(FILE *out, const json_t *task, const r1d_eval_sample *s,
                      const r1d_reject_reason *reasons, int k, int *written,
                      r1d_error *err) {
  int good = -1, bad = -1;
  *written = 0;
  for (int j = 0; j < k; j++) {
    if (reasons[j] == R1D_REJECT_KEPT && good < 0) good = j;
    if ((reasons[j] == R1D_REJECT_WRONG || reasons[j] == R1D_REJECT_MALFORMED ||
         reasons[j] == R1D_REJECT_MIXED) &&
        bad < 0)
      bad = j;
  }
  /* no kept sample: the task's reference answer, when it has one (as a
   * user's "preferred" text in /v1/feedback) */
  const char *chosen = good >= 0
                           ? s[good].answer
                           : json_string_value(json_object_get(
                                 json_object_get(task, "solution"), "answer"));
  if (!chosen || bad < 0 || !strcmp(chosen, s[bad].answer)) return R1D_OK;
  json_t *prompt = json_object_get(task, "messages");
  if (!json_is_array(prompt)) prompt = json_object_get(task, "prompt");
  json_t *row = json_pack("{s:O?, s:s, s:s}", "prompt", prompt, "chosen",
                          chosen, "rejected", s[bad].answer);
  char *line = row ? json_dumps(row, JSON_COMPACT) : NULL;
  int rc = R1D_OK;
  if (!line)
    rc = r1d_fail(err, R1D_ENOMEM, "rejection: out of memory");
  else if (fprintf(out, "%s\n", line) < 0)
    rc = r1d_fail(err, R1D_EIO, "rejection: writing the pairs failed");
  else
    *written = 1;
  free(line);
  json_decref(row);
  return rc;
}

int r1d_rejection_run(r1d_engine *e, const r1d_tokenizer *tok,
                      const r1d_grpo_task *tasks, const json_t *task_json,
                      int n, const r1d_reject_config *cfg,
                      r1d_eval_progress_fn progress, void *user, FILE *out,
                      r1d_reject_stats *stats, r1d_error *err) {
  memset(stats, 0, sizeof *stats);
  if (cfg->keep < 1)
    return r1d_fail(err, R1D_EINVAL, "keep must be >= 1, not %d", cfg->keep);
  if (!(cfg->min_language >= 0 && cfg->min_language <= 1))
    return r1d_fail(err, R1D_EINVAL, "min_language must be in [0, 1]");
  if ((int)json_array_size(task_json) != n)
    return r1d_fail(err, R1D_EINVAL, "rejection: %d tasks but %zu objects", n,
                    json_array_size(task_json));
  r1d_eval_config ec = cfg->sample;
  ec.keep_samples = 1;
  r1d_eval_result res;
  int rc = r1d_eval_run(e, tok, tasks, n, &ec, progress, user, &res, err);
  if (rc) return rc;
  int k = res.k;
  r1d_reject_reason *reasons = malloc((size_t)k * sizeof *reasons);
  if (!reasons) rc = r1d_fail(err, R1D_ENOMEM, "rejection: out of memory");
  for (int i = 0; rc == 0 && i < n; i++) {
    const r1d_eval_sample *s = res.samples + (size_t)i * k;
    r1d_reject_filter(s, k, cfg->keep, cfg->min_language, reasons);
    int kept = 0;
    for (int j = 0; rc == 0 && j < k; j++) {
      stats->reasons[reasons[j]]++;
      if (reasons[j] != R1D_REJECT_KEPT) continue;
      kept++;
      rc = write_row(out, json_array_get(task_json, (size_t)i), &s[j], err);
    }
    stats->prompts_kept += kept > 0;
    int pair = 0;
    if (rc == 0 && cfg->pairs)
      rc = write_pair(cfg->pairs, json_array_get(task_json, (size_t)i), s,
                      reasons, k, &pair, err);
    stats->pairs += pair;
  }
  free(reasons);
  stats->prompts = n;
  stats->samples = (long)n * k;
  stats->accepted = stats->reasons[R1D_REJECT_KEPT];
  stats->tokens = res.tokens;
  stats->wall_s = res.wall_s;
  r1d_eval_result_free(&res);
  return rc;
}

json_t *r1d_reject_stats_json(const r1d_reject_stats *s) {
  json_t *rej = json_object();
  for (int r = 1; rej && r < R1D_REJECT_N; r++)
    if (json_object_set_new(rej, r1d_reject_reason_name((r1d_reject_reason)r),
                            json_integer(s->reasons[r]))) {
      json_decref(rej);
      rej = NULL;
    }
  if (!rej) return NULL;
  return json_pack("{s:I, s:I, s:I, s:f, s:I, s:o, s:I, s:I, s:f}", "prompts",
                   (json_int_t)s->prompts, "samples", (json_int_t)s->samples,
                   "accepted", (json_int_t)s->accepted, "accept_rate",
                   s->samples ? (double)s->accepted / (double)s->samples : 0.0,
                   "prompts_kept", (json_int_t)s->prompts_kept, "rejected", rej,
                   "tokens", (json_int_t)s->tokens, "pairs",
                   (json_int_t)s->pairs, "wall_s", s->wall_s);
}
