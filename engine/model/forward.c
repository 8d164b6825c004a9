/* forward.c - loading a model and running its forward pass over one
 * sequence's contiguous KV cache (Llama / Qwen2 decoder, as transformers
 * computes it):
 *
 *   x = embed[ids]
 *   per layer:
 *     h = rmsnorm(x)
 *     q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)
 *     rope(q, k) at positions len .. len+n-1; append k, v to the cache
 *     x += attention(q, cache) Wo^T
 *     h = rmsnorm(x)
 *     x += (silu(h Wg^T) * h Wu^T) Wd^T
 *   logits = rmsnorm(x) Wlm^T      (last row only unless all_logits)
 *
 * Every number goes through the backend's ops table, so the same code serves
 * any backend whose buffers the host can address (today: the CPU one).
 * Scratch memory is allocated per call and freed before returning, so a
 * model holds only read-only state (threads that each own a KV cache could
 * share it; nothing does yet, and OpenBLAS's own thread safety would then
 * need a test). Keys and values are projected straight into the cache rows,
 * and the residual adds ride on the GEMM's beta = 1, so the only copies are
 * the embedding lookup and the logits. */
#include <stdint.h>
#include <stdlib.h>

#include "model.h"

int r1d_model_load(const char *dir, const r1d_backend *be, r1d_model **out,
                   r1d_error *err) {
  int rc;
  *out = NULL;
  if (!be || !be->ops)
    return r1d_fail(err, R1D_EINVAL, "%s: no backend to load the model onto",
                    dir);
  r1d_model *m = calloc(1, sizeof *m);
  if (!m) return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  rc = r1d_config_load(dir, &m->cfg, err);
  if (rc) goto fail;
  if (m->cfg.head_dim % 2) {
    rc = r1d_fail(err, R1D_EUNSUPPORTED,
                  "%s/config.json: head_dim %d is odd; rotary embedding needs "
                  "an even head_dim",
                  dir, m->cfg.head_dim);
    goto fail;
  }
  rc = r1d_weights_load(dir, &m->cfg, &m->w, err);
  if (rc) goto fail;
  m->inv_freq = malloc((size_t)(m->cfg.head_dim / 2) * sizeof(float));
  if (!m->inv_freq) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
    goto fail;
  }
  r1d_config_rope_inv_freq(&m->cfg, m->inv_freq);
  m->be = *be;
  *out = m;
  return 0;
fail:
  r1d_model_free(m);
  return rc;
}

void r1d_model_free(r1d_model *m) {
  if (!m) return;
  /* weights are only owned once r1d_weights_load succeeded; a zeroed struct
   * (calloc) is safe to free too */
  r1d_weights_free(&m->w);
  free(m->inv_freq);
  free(m);
}

int r1d_kv_cache_create(const r1d_model *m, int max_len, r1d_kv_cache **out) {
  *out = NULL;
  if (max_len <= 0) return R1D_EINVAL;
  size_t n = (size_t)m->cfg.num_layers * (size_t)max_len *
             (size_t)m->cfg.num_kv_heads * (size_t)m->cfg.head_dim;
  r1d_kv_cache *kv = calloc(1, sizeof *kv);
  if (!kv) return R1D_ENOMEM;
  kv->k = malloc(n * sizeof(float));
  kv->v = malloc(n * sizeof(float));
  if (!kv->k || !kv->v) {
    r1d_kv_cache_free(kv);
    return R1D_ENOMEM;
  }
  kv->max_len = max_len;
  kv->len = 0;
  *out = kv;
  return 0;
}

void r1d_kv_cache_free(r1d_kv_cache *kv) {
  if (!kv) return;
  free(kv->k);
  free(kv->v);
  free(kv);
}

/* Per-call activations for n tokens, carved from one allocation. */
typedef struct scratch {
  float *x;     /* [n, hidden] residual stream */
  float *h;     /* [n, hidden] normed input of a block */
  float *q;     /* [n, heads*hd] */
  float *att;   /* [n, heads*hd] attention output */
  float *gate;  /* [n, inter] gate, then silu(gate) * up */
  float *up;    /* [n, inter] */
  int32_t *pos; /* [n] absolute positions */
  float *block;
} scratch;

static int scratch_alloc(const r1d_config *c, int n, scratch *s) {
  size_t hid = (size_t)n * c->hidden_size;
  size_t qd = (size_t)n * c->num_heads * c->head_dim;
  size_t in = (size_t)n * c->intermediate_size;
  s->block = malloc((2 * hid + 2 * qd + 2 * in) * sizeof(float));
  s->pos = malloc((size_t)n * sizeof(int32_t));
  if (!s->block || !s->pos) {
    free(s->block);
    free(s->pos);
    return R1D_ENOMEM;
  }
  s->x = s->block;
  s->h = s->x + hid;
  s->q = s->h + hid;
  s->att = s->q + qd;
  s->gate = s->att + qd;
  s->up = s->gate + in;
  return 0;
}

