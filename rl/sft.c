/* sft.c - the SFT/pretraining loop: packs -> forward/backward with
 * token-exact accumulation -> clip -> AdamW, evals, checkpoints with the
 * trainer state, exact resume (see sft.h). */
#include "sft.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/file.h"
#include "../engine/model/checkpoint.h"
#include "../engine/model/train_device.h"

enum { STATE_VERSION = 1 };

typedef struct run {
  const r1d_sft_config *cfg;
  r1d_train_model *tm;
  const r1d_dataset *train, *eval;
  r1d_packing packs, eval_packs;
  r1d_optim *opt;       /* with a device: the host mirror of its AdamW state */
  r1d_train_plan *plan; /* host trainer only */
  r1d_dtrain *dev;      /* the device trainer, or NULL */
  int32_t *targets;     /* [max_tokens] */
  int32_t *ids;         /* [max_tokens] */
  int *doc_lens;        /* [max_tokens] */
  size_t *order;        /* [n_packs], for order_epoch */
  long order_epoch;
  long total_steps;
  char last_good[4096]; /* the newest checkpoint written or resumed from */
} run;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Lays pack p of ds out in r->ids / targets / doc_lens. */
static int load_pack(run *r, const r1d_dataset *ds, const r1d_packing *pk,
                     size_t p) {
  const r1d_pack *pack = &pk->packs[p];
  int off = 0;
  for (int d = 0; d < pack->n_docs; d++) {
    const r1d_doc *doc = &ds->docs[pk->doc_index[pack->first + (size_t)d]];
    memcpy(r->ids + off, doc->ids, (size_t)doc->n * sizeof(int32_t));
    r1d_doc_targets(doc, r->targets + off);
    r->doc_lens[d] = doc->n;
    off += doc->n;
  }
  return off;
}

/* The pack that run-wide pack number g is. */
static size_t pack_at(run *r, long g) {
  long n = (long)r->packs.n_packs;
  long epoch = g / n;
  if (epoch != r->order_epoch) {
    r1d_pack_order(r->packs.n_packs, r->cfg->seed, epoch, r->order);
    r->order_epoch = epoch;
  }
  return r->order[g % n];
}

/* ---- trainer state ---------------------------------------------------- */

static json_t *fingerprint(const run *r) {
  return json_pack(
      "{s:I, s:I, s:I, s:I, s:i, s:i, s:I}", "docs",
      (json_int_t)r->train->n_docs, "tokens", (json_int_t)r->train->tokens,
      "loss_tokens", (json_int_t)r->train->loss_tokens, "packs",
      (json_int_t)r->packs.n_packs, "max_tokens", r->cfg->max_tokens,
      "grad_accum", r->cfg->grad_accum, "seed", (json_int_t)r->cfg->seed);
}

static char *state_json(const run *r, long step, double loss) {
  json_t *o = json_pack(
      "{s:i, s:s, s:I, s:I, s:f, s:o, s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f}}",
      "version", STATE_VERSION, "kind", r->cfg->kind ? r->cfg->kind : "sft",
      "step", (json_int_t)step, "total_steps", (json_int_t)r->total_steps,
      "loss", isfinite(loss) ? loss : 0.0, "data", fingerprint(r), "optim",
      "lr", r->cfg->sched.lr, "min_lr", r->cfg->sched.min_lr, "beta1",
      r->cfg->adamw.beta1, "beta2", r->cfg->adamw.beta2, "eps",
      r->cfg->adamw.eps, "weight_decay", r->cfg->adamw.weight_decay, "clip",
      r->cfg->clip);
  if (!o) return NULL;
  char *s =
      json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
  json_decref(o);
  return s;
}

/* The device's AdamW moments to the host optimizer (to_host) or back, tensor
 * by tensor through flat buffers in the train model's layout. */
