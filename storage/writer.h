/* writer.h - group commit: one thread owns a process's stream of small
 * writes (logged interactions, feedback, tasks added over HTTP). Callers
 * queue operations without blocking; the thread applies everything queued
 * in one write transaction, each operation nested so a bad one loses only
 * itself, commits (fsync), then tells each caller. An answer is durable
 * when its `done` has run with status 0, which is why the server releases
 * a response's last bytes only then (PITFALLS.md, "Durable means").
 * Retention (db.h) runs on this thread too, between batches. */
#ifndef R1D_STORAGE_WRITER_H
#define R1D_STORAGE_WRITER_H

#include <stdint.h>

#include "db.h"

typedef struct r1d_write_op r1d_write_op;
/* Runs on the writer thread after the batch's commit (or its failure); it
 * may free op. */
typedef void (*r1d_write_done_fn)(r1d_write_op *op);

struct r1d_write_op {
  r1d_write_op *next; /* the writer's queue */
  r1d_txn_fn apply;   /* runs nested in the batch; may run again (retry) */
  void *arg;          /* apply's argument */
  r1d_write_done_fn done;
  void *user;    /* the caller's */
  int status;    /* set before done: 0 or the R1D_E* code */
  r1d_error err; /* the message when status != 0 */
};

typedef struct r1d_writer_options {
  size_t max_batch;        /* operations per transaction; 0: 1024 */
  double prune_interval_s; /* retention checks; 0: every 60 s */
  r1d_retention retention; /* zero: keep everything */
} r1d_writer_options;

typedef struct r1d_writer_stats {
  uint64_t ops, ops_failed, batches;
  uint64_t pruned;       /* interactions removed by retention */
  uint64_t prune_errors; /* retention runs that failed */
  double commit_seconds; /* summed over batches */
  size_t queued;         /* waiting now */
} r1d_writer_stats;

typedef struct r1d_writer r1d_writer;

int r1d_writer_start(r1d_db *db, const r1d_writer_options *o, r1d_writer **out,
                     r1d_error *err);
/* Queues op (never blocks on the disk). R1D_ESTATE once stopping: op is
 * not queued and done is not called. */
int r1d_writer_submit(r1d_writer *w, r1d_write_op *op);
/* Commits everything queued, runs the dones, joins the thread, frees w. */
void r1d_writer_stop(r1d_writer *w);
void r1d_writer_stats_get(r1d_writer *w, r1d_writer_stats *out);

#endif