static void scratch_free(scratch *s) {
  free(s->block);
  free(s->pos);
}

/* One decoder layer on n tokens at positions kv->len.., in place on s->x. */
static void layer_forward(r1d_model *m, r1d_kv_cache *kv, int l, int n,
                          scratch *s) {
  const r1d_config *c = &m->cfg;
  const r1d_backend_ops *ops = m->be.ops;
  void *ctx = m->be.ctx;
  const r1d_layer_weights *lw = &m->w.layers[l];
  int hid = c->hidden_size, hd = c->head_dim, inter = c->intermediate_size;
  int qdim = c->num_heads * hd, kvdim = c->num_kv_heads * hd;
  size_t layer_off = (size_t)l * kv->max_len * kvdim;
  float *kc = kv->k + layer_off, *vc = kv->v + layer_off;
  float *knew = kc + (size_t)kv->len * kvdim; /* [n, kvdim] */
  float *vnew = vc + (size_t)kv->len * kvdim;

  /* attention block */
  ops->rmsnorm(ctx, n, hid, s->x, lw->attn_norm, c->rms_norm_eps, s->h);
  ops->matmul_nt(ctx, n, qdim, hid, s->h, lw->q_w, 0.0f, s->q);
  ops->matmul_nt(ctx, n, kvdim, hid, s->h, lw->k_w, 0.0f, knew);
  ops->matmul_nt(ctx, n, kvdim, hid, s->h, lw->v_w, 0.0f, vnew);
  if (c->qkv_bias) {
    ops->add_bias(ctx, n, qdim, lw->q_b, s->q);
    ops->add_bias(ctx, n, kvdim, lw->k_b, knew);
    ops->add_bias(ctx, n, kvdim, lw->v_b, vnew);
  }
  ops->rope(ctx, n, c->num_heads, hd, s->pos, m->inv_freq, s->q);
  ops->rope(ctx, n, c->num_kv_heads, hd, s->pos, m->inv_freq, knew);
  ops->attention(ctx, n, kv->len, c->num_heads, c->num_kv_heads, hd, s->q, kc,
                 vc, s->att);
  ops->matmul_nt(ctx, n, hid, qdim, s->att, lw->o_w, 1.0f, s->x); /* x += */

  /* MLP block */
  ops->rmsnorm(ctx, n, hid, s->x, lw->ffn_norm, c->rms_norm_eps, s->h);
  ops->matmul_nt(ctx, n, inter, hid, s->h, lw->gate_w, 0.0f, s->gate);
  ops->matmul_nt(ctx, n, inter, hid, s->h, lw->up_w, 0.0f, s->up);
  ops->swiglu(ctx, (size_t)n * inter, s->gate, s->up, s->gate);
  ops->matmul_nt(ctx, n, hid, inter, s->gate, lw->down_w, 1.0f, s->x);
}

int r1d_model_forward(r1d_model *m, r1d_kv_cache *kv, const int32_t *ids, int n,
                      int all_logits, float *logits, r1d_error *err) {
  const r1d_config *c = &m->cfg;
  const r1d_backend_ops *ops = m->be.ops;
  scratch s;

  if (n <= 0 || !ids || !logits)
    return r1d_fail(err, R1D_EINVAL,
                    "model forward: need n > 0 tokens, ids and logits (n=%d)",
                    n);
  if (n > kv->max_len - kv->len)
    return r1d_fail(err, R1D_ERANGE,
                    "model forward: %d tokens at position %d overflow the KV "
                    "cache of %d positions",
                    n, kv->len, kv->max_len);
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab_size)
      return r1d_fail(err, R1D_EINVAL,
                      "model forward: token id %d (input %d) is outside the "
                      "vocabulary [0, %d)",
                      (int)ids[i], i, c->vocab_size);
  if (scratch_alloc(c, n, &s))
    return r1d_fail(err, R1D_ENOMEM,
                    "model forward: out of memory for %d tokens", n);

  for (int i = 0; i < n; i++)
    s.pos[i] = kv->len + i;
  ops->embedding(m->be.ctx, n, ids, m->w.embed, c->hidden_size, s.x);
  for (int l = 0; l < c->num_layers; l++)
    layer_forward(m, kv, l, n, &s);

  /* Only the rows whose logits are wanted go through the final norm. */
  int rows = all_logits ? n : 1;
  const float *last = s.x + (size_t)(n - rows) * c->hidden_size;
  ops->rmsnorm(m->be.ctx, rows, c->hidden_size, last, m->w.final_norm,
               c->rms_norm_eps, s.h);
  ops->matmul_nt(m->be.ctx, rows, c->vocab_size, c->hidden_size, s.h,
                 m->w.lm_head, 0.0f, logits);

  kv->len += n;
  scratch_free(&s);
  return 0;
}