static int sync_moments(run *r, int to_host, r1d_error *err) {
  size_t nf = r->tm->n_floats;
  float *m = calloc(nf, sizeof(float)), *v = calloc(nf, sizeof(float));
  int rc = m && v ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0 && to_host) rc = r1d_dtrain_download_moments(r->dev, m, v, err);
  for (int i = 0; rc == 0 && i < r->tm->n_tensors; i++) {
    const r1d_train_tensor *t = &r->tm->tensors[i];
    float *om, *ov;
    if (r1d_optim_tensor_state(r->opt, (size_t)i, &om, &ov)) {
      rc = r1d_fail(err, R1D_EINVAL, "optimizer: tensor %d missing", i);
      break;
    }
    size_t bytes = t->n * sizeof(float);
    memcpy(to_host ? om : m + t->offset, to_host ? m + t->offset : om, bytes);
    memcpy(to_host ? ov : v + t->offset, to_host ? v + t->offset : ov, bytes);
  }
  if (rc == 0 && !to_host) rc = r1d_dtrain_upload_moments(r->dev, m, v, err);
  free(m);
  free(v);
  return rc;
}

/* Reads dir/trainer_state.json and dir/optimizer.bin into r; *step gets the
 * step the checkpoint was taken after. */
static int resume_from(run *r, const char *dir, long *step, r1d_error *err) {
  char *path = r1d_path_join(dir, "trainer_state.json");
  if (!path) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  json_error_t jerr;
  json_t *st = json_load_file(path, 0, &jerr);
  int rc = 0;
  if (!st) {
    rc = r1d_fail(err, R1D_EINVAL, "resume: %s: %s", path, jerr.text);
    free(path);
    return rc;
  }
  json_int_t s = -1;
  json_t *data = NULL;
  if (json_unpack(st, "{s:I, s:o}", "step", &s, "data", &data) != 0 || s < 0) {
    rc = r1d_fail(err, R1D_EINVAL, "resume: %s has no step or data", path);
  } else {
    /* the same data and packing, or "the same packs from step s" is false */
    json_t *want = fingerprint(r);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v) {
      json_t *had = json_object_get(data, key);
      if (!had || !json_equal(had, v)) {
        rc = r1d_fail(err, R1D_EINVAL,
                      "resume: %s differs from the checkpoint's (%s: now "
                      "%lld, then %lld); resume needs the same data, "
                      "--max-tokens, --grad-accum and --seed",
                      key, key, (long long)json_integer_value(v),
                      (long long)json_integer_value(had));
        break;
      }
    }
    json_decref(want);
  }
  json_decref(st);
  free(path);
  if (rc) return rc;

  path = r1d_path_join(dir, "optimizer.bin");
  char *bytes = NULL;
  size_t len = 0;
  rc = path ? r1d_read_file(path, &bytes, &len, err)
            : r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0) rc = r1d_optim_state_load(r->opt, bytes, len, err);
  if (rc == 0 && r->dev) rc = sync_moments(r, 0, err);
  if (rc) rc = r1d_fail(err, rc, "resume: %s: %s", path, err->msg);
  free(bytes);
  free(path);
  *step = (long)s;
  return rc;
}

/* ---- checkpoints ------------------------------------------------------ */

int r1d_sft_last_checkpoint(const char *out_dir, char *path, size_t cap,
                            r1d_error *err) {
  char link[4096];
  snprintf(link, sizeof link, "%s/last", out_dir);
  char *real = realpath(link, NULL);
  if (!real)
    return r1d_fail(err, R1D_ENOTFOUND, "%s: no checkpoint to resume from",
                    link);
  snprintf(path, cap, "%s", real);
  free(real);
  return 0;
}

static long checkpoint_step(const char *name) {
  if (strncmp(name, "checkpoint-", 11) != 0) return -1;
  char *end;
  long s = strtol(name + 11, &end, 10);
  return *end == 0 && end != name + 11 ? s : -1;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

/* Keeps the newest `limit` checkpoint-N folders. */
static void prune_checkpoints(const char *out_dir, int limit) {
  if (limit <= 0) return;
  DIR *d = opendir(out_dir);
  if (!d) return;
  long steps[4096];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 4096) {
    long s = checkpoint_step(e->d_name);
    if (s >= 0) steps[n++] = s;
  }
  closedir(d);
  qsort(steps, (size_t)n, sizeof steps[0], cmp_long);
  for (int i = 0; i + limit < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint-%ld", out_dir, steps[i]);
    r1d_checkpoint_remove(path);
  }
}

