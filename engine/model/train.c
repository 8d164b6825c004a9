/* train.c - the trainable model (one flat parameter vector and one flat
 * gradient vector, carved per Hugging Face tensor), the activation plan and
 * the training forward; the backward is in backward.c. See train.h.
 *
 * The forward calls the same CPU kernels, in the same order and with the
 * same arguments, as r1d_model_forward on the CPU backend (residual adds on
 * the GEMM's beta = 1), so its logits match inference's; the only difference
 * is that every intermediate is kept in its own plan buffer instead of being
 * overwritten. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/cpu/cpu_backward.h"
#include "../../kernels/cpu/cpu_ops.h"

#define TRAIN_ALIGN 64 /* bytes; 16 floats */

static size_t round_up(size_t x, size_t a) {
  return (x + a - 1) / a * a;
}

/* ---- the trainable model ---------------------------------------------- */

/* State of the walk over the source weights: counting (tensors NULL), then
 * filling the table and remembering where each tensor came from. */
typedef struct collect_ctx {
  r1d_train_tensor *tensors;
  const float **src; /* [n] the source model's array of each tensor */
  int count;
  size_t n_floats, n_params;
} collect_ctx;

static int collect_tensor(void *user, const char *name, int ndim,
                          const int64_t *shape, float *data) {
  collect_ctx *c = user;
  size_t n = (size_t)shape[0] * (ndim == 2 ? (size_t)shape[1] : 1);
  if (c->tensors) {
    r1d_train_tensor *t = &c->tensors[c->count];
    if (strlen(name) >= sizeof t->name) return R1D_EINVAL;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = shape[0];
    t->shape[1] = ndim == 2 ? shape[1] : 0;
    t->n = n;
    t->offset = c->n_floats;
    c->src[c->count] = data;
  }
  c->count++;
  c->n_params += n;
  c->n_floats += round_up(n, TRAIN_ALIGN / sizeof(float));
  return R1D_OK;
}

/* The slice of params (or grads) that holds what `src` held in the source
 * model; NULL for an absent tensor (NULL src, e.g. Llama's q/k/v biases).
 * A tied lm_head finds the embedding's slice. */
static float *slice_of(const r1d_train_model *tm, const float *const *src,
                       const float *p, int grad, int *missing) {
  if (!p) return NULL;
  for (int i = 0; i < tm->n_tensors; i++)
    if (src[i] == p) return grad ? tm->tensors[i].grad : tm->tensors[i].param;
  *missing = 1;
  return NULL;
}

/* Fills view (param or grad) with the slices matching w's arrays. */
static int map_view(const r1d_train_model *tm, const float *const *src,
                    const r1d_weights *w, int grad, r1d_weights *view) {
  int missing = 0;
  view->embed = slice_of(tm, src, w->embed, grad, &missing);
  view->final_norm = slice_of(tm, src, w->final_norm, grad, &missing);
  view->lm_head = slice_of(tm, src, w->lm_head, grad, &missing);
  for (int l = 0; l < tm->cfg.num_layers; l++) {
    const r1d_layer_weights *s = &w->layers[l];
    r1d_layer_weights *d = &view->layers[l];
    d->attn_norm = slice_of(tm, src, s->attn_norm, grad, &missing);
    d->q_w = slice_of(tm, src, s->q_w, grad, &missing);
    d->q_b = slice_of(tm, src, s->q_b, grad, &missing);
    d->k_w = slice_of(tm, src, s->k_w, grad, &missing);
    d->k_b = slice_of(tm, src, s->k_b, grad, &missing);
    d->v_w = slice_of(tm, src, s->v_w, grad, &missing);
    d->v_b = slice_of(tm, src, s->v_b, grad, &missing);
    d->o_w = slice_of(tm, src, s->o_w, grad, &missing);
    d->ffn_norm = slice_of(tm, src, s->ffn_norm, grad, &missing);
    d->gate_w = slice_of(tm, src, s->gate_w, grad, &missing);
    d->up_w = slice_of(tm, src, s->up_w, grad, &missing);
    d->down_w = slice_of(tm, src, s->down_w, grad, &missing);
  }
  return missing ? R1D_EINVAL : R1D_OK;
}

