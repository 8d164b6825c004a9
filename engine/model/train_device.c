/* train_device.c - forward, backward and AdamW of the trainable model
 * through the ops table, so the same step runs on the CPU and on CUDA. See
 * train_device.h; train.c and backward.c are the host twins it mirrors
 * (their comments carry the shapes and the reasoning of each step).
 *
 * Memory: parameters, gradients, m and v are four backend buffers in
 * train.h's flat layout, so a host slice's offset is its device offset too.
 * Matrices the forward's GEMMs and the embedding read are in the backend's
 * weight format: on a backend with fp32 host weights (the CPU) that is the
 * master itself; elsewhere a copy made by weight_upload and refreshed by
 * AdamW's low-precision output. Activations are carved from one more
 * buffer. */
#include "train_device.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DTRAIN_ALIGN 256 /* bytes: a safe alignment for every device load */

struct r1d_dtrain {
  r1d_backend be;
  const r1d_train_model *tm;
  int max_tokens;
  float *params, *grads, *m, *v; /* [tm->n_floats] each */
  void **lowp;    /* [n_tensors]: a matrix's weight-format copy, else NULL */
  int lowp_owned; /* 1: lowp entries are allocations of their own */
  /* Views by role, as train.h's param/grad: device masters, device grads,
   * and the weight-format copies (typed float * only because r1d_weights
   * is; passed on as const void *). */
  r1d_weights pw, gw, lw;
  float *inv_freq;
  int32_t *ids, *targets, *pos;
  int n_docs; /* of the last forward */
  int *
      doc_off; /* host [max_tokens + 1]: document d is rows [off[d], off[d+1]) */
  int32_t *host_pos;
  r1d_train_layer_acts *acts; /* [L], device pointers */
  float *x_final, *h_final, *logits, *dlogits, *target_logprob, *loss;
  float *dx, *dh, *dq, *datt, *dk, *dv, *dk_rot, *dgate, *dup, *dact;
  void *act_block;
  double *norm_sq; /* one double on the backend: sum_squares' output */
  size_t act_bytes, bytes;
};

static size_t round_up(size_t x, size_t a) {
  return (x + a - 1) / a * a;
}

/* ---- views ---- */

static int tensor_at(const r1d_train_model *tm, const float *host) {
  for (int i = 0; i < tm->n_tensors; i++)
    if (tm->tensors[i].param == host) return i;
  return -1;
}

/* The device twin of host slice p of tm's params (or grads: base picks). */
static float *dev_slice(const r1d_dtrain *d, float *base, const float *p) {
  return p ? base + (p - d->tm->params) : NULL;
}

static float *lowp_slice(const r1d_dtrain *d, const float *p) {
  if (!p) return NULL;
  int t = tensor_at(d->tm, p);
  return t >= 0 && d->lowp[t] ? (float *)d->lowp[t] : NULL;
}

/* One layer's view: each host slice of s mapped into base (lowp 0) or to
 * its weight-format copy (lowp 1; 1-D tensors have none: NULL). */
static float *map_ptr(const r1d_dtrain *d, float *base, int lowp,
                      const float *p) {
  return lowp ? lowp_slice(d, p) : dev_slice(d, base, p);
}

static void map_layer(const r1d_dtrain *d, float *base, int lowp,
                      const r1d_layer_weights *s, r1d_layer_weights *t) {
  t->attn_norm = map_ptr(d, base, lowp, s->attn_norm);
  t->q_w = map_ptr(d, base, lowp, s->q_w);
  t->q_b = map_ptr(d, base, lowp, s->q_b);
  t->k_w = map_ptr(d, base, lowp, s->k_w);
  t->k_b = map_ptr(d, base, lowp, s->k_b);
  t->v_w = map_ptr(d, base, lowp, s->v_w);
  t->v_b = map_ptr(d, base, lowp, s->v_b);
  t->o_w = map_ptr(d, base, lowp, s->o_w);
  t->ffn_norm = map_ptr(d, base, lowp, s->ffn_norm);
  t->gate_w = map_ptr(d, base, lowp, s->gate_w);
  t->up_w = map_ptr(d, base, lowp, s->up_w);
  t->down_w = map_ptr(d, base, lowp, s->down_w);
}

