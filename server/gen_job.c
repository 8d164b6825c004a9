/* gen_job.c - engine events carried to the loop thread (see gen_job.h). */
#include "gen_job.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void job_unref_locked_free(gen_job *j) {
  /* called with j->mu held; frees when the count reaches 0 */
  if (--j->refs > 0) {
    pthread_mutex_unlock(&j->mu);
    return;
  }
  pthread_mutex_unlock(&j->mu);
  r1d_versions_release(j->srv->versions, j->version);
  gen_events_free(j->head);
  pthread_mutex_destroy(&j->mu);
  free(j->slots);
  free(j);
}

gen_job *gen_job_create(r1d_server *s, int n_reqs, void *owner,
                        gen_events_fn on_events) {
  gen_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->slots = calloc((size_t)n_reqs, sizeof *j->slots);
  if (!j->slots || pthread_mutex_init(&j->mu, NULL)) {
    free(j->slots);
    free(j);
    return NULL;
  }
  j->srv = s;
  j->version = r1d_versions_acquire(s->versions);
  j->refs = 1;
  j->n_reqs = n_reqs;
  j->owner = owner;
  j->on_events = on_events;
  for (int i = 0; i < n_reqs; i++) {
    j->slots[i].job = j;
    j->slots[i].req = i;
  }
  return j;
}

void gen_events_free(gen_event *list) {
  while (list) {
    gen_event *n = list->next;
    free(list);
    list = n;
  }
}

/* One allocation per event: the struct, then top[], the prompt logprobs,
 * the error and the text. */
static gen_event *event_copy(const r1d_engine_event *ev, int req) {
  size_t n_top = ev->n_top > 0 ? (size_t)ev->n_top : 0;
  size_t n_plp = ev->n_prompt_logprobs > 0 ? (size_t)ev->n_prompt_logprobs : 0;
  size_t elen = ev->error ? strlen(ev->error) + 1 : 0;
  size_t size = sizeof(gen_event) + n_top * sizeof(r1d_top_logprob) +
                n_plp * sizeof(r1d_prompt_logprob) + elen + ev->text_len + 1;
  gen_event *e = malloc(size);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  char *p = (char *)(e + 1);
  e->req = req;
  e->index = ev->index;
  e->token = ev->token;
  e->logprob = ev->logprob;
  e->finish = ev->finish;
  e->prompt_tokens = ev->prompt_tokens;
  e->completion_tokens = ev->completion_tokens;
  e->cached_tokens = ev->cached_tokens;
  e->n_top = (int)n_top;
  e->top = (r1d_top_logprob *)p;
  if (n_top) memcpy(e->top, ev->top, n_top * sizeof(r1d_top_logprob));
  p += n_top * sizeof(r1d_top_logprob);
  e->n_prompt_lp = (int)n_plp;
  e->prompt_lp = n_plp ? (r1d_prompt_logprob *)p : NULL;
  if (n_plp)
    memcpy(e->prompt_lp, ev->prompt_logprobs,
           n_plp * sizeof(r1d_prompt_logprob));
  p += n_plp * sizeof(r1d_prompt_logprob);
  if (elen) {
    e->error = p;
    memcpy(p, ev->error, elen);
    p += elen;
  }
  e->text = p;
  e->text_len = ev->text_len;
  if (ev->text_len) memcpy(p, ev->text, ev->text_len);
  p[ev->text_len] = '\0';
  return e;
}

/* Engine thread. Keeps to copying and queueing: formatting happens on the
 * loop so the engine's step loop is not slowed by JSON. */
static int on_engine_event(void *user, const r1d_engine_event *ev) {
  gen_req_slot *slot = user;
  gen_job *j = slot->job;
  r1d_server *s = j->srv;
  gen_event *e = event_copy(ev, slot->req);
  pthread_mutex_lock(&j->mu);
  if (e) {
    if (j->tail)
      j->tail->next = e;
    else
      j->head = e;
    j->tail = e;
  } else {
    j->cancel = 1; /* out of memory: the answer would be wrong, stop it */
  }
  int wake = 0;
  if (!j->queued) {
    j->queued = 1;
    j->refs++;
    pthread_mutex_lock(&s->ready_mu);
    j->ready_next = s->ready;
    s->ready = j;
    pthread_mutex_unlock(&s->ready_mu);
    wake = 1;
  }
  int cancel = j->cancel;
  int last = 0;
  if (ev->finish != R1D_FINISH_NONE && --slot->choices_left == 0) last = 1;
  if (last)
    job_unref_locked_free(j); /* the engine's reference for this request */
  else
    pthread_mutex_unlock(&j->mu);
  if (wake) uv_async_send(&s->wake);
  return cancel;
}

int gen_job_submit(gen_job *j, int i, r1d_engine_request *req, r1d_error *err) {
  gen_req_slot *slot = &j->slots[i];
  req->cb = on_engine_event;
  req->user = slot;
  pthread_mutex_lock(&j->mu);
  slot->choices_left = req->n;
  j->refs++; /* before submit: the first event may come at once */
  pthread_mutex_unlock(&j->mu);
  int rc = r1d_engine_submit(r1d_version_engine(j->version), req,
                             &slot->engine_id, err);
  pthread_mutex_lock(&j->mu);
  if (rc) {
    j->refs--; /* the callback is never called for a refused request */
  } else {
    slot->submitted = 1;
  }
  pthread_mutex_unlock(&j->mu);
  return rc;
}

void gen_job_cancel(gen_job *j) {
  pthread_mutex_lock(&j->mu);
  j->cancel = 1;
  pthread_mutex_unlock(&j->mu);
  for (int i = 0; i < j->n_reqs; i++)
    if (j->slots[i].submitted)
      r1d_engine_cancel(r1d_version_engine(j->version), j->slots[i].engine_id);
}

void gen_job_release(gen_job *j) {
  j->owner = NULL;
  pthread_mutex_lock(&j->mu);
  job_unref_locked_free(j);
}

void r1d_server_drain_jobs(r1d_server *s) {
  pthread_mutex_lock(&s->ready_mu);
  gen_job *list = s->ready;
  s->ready = NULL;
  pthread_mutex_unlock(&s->ready_mu);
  while (list) {
    gen_job *j = list;
    list = j->ready_next;
    pthread_mutex_lock(&j->mu);
    gen_event *events = j->head;
    j->head = j->tail = NULL;
    j->queued = 0;
    pthread_mutex_unlock(&j->mu);
    if (j->owner && events)
      j->on_events(j->owner, j, events); /* takes the list */
    else
      gen_events_free(events);
    pthread_mutex_lock(&j->mu);
    job_unref_locked_free(j); /* the ready list's reference */
  }
}