static int save(run *r, long step, double loss, const r1d_sft_hooks *hooks,
                r1d_error *err) {
  const r1d_sft_config *c = r->cfg;
  char dir[4096], name[64];
  int rc =
      r1d_checkpoint_step_dir(c->out_dir, step, dir, sizeof dir, name, err);
  if (rc) return rc;
  char *state = state_json(r, step, loss);
  size_t opt_len = r1d_optim_state_bytes(r->opt);
  void *opt = malloc(opt_len);
  rc = state && opt ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0 && r->dev) /* the device holds the truth: bring it home */
    rc = r1d_dtrain_download_params(r->dev, r->tm->params, err);
  if (rc == 0 && r->dev) rc = sync_moments(r, 1, err);
  if (rc == 0) rc = r1d_optim_state_save(r->opt, opt, opt_len, err);
  if (rc == 0) {
    r1d_checkpoint_file extra[2] = {
        {"trainer_state.json", state, strlen(state)},
        {"optimizer.bin", opt, opt_len}};
    rc = r1d_checkpoint_write_extra(c->src_dir, &r->tm->cfg, &r->tm->param,
                                    c->save_bf16, extra, 2, dir, err);
  }
  free(state);
  free(opt);
  if (rc) {
    if (r->last_good[0])
      return r1d_fail(err, rc, "step %ld: %s; the checkpoint %s is intact",
                      step, err->msg, r->last_good);
    return rc;
  }
  if ((rc = r1d_checkpoint_link_last(c->out_dir, name, err))) return rc;
  snprintf(r->last_good, sizeof r->last_good, "%s", dir);
  prune_checkpoints(c->out_dir, c->save_limit);
  if (hooks && hooks->on_checkpoint)
    hooks->on_checkpoint(hooks->user, dir, step, loss);
  return 0;
}

/* ---- eval ------------------------------------------------------------- */

/* Mean loss over every counted target of the eval packs. */
static int evaluate(run *r, double *loss, long *counted, r1d_error *err) {
  double sum = 0.0;
  long total = 0;
  for (size_t p = 0; p < r->eval_packs.n_packs; p++) {
    const r1d_pack *pk = &r->eval_packs.packs[p];
    int n = load_pack(r, r->eval, &r->eval_packs, p);
    float l = 0.0f;
    int rc = r->dev
                 ? r1d_dtrain_forward_loss(r->dev, r->ids, r->targets, n,
                                           r->doc_lens, pk->n_docs, &l, err)
                 : r1d_train_forward_docs(r->tm, r->plan, r->ids, r->targets, n,
                                          r->doc_lens, pk->n_docs, &l, err);
    if (rc) return rc;
    sum += (double)l * pk->n_counted;
    total += pk->n_counted;
  }
  *loss = total ? sum / (double)total : NAN;
  *counted = total;
  return 0;
}

/* ---- the run ---------------------------------------------------------- */

static void run_free(run *r) {
  r1d_packing_free(&r->packs);
  r1d_packing_free(&r->eval_packs);
  r1d_optim_destroy(r->opt);
  r1d_train_plan_free(r->plan);
  r1d_dtrain_free(r->dev);
  free(r->targets);
  free(r->ids);
  free(r->doc_lens);
  free(r->order);
}

static int check_config(const r1d_sft_config *c, r1d_error *err) {
  if (!c->src_dir || !c->out_dir)
    return r1d_fail(err, R1D_EINVAL, "training: need a model and --out");
  if (c->max_tokens < 2 || c->grad_accum < 1)
    return r1d_fail(
        err, R1D_EINVAL,
        "training: --max-tokens must be >= 2 and --grad-accum >= 1");
  if (c->max_steps < 0 || (c->max_steps == 0 && !(c->epochs > 0.0)))
    return r1d_fail(err, R1D_EINVAL,
                    "training: need --epochs > 0 or --max-steps > 0");
  if (c->clip < 0.0 || !isfinite(c->clip))
    return r1d_fail(err, R1D_EINVAL, "training: --clip must be >= 0");
  if (c->warmup_ratio < 0.0 || c->warmup_ratio >= 1.0)
    return r1d_fail(err, R1D_EINVAL,
                    "training: --warmup-ratio must be in [0, 1)");
  return r1d_adamw_config_check(&c->adamw, err);
}

