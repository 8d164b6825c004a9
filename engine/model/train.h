/* train.h - the training pass of a Qwen2/Llama model on the CPU in fp32: a
 * trainable copy of the parameters with gradients of the same layout, an
 * activation plan allocated once for a maximum token count, the forward that
 * saves what the backward needs plus a mean cross-entropy loss, and the whole
 * backward (llm.c's train_gpt2.c style) accumulating into the gradients.
 *
 * Why a copy: r1d_model's weights serve inference (and may live on a device
 * in a bf16 format); the trainer needs fp32 parameters it can update in place
 * and a gradient per parameter. Both are single flat allocations carved per
 * tensor at 64-byte boundaries in r1d_weights_visit order, so the optimizer
 * (rl/optim.h), gradient-norm clipping and checkpoints see named slices of
 * one vector.
 *
 * Maths (as transformers computes it, see forward.c):
 *   x0 = embed[ids]
 *   layer l:  h = rmsnorm(x_l) ; q,k,v = h W^T (+b) ; rope(q, k)
 *             x_mid = x_l + attention(q, k, v) Wo^T
 *             u = rmsnorm(x_mid) ; x_{l+1} = x_mid + (silu(u Wg^T) * u Wu^T) Wd^T
 *   logits = rmsnorm(x_L) Wlm^T ;  loss = mean over targets >= 0 of
 *            -log_softmax(logits[i])[targets[i]]
 *
 * Padding-free packing: one call takes several documents laid end to end
 * (r1d_train_forward_docs). Positions restart at 0 in every document and a
 * token attends only to the tokens before it in its own document, so a pack
 * computes exactly what separate sequences would (what transformers does
 * with position_ids restarting per document and flash-attention varlen). */
#ifndef R1D_ENGINE_MODEL_TRAIN_H
#define R1D_ENGINE_MODEL_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"
#include "../../rl/optim.h"
#include "config.h"
#include "model.h"
#include "weights.h"

/* One trainable tensor: its Hugging Face name (exactly as in the
 * safetensors), shape, and slices of the parameter and gradient vectors. */
typedef struct r1d_train_tensor {
  char name[96];
  int ndim;
  int64_t shape[2]; /* [d0] or [d0, d1] */
  size_t n;         /* elements */
  size_t offset;    /* floats from the start of params (and of grads) */
  float *param;     /* params + offset */
  float *grad;      /* grads + offset */
} r1d_train_tensor;

typedef struct r1d_train_model {
  r1d_config cfg;
  float *inv_freq; /* [head_dim/2], rope scaling included */
  /* ALL parameters in one 64-byte-aligned allocation, ALL gradients in a
   * second one of the same layout: tensor t occupies floats
   * [offset, offset + n) of both, offsets multiples of 16 floats. */
  float *params;
  float *grads;
  size_t n_floats; /* per allocation, alignment padding included */
  size_t n_params; /* sum of the tensors' n */
  r1d_train_tensor *tensors;
  int n_tensors;
  /* The same slices by role, for the forward and backward. These are views
   * (storage NULL): never pass them to r1d_weights_free. With tied
   * embeddings lm_head == embed in both, so the head's gradient and the
   * embedding's accumulate into the one tensor. `param` can be handed to
   * r1d_weights_save to write a checkpoint. */
  r1d_weights param;
  r1d_weights grad;
} r1d_train_model;

/* Copies m's fp32 host weights (m->w) into a new trainable model with zeroed
 * gradients. m may be freed afterwards. */
int r1d_train_model_create(const r1d_model *m, r1d_train_model **out,
                           r1d_error *err);
void r1d_train_model_free(r1d_train_model *tm);

/* The tensor called `name`, or NULL. */
r1d_train_tensor *r1d_train_find(r1d_train_model *tm, const char *name);

/* Sets every gradient to 0 (the caller's job before a new step). */
void r1d_train_zero_grad(r1d_train_model *tm);

/* A malloc'ed list of tm's tensors for r1d_optim_create (names point into
 * tm, decay from r1d_optim_default_decay); free(*out) when done. */
