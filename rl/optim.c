/* optim.c - AdamW (as torch.optim.AdamW computes it), gradient clipping and
 * accumulation, LR schedules and resumable optimizer state; see optim.h.
 *
 * Layout: one aligned_alloc(64) block holds, per tensor, m then v, each
 * rounded up to 64 bytes, followed by the per-chunk partial sums the gradient
 * norm uses (fixed chunks, summed in order: the norm does not depend on the
 * thread count). */
#include "rl/optim.h"

#include "kernels/cpu/cpu_backward.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OPTIM_ALIGN 64
/* Elements per partial sum of the gradient norm. */
#define NORM_CHUNK 4096
/* Below this many elements a tensor is updated on one thread. */
#define OMP_MIN_ELEMS 16384

static const char state_magic[8] = {'R', '1', 'D', 'A', 'D', 'A', 'M', 'W'};
enum { STATE_VERSION = 1, STATE_HEADER_BYTES = 8 + 4 + 4 + 8 };

struct r1d_optim {
  r1d_adamw_config cfg;
  long step;
  size_t n_tensors;
  r1d_optim_tensor *tensors; /* copy of the caller's list */
  float **m;                 /* per tensor, into `block` */
  float **v;
  size_t n_chunks; /* total norm chunks over all tensors */
  double *chunk_sums;
  void *block;
};

static size_t round_up(size_t x, size_t a) {
  return (x + a - 1) / a * a;
}

static size_t chunks_of(size_t n) {
  return (n + NORM_CHUNK - 1) / NORM_CHUNK;
}

int r1d_optim_default_decay(const char *hf_tensor_name) {
  if (!hf_tensor_name) return 1;
  if (strstr(hf_tensor_name, "norm")) return 0;
  size_t len = strlen(hf_tensor_name);
  const char *suffix = ".bias";
  size_t slen = strlen(suffix);
  if (len >= slen && strcmp(hf_tensor_name + len - slen, suffix) == 0) return 0;
  return 1;
}

void r1d_adamw_config_default(r1d_adamw_config *cfg) {
  cfg->lr = 1e-3;
  cfg->beta1 = 0.9;
  cfg->beta2 = 0.999;
  cfg->eps = 1e-8;
  cfg->weight_decay = 1e-2;
}

int r1d_adamw_config_check(const r1d_adamw_config *cfg, r1d_error *err) {
  if (!cfg) return r1d_fail(err, R1D_EINVAL, "adamw: config is NULL");
  if (!isfinite(cfg->lr) || cfg->lr < 0)
    return r1d_fail(err, R1D_ERANGE, "adamw: lr %g must be finite and >= 0",
                    cfg->lr);
  if (!(cfg->beta1 >= 0 && cfg->beta1 < 1))
    return r1d_fail(err, R1D_ERANGE, "adamw: beta1 %g must be in [0, 1)",
                    cfg->beta1);
  if (!(cfg->beta2 >= 0 && cfg->beta2 < 1))
    return r1d_fail(err, R1D_ERANGE, "adamw: beta2 %g must be in [0, 1)",
                    cfg->beta2);
  if (!isfinite(cfg->eps) || cfg->eps < 0)
    return r1d_fail(err, R1D_ERANGE, "adamw: eps %g must be finite and >= 0",
                    cfg->eps);
  if (!isfinite(cfg->weight_decay) || cfg->weight_decay < 0)
    return r1d_fail(err, R1D_ERANGE,
                    "adamw: weight_decay %g must be finite and >= 0",
                    cfg->weight_decay);
  return R1D_OK;
}

