/* runner.c - the batched, paged forward pass (see runner.h):
 *
 *   x = embed[ids]                                   [T, hidden]
 *   per layer:
 *     h = rmsnorm(x);  q, k, v = h Wq^T, h Wk^T, h Wv^T (+ biases)
 *     rope(q, k) at each token's own position
 *     K/V caches[slots] = k, v                       (kv_write)
 *     x += paged_attention(q, caches, block tables) Wo^T
 *     h = rmsnorm(x);  x += (silu(h Wg^T) * h Wu^T) Wd^T
 *   logits = rmsnorm(x[logit_rows]) Wlm^T            [n_logits, vocab]
 *
 * Every op is row-wise or row-invariant (linear) or computes each query on
 * its own (paged_attention), so a token's numbers do not depend on what else
 * shares its step: a request gives the same tokens alone or in any batch, and
 * a sequence recomputed after preemption gets back exactly its old K/V.
 *
 * On a host-memory backend the step's metadata is used in place; otherwise
 * it is uploaded into buffers sized for the limits, once per step. */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

typedef struct dev_layer {
  const void *q_w, *k_w, *v_w, *o_w, *gate_w, *up_w, *down_w;
  const float *q_b, *k_b, *v_b, *attn_norm, *ffn_norm;
} dev_layer;

struct r1d_runner {
  const r1d_model *m;
  r1d_backend be;
  r1d_runner_limits lim;
  int owns_weights; /* 1 when the weights below were uploaded (not aliased) */
  const void *embed, *lm_head;
  const float *final_norm, *inv_freq;
  dev_layer *layers;
  /* every buffer allocated on the backend, freed in destroy */
  void **allocs;
  int n_allocs, cap_allocs;
  /* KV pool: per layer [n_slots, kv_dim] for K and for V */
  float **k_cache, **v_cache;
  /* activations [max_tokens, ...] */
  float *x, *h, *q, *k, *v, *att, *gate, *up;
  float *sel, *sel_norm, *logits; /* [max_seqs, hidden | vocab] */
  /* device copies of the metadata (unused on host-memory backends) */
  /* A step's metadata (and sampling parameters) is packed into one host
   * staging buffer and sent with one upload; tokens and logprobs come back
   * with one download. Each transfer waits on the device, so on a GPU their
   * count is host overhead per step. */
  unsigned char *h_meta, *d_meta;
  size_t meta_cap;
  unsigned char *h_out, *d_out; /* [max_seqs] tokens then logprobs */
};

size_t r1d_runner_block_bytes(const r1d_config *cfg, int block_size) {
  return 2 * (size_t)cfg->num_layers * (size_t)block_size *
         (size_t)cfg->num_kv_heads * (size_t)cfg->head_dim * sizeof(float);
}

/* Remembers a backend buffer for destroy; frees it when the list cannot
 * grow. Returns p, or NULL on failure. */
static void *track(r1d_runner *r, void *p) {
  if (!p) return NULL;
  if (r->n_allocs == r->cap_allocs) {
    int cap = r->cap_allocs ? 2 * r->cap_allocs : 64;
    void **a = realloc(r->allocs, (size_t)cap * sizeof *a);
    if (!a) {
      r->be.ops->free(r->be.ctx, p);
      return NULL;
    }
    r->allocs = a;
    r->cap_allocs = cap;
  }
  r->allocs[r->n_allocs++] = p;
  return p;
}

static void *dev_alloc(r1d_runner *r, size_t bytes) {
  return track(r, r->be.ops->alloc(r->be.ctx, bytes));
}

/* A weight matrix in the backend's format; aliased when it already is. */
static const void *place_matrix(r1d_runner *r, const float *w, size_t n) {
  if (!r->owns_weights) return w;
  return track(r, r->be.ops->weight_upload(r->be.ctx, w, n));
}

