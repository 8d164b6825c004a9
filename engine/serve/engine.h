/* engine.h - the serving engine: the one API server/ and rl/ call.
 *
 * An engine owns a model placed on a backend (the runner), a paged KV pool
 * with a prefix cache, and a scheduler, all driven by its own thread. Callers
 * submit requests from any thread and receive their tokens through a
 * callback that runs on the engine thread:
 *
 *   submit -> [waiting] -> admitted (prefix cache match, KV blocks) ->
 *   [running: prefill chunks, then one token per step] -> finished
 *
 * Each step batches every running sequence's next token (decode first) and
 * chunks of prompts up to a token budget (continuous batching with chunked
 * prefill). When KV blocks run out, the least urgent sequence is preempted
 * and later recomputed, so a request that fits alone never fails. Interactive
 * requests are served before background ones (RL rollouts).
 *
 * Outputs do not depend on batching: every op is row-invariant on the CPU
 * backend, so a request gives the same tokens alone, in any batch, and after
 * preemption (greedy or seeded sampling).
 *
 * Prompt logprobs need a logits row per prompt position: such a prompt
 * attaches no prefix-cache blocks (it still publishes its own), and its
 * prefill chunks are capped by the logits rows a step has (max_num_seqs,
 * less those the step's other sequences take), so its prefill takes about
 * n_prompt / max_num_seqs steps. A thinking budget (generate.h) forces
 * </think> per choice; such requests sample on the host. */
#ifndef R1D_ENGINE_SERVE_ENGINE_H
#define R1D_ENGINE_SERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"
#include "../../kernels/backend.h"
#include "../model/model.h"
#include "../text/tokenizer.h"
#include "generate.h"
#include "sampler.h"

typedef struct r1d_engine r1d_engine;

typedef enum r1d_priority {
  R1D_PRIORITY_INTERACTIVE = 0, /* served first */
  R1D_PRIORITY_BACKGROUND = 1,  /* RL rollouts, evaluations */
} r1d_priority;

#define R1D_ENGINE_MAX_N 64 /* samples per request */

typedef struct r1d_engine_config {
  int block_size;          /* token slots per KV block (16) */
  int n_blocks;            /* KV pool size; 0: from kv_memory */
  size_t kv_memory;        /* bytes for the KV pool when n_blocks is 0; 0: room
                           for max_num_seqs sequences of min(1024,
                           max_model_len) tokens, and at least for one of
                           max_model_len (fp32 K and V: 8 * layers *
                           kv_heads * head_dim bytes per token) */
  int max_num_seqs;        /* sequences running at once (64) */
  int max_batch_tokens;    /* token budget of one step (512) */
  int max_model_len;       /* prompt + output cap; 0: the model's
                           max_position_embeddings */
  int prefix_cache;        /* 1: reuse KV blocks of equal prompt prefixes */
  int max_waiting;         /* requests queued but not running; 0: unlimited.
                           Beyond it submit fails with R1D_EBUSY */
  uint64_t weight_version; /* the version this engine's weights are
                              (rl hot swaps: engine/serve/versions.h); 0: 1 */
  int device_sampling;     /* draw tokens with the backend's sample op when the
                           request allows it (no penalties, bias, top
                           logprobs or thinking budget): -1 auto (when the
                           backend's memory is not the host's), 0 never,
                           1 always */
} r1d_engine_config;

void r1d_engine_config_default(r1d_engine_config *c);

/* One prompt token's logprob (params.prompt_logprobs = k + 1): its raw
 * log_softmax given the tokens before it, and the k most likely tokens at
 * that position (raw, sorted descending, equal scores by lower id, {-1,
 * -inf} past the vocabulary). Entry 0 (the first prompt token) has none:
 * logprob NaN, n_top 0. */
typedef struct r1d_prompt_logprob {
  int32_t id; /* the prompt token */
  float logprob;
  int n_top;
  r1d_top_logprob top[R1D_GEN_MAX_TOP];
} r1d_prompt_logprob;

/* What a request's callback sees. A request with n samples has choices
 * index 0..n-1, each ending with exactly one event whose finish is not
 * R1D_FINISH_NONE (that event may carry a token or, for a cancel or an
 * error, token -1). A request with prompt_logprobs first gets one event
 * with index 0, token -1, finish R1D_FINISH_NONE and prompt_logprobs set,
 * before any token event (none when it ends before its prompt is done).
 * Strings and arrays are valid during the callback only. */