int r1d_optim_create(const r1d_adamw_config *cfg,
                     const r1d_optim_tensor *tensors, size_t n_tensors,
                     r1d_optim **out, r1d_error *err) {
  if (!out) return r1d_fail(err, R1D_EINVAL, "optim: out is NULL");
  *out = NULL;
  int rc = r1d_adamw_config_check(cfg, err);
  if (rc) return rc;
  if (!tensors || n_tensors == 0)
    return r1d_fail(err, R1D_EINVAL, "optim: no tensors to optimize");
  size_t block_bytes = 0, n_chunks = 0;
  for (size_t i = 0; i < n_tensors; i++) {
    const r1d_optim_tensor *t = &tensors[i];
    const char *name = t->name ? t->name : "(unnamed)";
    if (!t->param || !t->grad)
      return r1d_fail(err, R1D_EINVAL, "optim: tensor %zu '%s' has a NULL %s",
                      i, name, t->param ? "grad" : "param");
    if (t->n == 0 || t->n > SIZE_MAX / 8 / sizeof(float))
      return r1d_fail(err, R1D_EINVAL, "optim: tensor %zu '%s' has size %zu", i,
                      name, t->n);
    if (t->param == t->grad)
      return r1d_fail(err, R1D_EINVAL,
                      "optim: tensor %zu '%s' uses one buffer for param "
                      "and grad",
                      i, name);
    for (size_t j = 0; j < i; j++)
      if (tensors[j].param == t->param || tensors[j].grad == t->grad)
        return r1d_fail(err, R1D_EINVAL,
                        "optim: tensors %zu and %zu ('%s') share a buffer", j,
                        i, name);
    block_bytes += 2 * round_up(t->n * sizeof(float), OPTIM_ALIGN);
    n_chunks += chunks_of(t->n);
  }
  size_t sums_offset = block_bytes;
  block_bytes += round_up(n_chunks * sizeof(double), OPTIM_ALIGN);

  r1d_optim *opt = calloc(1, sizeof(*opt));
  if (!opt) return r1d_fail(err, R1D_ENOMEM, "optim: out of memory");
  opt->tensors = malloc(n_tensors * sizeof(*opt->tensors));
  opt->m = malloc(n_tensors * sizeof(*opt->m));
  opt->v = malloc(n_tensors * sizeof(*opt->v));
  opt->block = aligned_alloc(OPTIM_ALIGN, block_bytes);
  if (!opt->tensors || !opt->m || !opt->v || !opt->block) {
    r1d_optim_destroy(opt);
    return r1d_fail(err, R1D_ENOMEM,
                    "optim: out of memory for %zu bytes of state", block_bytes);
  }
  memset(opt->block, 0, block_bytes);
  memcpy(opt->tensors, tensors, n_tensors * sizeof(*tensors));
  char *base = opt->block;
  size_t offset = 0;
  for (size_t i = 0; i < n_tensors; i++) {
    size_t bytes = round_up(tensors[i].n * sizeof(float), OPTIM_ALIGN);
    opt->m[i] = (float *)(base + offset);
    opt->v[i] = (float *)(base + offset + bytes);
    offset += 2 * bytes;
  }
  opt->chunk_sums = (double *)(base + sums_offset);
  opt->n_chunks = n_chunks;
  opt->cfg = *cfg;
  opt->n_tensors = n_tensors;
  opt->step = 0;
  *out = opt;
  return R1D_OK;
}

void r1d_optim_destroy(r1d_optim *opt) {
  if (!opt) return;
  free(opt->block);
  free(opt->tensors);
  free(opt->m);
  free(opt->v);
  free(opt);
}

long r1d_optim_step_count(const r1d_optim *opt) {
  return opt->step;
}

const r1d_adamw_config *r1d_optim_config(const r1d_optim *opt) {
  return &opt->cfg;
}

int r1d_optim_set_config(r1d_optim *opt, const r1d_adamw_config *cfg,
                         r1d_error *err) {
  int rc = r1d_adamw_config_check(cfg, err);
  if (rc) return rc;
  opt->cfg = *cfg;
  return R1D_OK;
}

/* The element update is the ops table's CPU `adamw`
 * (kernels/cpu/ops_optim.c): its scalars are computed in double the way
 * torch's _single_tensor_adamw computes them in Python, then rounded once. */
int r1d_optim_step(r1d_optim *opt, double lr, r1d_error *err) {
  if (!opt) return r1d_fail(err, R1D_EINVAL, "optim: NULL optimizer");
  if (!isfinite(lr) || lr < 0)
    return r1d_fail(err, R1D_ERANGE, "optim: step lr %g must be finite, >= 0",
                    lr);
  const r1d_adamw_config *c = &opt->cfg;
  r1d_adamw_step s = {.lr = lr,
                      .beta1 = c->beta1,
                      .beta2 = c->beta2,
                      .eps = c->eps,
                      .weight_decay = c->weight_decay,
                      .step = opt->step + 1};
  for (size_t i = 0; i < opt->n_tensors; i++) {
    const r1d_optim_tensor *tensor = &opt->tensors[i];
    r1d_cpu_adamw(NULL, tensor->n, &s, tensor->decay, tensor->param,
                  tensor->grad, opt->m[i], opt->v[i], NULL);
  }
  opt->step = s.step;
  return R1D_OK;
}

void r1d_optim_zero_grad(r1d_optim *opt) {
  for (size_t i = 0; i < opt->n_tensors; i++)
    memset(opt->tensors[i].grad, 0, opt->tensors[i].n * sizeof(float));
}

static void scale_all(r1d_optim *opt, float factor) {
  for (size_t i = 0; i < opt->n_tensors; i++) {
    float *g = opt->tensors[i].grad;
    long long len = (long long)opt->tensors[i].n;
#pragma omp parallel for schedule(static) if (len >= OMP_MIN_ELEMS)
    for (long long j = 0; j < len; j++)
      g[j] = g[j] * factor;
  }
}

