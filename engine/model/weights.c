/* weights.c - fp32 parameter arrays of a Qwen2/Llama model: layout in one
 * allocation, loading from a safetensors folder, saving to model.safetensors.
 *
 * One walk over the tensors (r1d_weights_visit, in Hugging Face naming and a
 * fixed order) drives everything: allocation lays the arrays out in visit
 * order, loading converts each visited tensor from disk, saving lists them
 * for the writer. Keeping a single list of names and shapes means the three
 * cannot disagree. The storage being one block in visit order also lets the
 * trainer treat all parameters as a single flat vector. */
#include "weights.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../common/file.h"
#include "safetensors.h"

/* Calls fn for one tensor of rank 1 ([d0]) or 2 ([d0, d1]). */
static int visit1(r1d_weights_visit_fn fn, void *user, const char *name,
                  int ndim, int64_t d0, int64_t d1, float *data) {
  int64_t shape[2] = {d0, d1};
  return fn(user, name, ndim, shape, data);
}

static int visit_layer(const r1d_config *c, int l, r1d_layer_weights *lw,
                       r1d_weights_visit_fn fn, void *user) {
  int64_t h = c->hidden_size, in = c->intermediate_size;
  int64_t q = (int64_t)c->num_heads * c->head_dim;
  int64_t kv = (int64_t)c->num_kv_heads * c->head_dim;
  const struct {
    const char *suffix;
    int ndim;
    int64_t d0, d1;
    float *data;
    int present;
  } t[] = {
      {"input_layernorm.weight", 1, h, 0, lw->attn_norm, 1},
      {"self_attn.q_proj.weight", 2, q, h, lw->q_w, 1},
      {"self_attn.q_proj.bias", 1, q, 0, lw->q_b, c->qkv_bias},
      {"self_attn.k_proj.weight", 2, kv, h, lw->k_w, 1},
      {"self_attn.k_proj.bias", 1, kv, 0, lw->k_b, c->qkv_bias},
      {"self_attn.v_proj.weight", 2, kv, h, lw->v_w, 1},
      {"self_attn.v_proj.bias", 1, kv, 0, lw->v_b, c->qkv_bias},
      {"self_attn.o_proj.weight", 2, h, q, lw->o_w, 1},
      {"post_attention_layernorm.weight", 1, h, 0, lw->ffn_norm, 1},
      {"mlp.gate_proj.weight", 2, in, h, lw->gate_w, 1},
      {"mlp.up_proj.weight", 2, in, h, lw->up_w, 1},
      {"mlp.down_proj.weight", 2, h, in, lw->down_w, 1},
  };
  char name[128];
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    if (!t[i].present) continue;
    snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].suffix);
    int rc = visit1(fn, user, name, t[i].ndim, t[i].d0, t[i].d1, t[i].data);
    if (rc) return rc;
  }
  return R1D_OK;
}

int r1d_weights_visit(const r1d_config *c, r1d_weights *w,
                      r1d_weights_visit_fn fn, void *user) {
  int64_t v = c->vocab_size, h = c->hidden_size;
  int rc = visit1(fn, user, "model.embed_tokens.weight", 2, v, h, w->embed);
  for (int l = 0; l < c->num_layers && !rc; l++)
    rc = visit_layer(c, l, &w->layers[l], fn, user);
  if (!rc) rc = visit1(fn, user, "model.norm.weight", 1, h, 0, w->final_norm);
  if (!rc && !c->tie_word_embeddings)
    rc = visit1(fn, user, "lm_head.weight", 2, v, h, w->lm_head);
  return rc;
}

/* ---- allocation ------------------------------------------------------- */

/* Maps a visited name back to the struct member that holds it, so that
 * allocation can hand out slices by name. */