int r1d_train_model_create(const r1d_model *m, r1d_train_model **out,
                           r1d_error *err) {
  int rc;
  const float **src = NULL;
  *out = NULL;
  if (!m || !m->w.storage || !m->w.layers ||
      m->w.n_layers != m->cfg.num_layers || !m->inv_freq)
    return r1d_fail(err, R1D_EINVAL,
                    "train model: need a loaded model with fp32 host weights");
  r1d_train_model *tm = calloc(1, sizeof *tm);
  if (!tm) return r1d_fail(err, R1D_ENOMEM, "train model: out of memory");
  tm->cfg = m->cfg;
  const r1d_config *c = &tm->cfg;

  /* The walk only reads the arrays; it takes non-const pointers because the
   * writer and loader share it. */
  r1d_weights *w = (r1d_weights *)&m->w;
  collect_ctx cc = {0};
  rc = r1d_weights_visit(c, w, collect_tensor, &cc);
  if (rc) {
    r1d_fail(err, rc, "train model: cannot list the model's tensors");
    goto fail;
  }
  tm->n_tensors = cc.count;
  tm->n_floats = cc.n_floats;
  tm->n_params = cc.n_params;
  tm->tensors = calloc((size_t)cc.count, sizeof *tm->tensors);
  src = calloc((size_t)cc.count, sizeof *src);
  size_t bytes = tm->n_floats * sizeof(float); /* a multiple of 64 */
  tm->params = aligned_alloc(TRAIN_ALIGN, bytes);
  tm->grads = aligned_alloc(TRAIN_ALIGN, bytes);
  tm->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(float));
  tm->param.layers = calloc((size_t)c->num_layers, sizeof(r1d_layer_weights));
  tm->grad.layers = calloc((size_t)c->num_layers, sizeof(r1d_layer_weights));
  if (!tm->tensors || !src || !tm->params || !tm->grads || !tm->inv_freq ||
      !tm->param.layers || !tm->grad.layers) {
    rc = r1d_fail(err, R1D_ENOMEM,
                  "train model: out of memory for 2 x %zu parameters",
                  tm->n_params);
    goto fail;
  }
  memcpy(tm->inv_freq, m->inv_freq, (size_t)(c->head_dim / 2) * sizeof(float));
  tm->param.n_layers = tm->grad.n_layers = c->num_layers;
  tm->param.n_floats = tm->grad.n_floats = tm->n_params; /* for bf16 saves */

  collect_ctx fill = {.tensors = tm->tensors, .src = src};
  rc = r1d_weights_visit(c, w, collect_tensor, &fill);
  if (rc) {
    r1d_fail(err, rc, "train model: a tensor name is too long");
    goto fail;
  }
  /* zero everything first so the alignment padding is defined too */
  memset(tm->params, 0, bytes);
  memset(tm->grads, 0, bytes);
  for (int i = 0; i < tm->n_tensors; i++) {
    r1d_train_tensor *t = &tm->tensors[i];
    t->param = tm->params + t->offset;
    t->grad = tm->grads + t->offset;
    memcpy(t->param, src[i], t->n * sizeof(float));
  }
  if (map_view(tm, src, w, 0, &tm->param) ||
      map_view(tm, src, w, 1, &tm->grad)) {
    rc = r1d_fail(err, R1D_EINVAL,
                  "train model: a weight array of the model is not among its "
                  "named tensors");
    goto fail;
  }
  free(src);
  *out = tm;
  return R1D_OK;
fail:
  free(src);
  r1d_train_model_free(tm);
  return rc;
}