void r1d_optim_scale_grads(r1d_optim *opt, float factor) {
  scale_all(opt, factor);
}

double r1d_optim_grad_norm(const r1d_optim *opt) {
  /* Each chunk's sum of squares goes to its own slot; the slots are then
   * added in index order, so the result is the same on any thread count. */
  double *sums = opt->chunk_sums;
  size_t slot = 0;
  for (size_t i = 0; i < opt->n_tensors; i++) {
    const float *g = opt->tensors[i].grad;
    size_t n = opt->tensors[i].n;
    long long n_chunks = (long long)chunks_of(n);
#pragma omp parallel for schedule(static) if (n >= OMP_MIN_ELEMS)
    for (long long c = 0; c < n_chunks; c++) {
      size_t lo = (size_t)c * NORM_CHUNK;
      size_t hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
      double acc = 0.0;
      for (size_t j = lo; j < hi; j++)
        acc += (double)g[j] * (double)g[j];
      sums[slot + (size_t)c] = acc;
    }
    slot += (size_t)n_chunks;
  }
  double total = 0.0;
  for (size_t c = 0; c < opt->n_chunks; c++)
    total += sums[c];
  return sqrt(total);
}

int r1d_optim_clip_grad_norm(r1d_optim *opt, double max_norm,
                             double *total_norm, r1d_error *err) {
  if (!opt) return r1d_fail(err, R1D_EINVAL, "clip: NULL optimizer");
  if (!isfinite(max_norm) || max_norm <= 0)
    return r1d_fail(err, R1D_ERANGE, "clip: max_norm %g must be finite, > 0",
                    max_norm);
  double total = r1d_optim_grad_norm(opt);
  if (total_norm) *total_norm = total;
  if (!isfinite(total))
    return r1d_fail(err, R1D_ERANGE,
                    "clip: gradient norm is %g (non-finite); gradients left "
                    "unscaled",
                    total);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) scale_all(opt, (float)coef);
  return R1D_OK;
}

/* ---- state ---- */

size_t r1d_optim_tensor_count(const r1d_optim *opt) {
  return opt->n_tensors;
}

int r1d_optim_tensor_state(r1d_optim *opt, size_t i, float **m, float **v) {
  if (i >= opt->n_tensors) return R1D_ERANGE;
  if (m) *m = opt->m[i];
  if (v) *v = opt->v[i];
  return R1D_OK;
}

int r1d_optim_set_step(r1d_optim *opt, long step, r1d_error *err) {
  if (step < 0)
    return r1d_fail(err, R1D_ERANGE, "optim: step %ld must be >= 0", step);
  opt->step = step;
  return R1D_OK;
}

size_t r1d_optim_state_bytes(const r1d_optim *opt) {
  size_t bytes = STATE_HEADER_BYTES + opt->n_tensors * sizeof(uint64_t);
  for (size_t i = 0; i < opt->n_tensors; i++)
    bytes += 2 * opt->tensors[i].n * sizeof(float);
  return bytes;
}

int r1d_optim_state_save(const r1d_optim *opt, void *buf, size_t cap,
                         r1d_error *err) {
  size_t need = r1d_optim_state_bytes(opt);
  if (!buf || cap < need)
    return r1d_fail(err, R1D_ERANGE,
                    "optim state: buffer of %zu bytes, need %zu", cap, need);
  unsigned char *out = buf;
  uint32_t version = STATE_VERSION, count = (uint32_t)opt->n_tensors;
  int64_t step = opt->step;
  memcpy(out, state_magic, 8);
  memcpy(out + 8, &version, 4);
  memcpy(out + 12, &count, 4);
  memcpy(out + 16, &step, 8);
  out += STATE_HEADER_BYTES;
  for (size_t i = 0; i < opt->n_tensors; i++) {
    uint64_t n = opt->tensors[i].n;
    memcpy(out, &n, 8);
    out += 8;
  }
  for (size_t i = 0; i < opt->n_tensors; i++) {
    size_t bytes = opt->tensors[i].n * sizeof(float);
    memcpy(out, opt->m[i], bytes);
    memcpy(out + bytes, opt->v[i], bytes);
    out += 2 * bytes;
  }
  return R1D_OK;
}

