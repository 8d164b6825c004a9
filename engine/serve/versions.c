/* versions.c - weight versions side by side and the flip between them
 * (versions.h). One mutex guards the list, the live and previous pointers
 * and every reference count; models and engines are created and destroyed
 * outside it, so a slow load never blocks acquire (the hot path of every
 * API request). */
#include "versions.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct r1d_version {
  uint64_t id;
  char source[1024];
  r1d_version_state state;
  int refs; /* the set's own (live or previous) + holders */
  r1d_model *model;
  r1d_engine *engine;
  double loaded_at;
  r1d_version *next;
};

struct r1d_versions {
  pthread_mutex_t mu;
  r1d_version *all; /* newest first */
  r1d_version *live, *previous;
  uint64_t next_id;
  r1d_backend load_be, be;
  const r1d_tokenizer *tok;
  r1d_engine_config ec;
  /* counters of engines already freed, so sums never go back */
  r1d_engine_stats gone;
  uint64_t swaps;
  double swap_seconds;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *r1d_version_state_name(r1d_version_state s) {
  switch (s) {
  case R1D_VERSION_STAGED: return "staged";
  case R1D_VERSION_LIVE: return "live";
  case R1D_VERSION_PREVIOUS: return "previous";
  case R1D_VERSION_RETIRED: return "retired";
  }
  return "?";
}

/* A new version of m (owned), with its engine; not in the list yet. */
static int version_new(r1d_versions *vs, r1d_model *m, const char *source,
                       uint64_t id, r1d_version **out, r1d_error *err) {
  r1d_version *v = calloc(1, sizeof *v);
  if (!v) {
    r1d_model_free(m);
    return r1d_fail(err, R1D_ENOMEM, "versions: out of memory");
  }
  v->id = id;
  v->model = m;
  snprintf(v->source, sizeof v->source, "%s", source ? source : "");
  r1d_engine_config ec = vs->ec;
  ec.weight_version = id;
  int rc = r1d_engine_create(m, &vs->be, vs->tok, &ec, &v->engine, err);
  if (rc) {
    r1d_model_free(m);
    free(v);
    return rc;
  }
  v->loaded_at = now_s();
  *out = v;
  return R1D_OK;
}

/* dst's counters += src's (the fields that only grow). */
static void add_counters(r1d_engine_stats *dst, const r1d_engine_stats *src) {
  dst->prefix_hit_tokens += src->prefix_hit_tokens;
  dst->prefix_queries += src->prefix_queries;
  dst->preemptions += src->preemptions;
  dst->steps += src->steps;
  dst->prompt_tokens += src->prompt_tokens;
  dst->generated_tokens += src->generated_tokens;
  dst->runner_seconds += src->runner_seconds;
  dst->host_seconds += src->host_seconds;
  dst->cow_copies += src->cow_copies;
}

static void version_free(r1d_versions *vs, r1d_version *v) {
  r1d_engine_stats st;
  r1d_engine_wait_idle(v->engine);
  r1d_engine_stats_get(v->engine, &st);
  r1d_engine_destroy(v->engine);
  r1d_model_free(v->model);
  pthread_mutex_lock(&vs->mu);
  add_counters(&vs->gone, &st);
  pthread_mutex_unlock(&vs->mu);
  free(v);
}

int r1d_versions_create(r1d_model *first, const char *source,
                        const r1d_backend *load_be, const r1d_backend *run_be,
                        const r1d_tokenizer *tok, const r1d_engine_config *ec,
                        r1d_versions **out, r1d_error *err) {
  *out = NULL;
  r1d_versions *vs = calloc(1, sizeof *vs);
  if (!vs) {
    r1d_model_free(first);
    return r1d_fail(err, R1D_ENOMEM, "versions: out of memory");
  }
  vs->load_be = *load_be;
  vs->be = *run_be;
  vs->tok = tok;
  if (ec)
    vs->ec = *ec;
  else
    r1d_engine_config_default(&vs->ec);
  pthread_mutex_init(&vs->mu, NULL);
  r1d_version *v;
  int rc = version_new(vs, first, source, 1, &v, err);
  if (rc) {
    pthread_mutex_destroy(&vs->mu);
    free(vs);
    return rc;
  }
  /* every later engine gets the limits the first one resolved to */
  vs->ec = *r1d_engine_get_config(v->engine);
  v->state = R1D_VERSION_LIVE;
  v->refs = 1;
  vs->all = vs->live = v;
  vs->next_id = 2;
  *out = vs;
  return R1D_OK;
}

void r1d_versions_destroy(r1d_versions *vs) {
  if (!vs) return;
  r1d_version *v = vs->all;
  while (v) {
    r1d_version *next = v->next;
    r1d_engine_cancel_all(v->engine);
    version_free(vs, v);
    v = next;
  }
  pthread_mutex_destroy(&vs->mu);
  free(vs);
}

r1d_version *r1d_versions_acquire(r1d_versions *vs) {
  pthread_mutex_lock(&vs->mu);
  r1d_version *v = vs->live;
  v->refs++;
  pthread_mutex_unlock(&vs->mu);
  return v;
}

r1d_version *r1d_versions_acquire_id(r1d_versions *vs, uint64_t id) {
  pthread_mutex_lock(&vs->mu);
  r1d_version *v = id == 0 ? vs->live : NULL;
  for (r1d_version *it = vs->all; !v && it; it = it->next)
    if (it->id == id && it->state != R1D_VERSION_RETIRED) v = it;
  if (v) v->refs++;
  pthread_mutex_unlock(&vs->mu);
  return v;
}

void r1d_versions_release(r1d_versions *vs, r1d_version *v) {
  if (!v) return;
  pthread_mutex_lock(&vs->mu);
  v->refs--; /* freed by r1d_versions_reap, never here: this may run on
                an engine thread */
  pthread_mutex_unlock(&vs->mu);
}

r1d_engine *r1d_version_engine(const r1d_version *v) {
  return v->engine;
}

uint64_t r1d_version_id(const r1d_version *v) {
  return v->id;
}

const r1d_model *r1d_version_model(const r1d_version *v) {
  return v->model;
}

const char *r1d_version_source(const r1d_version *v) {
  return v->source;
}

/* The new weights must be servable in place of the live ones: the server's
 * tokenizer, template and limits were made for those shapes. */
static int check_fit(const r1d_config *a, const r1d_config *b, const char *dir,
                     r1d_error *err) {
  struct {
    const char *name;
    int live, next;
  } f[] = {
      {"vocab_size", a->vocab_size, b->vocab_size},
      {"hidden_size", a->hidden_size, b->hidden_size},
      {"intermediate_size", a->intermediate_size, b->intermediate_size},
      {"num_hidden_layers", a->num_layers, b->num_layers},
      {"num_attention_heads", a->num_heads, b->num_heads},
      {"num_key_value_heads", a->num_kv_heads, b->num_kv_heads},
      {"head_dim", a->head_dim, b->head_dim},
      {"qkv_bias (Qwen2 vs Llama)", a->qkv_bias, b->qkv_bias},
      {"tie_word_embeddings", a->tie_word_embeddings, b->tie_word_embeddings}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (f[i].live != f[i].next)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: %s is %d, the served model's is %d (a swap needs "
                      "the same shapes)",
                      dir, f[i].name, f[i].next, f[i].live);
  return R1D_OK;
}

int r1d_versions_stage(r1d_versions *vs, const char *dir, uint64_t *id,
                       r1d_error *err) {
  r1d_model *m = NULL;
  int rc = r1d_model_load(dir, &vs->load_be, &m, err);
  if (rc) return rc;
  pthread_mutex_lock(&vs->mu);
  const r1d_config live_cfg = vs->live->model->cfg;
  uint64_t new_id = vs->next_id++;
  pthread_mutex_unlock(&vs->mu);
  if ((rc = check_fit(&live_cfg, &m->cfg, dir, err))) {
    r1d_model_free(m);
    return rc;
  }
  r1d_version *v;
  if ((rc = version_new(vs, m, dir, new_id, &v, err))) return rc;
  pthread_mutex_lock(&vs->mu);
  v->state = R1D_VERSION_STAGED;
  v->refs = 1; /* the set's, until promoted or discarded */
  v->next = vs->all;
  vs->all = v;
  pthread_mutex_unlock(&vs->mu);
  *id = new_id;
  return R1D_OK;
}

/* Under mu: the set lets go of v (retired, freed when idle). */
static void retire_locked(r1d_version *v) {
  v->state = R1D_VERSION_RETIRED;
  v->refs--;
}

static void count_requests(r1d_version *v, int *n) {
  r1d_engine_stats st;
  r1d_engine_stats_get(v->engine, &st);
  *n = st.requests;
}

int r1d_versions_promote(r1d_versions *vs, uint64_t id, int abort,
                         r1d_swap_result *res, r1d_error *err) {
  double t0 = now_s();
  pthread_mutex_lock(&vs->mu);
  r1d_version *v = NULL;
  for (r1d_version *it = vs->all; it; it = it->next)
    if (it->id == id && it->state == R1D_VERSION_STAGED) v = it;
  if (!v) {
    pthread_mutex_unlock(&vs->mu);
    return r1d_fail(err, R1D_ENOTFOUND, "weight version %llu is not staged",
                    (unsigned long long)id);
  }
  r1d_version *old = vs->live;
  if (vs->previous) retire_locked(vs->previous);
  old->state = R1D_VERSION_PREVIOUS;
  vs->previous = old;
  v->state = R1D_VERSION_LIVE; /* keeps the staged reference as the set's */
  vs->live = v;
  old->refs++; /* held across the unlock for the counts below */
  double flip = now_s() - t0;
  vs->swaps++;
  vs->swap_seconds += flip;
  /* read under mu: once unlocked, later swaps may retire and free v */
  res->old_version = old->id;
  res->new_version = v->id;
  pthread_mutex_unlock(&vs->mu);
  res->flip_seconds = flip;
  res->aborted = abort ? r1d_engine_cancel_all(old->engine) : 0;
  count_requests(old, &res->in_flight);
  r1d_versions_release(vs, old);
  return R1D_OK;
}

void r1d_versions_discard(r1d_versions *vs, uint64_t id) {
  pthread_mutex_lock(&vs->mu);
  for (r1d_version *it = vs->all; it; it = it->next)
    if (it->id == id && it->state == R1D_VERSION_STAGED) retire_locked(it);
  pthread_mutex_unlock(&vs->mu);
  r1d_versions_reap(vs);
}

int r1d_versions_swap(r1d_versions *vs, const char *dir, int abort,
                      r1d_swap_result *res, r1d_error *err) {
  memset(res, 0, sizeof *res);
  double t0 = now_s();
  uint64_t id;
  int rc = r1d_versions_stage(vs, dir, &id, err);
  if (rc) return rc;
  double staged = now_s() - t0;
  rc = r1d_versions_promote(vs, id, abort, res, err);
  res->stage_seconds = staged;
  r1d_versions_reap(vs);
  return rc;
}

int r1d_versions_rollback(r1d_versions *vs, int abort, r1d_swap_result *res,
                          r1d_error *err) {
  memset(res, 0, sizeof *res);
  double t0 = now_s();
  pthread_mutex_lock(&vs->mu);
  r1d_version *back = vs->previous, *old = vs->live;
  if (!back) {
    pthread_mutex_unlock(&vs->mu);
    return r1d_fail(err, R1D_ENOTFOUND,
                    "no previous weight version to roll back to");
  }
  /* the set's reference on `back` moves from previous to live */
  back->state = R1D_VERSION_LIVE;
  vs->live = back;
  vs->previous = NULL;
  old->refs++; /* for the counts below */
  retire_locked(old);
  double flip = now_s() - t0;
  vs->swaps++;
  vs->swap_seconds += flip;
  /* read under mu: once unlocked, later swaps may retire and free back */
  res->old_version = old->id;
  res->new_version = back->id;
  pthread_mutex_unlock(&vs->mu);
  res->flip_seconds = flip;
  res->aborted = abort ? r1d_engine_cancel_all(old->engine) : 0;
  count_requests(old, &res->in_flight);
  r1d_versions_release(vs, old);
  r1d_versions_reap(vs);
  return R1D_OK;
}

void r1d_versions_wait_idle(r1d_versions *vs) {
  /* a snapshot of the engines, each held so none is freed meanwhile */
  for (;;) {
    r1d_version *busy = NULL;
    pthread_mutex_lock(&vs->mu);
    for (r1d_version *v = vs->all; v && !busy; v = v->next) {
      r1d_engine_stats st;
      r1d_engine_stats_get(v->engine, &st);
      if (st.requests > 0) busy = v;
    }
    if (busy) busy->refs++;
    pthread_mutex_unlock(&vs->mu);
    if (!busy) return;
    r1d_engine_wait_idle(busy->engine);
    r1d_versions_release(vs, busy);
  }
}

const r1d_engine_config *r1d_versions_engine_config(const r1d_versions *vs) {
  return &vs->ec;
}

int r1d_versions_reap(r1d_versions *vs) {
  int n = 0;
  for (;;) {
    r1d_version *v = NULL, *dead = NULL;
    pthread_mutex_lock(&vs->mu);
    for (r1d_version *it = vs->all; it && !v; it = it->next)
      if (it->state == R1D_VERSION_RETIRED && it->refs == 0) v = it;
    if (v) v->refs++; /* ours while it drains: no other reaper takes it */
    pthread_mutex_unlock(&vs->mu);
    if (!v) return n;
    /* It stays listed (and counted by r1d_versions_stats) until its engine
     * is idle; its final counters move to `gone` in the same critical
     * section that unlinks it, so the sums never dip. */
    r1d_engine_wait_idle(v->engine);
    pthread_mutex_lock(&vs->mu);
    if (--v->refs == 0) {
      for (r1d_version **pp = &vs->all; *pp; pp = &(*pp)->next)
        if (*pp == v) {
          *pp = v->next;
          break;
        }
      r1d_engine_stats st;
      r1d_engine_stats_get(v->engine, &st);
      add_counters(&vs->gone, &st);
      dead = v;
    }
    pthread_mutex_unlock(&vs->mu);
    if (!dead) continue; /* held again meanwhile: a later reap frees it */
    r1d_engine_destroy(dead->engine);
    r1d_model_free(dead->model);
    free(dead);
    n++;
  }
}

void r1d_versions_stats(r1d_versions *vs, r1d_engine_stats *st) {
  pthread_mutex_lock(&vs->mu);
  r1d_engine_stats_get(vs->live->engine, st);
  for (r1d_version *v = vs->all; v; v = v->next) {
    if (v == vs->live) continue;
    r1d_engine_stats o;
    r1d_engine_stats_get(v->engine, &o);
    st->running += o.running;
    st->waiting += o.waiting;
    st->requests += o.requests;
    add_counters(st, &o);
  }
  add_counters(st, &vs->gone);
  pthread_mutex_unlock(&vs->mu);
}

void r1d_versions_swap_totals(r1d_versions *vs, uint64_t *swaps,
                              double *seconds) {
  pthread_mutex_lock(&vs->mu);
  *swaps = vs->swaps;
  *seconds = vs->swap_seconds;
  pthread_mutex_unlock(&vs->mu);
}

int r1d_versions_list(r1d_versions *vs, r1d_version_info *out, int cap) {
  int n = 0;
  pthread_mutex_lock(&vs->mu);
  for (r1d_version *v = vs->all; v; v = v->next, n++) {
    if (n >= cap) continue;
    r1d_version_info *i = &out[n];
    r1d_engine_stats st;
    r1d_engine_stats_get(v->engine, &st);
    i->id = v->id;
    snprintf(i->source, sizeof i->source, "%s", v->source);
    i->state = v->state;
    int own = v->state == R1D_VERSION_RETIRED ? 0 : 1;
    i->holders = v->refs - own;
    i->requests = st.requests;
    i->loaded_at = v->loaded_at;
  }
  pthread_mutex_unlock(&vs->mu);
  return n;
}