static float **slot_of(r1d_weights *w, const r1d_config *c, const char *name) {
  if (strcmp(name, "model.embed_tokens.weight") == 0) return &w->embed;
  if (strcmp(name, "model.norm.weight") == 0) return &w->final_norm;
  if (strcmp(name, "lm_head.weight") == 0) return &w->lm_head;
  int l, off;
  if (sscanf(name, "model.layers.%d.%n", &l, &off) != 1 || l < 0 ||
      l >= c->num_layers)
    return NULL;
  r1d_layer_weights *lw = &w->layers[l];
  const char *s = name + off;
  const struct {
    const char *suffix;
    float **slot;
  } m[] = {
      {"input_layernorm.weight", &lw->attn_norm},
      {"self_attn.q_proj.weight", &lw->q_w},
      {"self_attn.q_proj.bias", &lw->q_b},
      {"self_attn.k_proj.weight", &lw->k_w},
      {"self_attn.k_proj.bias", &lw->k_b},
      {"self_attn.v_proj.weight", &lw->v_w},
      {"self_attn.v_proj.bias", &lw->v_b},
      {"self_attn.o_proj.weight", &lw->o_w},
      {"post_attention_layernorm.weight", &lw->ffn_norm},
      {"mlp.gate_proj.weight", &lw->gate_w},
      {"mlp.up_proj.weight", &lw->up_w},
      {"mlp.down_proj.weight", &lw->down_w},
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (strcmp(s, m[i].suffix) == 0) return m[i].slot;
  return NULL;
}

/* Allocation runs the visit twice: first to count floats, then to hand out
 * consecutive slices in visit order. */
typedef struct alloc_ctx {
  const r1d_config *cfg;
  r1d_weights *w;
  size_t n;    /* floats counted / handed out so far */
  float *base; /* NULL while counting */
} alloc_ctx;

static size_t numel(int ndim, const int64_t *shape) {
  size_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= (size_t)shape[i];
  return n;
}

static int alloc_visit(void *user, const char *name, int ndim,
                       const int64_t *shape, float *data) {
  (void)data;
  alloc_ctx *a = user;
  if (a->base) {
    float **slot = slot_of(a->w, a->cfg, name);
    if (!slot) return R1D_EINVAL; /* cannot happen: names come from visit */
    *slot = a->base + a->n;
  }
  a->n += numel(ndim, shape);
  return R1D_OK;
}

int r1d_weights_alloc(const r1d_config *cfg, r1d_weights *w) {
  memset(w, 0, sizeof *w);
  if (cfg->num_layers <= 0) return R1D_EINVAL;
  w->layers = calloc((size_t)cfg->num_layers, sizeof *w->layers);
  if (!w->layers) return R1D_ENOMEM;
  w->n_layers = cfg->num_layers;
  alloc_ctx a = {cfg, w, 0, NULL};
  r1d_weights_visit(cfg, w, alloc_visit, &a);
  if (a.n == 0 || a.n > SIZE_MAX / sizeof(float)) {
    r1d_weights_free(w);
    return R1D_ENOMEM;
  }
  w->storage = calloc(a.n, sizeof(float));
  if (!w->storage) {
    r1d_weights_free(w);
    return R1D_ENOMEM;
  }
  w->n_floats = a.n;
  a.n = 0;
  a.base = w->storage;
  int rc = r1d_weights_visit(cfg, w, alloc_visit, &a);
  if (rc) {
    r1d_weights_free(w);
    return rc;
  }
  if (cfg->tie_word_embeddings) w->lm_head = w->embed;
  return R1D_OK;
}

void r1d_weights_free(r1d_weights *w) {
  if (!w) return;
  free(w->storage);
  free(w->layers);
  memset(w, 0, sizeof *w);
}

/* ---- loading ------------------------------------------------------------ */

typedef struct load_ctx {
  const char *dir;
  const r1d_st_folder *f;
  r1d_error *err;
} load_ctx;

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t n = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
                          (long long)shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int load_visit(void *user, const char *name, int ndim,
                      const int64_t *shape, float *data) {
  load_ctx *l = user;
  const r1d_tensor_view *t = r1d_st_folder_find(l->f, name);
  if (!t)
    return r1d_fail(l->err, R1D_ENOTFOUND, "%s: missing tensor %s", l->dir,
                    name);
  const char *file = r1d_st_folder_file_of(l->f, name);
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = t->shape[i] == shape[i];
  if (!same) {
    char want[96], got[96];
    fmt_shape(want, sizeof want, ndim, shape);
    fmt_shape(got, sizeof got, t->ndim, t->shape);
    return r1d_fail(l->err, R1D_EFORMAT,
                    "%s: tensor %s has shape %s, expected %s", file, name, got,
                    want);
  }
  if (r1d_tensor_to_f32(t, data) != R1D_OK)
    return r1d_fail(l->err, R1D_EUNSUPPORTED,
                    "%s: tensor %s has dtype %s (need F32, F16 or BF16)", file,
                    name, r1d_dtype_name(t->dtype));
  r1d_tensor_release(t);
  return R1D_OK;
}

int r1d_weights_load(const char *dir, const r1d_config *cfg, r1d_weights *w,
                     r1d_error *err) {
  memset(w, 0, sizeof *w);
  r1d_st_folder *f = NULL;
  int rc = r1d_st_folder_open(dir, &f, err);
  if (rc) return rc;
  rc = r1d_weights_alloc(cfg, w);
  if (rc) {
    r1d_st_folder_close(f);
    return r1d_fail(err, rc, "%s: cannot allocate %s weights", dir,
                    rc == R1D_ENOMEM ? "fp32" : "the");
  }
  load_ctx l = {dir, f, err};
  rc = r1d_weights_visit(cfg, w, load_visit, &l);
  r1d_st_folder_close(f);
  if (rc) r1d_weights_free(w);
  return rc;
}

/* ---- saving ---------------------------------------------------------------
 */

typedef struct save_ctx {
  r1d_tensor_out *outs;
  int n;
  int bf16;
  uint16_t *half; /* bf16 copy of every tensor, visit order */
  size_t used;
} save_ctx;

static int save_visit(void *user, const char *name, int ndim,
                      const int64_t *shape, float *data) {
  save_ctx *s = user;
  r1d_tensor_out *o = &s->outs[s->n++];
  o->name = strdup(name);
  if (!o->name) return R1D_ENOMEM;
  o->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    o->shape[i] = shape[i];
  size_t n = numel(ndim, shape);
  if (!s->bf16) {
    o->dtype = R1D_DTYPE_F32;
    o->data = data;
    return R1D_OK;
  }
  o->dtype = R1D_DTYPE_BF16;
  uint16_t *dst = s->half + s->used;
  for (size_t i = 0; i < n; i++)
    dst[i] = r1d_f32_to_bf16(data[i]);
  o->data = dst;
  s->used += n;
  return R1D_OK;
}

static int ensure_dir(const char *dir, r1d_error *err) {
  if (mkdir(dir, 0755) == 0 || errno == EEXIST) return R1D_OK;
  return r1d_fail(err, R1D_EIO, "%s: %s", dir, strerror(errno));
}

int r1d_weights_save(const char *dir, const r1d_config *cfg,
                     const r1d_weights *w, int bf16, r1d_error *err) {
  int rc = ensure_dir(dir, err);
  if (rc) return rc;
  /* 12 tensors per layer at most, plus embed, norm, lm_head. */
  size_t cap = (size_t)cfg->num_layers * 12 + 3;
  save_ctx s = {calloc(cap, sizeof(r1d_tensor_out)), 0, bf16, NULL, 0};
  char *path = r1d_path_join(dir, "model.safetensors");
  if (bf16) s.half = malloc(w->n_floats * sizeof(uint16_t) + 1);
  if (!s.outs || !path || (bf16 && !s.half)) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
    goto done;
  }
  /* visit takes mutable weights because other visitors write them; this
   * one only reads. */
  rc = r1d_weights_visit(cfg, (r1d_weights *)w, save_visit, &s);
  if (rc) {
    rc = r1d_fail(err, rc, "%s: out of memory", dir);
    goto done;
  }
  rc = r1d_safetensors_write(path, s.outs, s.n, err);
done:
  for (int i = 0; s.outs && i < s.n; i++)
    free((char *)s.outs[i].name);
  free(s.outs);
  free(s.half);
  free(path);
  return rc;
}