static int make_views(r1d_dtrain *d) {
  const r1d_train_model *tm = d->tm;
  int L = tm->cfg.num_layers;
  d->pw.layers = calloc((size_t)L, sizeof(r1d_layer_weights));
  d->gw.layers = calloc((size_t)L, sizeof(r1d_layer_weights));
  d->lw.layers = calloc((size_t)L, sizeof(r1d_layer_weights));
  if (!d->pw.layers || !d->gw.layers || !d->lw.layers) return R1D_ENOMEM;
  d->pw.n_layers = d->gw.n_layers = d->lw.n_layers = L;
  /* grads share params' offsets: the grad view is the param view moved */
  const r1d_weights *hp = &tm->param;
  d->pw.embed = dev_slice(d, d->params, hp->embed);
  d->pw.final_norm = dev_slice(d, d->params, hp->final_norm);
  d->pw.lm_head = dev_slice(d, d->params, hp->lm_head);
  d->gw.embed = dev_slice(d, d->grads, hp->embed);
  d->gw.final_norm = dev_slice(d, d->grads, hp->final_norm);
  d->gw.lm_head = dev_slice(d, d->grads, hp->lm_head);
  d->lw.embed = lowp_slice(d, hp->embed);
  d->lw.lm_head = lowp_slice(d, hp->lm_head);
  for (int l = 0; l < L; l++) {
    map_layer(d, d->params, 0, &hp->layers[l], &d->pw.layers[l]);
    map_layer(d, d->grads, 0, &hp->layers[l], &d->gw.layers[l]);
    map_layer(d, NULL, 1, &hp->layers[l], &d->lw.layers[l]);
  }
  return R1D_OK;
}

/* ---- creation ---- */

typedef struct carver {
  char *base;
  size_t off;
} carver;

static float *carve_f(carver *cv, size_t n) {
  float *p = cv->base ? (float *)(cv->base + cv->off) : NULL;
  cv->off += round_up(n * sizeof(float), DTRAIN_ALIGN);
  return p;
}

static void act_layout(r1d_dtrain *d, carver *cv) {
  const r1d_config *c = &d->tm->cfg;
  size_t n = (size_t)d->max_tokens;
  size_t hid = n * c->hidden_size, inter = n * c->intermediate_size;
  size_t qd = n * c->num_heads * c->head_dim;
  size_t kvd = n * c->num_kv_heads * c->head_dim;
  d->ids = (int32_t *)carve_f(cv, n);
  d->targets = (int32_t *)carve_f(cv, n);
  d->pos = (int32_t *)carve_f(cv, n);
  d->inv_freq = carve_f(cv, (size_t)c->head_dim / 2);
  for (int l = 0; l < c->num_layers; l++) {
    r1d_train_layer_acts *a = &d->acts[l];
    a->x_in = carve_f(cv, hid);
    a->h_attn = carve_f(cv, hid);
    a->q = carve_f(cv, qd);
    a->k = carve_f(cv, kvd);
    a->v = carve_f(cv, kvd);
    a->att = carve_f(cv, qd);
    a->x_mid = carve_f(cv, hid);
    a->h_ffn = carve_f(cv, hid);
    a->gate = carve_f(cv, inter);
    a->up = carve_f(cv, inter);
    a->act = carve_f(cv, inter);
  }
  d->x_final = carve_f(cv, hid);
  d->h_final = carve_f(cv, hid);
  d->logits = carve_f(cv, n * c->vocab_size);
  d->dlogits = carve_f(cv, n * c->vocab_size);
  d->target_logprob = carve_f(cv, n);
  d->loss = carve_f(cv, 1);
  d->dx = carve_f(cv, hid);
  d->dh = carve_f(cv, hid);
  d->dq = carve_f(cv, qd);
  d->datt = carve_f(cv, qd);
  d->dk = carve_f(cv, kvd);
  d->dv = carve_f(cv, kvd);
  d->dk_rot = carve_f(cv, kvd);
  d->dgate = carve_f(cv, inter);
  d->dup = carve_f(cv, inter);
  d->dact = carve_f(cv, inter);
}