/* A small fp32 vector (norm weight, bias); NULL in, NULL out. */
static const float *place_vector(r1d_runner *r, const float *v, size_t n,
                                 int *failed) {
  if (!v) return NULL;
  if (!r->owns_weights && r->be.ops->host_memory) return v;
  float *p = dev_alloc(r, n * sizeof(float));
  if (!p || r->be.ops->upload(r->be.ctx, p, v, n * sizeof(float))) {
    *failed = 1;
    return NULL;
  }
  return p;
}

static int place_weights(r1d_runner *r, r1d_error *err) {
  const r1d_config *c = &r->m->cfg;
  const r1d_weights *w = &r->m->w;
  size_t hid = (size_t)c->hidden_size, inter = (size_t)c->intermediate_size;
  size_t qd = (size_t)c->num_heads * c->head_dim;
  size_t kvd = (size_t)c->num_kv_heads * c->head_dim;
  int failed = 0;
  r->owns_weights =
      !(r->be.ops->host_memory && r->be.ops->weight_format == R1D_WEIGHT_F32);
  r->layers = calloc((size_t)c->num_layers, sizeof *r->layers);
  if (!r->layers) failed = 1;
  r->embed = place_matrix(r, w->embed, (size_t)c->vocab_size * hid);
  r->lm_head = w->lm_head == w->embed
                   ? r->embed
                   : place_matrix(r, w->lm_head, (size_t)c->vocab_size * hid);
  r->final_norm = place_vector(r, w->final_norm, hid, &failed);
  r->inv_freq =
      place_vector(r, r->m->inv_freq, (size_t)c->head_dim / 2, &failed);
  if (!r->embed || !r->lm_head) failed = 1;
  for (int l = 0; !failed && l < c->num_layers; l++) {
    const r1d_layer_weights *s = &w->layers[l];
    dev_layer *d = &r->layers[l];
    d->q_w = place_matrix(r, s->q_w, qd * hid);
    d->k_w = place_matrix(r, s->k_w, kvd * hid);
    d->v_w = place_matrix(r, s->v_w, kvd * hid);
    d->o_w = place_matrix(r, s->o_w, hid * qd);
    d->gate_w = place_matrix(r, s->gate_w, inter * hid);
    d->up_w = place_matrix(r, s->up_w, inter * hid);
    d->down_w = place_matrix(r, s->down_w, hid * inter);
    d->q_b = place_vector(r, s->q_b, qd, &failed);
    d->k_b = place_vector(r, s->k_b, kvd, &failed);
    d->v_b = place_vector(r, s->v_b, kvd, &failed);
    d->attn_norm = place_vector(r, s->attn_norm, hid, &failed);
    d->ffn_norm = place_vector(r, s->ffn_norm, hid, &failed);
    if (!d->q_w || !d->k_w || !d->v_w || !d->o_w || !d->gate_w || !d->up_w ||
        !d->down_w)
      failed = 1;
  }
  if (failed)
    return r1d_fail(err, R1D_ENOMEM,
                    "runner: the weights do not fit in %s memory",
                    r->be.ops->name);
  return 0;
}