void r1d_train_model_free(r1d_train_model *tm) {
  if (!tm) return;
  free(tm->params);
  free(tm->grads);
  free(tm->tensors);
  free(tm->inv_freq);
  free(tm->param.layers);
  free(tm->grad.layers);
  free(tm);
}

r1d_train_tensor *r1d_train_find(r1d_train_model *tm, const char *name) {
  for (int i = 0; i < tm->n_tensors; i++)
    if (strcmp(tm->tensors[i].name, name) == 0) return &tm->tensors[i];
  return NULL;
}

void r1d_train_zero_grad(r1d_train_model *tm) {
  memset(tm->grads, 0, tm->n_floats * sizeof(float));
}

int r1d_train_optim_tensors(const r1d_train_model *tm, r1d_optim_tensor **out,
                            size_t *n_out, r1d_error *err) {
  *out = NULL;
  *n_out = 0;
  r1d_optim_tensor *list = calloc((size_t)tm->n_tensors, sizeof *list);
  if (!list) return r1d_fail(err, R1D_ENOMEM, "train model: out of memory");
  for (int i = 0; i < tm->n_tensors; i++) {
    const r1d_train_tensor *t = &tm->tensors[i];
    list[i] = (r1d_optim_tensor){.name = t->name,
                                 .param = t->param,
                                 .grad = t->grad,
                                 .n = t->n,
                                 .decay = r1d_optim_default_decay(t->name)};
  }
  *out = list;
  *n_out = (size_t)tm->n_tensors;
  return R1D_OK;
}

/* ---- the activation plan ---------------------------------------------- */

/* Hands out 64-byte-aligned pieces of one block; with base NULL it only
 * measures. */
typedef struct carver {
  char *base;
  size_t off;
} carver;

static void *carve(carver *cv, size_t bytes) {
  void *p = cv->base ? cv->base + cv->off : NULL;
  cv->off += round_up(bytes, TRAIN_ALIGN);
  return p;
}

static float *carve_f(carver *cv, size_t n) {
  return carve(cv, n * sizeof(float));
}

/* Lays every buffer of the plan out in cv (see train.h for the list). With
 * recompute, each layer keeps only its x_in; the rest of the layer's
 * activations is one set that every layer shares (refilled by the backward's
 * re-run of the layer's forward). */