static void *be_alloc(r1d_dtrain *d, size_t bytes) {
  void *p = d->be.ops->alloc(d->be.ctx, bytes);
  if (p) d->bytes += bytes;
  return p;
}

int r1d_dtrain_create(const r1d_backend *be, const r1d_train_model *tm,
                      int max_tokens, r1d_dtrain **out, r1d_error *err) {
  *out = NULL;
  if (!be || !be->ops || !tm || max_tokens <= 0)
    return r1d_fail(err, R1D_EINVAL,
                    "device trainer: need a backend, a model and max_tokens > "
                    "0 (got %d)",
                    max_tokens);
  const r1d_backend_ops *o = be->ops;
  if (!o->linear_backward || !o->cross_entropy || !o->adamw || !o->zero ||
      !o->sum_squares || !o->scale)
    return r1d_fail(err, R1D_EINVAL,
                    "device trainer: backend %s has no training ops", o->name);
  r1d_dtrain *d = calloc(1, sizeof *d);
  if (!d) return r1d_fail(err, R1D_ENOMEM, "device trainer: out of memory");
  d->be = *be;
  d->tm = tm;
  d->max_tokens = max_tokens;
  const r1d_config *c = &tm->cfg;
  size_t fbytes = tm->n_floats * sizeof(float);
  int rc = R1D_ENOMEM;
  d->lowp = calloc((size_t)tm->n_tensors, sizeof(void *));
  d->acts = calloc((size_t)c->num_layers, sizeof *d->acts);
  d->doc_off = malloc(((size_t)max_tokens + 1) * sizeof(int));
  d->host_pos = malloc((size_t)max_tokens * sizeof(int32_t));
  if (!d->lowp || !d->acts || !d->doc_off || !d->host_pos) goto fail;
  d->params = be_alloc(d, fbytes);
  d->grads = be_alloc(d, fbytes);
  d->m = be_alloc(d, fbytes);
  d->v = be_alloc(d, fbytes);
  d->norm_sq = be_alloc(d, sizeof(double));
  if (!d->params || !d->grads || !d->m || !d->v || !d->norm_sq) goto oom;
  if (o->upload(be->ctx, d->params, tm->params, fbytes)) goto backend;
  o->zero(be->ctx, d->grads, fbytes);
  o->zero(be->ctx, d->m, fbytes);
  o->zero(be->ctx, d->v, fbytes);
  /* the forward's matrices in the weight format */
  int same = o->host_memory && o->weight_format == R1D_WEIGHT_F32;
  d->lowp_owned = !same;
  for (int i = 0; i < tm->n_tensors; i++) {
    const r1d_train_tensor *t = &tm->tensors[i];
    if (t->ndim != 2) continue;
    if (same) {
      d->lowp[i] = d->params + t->offset;
      continue;
    }
    d->lowp[i] = o->weight_upload(be->ctx, t->param, t->n);
    if (!d->lowp[i]) goto oom;
    d->bytes += t->n * (o->weight_format == R1D_WEIGHT_BF16 ? 2 : 4);
  }
  carver measure = {0};
  act_layout(d, &measure);
  d->act_bytes = measure.off;
  d->act_block = be_alloc(d, d->act_bytes);
  if (!d->act_block) goto oom;
  carver cv = {.base = d->act_block};
  act_layout(d, &cv);
  if (o->upload(be->ctx, d->inv_freq, tm->inv_freq,
                (size_t)(c->head_dim / 2) * sizeof(float)))
    goto backend;
  if (make_views(d)) goto fail;
  if (o->sync(be->ctx)) goto backend;
  *out = d;
  return R1D_OK;
oom:
  rc = r1d_fail(err, R1D_ENOMEM,
                "device trainer: backend %s out of memory (%zu bytes held, "
                "%d tokens of activations)",
                o->name, d->bytes, max_tokens);
  r1d_dtrain_free(d);
  return rc;
backend:
  rc =
      r1d_fail(err, R1D_EBACKEND, "device trainer: backend %s failed", o->name);
  r1d_dtrain_free(d);
  return rc;
fail:
  rc = r1d_fail(err, R1D_ENOMEM, "device trainer: out of host memory");
  r1d_dtrain_free(d);
  return rc;
}