static int setup(run *r, r1d_error *err) {
  const r1d_sft_config *c = r->cfg;
  int rc = r1d_pack_documents(r->train, c->max_tokens, &r->packs, err);
  if (rc) return rc;
  if (r->eval && r->eval->n_docs) {
    rc = r1d_pack_documents(r->eval, c->max_tokens, &r->eval_packs, err);
    if (rc) return rc;
  }
  long packs = (long)r->packs.n_packs;
  r->total_steps =
      c->max_steps > 0
          ? c->max_steps
          : (long)ceil(c->epochs * (double)packs / (double)c->grad_accum);
  if (r->total_steps < 1) r->total_steps = 1;
  size_t mt = (size_t)c->max_tokens;
  r->targets = malloc(mt * sizeof(int32_t));
  r->ids = malloc(mt * sizeof(int32_t));
  r->doc_lens = malloc(mt * sizeof(int));
  r->order = malloc(r->packs.n_packs * sizeof(size_t));
  if (!r->targets || !r->ids || !r->doc_lens || !r->order)
    return r1d_fail(err, R1D_ENOMEM, "training: out of memory");
  r->order_epoch = -1;
  rc = c->device
           ? r1d_dtrain_create(c->device, r->tm, c->max_tokens, &r->dev, err)
           : r1d_train_plan_create(r->tm, c->max_tokens, c->recompute, &r->plan,
                                   err);
  if (rc) return rc;
  r1d_optim_tensor *tensors = NULL;
  size_t n_tensors = 0;
  rc = r1d_train_optim_tensors(r->tm, &tensors, &n_tensors, err);
  if (rc == 0)
    rc = r1d_optim_create(&c->adamw, tensors, n_tensors, &r->opt, err);
  free(tensors);
  return rc;
}

static int stopped_msg(run *r, long step, const char *what, double value,
                       r1d_error *err) {
  if (r->last_good[0])
    return r1d_fail(err, R1D_ERANGE,
                    "step %ld: %s is %g; stopped without applying it. The "
                    "last good checkpoint is %s",
                    step, what, value, r->last_good);
  return r1d_fail(err, R1D_ERANGE,
                  "step %ld: %s is %g; stopped without applying it (no "
                  "checkpoint was written yet; lower --lr or check the data)",
                  step, what, value);
}

/* One optimizer step: grad_accum packs from run-wide pack number g0. */
static int train_step(run *r, long step, double *loss_out, double *norm_out,
                      long *tokens_out, long *counted_out, r1d_error *err) {
  const r1d_sft_config *c = r->cfg;
  long g0 = step * c->grad_accum;
  long counted = 0, tokens = 0;
  for (int j = 0; j < c->grad_accum; j++)
    counted += r->packs.packs[pack_at(r, g0 + j)].n_counted;
  if (r->dev)
    r1d_dtrain_zero_grad(r->dev);
  else
    r1d_train_zero_grad(r->tm);
  double loss = 0.0;
  for (int j = 0; j < c->grad_accum; j++) {
    size_t p = pack_at(r, g0 + j);
    const r1d_pack *pk = &r->packs.packs[p];
    int n = load_pack(r, r->train, &r->packs, p);
    float l = 0.0f;
    float share = (float)pk->n_counted / (float)counted;
    int rc;
    if (r->dev) { /* the loss comes with the backward: checked after it */
      rc = r1d_dtrain_forward_backward(r->dev, r->ids, r->targets, n,
                                       r->doc_lens, pk->n_docs, share, &l, err);
      if (rc) return rc;
      if (!isfinite(l)) return stopped_msg(r, step + 1, "the loss", l, err);
    } else {
      rc = r1d_train_forward_docs(r->tm, r->plan, r->ids, r->targets, n,
                                  r->doc_lens, pk->n_docs, &l, err);
      if (rc) return rc;
      if (!isfinite(l)) return stopped_msg(r, step + 1, "the loss", l, err);
      rc = r1d_train_backward(r->tm, r->plan, share, err);
      if (rc) return rc;
    }
    loss += (double)l * pk->n_counted / (double)counted;
    tokens += n;
  }
  double norm = NAN;
  double lr = r1d_lr_at(&c->sched, step);
  int rc = 0;
  if (r->dev) {
    rc = r1d_dtrain_grad_norm(r->dev, &norm, err);
    if (rc) return rc;
    if (!isfinite(norm))
      return stopped_msg(r, step + 1, "the gradient norm", norm, err);
    if (c->clip > 0.0)
      rc = r1d_dtrain_clip_grad_norm(r->dev, c->clip, &norm, err);
    long t = r1d_optim_step_count(r->opt) + 1;
    r1d_adamw_step as = {.lr = lr,
                         .beta1 = c->adamw.beta1,
                         .beta2 = c->adamw.beta2,
                         .eps = c->adamw.eps,
                         .weight_decay = c->adamw.weight_decay,
                         .step = t};
    if (rc == 0) rc = r1d_dtrain_adamw(r->dev, &as, err);
    if (rc == 0) rc = r1d_optim_set_step(r->opt, t, err);
  } else {
    norm = r1d_optim_grad_norm(r->opt);
    if (!isfinite(norm))
      return stopped_msg(r, step + 1, "the gradient norm", norm, err);
    if (c->clip > 0.0)
      rc = r1d_optim_clip_grad_norm(r->opt, c->clip, &norm, err);
    if (rc == 0) rc = r1d_optim_step(r->opt, lr, err);
  }
  if (rc) return rc;
  *loss_out = loss;
  *norm_out = norm;
  *tokens_out = tokens;
  *counted_out = counted;
  return 0;
}

