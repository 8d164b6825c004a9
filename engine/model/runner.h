/* runner.h - a model placed on a backend with a paged KV pool, running one
 * batch step at a time: any mix of prefill chunks and decode tokens of many
 * sequences in one pass (vLLM's "model runner").
 *
 * The runner owns everything that lives in backend memory: the weights in the
 * backend's format (on the CPU backend these are the model's own fp32 arrays,
 * not a copy), the K/V caches of every layer ([n_slots, kv_heads*head_dim]
 * each), the per-step activations sized for max_tokens and the metadata
 * buffers. The scheduler decides what runs; the runner knows no requests. */
#ifndef R1D_ENGINE_MODEL_RUNNER_H
#define R1D_ENGINE_MODEL_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"
#include "../../kernels/backend.h"
#include "model.h"

typedef struct r1d_runner_limits {
  int n_blocks;           /* KV pool size in blocks */
  int block_size;         /* token slots per block */
  int max_tokens;         /* tokens per step (the scheduler's budget) */
  int max_seqs;           /* sequences per step (also the most logits rows) */
  int max_blocks_per_seq; /* block table width */
} r1d_runner_limits;

/* One step's work, in host memory. Token rows are grouped by sequence in any
 * order; each sequence's rows are consecutive positions. */
typedef struct r1d_batch {
  int n_tokens;
  const int32_t *ids;   /* [n_tokens] */
  const int32_t *pos;   /* [n_tokens] absolute positions */
  const int32_t *q_seq; /* [n_tokens] row of block_tables */
  const int64_t *slots; /* [n_tokens] where each token's K/V go */
  int n_seqs;
  const int32_t *block_tables; /* [n_seqs, max_blocks_per_seq] */
  int max_pos;                 /* max of pos[] */
  int n_logits;
  const int32_t *logit_rows; /* [n_logits] rows whose next-token logits are
                                wanted */
  int n_copies;
  const int32_t *copies; /* [n_copies, 2] (src, dst) block copies done
                            before any KV write of this step */
} r1d_batch;

typedef struct r1d_runner r1d_runner;

/* Bytes of K and V one block takes over all layers (fp32). */
size_t r1d_runner_block_bytes(const r1d_config *cfg, int block_size);

/* Uploads the weights (or aliases them on a host-memory fp32 backend) and
 * allocates the KV pool and step buffers. R1D_ENOMEM names what did not
 * fit. The model must outlive the runner. */
int r1d_runner_create(const r1d_model *m, const r1d_backend *be,
                      const r1d_runner_limits *lim, r1d_runner **out,
                      r1d_error *err);
void r1d_runner_destroy(r1d_runner *r);

/* Runs one step. Writes logits [n_logits, vocab] to host memory `logits`.
 * Token ids are checked against the vocabulary and sizes against the limits
 * (R1D_EINVAL); a device failure returns R1D_EBACKEND. */
int r1d_runner_step(r1d_runner *r, const r1d_batch *b, float *logits,
                    r1d_error *err);

/* Per logits row parameters of the backend's `sample` op (host arrays of
 * n_logits entries). */
typedef struct r1d_step_sampling {
  const float *temperature, *top_p, *min_p, *u;
  const int32_t *top_k;
} r1d_step_sampling;

/* Runs one step; logits rows [0, n_host) go to host memory `logits`
 * ([n_host, vocab]) for the caller to sample, rows [n_host, n_logits) are
 * drawn on the backend with sp (arrays of n_logits - n_host entries), so only
 * their tokens and logprobs cross to the host (on a GPU the logits of a big
 * batch are hundreds of MB). tokens and logprobs are host arrays of
 * n_logits - n_host entries. r1d_runner_step is n_host = n_logits. */
int r1d_runner_step_sample(r1d_runner *r, const r1d_batch *b, int n_host,
                           float *logits, const r1d_step_sampling *sp,
                           int32_t *tokens, float *logprobs, r1d_error *err);

#endif