void r1d_dtrain_free(r1d_dtrain *d) {
  if (!d) return;
  const r1d_backend_ops *o = d->be.ops;
  void *ctx = d->be.ctx;
  if (d->lowp && d->lowp_owned)
    for (int i = 0; i < d->tm->n_tensors; i++)
      o->free(ctx, d->lowp[i]);
  o->free(ctx, d->params);
  o->free(ctx, d->grads);
  o->free(ctx, d->m);
  o->free(ctx, d->v);
  o->free(ctx, d->act_block);
  o->free(ctx, d->norm_sq);
  free(d->lowp);
  free(d->acts);
  free(d->doc_off);
  free(d->host_pos);
  free(d->pw.layers);
  free(d->gw.layers);
  free(d->lw.layers);
  free(d);
}

size_t r1d_dtrain_bytes(const r1d_dtrain *d) {
  return d->bytes;
}

void r1d_dtrain_zero_grad(r1d_dtrain *d) {
  d->be.ops->zero(d->be.ctx, d->grads, d->tm->n_floats * sizeof(float));
}

/* ---- forward ---- */

static void layer_forward(r1d_dtrain *d, int l, int n, float *x_out) {
  const r1d_backend_ops *o = d->be.ops;
  void *ctx = d->be.ctx;
  const r1d_config *c = &d->tm->cfg;
  const r1d_layer_weights *w = &d->pw.layers[l], *lw = &d->lw.layers[l];
  r1d_train_layer_acts *a = &d->acts[l];
  int hid = c->hidden_size, hd = c->head_dim, inter = c->intermediate_size;
  int qdim = c->num_heads * hd, kvdim = c->num_kv_heads * hd;
  size_t hid_bytes = (size_t)n * hid * sizeof(float);

  o->rmsnorm(ctx, n, hid, a->x_in, w->attn_norm, c->rms_norm_eps, a->h_attn);
  o->linear(ctx, n, qdim, hid, a->h_attn, lw->q_w, 0.0f, a->q);
  o->linear(ctx, n, kvdim, hid, a->h_attn, lw->k_w, 0.0f, a->k);
  o->linear(ctx, n, kvdim, hid, a->h_attn, lw->v_w, 0.0f, a->v);
  if (c->qkv_bias) {
    o->add_bias(ctx, n, qdim, w->q_b, a->q);
    o->add_bias(ctx, n, kvdim, w->k_b, a->k);
    o->add_bias(ctx, n, kvdim, w->v_b, a->v);
  }
  o->rope(ctx, n, c->num_heads, hd, d->pos, d->inv_freq, a->q);
  o->rope(ctx, n, c->num_kv_heads, hd, d->pos, d->inv_freq, a->k);
  for (int doc = 0; doc < d->n_docs; doc++) {
    int s0 = d->doc_off[doc], len = d->doc_off[doc + 1] - s0;
    o->attention(ctx, len, 0, c->num_heads, c->num_kv_heads, hd,
                 a->q + (size_t)s0 * qdim, a->k + (size_t)s0 * kvdim,
                 a->v + (size_t)s0 * kvdim, a->att + (size_t)s0 * qdim);
  }
  o->copy(ctx, a->x_mid, a->x_in, hid_bytes);
  o->linear(ctx, n, hid, qdim, a->att, lw->o_w, 1.0f, a->x_mid);

  o->rmsnorm(ctx, n, hid, a->x_mid, w->ffn_norm, c->rms_norm_eps, a->h_ffn);
  o->linear(ctx, n, inter, hid, a->h_ffn, lw->gate_w, 0.0f, a->gate);
  o->linear(ctx, n, inter, hid, a->h_ffn, lw->up_w, 0.0f, a->up);
  o->swiglu(ctx, (size_t)n * inter, a->gate, a->up, a->act);
  o->copy(ctx, x_out, a->x_mid, hid_bytes);
  o->linear(ctx, n, hid, inter, a->act, lw->down_w, 1.0f, x_out);
}

/* ---- backward ---- */

