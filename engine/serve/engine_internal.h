/* engine_internal.h - what engine.c (API, thread, outputs) and scheduler.c
 * (what runs in the next step) share. Everything below the mutex line is
 * owned by the engine thread alone. */
#ifndef R1D_ENGINE_SERVE_ENGINE_INTERNAL_H
#define R1D_ENGINE_SERVE_ENGINE_INTERNAL_H

#include <pthread.h>

#include "../model/runner.h"
#include "detok.h"
#include "engine.h"
#include "kv_cache.h"

typedef enum seq_state {
  SEQ_NEW,      /* choice > 0 of an n > 1 request, not forked yet */
  SEQ_WAITING,  /* queued: new or preempted, holds no blocks */
  SEQ_RUNNING,  /* holds KV blocks */
  SEQ_FINISHED, /* reported and released */
} seq_state;

typedef struct eng_req eng_req;

/* One choice of a request: its tokens, KV blocks, sampler and text. */
typedef struct eng_seq {
  eng_req *req;
  int index;
  seq_state state;
  int32_t *tokens; /* prompt, then generated ids; cap = prompt + budget */
  int n_tokens;
  int n_gen;
  int budget; /* most tokens it may generate */
  r1d_kv_seq kv;
  r1d_sampler *sampler;
  r1d_detok detok;
  int cached_tokens;           /* prefix-cache hit at its first admission */
  int admitted;                /* has been admitted at least once */
  struct eng_seq *prev, *next; /* waiting or running list */
  r1d_think_state think;       /* the thinking budget */
  /* this step: in the batch, and its logits row (-1: none) */
  int scheduled, logit_row;
  /* this step's prompt logprob rows: plp_n rows from logits row plp_row0,
   * for the tokens at positions plp_pos0 + 1 .. plp_pos0 + plp_n */
  int plp_row0, plp_n, plp_pos0;
} eng_seq;

struct eng_req {
  uint64_t id;
  r1d_priority priority;
  uint64_t arrival;
  int n;
  eng_seq *seqs; /* [n] */
  int n_finished;
  int forked;       /* choices 1..n-1 started (n > 1) */
  int cancel;       /* asked by r1d_engine_cancel (under the mutex) */
  int cancel_local; /* asked by the callback (engine thread) */
  int n_prompt;
  int32_t *prompt;
  r1d_gen_params params; /* points into the copies below */
  char **stop;
  int32_t *stop_ids;
  r1d_logit_bias *bias;
  /* prompt logprobs: [n_prompt] filled chunk by chunk by choice 0's
   * prefill, sent in one event before its first token (NULL when off) */
  r1d_prompt_logprob *plp;
  int plp_pending; /* wanted and not sent yet */
  r1d_engine_callback cb;
  void *user;
  eng_req *active_prev, *active_next; /* all unfinished requests (mutex) */
  eng_req *inbox_next;                /* submitted, not yet seen (mutex) */
};

/* A doubly linked list kept in urgency order (priority, arrival, index). */
typedef struct seq_list {
  eng_seq *head, *tail;
  int n;
} seq_list;

struct r1d_engine {
  r1d_engine_config cfg;
  const r1d_model *model;
  const r1d_tokenizer *tok;
  r1d_backend be;
  uint64_t weight_version;
  int max_blocks_per_seq;

  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t work_cv; /* submissions, cancels, stop */
  pthread_cond_t idle_cv; /* a request finished */
  /* ---- under mu ---- */
  int stop;
  int failed;
  char fail_msg[512];
  uint64_t next_id, next_arrival;
  eng_req *active; /* every unfinished request */
  eng_req *inbox_head, *inbox_tail;
  int n_cancel_pending;
  int n_requests;
  int n_inbox;       /* submitted, not yet taken by the engine thread */
  int n_waiting_new; /* taken, never admitted (for max_waiting) */
  r1d_engine_stats stats;

  /* ---- engine thread only ---- */
  r1d_runner *runner;
  r1d_kv_pool *pool;
  seq_list waiting, running;
  uint64_t preemptions, steps, prompt_tokens, generated_tokens;
  double host_seconds, runner_seconds;
  /* step arrays, sized by the limits */
  int32_t *b_ids, *b_pos, *b_q_seq, *b_tables, *b_logit_rows, *b_copies;
  int32_t *b_rows2; /* logits rows reordered: host-sampled, then device */
  int64_t *b_slots;
  eng_seq **b_seqs; /* scheduled sequences of the step */
  int n_b_seqs;
  float *logits; /* [max_num_seqs, vocab] */
  float *row;    /* [vocab] a sampler's private copy of a logits row */
  int device_sampling;
  /* device sampling, [max_num_seqs] per logits row */
  float *sp_temp, *sp_top_p, *sp_min_p, *sp_u, *sp_logprobs;
  int32_t *sp_top_k, *sp_tokens;
};

/* 1 while s still has to compute its prompt logprobs: it then takes a
 * logits row per prompt position and attaches no prefix-cache blocks. */
static inline int seq_wants_plp(const eng_seq *s) {
  return s->req->plp_pending;
}

/* urgency order: lower is served first */
int seq_before(const eng_seq *a, const eng_seq *b);
void seq_list_insert(seq_list *l, eng_seq *s);
void seq_list_remove(seq_list *l, eng_seq *s);

/* scheduler.c: chooses this step's work and fills the batch arrays and
 * b_seqs. Returns 0 with *batch filled (n_tokens 0 when idle) or a negative
 * code. May preempt running sequences. */
int scheduler_plan(r1d_engine *e, r1d_batch *batch);
/* Puts a running sequence back in the waiting queue, freeing its blocks. */
void scheduler_preempt(r1d_engine *e, eng_seq *s);

#endif
