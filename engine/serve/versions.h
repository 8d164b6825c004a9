/* versions.h - weight versions served side by side: the hot swap.
 *
 * Each version is a model with its own engine (thread, KV pool, prefix
 * cache). A swap loads the new weights and starts their engine BESIDE the
 * live one (staging, the slow part, done off the server's loop), then flips
 * which version new requests get (a pointer under a mutex, microseconds).
 * Requests in flight keep the version they pinned and finish on it; the old
 * version's prefix cache goes with its engine; a version neither live nor
 * the rollback target is freed once nothing holds it (r1d_versions_reap,
 * never from an engine thread, which could not join itself).
 *
 * The version swapped out stays loaded as the rollback target until the
 * next swap, so a rollback is a flip too. Abort-and-swap cancels the old
 * version's requests instead of letting them finish.
 *
 * Ownership: a holder (an API request, a trainer's rollout) takes a
 * reference with r1d_versions_acquire and gives it back with
 * r1d_versions_release; the set holds one on the live and the previous
 * version. Thread-safe: every function may be called from any thread,
 * except that r1d_versions_reap, r1d_versions_destroy and the three that
 * reap on their way out (swap, rollback, discard) must not run on an
 * engine thread (an engine's callback): they may wait for an engine to go
 * idle. */
#ifndef R1D_ENGINE_SERVE_VERSIONS_H
#define R1D_ENGINE_SERVE_VERSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"
#include "../model/model.h"
#include "engine.h"

typedef struct r1d_versions r1d_versions;
typedef struct r1d_version r1d_version;

typedef enum r1d_version_state {
  R1D_VERSION_STAGED = 0, /* loaded, not yet serving */
  R1D_VERSION_LIVE,       /* new requests go here */
  R1D_VERSION_PREVIOUS,   /* the rollback target, still loaded */
  R1D_VERSION_RETIRED,    /* freed once its last holder lets go */
} r1d_version_state;

/* What one version looks like from outside (a snapshot). */
typedef struct r1d_version_info {
  uint64_t id;
  char source[1024]; /* the folder it was loaded from */
  r1d_version_state state;
  int holders;      /* references besides the set's own */
  int requests;     /* unfinished requests in its engine */
  double loaded_at; /* monotonic seconds */
} r1d_version_info;

/* What a swap or rollback did. */
typedef struct r1d_swap_result {
  uint64_t old_version, new_version;
  int aborted;          /* requests cancelled (abort) */
  int in_flight;        /* requests left to finish on the old version */
  double stage_seconds; /* loading weights + starting the engine */
  double flip_seconds;  /* the flip itself */
} r1d_swap_result;

/* A set serving `first` (owned from here on, also on failure) as version
 * 1 through an engine made with ec on run_be; later versions are loaded
 * with load_be (the host backend models are read into) and run on run_be
 * (both copied; tok must outlive the set). source names where it came
 * from. */
int r1d_versions_create(r1d_model *first, const char *source,
                        const r1d_backend *load_be, const r1d_backend *run_be,
                        const r1d_tokenizer *tok, const r1d_engine_config *ec,
                        r1d_versions **out, r1d_error *err);
/* Cancels what every engine still runs, waits, frees all. */
void r1d_versions_destroy(r1d_versions *vs);

/* The live version with a reference the caller must release. Never NULL. */
r1d_version *r1d_versions_acquire(r1d_versions *vs);
/* Version `id` (0: the live one) with a reference, or NULL when it is not
 * loaded (retired versions are not handed out). */
r1d_version *r1d_versions_acquire_id(r1d_versions *vs, uint64_t id);
void r1d_versions_release(r1d_versions *vs, r1d_version *v);

r1d_engine *r1d_version_engine(const r1d_version *v);
uint64_t r1d_version_id(const r1d_version *v);
const r1d_model *r1d_version_model(const r1d_version *v);
/* The folder v was loaded from (its config and tokenizer files). */
const char *r1d_version_source(const r1d_version *v);

/* Loads the model folder dir onto the set's backend and starts its engine
 * as a staged version. The weights must fit the served model: same
 * architecture shapes and vocabulary (R1D_EINVAL naming the difference). */
int r1d_versions_stage(r1d_versions *vs, const char *dir, uint64_t *id,
                       r1d_error *err);
/* Makes staged version `id` live. The old live version becomes the
 * rollback target (the one before it is retired). abort: cancel the old
 * version's requests. R1D_ENOTFOUND when id is not staged. */
int r1d_versions_promote(r1d_versions *vs, uint64_t id, int abort,
                         r1d_swap_result *res, r1d_error *err);
/* Drops a staged version that will not be promoted. */
void r1d_versions_discard(r1d_versions *vs, uint64_t id);
/* stage + promote. */
int r1d_versions_swap(r1d_versions *vs, const char *dir, int abort,
                      r1d_swap_result *res, r1d_error *err);
/* Makes the rollback target live again; the version rolled back from is
 * retired. R1D_ENOTFOUND when there is none. */
int r1d_versions_rollback(r1d_versions *vs, int abort, r1d_swap_result *res,
                          r1d_error *err);

/* Blocks until no version's engine has a request left. */
void r1d_versions_wait_idle(r1d_versions *vs);

/* The first engine's resolved limits, which every version shares. */
const r1d_engine_config *r1d_versions_engine_config(const r1d_versions *vs);

/* Frees retired versions nobody holds any more; returns how many. */
int r1d_versions_reap(r1d_versions *vs);

/* Stats summed over every loaded engine plus the counters of engines
 * already freed (so counters never go back), with the live version's
 * weight_version, KV pool and failure state. */
void r1d_versions_stats(r1d_versions *vs, r1d_engine_stats *st);
/* Swaps done so far (promotions and rollbacks) and their total seconds. */
void r1d_versions_swap_totals(r1d_versions *vs, uint64_t *swaps,
                              double *seconds);

/* Snapshot of up to cap versions, newest first; returns how many exist. */
int r1d_versions_list(r1d_versions *vs, r1d_version_info *out, int cap);
const char *r1d_version_state_name(r1d_version_state s);

#endif