static void zero_f(r1d_dtrain *d, float *p, size_t n) {
  d->be.ops->zero(d->be.ctx, p, n * sizeof(float));
}

static void layer_backward(r1d_dtrain *d, int l, int n) {
  const r1d_backend_ops *o = d->be.ops;
  void *ctx = d->be.ctx;
  const r1d_config *c = &d->tm->cfg;
  const r1d_layer_weights *w = &d->pw.layers[l];
  r1d_layer_weights *g = &d->gw.layers[l];
  const r1d_train_layer_acts *a = &d->acts[l];
  int hid = c->hidden_size, hd = c->head_dim, inter = c->intermediate_size;
  int qdim = c->num_heads * hd, kvdim = c->num_kv_heads * hd;
  float eps = c->rms_norm_eps;

  /* MLP block: x_out = x_mid + act Wd^T, act = silu(gate) up */
  zero_f(d, d->dact, (size_t)n * inter);
  o->linear_backward(ctx, n, hid, inter, a->act, w->down_w, d->dx, d->dact,
                     g->down_w, NULL);
  zero_f(d, d->dgate, (size_t)n * inter);
  zero_f(d, d->dup, (size_t)n * inter);
  o->swiglu_backward(ctx, (size_t)n * inter, a->gate, a->up, d->dact, d->dgate,
                     d->dup);
  zero_f(d, d->dh, (size_t)n * hid);
  o->linear_backward(ctx, n, inter, hid, a->h_ffn, w->gate_w, d->dgate, d->dh,
                     g->gate_w, NULL);
  o->linear_backward(ctx, n, inter, hid, a->h_ffn, w->up_w, d->dup, d->dh,
                     g->up_w, NULL);
  o->rmsnorm_backward(ctx, n, hid, a->x_mid, w->ffn_norm, eps, d->dh, d->dx,
                      g->ffn_norm);

  /* attention block: x_mid = x_in + att Wo^T */
  zero_f(d, d->datt, (size_t)n * qdim);
  o->linear_backward(ctx, n, hid, qdim, a->att, w->o_w, d->dx, d->datt, g->o_w,
                     NULL);
  zero_f(d, d->dq, (size_t)n * qdim);
  zero_f(d, d->dk, (size_t)n * kvdim);
  zero_f(d, d->dv, (size_t)n * kvdim);
  for (int doc = 0; doc < d->n_docs; doc++) {
    int s0 = d->doc_off[doc], len = d->doc_off[doc + 1] - s0;
    size_t qo = (size_t)s0 * qdim, ko = (size_t)s0 * kvdim;
    o->attention_backward(ctx, len, 0, c->num_heads, c->num_kv_heads, hd,
                          a->q + qo, a->k + ko, a->v + ko, d->datt + qo,
                          d->dq + qo, d->dk + ko, d->dv + ko);
  }
  zero_f(d, d->datt, (size_t)n * qdim);
  o->rope_backward(ctx, n, c->num_heads, hd, d->pos, d->inv_freq, d->dq,
                   d->datt);
  zero_f(d, d->dk_rot, (size_t)n * kvdim);
  o->rope_backward(ctx, n, c->num_kv_heads, hd, d->pos, d->inv_freq, d->dk,
                   d->dk_rot);
  zero_f(d, d->dh, (size_t)n * hid);
  o->linear_backward(ctx, n, qdim, hid, a->h_attn, w->q_w, d->datt, d->dh,
                     g->q_w, g->q_b);
  o->linear_backward(ctx, n, kvdim, hid, a->h_attn, w->k_w, d->dk_rot, d->dh,
                     g->k_w, g->k_b);
  o->linear_backward(ctx, n, kvdim, hid, a->h_attn, w->v_w, d->dv, d->dh,
                     g->v_w, g->v_b);
  o->rmsnorm_backward(ctx, n, hid, a->x_in, w->attn_norm, eps, d->dh, d->dx,
                      g->attn_norm);
}

