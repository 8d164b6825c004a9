/* writer.c - the group-commit thread (see writer.h). The queue is a
 * mutex-protected FIFO; the thread takes up to max_batch operations at a
 * time, so while one batch is being fsynced the next one gathers. */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct r1d_writer {
  r1d_db *db;
  r1d_writer_options opt;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  r1d_write_op *head, *tail;
  size_t queued;
  int stopping;
  r1d_writer_stats stats; /* under mu */
};

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct batch {
  r1d_write_op *ops;
} batch;

static int apply_batch(r1d_txn *t, void *arg, r1d_error *err) {
  batch *b = arg;
  for (r1d_write_op *op = b->ops; op; op = op->next) {
    memset(&op->err, 0, sizeof op->err);
    op->status = r1d_txn_nested(t, op->apply, op->arg, &op->err);
    if (op->status == R1D_EFULL) {
      /* the whole batch is retried once the map has grown */
      if (err) *err = op->err;
      return R1D_EFULL;
    }
  }
  return 0;
}

static int retention_on(const r1d_retention *r) {
  return r->max_age_s > 0 || r->max_bytes > 0;
}

static void prune(r1d_writer *w) {
  size_t n = 0;
  r1d_error err = {0};
  /* a failure (a delete needs free pages too) shows in the stats and in
   * the db's health; the next round tries again */
  int rc = r1d_db_prune(w->db, &w->opt.retention, &n, &err);
  pthread_mutex_lock(&w->mu);
  w->stats.pruned += n;
  if (rc) w->stats.prune_errors++;
  pthread_mutex_unlock(&w->mu);
}

static void run_batch(r1d_writer *w, r1d_write_op *ops, size_t n) {
  batch b = {ops};
  r1d_error err = {0};
  double t0 = mono_now();
  int rc = r1d_db_write(w->db, apply_batch, &b, &err);
  if (rc == R1D_EFULL && retention_on(&w->opt.retention)) {
    /* full at the cap: make room by the retention rules, then try again */
    prune(w);
    memset(&err, 0, sizeof err);
    rc = r1d_db_write(w->db, apply_batch, &b, &err);
  }
  double dt = mono_now() - t0;
  uint64_t failed = 0;
  for (r1d_write_op *op = ops; op; op = op->next) {
    if (rc) { /* nothing of the batch was committed */
      op->status = rc;
      op->err = err;
    }
    if (op->status) failed++;
  }
  pthread_mutex_lock(&w->mu);
  w->stats.ops += n;
  w->stats.ops_failed += failed;
  w->stats.batches++;
  w->stats.commit_seconds += dt;
  pthread_mutex_unlock(&w->mu);
  /* done may free op: read next first */
  for (r1d_write_op *op = ops, *next; op; op = next) {
    next = op->next;
    op->next = NULL;
    if (op->done) op->done(op);
  }
}

static void *writer_main(void *arg) {
  r1d_writer *w = arg;
  double next_prune = mono_now() + w->opt.prune_interval_s;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stopping) {
      if (retention_on(&w->opt.retention)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (mono_now() >= next_prune) break;
      } else {
        pthread_cond_wait(&w->cv, &w->mu);
      }
    }
    if (!w->head && w->stopping) break;
    r1d_write_op *ops = w->head, *last = ops;
    size_t n = ops ? 1 : 0;
    while (last && last->next && n < w->opt.max_batch) {
      last = last->next;
      n++;
    }
    if (ops) {
      w->head = last->next;
      if (!w->head) w->tail = NULL;
      last->next = NULL;
      w->queued -= n;
    }
    pthread_mutex_unlock(&w->mu);
    if (ops) run_batch(w, ops, n);
    if (retention_on(&w->opt.retention) && mono_now() >= next_prune) {
      prune(w);
      next_prune = mono_now() + w->opt.prune_interval_s;
    }
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int r1d_writer_start(r1d_db *db, const r1d_writer_options *o, r1d_writer **out,
                     r1d_error *err) {
  *out = NULL;
  r1d_writer *w = calloc(1, sizeof *w);
  if (!w) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  w->db = db;
  if (o) w->opt = *o;
  if (!w->opt.max_batch) w->opt.max_batch = 1024;
  if (w->opt.prune_interval_s <= 0) w->opt.prune_interval_s = 60;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if (pthread_create(&w->thread, NULL, writer_main, w)) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return r1d_fail(err, R1D_ENOMEM, "storage: cannot start the writer");
  }
  *out = w;
  return 0;
}

int r1d_writer_submit(r1d_writer *w, r1d_write_op *op) {
  op->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->stopping) {
    pthread_mutex_unlock(&w->mu);
    return R1D_ESTATE;
  }
  if (w->tail)
    w->tail->next = op;
  else
    w->head = op;
  w->tail = op;
  w->queued++;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

void r1d_writer_stop(r1d_writer *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

void r1d_writer_stats_get(r1d_writer *w, r1d_writer_stats *out) {
  pthread_mutex_lock(&w->mu);
  *out = w->stats;
  out->queued = w->queued;
  pthread_mutex_unlock(&w->mu);
}