static int alloc_buffers(r1d_runner *r, r1d_error *err) {
  const r1d_config *c = &r->m->cfg;
  const r1d_runner_limits *L = &r->lim;
  size_t T = (size_t)L->max_tokens, S = (size_t)L->max_seqs;
  size_t hid = (size_t)c->hidden_size, inter = (size_t)c->intermediate_size;
  size_t qd = (size_t)c->num_heads * c->head_dim;
  size_t kvd = (size_t)c->num_kv_heads * c->head_dim;
  size_t slots = (size_t)L->n_blocks * (size_t)L->block_size;

  r->k_cache = calloc((size_t)c->num_layers, sizeof(float *));
  r->v_cache = calloc((size_t)c->num_layers, sizeof(float *));
  if (!r->k_cache || !r->v_cache)
    return r1d_fail(err, R1D_ENOMEM, "runner: out of memory");
  for (int l = 0; l < c->num_layers; l++) {
    r->k_cache[l] = dev_alloc(r, slots * kvd * sizeof(float));
    r->v_cache[l] = dev_alloc(r, slots * kvd * sizeof(float));
    if (!r->k_cache[l] || !r->v_cache[l])
      return r1d_fail(
          err, R1D_ENOMEM,
          "runner: the KV pool (%d blocks of %d tokens, %zu MiB) "
          "does not fit in %s memory",
          L->n_blocks, L->block_size,
          (size_t)L->n_blocks * r1d_runner_block_bytes(c, L->block_size) >> 20,
          r->be.ops->name);
  }
  r->x = dev_alloc(r, T * hid * sizeof(float));
  r->h = dev_alloc(r, T * hid * sizeof(float));
  r->q = dev_alloc(r, T * qd * sizeof(float));
  r->k = dev_alloc(r, T * kvd * sizeof(float));
  r->v = dev_alloc(r, T * kvd * sizeof(float));
  r->att = dev_alloc(r, T * qd * sizeof(float));
  r->gate = dev_alloc(r, T * inter * sizeof(float));
  r->up = dev_alloc(r, T * inter * sizeof(float));
  r->sel = dev_alloc(r, S * hid * sizeof(float));
  r->sel_norm = dev_alloc(r, S * hid * sizeof(float));
  r->logits = dev_alloc(r, S * (size_t)c->vocab_size * sizeof(float));
  int ok = r->x && r->h && r->q && r->k && r->v && r->att && r->gate && r->up &&
           r->sel && r->sel_norm && r->logits;
  if (ok && !r->be.ops->host_memory) {
    /* slots, 4 int32 arrays of tokens, tables, 4 floats + 1 int per row */
    r->meta_cap = T * (sizeof(int64_t) + 3 * sizeof(int32_t)) +
                  S * (size_t)L->max_blocks_per_seq * sizeof(int32_t) +
                  S * 6 * sizeof(int32_t);
    r->d_meta = dev_alloc(r, r->meta_cap);
    r->d_out = dev_alloc(r, S * 2 * sizeof(int32_t));
    r->h_meta = malloc(r->meta_cap);
    r->h_out = malloc(S * 2 * sizeof(int32_t));
    ok = r->d_meta && r->d_out && r->h_meta && r->h_out;
  }
  if (!ok)
    return r1d_fail(err, R1D_ENOMEM,
                    "runner: step buffers for %d tokens do not fit in %s "
                    "memory",
                    L->max_tokens, r->be.ops->name);
  return 0;
}

int r1d_runner_create(const r1d_model *m, const r1d_backend *be,
                      const r1d_runner_limits *lim, r1d_runner **out,
                      r1d_error *err) {
  *out = NULL;
  if (!be || !be->ops || !m || !lim)
    return r1d_fail(err, R1D_EINVAL, "runner: missing model or backend");
  if (lim->n_blocks < 1 || lim->block_size < 1 || lim->max_tokens < 1 ||
      lim->max_seqs < 1 || lim->max_blocks_per_seq < 1)
    return r1d_fail(err, R1D_EINVAL,
                    "runner: limits must be positive (blocks %d, block size "
                    "%d, tokens %d, seqs %d, blocks per seq %d)",
                    lim->n_blocks, lim->block_size, lim->max_tokens,
                    lim->max_seqs, lim->max_blocks_per_seq);
  r1d_runner *r = calloc(1, sizeof *r);
  if (!r) return r1d_fail(err, R1D_ENOMEM, "runner: out of memory");
  r->m = m;
  r->be = *be;
  r->lim = *lim;
  int rc = place_weights(r, err);
  if (!rc) rc = alloc_buffers(r, err);
  if (rc) {
    r1d_runner_destroy(r);
    return rc;
  }
  *out = r;
  return 0;
}

void r1d_runner_destroy(r1d_runner *r) {
  if (!r) return;
  for (int i = 0; i < r->n_allocs; i++)
    r->be.ops->free(r->be.ctx, r->allocs[i]);
  free(r->allocs);
  free(r->h_meta);
  free(r->h_out);
  free(r->layers);
  free(r->k_cache);
  free(r->v_cache);
  free(r);
}