int r1d_train_optim_tensors(const r1d_train_model *tm, r1d_optim_tensor **out,
                            size_t *n_out, r1d_error *err);

/* Rows of logits whose gradient the backward computes at a time. */
#define R1D_TRAIN_LOGIT_CHUNK 32

/* The activations of one training step, for up to max_tokens tokens,
 * allocated once (one block). H = hidden, Q = heads*head_dim,
 * K = kv_heads*head_dim, I = intermediate, V = vocab, L = layers.
 *
 * Saved by the forward, per token (floats):
 *   per layer: x_in H, h_attn H, q Q, k K, v K, att Q, x_mid H, h_ffn H,
 *              gate I, up I, act I            = 4H + 2Q + 2K + 3I
 *   final:     x_final H, h_final H, logits V, target_logprob 1
 * Backward scratch, per token (shared by all layers):
 *   dx H, dh H, dq Q, datt Q, dk K, dv K, dk_rot K, dgate I, dup I, dact I
 *                                             = 2H + 2Q + 3K + 3I
 * plus ids, targets, positions and document offsets (4 int32) per token
 * and one fixed
 * [R1D_TRAIN_LOGIT_CHUNK, V] block of logit gradients. So
 *   bytes/token = 4 * (L(4H + 2Q + 2K + 3I) + 4H + 2Q + 3K + 3I + V + 1) + 16
 * (r1d_train_plan_bytes_per_token).
 *
 * Recomputation (activation checkpointing, the plan's option): each layer
 * keeps only x_in; the other 4H - H + 2Q + 2K + 3I per token are one set for
 * all layers, and the backward re-runs each layer's forward from its x_in
 * before undoing it. The kernels are deterministic, so the re-run rebuilds
 * the same bits and the gradients equal those without recomputation
 * exactly, for one more forward of the layers (~1/3 more compute). Then
 *   bytes/token = 4 * (L H + 3H + 2Q + 2K + 3I + 4H + 2Q + 3K + 3I + V + 1)
 *                 + 16.
 * The full logits
 * [n, V] are kept because GRPO wants them (and target_logprob); for large
 * vocabularies a later version can compute them chunk by chunk. */
typedef struct r1d_train_layer_acts {
  float *x_in;   /* [n, H] residual stream entering the layer (attn norm in) */
  float *h_attn; /* [n, H] rmsnorm(x_in): input of q/k/v */
  float *q;      /* [n, Q] after bias and rope */
  float *k;      /* [n, K] after bias and rope */
  float *v;      /* [n, K] after bias */
  float *att;    /* [n, Q] attention output (input of o_proj) */
  float *x_mid;  /* [n, H] x_in + o_proj(att) (ffn norm in) */
  float *h_ffn;  /* [n, H] rmsnorm(x_mid): input of gate/up */
  float *gate;   /* [n, I] gate_proj output, before silu */
  float *up;     /* [n, I] up_proj output */
  float *act;    /* [n, I] silu(gate) * up (input of down_proj) */
} r1d_train_layer_acts;

typedef struct r1d_train_plan {
  const r1d_train_model *tm; /* the model it was sized for */
  int max_tokens;
  int recompute; /* 1: layer activations are rebuilt in the backward */
  /* 1: the forward's matrix products use the serving engine's row-invariant
   * linear kernel (a row's bits do not depend on the batch it is in), as
   * GRPO wants; 0 (the default): OpenBLAS sgemm, ~1.25x faster on an
   * AVX-512 core. Set it after r1d_train_plan_create. */
  int row_invariant;
  int n;         /* tokens of the last forward; 0 = no forward yet */
  int n_counted; /* targets >= 0 in the last forward */
  int32_t *ids, *targets, *pos; /* [max_tokens]; pos restarts per document */
  int n_docs;                   /* documents of the last forward */
  int32_t
      *doc_off; /* [max_tokens + 1]: document d is rows [off[d], off[d+1]) */
  r1d_train_layer_acts *layers; /* [L] */
  float *x_final, *h_final;     /* [n, H] */
  float *logits;                /* [n, V] */
  float *target_logprob;        /* [n] log_softmax(logits)[target], 0 ignored */
  /* backward scratch */
  float *dx, *dh, *dq, *datt, *dk, *dv, *dk_rot, *dgate, *dup, *dact;
  float *dlogits; /* [R1D_TRAIN_LOGIT_CHUNK, V] */
  void *block;    /* the one allocation of all float buffers */
  size_t bytes;   /* its size */
} r1d_train_plan;