int r1d_sft_run(const r1d_sft_config *cfg, r1d_train_model *tm,
                const r1d_dataset *train, const r1d_dataset *eval,
                const r1d_sft_hooks *hooks, long *final_step, r1d_error *err) {
  if (final_step) *final_step = 0;
  int rc = check_config(cfg, err);
  if (rc) return rc;
  if (!train || train->n_docs == 0)
    return r1d_fail(err, R1D_EINVAL, "training: no training documents");
  r1d_sft_config c = *cfg;
  run r = {.cfg = &c, .tm = tm, .train = train, .eval = eval};
  rc = setup(&r, err);
  if (rc) goto done;
  c.sched.total_steps = r.total_steps;
  if (c.warmup_ratio > 0.0)
    c.sched.warmup_steps = (long)ceil(c.warmup_ratio * (double)r.total_steps);
  if (c.sched.warmup_steps > r.total_steps)
    c.sched.warmup_steps = r.total_steps;
  rc = r1d_lr_schedule_check(&c.sched, err);
  if (rc) goto done;
  rc = r1d_mkdir_p(c.out_dir, err);
  if (rc) goto done;

  long step = 0;
  if (c.resume_dir) {
    rc = resume_from(&r, c.resume_dir, &step, err);
    if (rc) goto done;
    snprintf(r.last_good, sizeof r.last_good, "%s", c.resume_dir);
  }
  double t0 = now_s(), last_loss = NAN;
  long run_tokens = 0, first_step = step, saved_step = step;
  while (step < r.total_steps) {
    double loss = NAN, norm = NAN;
    long tokens = 0, counted = 0;
    rc = train_step(&r, step, &loss, &norm, &tokens, &counted, err);
    if (rc) goto done;
    step++;
    last_loss = loss;
    run_tokens += tokens;
    if (final_step) *final_step = step;
    double el = now_s() - t0;
    r1d_sft_metrics m = {
        .step = step,
        .total_steps = r.total_steps,
        .epoch = (double)(step * c.grad_accum) / (double)r.packs.n_packs,
        .loss = loss,
        .lr = r1d_lr_at(&c.sched, step - 1),
        .grad_norm = norm,
        .tokens = tokens,
        .counted = counted,
        .elapsed_s = el,
        .tokens_per_s = el > 0 ? (double)run_tokens / el : 0.0,
        .eta_s =
            el / (double)(step - first_step) * (double)(r.total_steps - step)};
    if (hooks && hooks->on_metrics) hooks->on_metrics(hooks->user, &m);
    int stop = hooks && hooks->stop && *hooks->stop;
    int last = step == r.total_steps || stop;
    if (r.eval_packs.n_packs &&
        (last || (c.eval_every > 0 && step % c.eval_every == 0))) {
      double el_loss;
      long el_count;
      rc = evaluate(&r, &el_loss, &el_count, err);
      if (rc) goto done;
      r1d_sft_metrics e = m;
      e.is_eval = 1;
      e.loss = el_loss;
      e.eval_tokens = el_count;
      if (hooks && hooks->on_metrics) hooks->on_metrics(hooks->user, &e);
    }
    if (last || (c.save_every > 0 && step % c.save_every == 0)) {
      rc = save(&r, step, loss, hooks, err);
      if (rc) goto done;
      saved_step = step;
    }
    if (stop) break;
  }
  if (saved_step != step) rc = save(&r, step, last_loss, hooks, err);
done:
  run_free(&r);
  return rc;
}