static int check_batch(const r1d_runner *r, const r1d_batch *b,
                       r1d_error *err) {
  const r1d_runner_limits *L = &r->lim;
  int vocab = r->m->cfg.vocab_size;
  if (b->n_tokens < 1 || b->n_tokens > L->max_tokens || b->n_seqs < 1 ||
      b->n_seqs > L->max_seqs || b->n_logits < 0 || b->n_logits > L->max_seqs)
    return r1d_fail(err, R1D_EINVAL,
                    "runner: step of %d tokens, %d sequences, %d logits rows "
                    "exceeds the limits (%d, %d, %d)",
                    b->n_tokens, b->n_seqs, b->n_logits, L->max_tokens,
                    L->max_seqs, L->max_seqs);
  int64_t n_slots = (int64_t)L->n_blocks * L->block_size;
  for (int i = 0; i < b->n_tokens; i++) {
    if (b->ids[i] < 0 || b->ids[i] >= vocab)
      return r1d_fail(err, R1D_EINVAL,
                      "runner: token id %d is outside the vocabulary [0, %d)",
                      (int)b->ids[i], vocab);
    if (b->q_seq[i] < 0 || b->q_seq[i] >= b->n_seqs || b->pos[i] < 0 ||
        b->pos[i] > b->max_pos || b->slots[i] >= n_slots ||
        b->pos[i] / L->block_size >= L->max_blocks_per_seq)
      return r1d_fail(err, R1D_EINVAL, "runner: token row %d is malformed", i);
  }
  for (int i = 0; i < b->n_logits; i++)
    if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n_tokens)
      return r1d_fail(err, R1D_EINVAL, "runner: logits row %d out of range",
                      (int)b->logit_rows[i]);
  for (int i = 0; i < 2 * b->n_copies; i++)
    if (b->copies[i] < 0 || b->copies[i] >= L->n_blocks)
      return r1d_fail(err, R1D_EINVAL, "runner: block copy out of range");
  return 0;
}

/* The step's metadata (and sampling parameters) where the kernels can read
 * it. */
typedef struct step_meta {
  const int32_t *ids, *pos, *q_seq, *tables, *logit_rows;
  const int64_t *slots;
  const float *temperature, *top_p, *min_p, *u;
  const int32_t *top_k;
} step_meta;

/* Appends n bytes of src to the staging buffer at *off and returns where
 * they will be on the device. */
static const void *stage(r1d_runner *r, size_t *off, const void *src,
                         size_t n) {
  memcpy(r->h_meta + *off, src, n);
  const void *dev = r->d_meta + *off;
  *off += n;
  return dev;
}

static int upload_meta(r1d_runner *r, const r1d_batch *b,
                       const r1d_step_sampling *sp, int n_sp, step_meta *s) {
  const r1d_backend_ops *ops = r->be.ops;
  if (ops->host_memory) {
    *s = (step_meta){.ids = b->ids,
                     .pos = b->pos,
                     .q_seq = b->q_seq,
                     .tables = b->block_tables,
                     .logit_rows = b->logit_rows,
                     .slots = b->slots};
    if (sp) {
      s->temperature = sp->temperature;
      s->top_p = sp->top_p;
      s->min_p = sp->min_p;
      s->u = sp->u;
      s->top_k = sp->top_k;
    }
    return 0;
  }
  size_t t = (size_t)b->n_tokens, l = (size_t)b->n_logits, off = 0;
  size_t tables = (size_t)b->n_seqs * (size_t)r->lim.max_blocks_per_seq;
  s->slots = stage(r, &off, b->slots, t * sizeof(int64_t)); /* 8-aligned */
  s->ids = stage(r, &off, b->ids, t * sizeof(int32_t));
  s->pos = stage(r, &off, b->pos, t * sizeof(int32_t));
  s->q_seq = stage(r, &off, b->q_seq, t * sizeof(int32_t));
  s->tables = stage(r, &off, b->block_tables, tables * sizeof(int32_t));
  s->logit_rows = stage(r, &off, b->logit_rows, l * sizeof(int32_t));
  if (sp) {
    size_t ns = (size_t)n_sp;
    s->temperature = stage(r, &off, sp->temperature, ns * sizeof(float));
    s->top_p = stage(r, &off, sp->top_p, ns * sizeof(float));
    s->min_p = stage(r, &off, sp->min_p, ns * sizeof(float));
    s->u = stage(r, &off, sp->u, ns * sizeof(float));
    s->top_k = stage(r, &off, sp->top_k, ns * sizeof(int32_t));
  }
  return ops->upload(r->be.ctx, r->d_meta, r->h_meta, off);
}