static void plan_layout(const r1d_config *c, r1d_train_plan *p, carver *cv) {
  size_t n = (size_t)p->max_tokens;
  size_t hid = n * c->hidden_size, inter = n * c->intermediate_size;
  size_t qd = n * c->num_heads * c->head_dim;
  size_t kvd = n * c->num_kv_heads * c->head_dim;
  p->ids = carve(cv, n * sizeof(int32_t));
  p->targets = carve(cv, n * sizeof(int32_t));
  p->pos = carve(cv, n * sizeof(int32_t));
  p->doc_off = carve(cv, (n + 1) * sizeof(int32_t));
  for (int l = 0; l < c->num_layers; l++) {
    r1d_train_layer_acts *a = &p->layers[l];
    a->x_in = carve_f(cv, hid);
    if (p->recompute && l > 0) {
      float *x_in = a->x_in;
      *a = p->layers[0];
      a->x_in = x_in;
      continue;
    }
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
  p->x_final = carve_f(cv, hid);
  p->h_final = carve_f(cv, hid);
  p->logits = carve_f(cv, n * c->vocab_size);
  p->target_logprob = carve_f(cv, n);
  p->dx = carve_f(cv, hid);
  p->dh = carve_f(cv, hid);
  p->dq = carve_f(cv, qd);
  p->datt = carve_f(cv, qd);
  p->dk = carve_f(cv, kvd);
  p->dv = carve_f(cv, kvd);
  p->dk_rot = carve_f(cv, kvd);
  p->dgate = carve_f(cv, inter);
  p->dup = carve_f(cv, inter);
  p->dact = carve_f(cv, inter);
  p->dlogits = carve_f(cv, (size_t)R1D_TRAIN_LOGIT_CHUNK * c->vocab_size);
}

size_t r1d_train_plan_bytes_per_token(const r1d_config *c, int recompute) {
  size_t h = c->hidden_size, in = c->intermediate_size;
  size_t q = (size_t)c->num_heads * c->head_dim;
  size_t k = (size_t)c->num_kv_heads * c->head_dim;
  size_t per_layer = 4 * h + 2 * q + 2 * k + 3 * in;
  size_t rest = 4 * h + 2 * q + 3 * k + 3 * in + c->vocab_size + 1;
  size_t layers = recompute ? c->num_layers * h + (per_layer - h)
                            : c->num_layers * per_layer;
  return sizeof(float) * (layers + rest) + 4 * sizeof(int32_t);
}

int r1d_train_plan_create(const r1d_train_model *tm, int max_tokens,
                          int recompute, r1d_train_plan **out, r1d_error *err) {
  int rc;
  *out = NULL;
  if (max_tokens <= 0)
    return r1d_fail(err, R1D_EINVAL,
                    "train plan: max_tokens must be > 0 (got %d)", max_tokens);
  r1d_train_plan *p = calloc(1, sizeof *p);
  if (!p) return r1d_fail(err, R1D_ENOMEM, "train plan: out of memory");
  p->tm = tm;
  p->max_tokens = max_tokens;
  p->recompute = !!recompute;
  p->layers = calloc((size_t)tm->cfg.num_layers, sizeof *p->layers);
  if (!p->layers) {
    rc = r1d_fail(err, R1D_ENOMEM, "train plan: out of memory");
    goto fail;
  }
  carver measure = {0};
  plan_layout(&tm->cfg, p, &measure);
  p->bytes = measure.off;
  p->block = aligned_alloc(TRAIN_ALIGN, p->bytes);
  if (!p->block) {
    rc = r1d_fail(err, R1D_ENOMEM,
                  "train plan: out of memory for %zu bytes of activations "
                  "(%d tokens)",
                  p->bytes, max_tokens);
    goto fail;
  }
  carver cv = {.base = p->block};
  plan_layout(&tm->cfg, p, &cv);
  *out = p;
  return R1D_OK;
fail:
  r1d_train_plan_free(p);
  return rc;
}

void r1d_train_plan_free(r1d_train_plan *plan) {
  if (!plan) return;
  free(plan->block);
  free(plan->layers);
  free(plan);
}

/* ---- the training forward --------------------------------------------- */

/* One decoder layer: reads a->x_in, writes every other buffer of a and the
 * layer's output x_out [n, H]. */
/* y [m, n] = x [m, k] @ W [n, k]^T (+ beta y): OpenBLAS sgemm (the
 * fastest), or with p->row_invariant the serving engine's own linear
 * kernel, whose every row is the same bits in any batch - what GRPO wants,
 * so that logprobs do not depend on how the samples fall into packs. */
static void forward_linear(const r1d_train_plan *p, int m, int n, int k,
                           const float *x, const float *w, float beta,
                           float *y) {
  if (p->row_invariant)
    r1d_cpu_linear(NULL, m, n, k, x, w, beta, y);
  else
    r1d_cpu_matmul_nt(NULL, m, n, k, x, w, beta, y);
}

static void layer_forward(const r1d_train_model *tm, const r1d_layer_weights *w,
                          r1d_train_layer_acts *a, const r1d_train_plan *p,
                          int n, float *x_out) {
  const int32_t *pos = p->pos;
  const r1d_config *c = &tm->cfg;
  int hid = c->hidden_size, hd = c->head_dim, inter = c->intermediate_size;
  int qdim = c->num_heads * hd, kvdim = c->num_kv_heads * hd;
  size_t hid_bytes = (size_t)n * hid * sizeof(float);

  /* attention block */
  r1d_cpu_rmsnorm(NULL, n, hid, a->x_in, w->attn_norm, c->rms_norm_eps,
                  a->h_attn);
  forward_linear(p, n, qdim, hid, a->h_attn, w->q_w, 0.0f, a->q);
  forward_linear(p, n, kvdim, hid, a->h_attn, w->k_w, 0.0f, a->k);
  forward_linear(p, n, kvdim, hid, a->h_attn, w->v_w, 0.0f, a->v);
  if (c->qkv_bias) {
    r1d_cpu_add_bias(NULL, n, qdim, w->q_b, a->q);
    r1d_cpu_add_bias(NULL, n, kvdim, w->k_b, a->k);
    r1d_cpu_add_bias(NULL, n, kvdim, w->v_b, a->v);
  }
  r1d_cpu_rope(NULL, n, c->num_heads, hd, pos, tm->inv_freq, a->q);
  r1d_cpu_rope(NULL, n, c->num_kv_heads, hd, pos, tm->inv_freq, a->k);
  /* each packed document attends only to itself: its rows are contiguous,
   * so the causal kernel runs on each slice as on a sequence of its own */
  for (int d = 0; d < p->n_docs; d++) {
    int s0 = p->doc_off[d], len = p->doc_off[d + 1] - s0;
    r1d_cpu_attention(NULL, len, 0, c->num_heads, c->num_kv_heads, hd,
                      a->q + (size_t)s0 * qdim, a->k + (size_t)s0 * kvdim,
                      a->v + (size_t)s0 * kvdim, a->att + (size_t)s0 * qdim);
  }
  memcpy(a->x_mid, a->x_in, hid_bytes); /* x_mid = x_in + att Wo^T */
  forward_linear(p, n, hid, qdim, a->att, w->o_w, 1.0f, a->x_mid);

  /* MLP block */
  r1d_cpu_rmsnorm(NULL, n, hid, a->x_mid, w->ffn_norm, c->rms_norm_eps,
                  a->h_ffn);
  forward_linear(p, n, inter, hid, a->h_ffn, w->gate_w, 0.0f, a->gate);
  forward_linear(p, n, inter, hid, a->h_ffn, w->up_w, 0.0f, a->up);
  r1d_cpu_swiglu(NULL, (size_t)n * inter, a->gate, a->up, a->act);
  memcpy(x_out, a->x_mid, hid_bytes); /* x_out = x_mid + act Wd^T */
  forward_linear(p, n, hid, inter, a->act, w->down_w, 1.0f, x_out);
}

void r1d_train_layer_recompute(const r1d_train_model *tm, r1d_train_plan *p,
                               int l, float *x_out) {
  layer_forward(tm, &tm->param.layers[l], &p->layers[l], p, p->n, x_out);
}

/* The checks every training forward makes of its batch (train.h). */
int r1d_train_check_batch(const r1d_config *c, int max_tokens,
                          const int32_t *ids, const int32_t *targets, int n,
                          const int *doc_lens, int n_docs, int *counted_out,
                          r1d_error *err) {
  if (n <= 0 || !ids || !targets)
    return r1d_fail(err, R1D_EINVAL,
                    "train forward: need n > 0 tokens, ids and targets (n=%d)",
                    n);
  if (n > max_tokens)
    return r1d_fail(err, R1D_ERANGE,
                    "train forward: %d tokens exceed the plan's %d", n,
                    max_tokens);
  int counted = 0;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= c->vocab_size)
      return r1d_fail(err, R1D_EINVAL,
                      "train forward: token id %d (input %d) is outside the "
                      "vocabulary [0, %d)",
                      (int)ids[i], i, c->vocab_size);
    if (targets[i] < -1 || targets[i] >= c->vocab_size)
      return r1d_fail(err, R1D_EINVAL,
                      "train forward: target %d (input %d) is neither -1 "
                      "(ignored) nor in the vocabulary [0, %d)",
                      (int)targets[i], i, c->vocab_size);
    counted += targets[i] >= 0;
  }
  if (!counted)
    return r1d_fail(err, R1D_EINVAL,
                    "train forward: all %d targets are ignored (-1); the loss "
                    "would be undefined",
                    n);

  if (!doc_lens || n_docs <= 0 || n_docs > n)
    return r1d_fail(err, R1D_EINVAL,
                    "train forward: need 1..%d documents (got %d)", n, n_docs);
  long covered = 0;
  for (int d = 0; d < n_docs; d++) {
    if (doc_lens[d] <= 0)
      return r1d_fail(err, R1D_EINVAL,
                      "train forward: document %d has length %d (must be > 0)",
                      d, doc_lens[d]);
    covered += doc_lens[d];
  }
  if (covered != n)
    return r1d_fail(err, R1D_EINVAL,
                    "train forward: the documents' lengths sum to %ld, not "
                    "the %d tokens",
                    covered, n);

  *counted_out = counted;
  return R1D_OK;
}