typedef struct r1d_engine_event {
  uint64_t request_id;
  int index;     /* choice */
  int32_t token; /* -1: no token in this event */
  const char *text;
  size_t text_len;
  float logprob; /* raw logprob of token */
  const r1d_top_logprob *top;
  int n_top;
  r1d_finish_reason finish;
  /* usage, set on the finishing event of each choice */
  int prompt_tokens;
  int completion_tokens;
  int cached_tokens; /* prompt tokens served from the prefix cache */
  const char *error; /* non-NULL: the engine failed this request */
  /* the prompt logprobs event only: [n_prompt_logprobs] = one per prompt
   * token, entry 0 empty; NULL and 0 in every other event */
  const r1d_prompt_logprob *prompt_logprobs;
  int n_prompt_logprobs;
} r1d_engine_event;

/* Runs on the engine thread; keep it short. Return non-zero to cancel the
 * request (its choices then finish with R1D_FINISH_ABORT). It may call
 * r1d_engine_submit and r1d_engine_cancel. */
typedef int (*r1d_engine_callback)(void *user, const r1d_engine_event *ev);

typedef struct r1d_engine_request {
  const int32_t *prompt; /* copied at submit */
  int n_prompt;
  r1d_gen_params params; /* copied deeply at submit */
  int n;                 /* samples of this prompt (1..R1D_ENGINE_MAX_N); choice
                            i samples with seed + i */
  r1d_priority priority;
  uint64_t weight_version; /* 0: the live version */
  r1d_engine_callback cb;
  void *user;
} r1d_engine_request;

typedef struct r1d_engine_stats {
  int running;  /* sequences with KV blocks */
  int waiting;  /* sequences queued (new or preempted) */
  int requests; /* requests not yet finished */
  int kv_blocks_total, kv_blocks_used, kv_blocks_free, kv_blocks_cached;
  int block_size;
  long kv_tokens; /* tokens held by running sequences (KV actually needed) */
  uint64_t prefix_hit_tokens, prefix_queries;
  uint64_t preemptions, steps, prompt_tokens, generated_tokens;
  /* time on the engine thread: in the runner (the forward pass, up to its
   * results on the host), and around it (scheduling, host sampling, text,
   * callbacks) - the host overhead per step is host_seconds / steps */
  double runner_seconds, host_seconds;
  uint64_t cow_copies;
  uint64_t weight_version;
  int failed; /* 1 after a backend failure: every request is refused */
} r1d_engine_stats;

/* Starts the engine thread. The model and tokenizer must outlive the engine
 * (tok may be NULL: events then carry ids and no text, for benchmarks);
 * the backend is used by the engine thread only. Fails with R1D_EINVAL when
 * the limits are inconsistent (e.g. the pool cannot hold one sequence of
 * max_model_len tokens) and R1D_ENOMEM when the pool does not fit. */
int r1d_engine_create(const r1d_model *m, const r1d_backend *be,
                      const r1d_tokenizer *tok, const r1d_engine_config *cfg,
                      r1d_engine **out, r1d_error *err);

/* Cancels whatever is left (callbacks get R1D_FINISH_ABORT), joins the
 * thread, frees everything. */
void r1d_engine_destroy(r1d_engine *e);

/* Validates and queues a request; *id identifies it. Errors (R1D_EINVAL
 * naming the field, R1D_ERANGE for a prompt that does not fit the context,
 * R1D_EBUSY when the queue is full, R1D_ENOTFOUND for an unknown weight
 * version, R1D_ESTATE after a failure) leave nothing queued, and the
 * callback is never called. */
int r1d_engine_submit(r1d_engine *e, const r1d_engine_request *req,
                      uint64_t *id, r1d_error *err);

/* Cancels a request at any point; its blocks are freed on the engine thread
 * before the next step. 0, or R1D_ENOTFOUND when it already finished. */
int r1d_engine_cancel(r1d_engine *e, uint64_t id);

/* Cancels every unfinished request (abort-and-swap); returns how many. */
int r1d_engine_cancel_all(r1d_engine *e);

void r1d_engine_stats_get(r1d_engine *e, r1d_engine_stats *st);

/* Blocks until no request is left. */
void r1d_engine_wait_idle(r1d_engine *e);

/* The effective limits (after defaults and capping). */
const r1d_engine_config *r1d_engine_get_config(const r1d_engine *e);

#endif