static void copy_blocks(r1d_runner *r, const r1d_batch *b) {
  const r1d_config *c = &r->m->cfg;
  size_t kvd = (size_t)c->num_kv_heads * c->head_dim;
  size_t block = (size_t)r->lim.block_size * kvd;
  for (int i = 0; i < b->n_copies; i++) {
    size_t src = (size_t)b->copies[2 * i] * block;
    size_t dst = (size_t)b->copies[2 * i + 1] * block;
    for (int l = 0; l < c->num_layers; l++) {
      r->be.ops->copy(r->be.ctx, r->k_cache[l] + dst, r->k_cache[l] + src,
                      block * sizeof(float));
      r->be.ops->copy(r->be.ctx, r->v_cache[l] + dst, r->v_cache[l] + src,
                      block * sizeof(float));
    }
  }
}

static void layer_step(r1d_runner *r, int l, const r1d_batch *b,
                       const step_meta *s) {
  const r1d_config *c = &r->m->cfg;
  const r1d_backend_ops *ops = r->be.ops;
  void *ctx = r->be.ctx;
  const dev_layer *w = &r->layers[l];
  int T = b->n_tokens, hid = c->hidden_size, hd = c->head_dim;
  int inter = c->intermediate_size;
  int qd = c->num_heads * hd, kvd = c->num_kv_heads * hd;

  ops->rmsnorm(ctx, T, hid, r->x, w->attn_norm, c->rms_norm_eps, r->h);
  ops->linear(ctx, T, qd, hid, r->h, w->q_w, 0.0f, r->q);
  ops->linear(ctx, T, kvd, hid, r->h, w->k_w, 0.0f, r->k);
  ops->linear(ctx, T, kvd, hid, r->h, w->v_w, 0.0f, r->v);
  if (c->qkv_bias) {
    ops->add_bias(ctx, T, qd, w->q_b, r->q);
    ops->add_bias(ctx, T, kvd, w->k_b, r->k);
    ops->add_bias(ctx, T, kvd, w->v_b, r->v);
  }
  ops->rope(ctx, T, c->num_heads, hd, s->pos, r->inv_freq, r->q);
  ops->rope(ctx, T, c->num_kv_heads, hd, s->pos, r->inv_freq, r->k);
  ops->kv_write(ctx, T, kvd, r->k, r->v, s->slots, r->k_cache[l],
                r->v_cache[l]);
  ops->paged_attention(ctx, T, s->q_seq, s->pos, b->max_pos, s->tables,
                       r->lim.max_blocks_per_seq, r->lim.block_size,
                       c->num_heads, c->num_kv_heads, hd, r->q, r->k_cache[l],
                       r->v_cache[l], r->att);
  ops->linear(ctx, T, hid, qd, r->att, w->o_w, 1.0f, r->x); /* x += */

  ops->rmsnorm(ctx, T, hid, r->x, w->ffn_norm, c->rms_norm_eps, r->h);
  ops->linear(ctx, T, inter, hid, r->h, w->gate_w, 0.0f, r->gate);
  ops->linear(ctx, T, inter, hid, r->h, w->up_w, 0.0f, r->up);
  ops->swiglu(ctx, (size_t)T * inter, r->gate, r->up, r->gate);
  ops->linear(ctx, T, hid, inter, r->gate, w->down_w, 1.0f, r->x);
}