int r1d_train_forward(r1d_train_model *tm, r1d_train_plan *plan,
                      const int32_t *ids, const int32_t *targets, int n,
                      float *loss, r1d_error *err) {
  return r1d_train_forward_docs(tm, plan, ids, targets, n, &n, 1, loss, err);
}

int r1d_train_forward_docs(r1d_train_model *tm, r1d_train_plan *plan,
                           const int32_t *ids, const int32_t *targets, int n,
                           const int *doc_lens, int n_docs, float *loss,
                           r1d_error *err) {
  if (!tm || !plan || plan->tm != tm)
    return r1d_fail(err, R1D_EINVAL,
                    "train forward: the plan was made for another model");
  const r1d_config *c = &tm->cfg;
  if (!loss) return r1d_fail(err, R1D_EINVAL, "train forward: NULL loss");
  int counted = 0;
  int rc = r1d_train_check_batch(c, plan->max_tokens, ids, targets, n, doc_lens,
                                 n_docs, &counted, err);
  if (rc) return rc;

  plan->n = 0; /* the saved activations are being replaced */
  plan->n_docs = n_docs;
  plan->doc_off[0] = 0;
  for (int d = 0; d < n_docs; d++) {
    int s0 = plan->doc_off[d];
    plan->doc_off[d + 1] = s0 + doc_lens[d];
    for (int i = 0; i < doc_lens[d]; i++)
      plan->pos[s0 + i] = i; /* positions restart in every document */
  }
  memcpy(plan->ids, ids, (size_t)n * sizeof(int32_t));
  memcpy(plan->targets, targets, (size_t)n * sizeof(int32_t));
  int L = c->num_layers, hid = c->hidden_size, vocab = c->vocab_size;

  /* x_in of layer 0 [n, H] = embed[ids] */
  r1d_cpu_embedding(NULL, n, plan->ids, tm->param.embed, hid,
                    plan->layers[0].x_in);
  for (int l = 0; l < L; l++) {
    float *x_out = l + 1 < L ? plan->layers[l + 1].x_in : plan->x_final;
    layer_forward(tm, &tm->param.layers[l], &plan->layers[l], plan, n, x_out);
  }
  /* h_final [n, H] = rmsnorm(x_final); logits [n, V] = h_final Wlm^T */
  r1d_cpu_rmsnorm(NULL, n, hid, plan->x_final, tm->param.final_norm,
                  c->rms_norm_eps, plan->h_final);
  forward_linear(plan, n, vocab, hid, plan->h_final, tm->param.lm_head, 0.0f,
                 plan->logits);
  r1d_cpu_cross_entropy(NULL, n, vocab, plan->logits, plan->targets, 1.0f, loss,
                        plan->target_logprob, NULL);
  plan->n = n;
  plan->n_counted = counted;
  return R1D_OK;
}
