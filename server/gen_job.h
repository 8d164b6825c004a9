/* gen_job.h - one API request's generations in the engine, seen from the
 * loop thread. A job holds one engine request per prompt (a completions
 * call may send several). The engine thread's callback copies each event
 * into the job's list and queues the job on the server's ready list; the
 * loop drains that list and hands the events to the job's owner (the
 * response builder) in order. A job is refcounted: the loop holds one
 * reference until it releases the job, each engine request one until its
 * last choice finishes, and the ready list one while queued, so neither side
 * can free it under the other. */
#ifndef R1D_SERVER_GEN_JOB_H
#define R1D_SERVER_GEN_JOB_H

#include <pthread.h>
#include <stdint.h>

#include "server.h"

typedef struct gen_event {
  struct gen_event *next;
  int req;       /* engine request (prompt index) */
  int index;     /* choice within it */
  int32_t token; /* -1: none */
  float logprob;
  int n_top;
  r1d_top_logprob *top;
  r1d_finish_reason finish;
  int prompt_tokens, completion_tokens, cached_tokens;
  char *error; /* the engine failed the request */
  size_t text_len;
  char *text;
  r1d_prompt_logprob *prompt_lp; /* the prompt-logprobs event */
  int n_prompt_lp;
} gen_event;

typedef void (*gen_events_fn)(void *owner, gen_job *j, gen_event *list);

typedef struct gen_req_slot {
  gen_job *job;
  int req;
  int choices_left; /* engine side, under job->mu */
  int submitted;
  uint64_t engine_id;
} gen_req_slot;

struct gen_job {
  r1d_server *srv;
  r1d_version *version; /* pinned at creation: the live one then */
  pthread_mutex_t mu;
  int refs;
  gen_event *head, *tail;
  int queued; /* on srv->ready */
  gen_job *ready_next;
  int cancel; /* engine callbacks answer it: 1 stops the request */
  int n_reqs;
  gen_req_slot *slots;
  /* loop thread only */
  void *owner; /* NULL once the owner went away */
  gen_events_fn on_events;
};

gen_job *gen_job_create(r1d_server *s, int n_reqs, void *owner,
                        gen_events_fn on_events);
/* Submits engine request i (its cb and user are set here). */
int gen_job_submit(gen_job *j, int i, r1d_engine_request *req, r1d_error *err);
/* Stops every submitted request; their last events still arrive. */
void gen_job_cancel(gen_job *j);
/* The loop's reference: after this the owner gets no more events. */
void gen_job_release(gen_job *j);
void gen_events_free(gen_event *list);

#endif