/* Everything up to the logits, left in r->logits [n_logits, vocab]. */
static int forward(r1d_runner *r, const r1d_batch *b,
                   const r1d_step_sampling *sp, int n_sp, step_meta *s,
                   r1d_error *err) {
  const r1d_config *c = &r->m->cfg;
  const r1d_backend_ops *ops = r->be.ops;
  void *ctx = r->be.ctx;
  int rc = check_batch(r, b, err);
  if (rc) return rc;
  if (upload_meta(r, b, sp, n_sp, s))
    return r1d_fail(err, R1D_EBACKEND, "runner: %s failed uploading a step",
                    ops->name);
  copy_blocks(r, b);
  ops->embedding(ctx, b->n_tokens, s->ids, r->embed, c->hidden_size, r->x);
  for (int l = 0; l < c->num_layers; l++)
    layer_step(r, l, b, s);
  if (b->n_logits > 0) {
    int n = b->n_logits, hid = c->hidden_size;
    ops->gather_rows(ctx, n, hid, s->logit_rows, r->x, r->sel);
    ops->rmsnorm(ctx, n, hid, r->sel, r->final_norm, c->rms_norm_eps,
                 r->sel_norm);
    ops->linear(ctx, n, c->vocab_size, hid, r->sel_norm, r->lm_head, 0.0f,
                r->logits);
  }
  return 0;
}

int r1d_runner_step(r1d_runner *r, const r1d_batch *b, float *logits,
                    r1d_error *err) {
  return r1d_runner_step_sample(r, b, b->n_logits, logits, NULL, NULL, NULL,
                                err);
}

int r1d_runner_step_sample(r1d_runner *r, const r1d_batch *b, int n_host,
                           float *logits, const r1d_step_sampling *sp,
                           int32_t *tokens, float *logprobs, r1d_error *err) {
  const r1d_backend_ops *ops = r->be.ops;
  void *ctx = r->be.ctx;
  int vocab = r->m->cfg.vocab_size;
  if (n_host < 0 || n_host > b->n_logits || (n_host < b->n_logits && !sp))
    return r1d_fail(err, R1D_EINVAL, "runner: %d host rows of %d logits rows",
                    n_host, b->n_logits);
  int n = b->n_logits - n_host; /* rows sampled on the backend */
  step_meta s = {0};
  int rc = forward(r, b, n ? sp : NULL, n, &s, err);
  if (rc) return rc;
  size_t bytes = (size_t)n_host * (size_t)vocab * sizeof(float);
  if (bytes && ops->download(ctx, logits, r->logits, bytes))
    return r1d_fail(err, R1D_EBACKEND, "runner: %s failed during a step",
                    ops->name);
  const float *rows = r->logits + (size_t)n_host * vocab;
  if (n > 0 && ops->host_memory) {
    ops->sample(ctx, n, vocab, rows, s.temperature, s.top_k, s.top_p, s.min_p,
                s.u, tokens, logprobs);
  } else if (n > 0) {
    int32_t *d_tokens = (int32_t *)r->d_out;
    float *d_logprobs = (float *)(r->d_out + (size_t)n * sizeof(int32_t));
    ops->sample(ctx, n, vocab, rows, s.temperature, s.top_k, s.top_p, s.min_p,
                s.u, d_tokens, d_logprobs);
    if (ops->download(ctx, r->h_out, r->d_out, (size_t)n * 8))
      return r1d_fail(err, R1D_EBACKEND, "runner: %s failed during a step",
                      ops->name);
    memcpy(tokens, r->h_out, (size_t)n * sizeof(int32_t));
    memcpy(logprobs, r->h_out + (size_t)n * sizeof(int32_t),
           (size_t)n * sizeof(float));
  }
  if (ops->sync(ctx))
    return r1d_fail(err, R1D_EBACKEND, "runner: %s failed during a step",
                    ops->name);
  return 0;
}