/* Checks the batch and uploads ids, targets and positions. */
static int prepare(r1d_dtrain *d, const int32_t *ids, const int32_t *targets,
                   int n, const int *doc_lens, int n_docs, float *loss,
                   r1d_error *err) {
  if (!d || !ids || !targets || !doc_lens || !loss)
    return r1d_fail(err, R1D_EINVAL, "device trainer: NULL argument");
  int counted = 0;
  int rc = r1d_train_check_batch(&d->tm->cfg, d->max_tokens, ids, targets, n,
                                 doc_lens, n_docs, &counted, err);
  if (rc) return rc;
  d->doc_off[0] = 0;
  for (int doc = 0; doc < n_docs; doc++) {
    d->doc_off[doc + 1] = d->doc_off[doc] + doc_lens[doc];
    for (int i = 0; i < doc_lens[doc]; i++)
      d->host_pos[d->doc_off[doc] + i] = i;
  }
  d->n_docs = n_docs;
  const r1d_backend_ops *o = d->be.ops;
  size_t ib = (size_t)n * sizeof(int32_t);
  if (o->upload(d->be.ctx, d->ids, ids, ib) ||
      o->upload(d->be.ctx, d->targets, targets, ib) ||
      o->upload(d->be.ctx, d->pos, d->host_pos, ib))
    return r1d_fail(err, R1D_EBACKEND, "device trainer: upload failed");
  return R1D_OK;
}

/* The forward to the loss; with_grad: dlogits too, scaled by grad_scale. */
static void forward(r1d_dtrain *d, int n, float grad_scale, int with_grad) {
  const r1d_backend_ops *o = d->be.ops;
  void *ctx = d->be.ctx;
  const r1d_config *c = &d->tm->cfg;
  int L = c->num_layers, hid = c->hidden_size, vocab = c->vocab_size;
  o->embedding(ctx, n, d->ids, d->lw.embed, hid, d->acts[0].x_in);
  for (int l = 0; l < L; l++)
    layer_forward(d, l, n, l + 1 < L ? d->acts[l + 1].x_in : d->x_final);
  o->rmsnorm(ctx, n, hid, d->x_final, d->pw.final_norm, c->rms_norm_eps,
             d->h_final);
  o->linear(ctx, n, vocab, hid, d->h_final, d->lw.lm_head, 0.0f, d->logits);
  /* loss and dlogits in one pass: dlogits = scale (softmax - onehot) / c */
  if (with_grad) zero_f(d, d->dlogits, (size_t)n * vocab);
  o->cross_entropy(ctx, n, vocab, d->logits, d->targets, grad_scale, d->loss,
                   d->target_logprob, with_grad ? d->dlogits : NULL);
}

static int download_loss(r1d_dtrain *d, float *loss, r1d_error *err) {
  if (d->be.ops->download(d->be.ctx, loss, d->loss, sizeof(float)))
    return r1d_fail(err, R1D_EBACKEND,
                    "device trainer: backend %s failed in the step",
                    d->be.ops->name);
  return R1D_OK;
}

int r1d_dtrain_forward_backward(r1d_dtrain *d, const int32_t *ids,
                                const int32_t *targets, int n,
                                const int *doc_lens, int n_docs,
                                float grad_scale, float *loss, r1d_error *err) {
  int rc = prepare(d, ids, targets, n, doc_lens, n_docs, loss, err);
  if (rc) return rc;
  if (!isfinite(grad_scale))
    return r1d_fail(err, R1D_EINVAL, "device trainer: grad_scale not finite");
  const r1d_backend_ops *o = d->be.ops;
  void *ctx = d->be.ctx;
  const r1d_config *c = &d->tm->cfg;
  int L = c->num_layers, hid = c->hidden_size, vocab = c->vocab_size;
  forward(d, n, grad_scale, 1);
  zero_f(d, d->dh, (size_t)n * hid);
  o->linear_backward(ctx, n, vocab, hid, d->h_final, d->pw.lm_head, d->dlogits,
                     d->dh, d->gw.lm_head, NULL);
  zero_f(d, d->dx, (size_t)n * hid);
  o->rmsnorm_backward(ctx, n, hid, d->x_final, d->pw.final_norm,
                      c->rms_norm_eps, d->dh, d->dx, d->gw.final_norm);
  for (int l = L - 1; l >= 0; l--)
    layer_backward(d, l, n);
  o->embedding_backward(ctx, n, d->ids, hid, d->dx, d->gw.embed);
  return download_loss(d, loss, err);
}