size_t r1d_train_plan_bytes_per_token(const r1d_config *cfg, int recompute);

/* A plan for up to max_tokens tokens per forward; recompute: keep only each
 * layer's input and rebuild the rest in the backward (see above). */
int r1d_train_plan_create(const r1d_train_model *tm, int max_tokens,
                          int recompute, r1d_train_plan **out, r1d_error *err);
void r1d_train_plan_free(r1d_train_plan *plan);

/* Forward of ids[n] (positions 0..n-1) saving every activation in plan, and
 * *loss = mean cross-entropy over the i with targets[i] >= 0 (targets[i] is
 * the token to predict at i; -1 ignores the position). The logits stay in
 * plan->logits [n, V]. Errors (nothing else changes): n <= 0 (R1D_EINVAL), n
 * over the plan's max_tokens (R1D_ERANGE), an id or target outside the
 * vocabulary or a target below -1 (R1D_EINVAL), no target counted
 * (R1D_EINVAL), a plan made for another model (R1D_EINVAL). */
int r1d_train_forward(r1d_train_model *tm, r1d_train_plan *plan,
                      const int32_t *ids, const int32_t *targets, int n,
                      float *loss, r1d_error *err);

/* The batch checks of the training forwards (this one's and
 * train_device.h's): 1..max_tokens tokens (R1D_ERANGE over), ids and
 * targets in the vocabulary (target -1: ignored), at least one counted
 * target, 1..n documents of lengths > 0 summing to n (R1D_EINVAL). Sets
 * *counted to the targets >= 0. */
int r1d_train_check_batch(const r1d_config *c, int max_tokens,
                          const int32_t *ids, const int32_t *targets, int n,
                          const int *doc_lens, int n_docs, int *counted,
                          r1d_error *err);

/* r1d_train_forward over n_docs documents packed end to end: doc_lens[d] > 0
 * tokens each, summing to n. Targets must not cross documents (the caller
 * sets the last target of each document to -1 or to a token of its own).
 * R1D_EINVAL for lengths that do not add up. r1d_train_forward is this with
 * one document of n tokens. */
int r1d_train_forward_docs(r1d_train_model *tm, r1d_train_plan *plan,
                           const int32_t *ids, const int32_t *targets, int n,
                           const int *doc_lens, int n_docs, float *loss,
                           r1d_error *err);

/* backward.c's half of recomputation: layer l's forward run again on the
 * last forward's tokens, from its saved x_in into the plan's shared layer
 * activations; the layer's output goes to x_out [n, H]. */
void r1d_train_layer_recompute(const r1d_train_model *tm, r1d_train_plan *p,
                               int l, float *x_out);

/* Backward of the last forward: ADDS grad_scale * d(loss)/d(param) to tm's
 * gradients (grad_scale = 1 for one step, 1/k when accumulating k
 * micro-batches). May be called again (adds again). R1D_ESTATE without a
 * forward, R1D_EINVAL for a foreign plan or a non-finite grad_scale. */
int r1d_train_backward(r1d_train_model *tm, r1d_train_plan *plan,
                       float grad_scale, r1d_error *err);

/* The backward of an arbitrary per-token objective of the logprobs: ADDS
 * to tm's gradients the gradient of L = sum_i f_i(target_logprob_i), given
 * dlp[i] = dL/d(target_logprob_i) for the last forward's n rows (rows whose
 * target is -1 are skipped, whatever dlp says). GRPO hands its per-token
 * weights here (rl/grpo.h); the mean cross-entropy is dlp[i] =
 * -1/n_counted. R1D_EINVAL for a non-finite dlp, else as
 * r1d_train_backward. */
int r1d_train_backward_weighted(r1d_train_model *tm, r1d_train_plan *plan,
                                const float *dlp, r1d_error *err);

#endif
