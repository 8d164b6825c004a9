/* rollout.c - completions sampled through the engine for the trainer
 * (rollout.h). The engine's callback runs on its own thread: it appends
 * tokens to the sample they belong to and counts finished samples under a
 * mutex; the caller waits on a condition variable for the count. */
#include "rollout.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct rollout_run {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, oom;
  r1d_rollout *out;
  int n_per_prompt;
} rollout_run;

typedef struct rollout_req {
  rollout_run *run;
  int prompt;
} rollout_req;

static int push_token(r1d_rollout *r, int32_t id, float lp) {
  if (r->n == r->cap) {
    int cap = r->cap ? 2 * r->cap : 64;
    int32_t *ids = realloc(r->ids, (size_t)cap * sizeof *ids);
    if (!ids) return R1D_ENOMEM;
    r->ids = ids;
    float *lps = realloc(r->logprobs, (size_t)cap * sizeof *lps);
    if (!lps) return R1D_ENOMEM;
    r->logprobs = lps;
    r->cap = cap;
  }
  r->ids[r->n] = id;
  r->logprobs[r->n] = lp;
  r->n++;
  return R1D_OK;
}

static int on_event(void *user, const r1d_engine_event *ev) {
  rollout_req *rq = user;
  rollout_run *run = rq->run;
  if (ev->index < 0 || ev->index >= run->n_per_prompt) return 0;
  r1d_rollout *r =
      &run->out[(size_t)rq->prompt * run->n_per_prompt + ev->index];
  int oom = ev->token >= 0 && push_token(r, ev->token, ev->logprob) != 0;
  if (ev->finish == R1D_FINISH_NONE && !oom) return 0;
  pthread_mutex_lock(&run->mu);
  run->oom |= oom;
  if (ev->finish != R1D_FINISH_NONE) {
    r->finish = ev->finish;
    r->failed = ev->error != NULL || ev->finish == R1D_FINISH_ABORT;
    run->done++;
    pthread_cond_signal(&run->cv);
  }
  pthread_mutex_unlock(&run->mu);
  return oom; /* out of memory: cancel the request */
}

/* The text a reward reads: every token's text, special ones included, but
 * a last token that ended generation (EOS, a stop id) left out. Ids past
 * the tokenizer (a model's vocabulary is often padded beyond it) have no
 * text. */
static int decode(const r1d_tokenizer *tok, r1d_rollout *r, r1d_error *err) {
  size_t n = (size_t)r->n, k = 0;
  if (n && r->finish == R1D_FINISH_STOP &&
      r1d_tokenizer_is_special(tok, r->ids[n - 1]))
    n--;
  int32_t *known = malloc((n ? n : 1) * sizeof *known);
  if (!known) return r1d_fail(err, R1D_ENOMEM, "rollout: out of memory");
  int vocab = r1d_tokenizer_vocab_size(tok);
  for (size_t i = 0; i < n; i++)
    if (r->ids[i] >= 0 && r->ids[i] < vocab) known[k++] = r->ids[i];
  int rc = r1d_tokenizer_decode(tok, known, k, 0, &r->text, &r->text_len, err);
  free(known);
  return rc;
}

void r1d_rollout_free(r1d_rollout *r, int n) {
  for (int i = 0; r && i < n; i++) {
    free(r[i].ids);
    free(r[i].logprobs);
    free(r[i].text);
    memset(&r[i], 0, sizeof r[i]);
  }
}

int r1d_rollout_run(r1d_engine *e, const r1d_tokenizer *tok,
                    const r1d_rollout_prompt *prompts, int n_prompts,
                    int n_per_prompt, const r1d_gen_params *params,
                    uint64_t weight_version, r1d_rollout *out, r1d_error *err) {
  int total = n_prompts * n_per_prompt, rc = R1D_OK, submitted = 0;
  memset(out, 0, (size_t)total * sizeof *out);
  rollout_req *reqs = calloc((size_t)n_prompts, sizeof *reqs);
  rollout_run run = {.out = out, .n_per_prompt = n_per_prompt};
  if (!reqs) return r1d_fail(err, R1D_ENOMEM, "rollout: out of memory");
  pthread_mutex_init(&run.mu, NULL);
  pthread_cond_init(&run.cv, NULL);
  for (int i = 0; i < n_prompts; i++) {
    reqs[i] = (rollout_req){&run, i};
    r1d_engine_request rq = {.prompt = prompts[i].ids,
                             .n_prompt = prompts[i].n,
                             .params = *params,
                             .n = n_per_prompt,
                             .priority = R1D_PRIORITY_BACKGROUND,
                             .weight_version = weight_version,
                             .cb = on_event,
                             .user = &reqs[i]};
    rq.params.sampling.seed = params->sampling.seed + (uint64_t)i * 1000003u;
    uint64_t id;
    r1d_error serr = {0};
    rc = r1d_engine_submit(e, &rq, &id, &serr);
    if (rc) {
      r1d_fail(err, rc, "rollout: prompt %d: %s", i, serr.msg);
      break;
    }
    submitted++;
  }
  /* wait for every submitted sample, also after a failed submit: the
   * callbacks write into out and reqs */
  pthread_mutex_lock(&run.mu);
  while (run.done < submitted * n_per_prompt)
    pthread_cond_wait(&run.cv, &run.mu);
  pthread_mutex_unlock(&run.mu);
  if (!rc && run.oom)
    rc = r1d_fail(err, R1D_ENOMEM, "rollout: out of memory for tokens");
  for (int i = 0; !rc && i < total; i++) {
    if (out[i].failed)
      rc = r1d_fail(err, R1D_EBACKEND,
                    "rollout: the engine failed sample %d of prompt %d",
                    i % n_per_prompt, i / n_per_prompt);
    else
      rc = decode(tok, &out[i], err);
  }
  pthread_cond_destroy(&run.cv);
  pthread_mutex_destroy(&run.mu);
  free(reqs);
  if (rc) r1d_rollout_free(out, total);
  return rc;
}