int r1d_dtrain_forward_loss(r1d_dtrain *d, const int32_t *ids,
                            const int32_t *targets, int n, const int *doc_lens,
                            int n_docs, float *loss, r1d_error *err) {
  int rc = prepare(d, ids, targets, n, doc_lens, n_docs, loss, err);
  if (rc) return rc;
  forward(d, n, 1.0f, 0);
  return download_loss(d, loss, err);
}

int r1d_dtrain_grad_norm(r1d_dtrain *d, double *norm, r1d_error *err) {
  double sq = 0.0;
  d->be.ops->sum_squares(d->be.ctx, d->tm->n_floats, d->grads, d->norm_sq);
  if (d->be.ops->download(d->be.ctx, &sq, d->norm_sq, sizeof sq))
    return r1d_fail(err, R1D_EBACKEND, "device trainer: gradient norm failed");
  *norm = sqrt(sq);
  return R1D_OK;
}

int r1d_dtrain_clip_grad_norm(r1d_dtrain *d, double max_norm, double *norm,
                              r1d_error *err) {
  int rc = r1d_dtrain_grad_norm(d, norm, err);
  if (rc) return rc;
  if (!isfinite(*norm))
    return r1d_fail(err, R1D_ERANGE,
                    "clip: gradient norm is %g (non-finite); gradients left "
                    "unscaled",
                    *norm);
  /* rl/optim.c's coefficient, so both trainers clip alike */
  double coef = max_norm / (*norm + 1e-6);
  if (max_norm > 0 && coef < 1.0)
    d->be.ops->scale(d->be.ctx, d->tm->n_floats, (float)coef, d->grads);
  return R1D_OK;
}

int r1d_dtrain_adamw(r1d_dtrain *d, const r1d_adamw_step *s, r1d_error *err) {
  const r1d_backend_ops *o = d->be.ops;
  if (!isfinite(s->lr) || s->lr < 0 || s->step < 1)
    return r1d_fail(err, R1D_ERANGE,
                    "device trainer: AdamW needs a finite lr >= 0 and step >= "
                    "1 (lr %g, step %ld)",
                    s->lr, s->step);
  for (int i = 0; i < d->tm->n_tensors; i++) {
    const r1d_train_tensor *t = &d->tm->tensors[i];
    o->adamw(d->be.ctx, t->n, s, r1d_optim_default_decay(t->name),
             d->params + t->offset, d->grads + t->offset, d->m + t->offset,
             d->v + t->offset, d->lowp_owned ? d->lowp[i] : NULL);
  }
  if (o->sync(d->be.ctx))
    return r1d_fail(err, R1D_EBACKEND, "device trainer: AdamW failed on %s",
                    o->name);
  return R1D_OK;
}

static int download(r1d_dtrain *d, float *host, const float *src,
                    r1d_error *err) {
  if (d->be.ops->download(d->be.ctx, host, src,
                          d->tm->n_floats * sizeof(float)))
    return r1d_fail(err, R1D_EBACKEND, "device trainer: download failed");
  return R1D_OK;
}

int r1d_dtrain_download_params(r1d_dtrain *d, float *host, r1d_error *err) {
  return download(d, host, d->params, err);
}

int r1d_dtrain_download_grads(r1d_dtrain *d, float *host, r1d_error *err) {
  return download(d, host, d->grads, err);
}

int r1d_dtrain_download_moments(r1d_dtrain *d, float *m, float *v,
                                r1d_error *err) {
  int rc = download(d, m, d->m, err);
  return rc ? rc : download(d, v, d->v, err);
}

int r1d_dtrain_upload_moments(r1d_dtrain *d, const float *m, const float *v,
                              r1d_error *err) {
  size_t bytes = d->tm->n_floats * sizeof(float);
  if (d->be.ops->upload(d->be.ctx, d->m, m, bytes) ||
      d->be.ops->upload(d->be.ctx, d->v, v, bytes))
    return r1d_fail(err, R1D_EBACKEND, "device trainer: upload failed");
  return R1D_OK;
}