int r1d_optim_state_load(r1d_optim *opt, const void *buf, size_t len,
                         r1d_error *err) {
  const unsigned char *in = buf;
  if (!buf || len < STATE_HEADER_BYTES)
    return r1d_fail(err, R1D_EFORMAT, "optim state: %zu bytes is too short",
                    len);
  if (memcmp(in, state_magic, 8) != 0)
    return r1d_fail(err, R1D_EFORMAT, "optim state: bad magic");
  uint32_t version, count;
  int64_t step;
  memcpy(&version, in + 8, 4);
  memcpy(&count, in + 12, 4);
  memcpy(&step, in + 16, 8);
  if (version != STATE_VERSION)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "optim state: version %u, expected %d", version,
                    STATE_VERSION);
  if (count != opt->n_tensors)
    return r1d_fail(err, R1D_EFORMAT,
                    "optim state: %u tensors, optimizer has %zu", count,
                    opt->n_tensors);
  if (step < 0)
    return r1d_fail(err, R1D_EFORMAT, "optim state: negative step %lld",
                    (long long)step);
  size_t need = r1d_optim_state_bytes(opt);
  if (len != need)
    return r1d_fail(err, R1D_EFORMAT,
                    "optim state: %zu bytes, expected %zu for these tensors",
                    len, need);
  const unsigned char *sizes = in + STATE_HEADER_BYTES;
  for (size_t i = 0; i < opt->n_tensors; i++) {
    uint64_t n;
    memcpy(&n, sizes + 8 * i, 8);
    if (n != opt->tensors[i].n)
      return r1d_fail(err, R1D_EFORMAT,
                      "optim state: tensor %zu '%s' has %llu elements, "
                      "optimizer has %zu",
                      i, opt->tensors[i].name ? opt->tensors[i].name : "",
                      (unsigned long long)n, opt->tensors[i].n);
  }
  const unsigned char *data = sizes + 8 * opt->n_tensors;
  for (size_t i = 0; i < opt->n_tensors; i++) {
    size_t bytes = opt->tensors[i].n * sizeof(float);
    memcpy(opt->m[i], data, bytes);
    memcpy(opt->v[i], data + bytes, bytes);
    data += 2 * bytes;
  }
  opt->step = (long)step;
  return R1D_OK;
}

/* ---- learning-rate schedules ---- */

int r1d_lr_schedule_check(const r1d_lr_schedule *s, r1d_error *err) {
  if (!s) return r1d_fail(err, R1D_EINVAL, "lr schedule: NULL");
  if (!isfinite(s->lr) || s->lr <= 0)
    return r1d_fail(err, R1D_ERANGE, "lr schedule: lr %g must be finite, > 0",
                    s->lr);
  switch (s->kind) {
  case R1D_LR_CONSTANT: return R1D_OK;
  case R1D_LR_WARMUP_CONSTANT:
    if (s->warmup_steps < 0)
      return r1d_fail(err, R1D_ERANGE,
                      "lr schedule: warmup_steps %ld must be >= 0",
                      s->warmup_steps);
    if (s->total_steps > 0 && s->warmup_steps > s->total_steps)
      return r1d_fail(err, R1D_ERANGE,
                      "lr schedule: warmup_steps %ld > total_steps %ld",
                      s->warmup_steps, s->total_steps);
    return R1D_OK;
  case R1D_LR_WARMUP_COSINE:
    if (s->total_steps <= 0)
      return r1d_fail(err, R1D_ERANGE,
                      "lr schedule: cosine needs total_steps > 0, got %ld",
                      s->total_steps);
    if (s->warmup_steps < 0)
      return r1d_fail(err, R1D_ERANGE,
                      "lr schedule: warmup_steps %ld must be >= 0",
                      s->warmup_steps);
    if (s->warmup_steps > s->total_steps)
      return r1d_fail(err, R1D_ERANGE,
                      "lr schedule: warmup_steps %ld > total_steps %ld",
                      s->warmup_steps, s->total_steps);
    if (!isfinite(s->min_lr) || s->min_lr < 0 || s->min_lr > s->lr)
      return r1d_fail(err, R1D_ERANGE,
                      "lr schedule: min_lr %g must be in [0, lr=%g]", s->min_lr,
                      s->lr);
    return R1D_OK;
  }
  return r1d_fail(err, R1D_EINVAL, "lr schedule: unknown kind %d",
                  (int)s->kind);
}

double r1d_lr_at(const r1d_lr_schedule *s, long step) {
  if (step < 0) step = 0;
  if (s->kind == R1D_LR_CONSTANT) return s->lr;
  long warmup = s->warmup_steps;
  if (step < warmup)
    return s->lr * ((double)step / (double)(warmup > 1 ? warmup : 1));
  if (s->kind == R1D_LR_WARMUP_CONSTANT) return s->lr;
  long decay_steps = s->total_steps - warmup;
  double progress =
      (double)(step - warmup) / (double)(decay_steps > 1 ? decay_steps : 1);
  if (progress > 1.0) progress = 1.0;
  double factor = 0.5 * (1.0 + cos(M_PI * progress));
  double min_rate = s->min_lr / s->lr;
  factor = factor * (1.0 - min_rate) + min_rate;
  if (factor < 0) factor = 0;
  return s->lr * factor;
}
