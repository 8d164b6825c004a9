/* db.h - r1d's durable state: one LMDB environment in the data dir
 * (DATA_DIR/db/data.mdb), opened once per process with MDB_NOTLS so short
 * read transactions may run on any thread. One writer at a time (LMDB's
 * rule); every write goes through r1d_db_write, which grows the map when it
 * fills, up to a cap, and otherwise fails with R1D_EFULL.
 *
 * Key schema (all integers big-endian, so byte order is numeric order):
 *   time key  = 8 bytes: (milliseconds since the Unix epoch << 16) | seq,
 *               seq counting up within one millisecond (r1d_keygen).
 *   interactions  time key                -> JSON record (interactions.h)
 *   tasks         time key (insertion)    -> JSON task (tasks.h)
 *   task_ids      task id string          -> its 8-byte time key in tasks
 *   feedback      interaction key | time key (16 bytes) -> JSON feedback
 *   rollouts      time key                -> JSON rollout (trainer)
 *   jobs          time key                -> JSON training job (trainer)
 *   checkpoints   time key                -> JSON {version, path, sha256, ...}
 *   meta          ASCII name              -> JSON value ("schema_version": 1)
 * Values are JSON text without a trailing NUL, so `mdb_dump -p` and humans
 * read them. Feedback keys start with the interaction's key: one prefix
 * scan finds an answer's ratings, and pruning an interaction takes its
 * feedback with it. task_ids is an index (not in the first design notes):
 * tasks are listed in insertion order but deleted and de-duplicated by id. */
#ifndef R1D_STORAGE_DB_H
#define R1D_STORAGE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"

typedef enum r1d_table {
  R1D_T_INTERACTIONS,
  R1D_T_TASKS,
  R1D_T_TASK_IDS,
  R1D_T_FEEDBACK,
  R1D_T_ROLLOUTS,
  R1D_T_JOBS,
  R1D_T_CHECKPOINTS,
  R1D_T_META,
  R1D_T_COUNT
} r1d_table;

/* The table's name in LMDB ("interactions", ...). */
const char *r1d_table_name(r1d_table t);

enum { R1D_DB_SCHEMA_VERSION = 1, R1D_KEY_BYTES = 8 };

typedef struct r1d_db_options {
  size_t map_size; /* initial map size; 0: 64 MiB */
  size_t map_max;  /* growth cap; 0: 16 GiB. Below map_size: map_size */
  int read_only;   /* CLI readers: no writes, no migration */
  int no_sync;     /* tests only: commits skip fsync (not durable) */
} r1d_db_options;

typedef struct r1d_db r1d_db;
typedef struct r1d_txn r1d_txn; /* an LMDB transaction, read or write */

/* Opens (creating when missing, unless read_only) DIR/db, checks the
 * schema version and runs the migrations from the stored one. A database
 * from a newer r1d is refused with R1D_EUNSUPPORTED. */
int r1d_db_open(const char *dir, const r1d_db_options *o, r1d_db **out,
                r1d_error *err);
void r1d_db_close(r1d_db *db);

/* ---- time keys ---- */

typedef struct r1d_keygen {
  uint64_t last; /* the last key handed out */
} r1d_keygen;

uint64_t r1d_now_ms(void); /* wall clock, ms since the epoch */
/* A key above every earlier one from this generator: (now_ms << 16) or,
 * when the clock stood still or went back, last + 1. */
uint64_t r1d_keygen_next(r1d_keygen *g, uint64_t now_ms);
void r1d_key_encode(uint64_t key, uint8_t out[R1D_KEY_BYTES]);
uint64_t r1d_key_decode(const uint8_t in[R1D_KEY_BYTES]);
static inline uint64_t r1d_key_ms(uint64_t key) {
  return key >> 16;
}

/* ---- transactions ----
 * r1d_db_write runs fn in a write transaction and commits it. fn may run
 * more than once: when the map fills, the transaction is aborted, the map
 * grown and fn called again, so fn must only read its inputs and write
 * through t. fn's non-zero return aborts everything and is returned.
 * r1d_db_read runs fn in a read transaction (no retries). */
typedef int (*r1d_txn_fn)(r1d_txn *t, void *arg, r1d_error *err);
int r1d_db_write(r1d_db *db, r1d_txn_fn fn, void *arg, r1d_error *err);
int r1d_db_read(r1d_db *db, r1d_txn_fn fn, void *arg, r1d_error *err);

/* A nested write transaction inside t: fn's changes are kept when it
 * returns 0 and dropped otherwise, without aborting t (one bad item of a
 * batch loses only itself). R1D_EFULL from fn still aborts the whole t. */
int r1d_txn_nested(r1d_txn *t, r1d_txn_fn fn, void *arg, r1d_error *err);

enum { R1D_PUT_NOOVERWRITE = 1 };
/* R1D_EEXIST with R1D_PUT_NOOVERWRITE when the key is there; R1D_EFULL
 * when the map is full (r1d_db_write then grows it and retries). */
int r1d_txn_put(r1d_txn *t, r1d_table tb, const void *key, size_t klen,
                const void *val, size_t vlen, int flags, r1d_error *err);
/* *val points into the map, valid until the transaction ends.
 * R1D_ENOTFOUND when absent (err untouched). */
int r1d_txn_get(r1d_txn *t, r1d_table tb, const void *key, size_t klen,
                const void **val, size_t *vlen, r1d_error *err);
/* R1D_ENOTFOUND when absent. */
int r1d_txn_del(r1d_txn *t, r1d_table tb, const void *key, size_t klen,
                r1d_error *err);

/* Calls fn for each entry with key >= from (from NULL: the first), in key
 * order, or (reverse) for each entry with key <= from going down. fn
 * returns 0 to go on, 1 to stop (r1d_txn_scan then returns 0), or an error,
 * which stops and is returned. */
typedef int (*r1d_scan_fn)(void *arg, const void *key, size_t klen,
                           const void *val, size_t vlen);
int r1d_txn_scan(r1d_txn *t, r1d_table tb, const void *from, size_t flen,
                 int reverse, r1d_scan_fn fn, void *arg, r1d_error *err);

/* The largest 8-byte key of a time-keyed table, 0 when it is empty. */
int r1d_txn_last_key(r1d_txn *t, r1d_table tb, uint64_t *key, r1d_error *err);
/* A fresh time key for tb inside a write transaction: above both the
 * table's last key and now, so several processes writing one table (the
 * server and `r1d tasks import`) never collide. */
int r1d_txn_next_key(r1d_txn *t, r1d_table tb, uint64_t *key, r1d_error *err);
size_t r1d_txn_entries(r1d_txn *t, r1d_table tb);

/* ---- meta and migrations ---- */

/* Reads meta's integer `name`; R1D_ENOTFOUND when absent. */
int r1d_txn_meta_get_int(r1d_txn *t, const char *name, long long *v,
                         r1d_error *err);
int r1d_txn_meta_set_int(r1d_txn *t, const char *name, long long v,
                         r1d_error *err);

/* One schema step: migrates a database at version `from` to from + 1. */
typedef struct r1d_db_migration {
  int from;
  const char *what;
  r1d_txn_fn apply;
} r1d_db_migration;

/* Runs the steps from the stored schema version up to `to` in one write
 * transaction, stamping each version as it goes (exposed for tests; open
 * uses the built-in list). A fresh database is stamped `to` directly. */
int r1d_db_migrate(r1d_db *db, const r1d_db_migration *steps, size_t n, int to,
                   r1d_error *err);

/* ---- size, health, retention ---- */

typedef struct r1d_db_stats {
  size_t map_size, map_max; /* current map and its cap */
  size_t file_bytes;        /* pages written so far (high-water mark) */
  size_t data_bytes;        /* pages holding data now, over all tables */
  size_t page_size;
  size_t entries[R1D_T_COUNT];
  size_t bytes[R1D_T_COUNT]; /* pages of each table */
  int schema_version;
  int full; /* the last write failed with R1D_EFULL */
  uint64_t write_errors;
  char last_error[512];
} r1d_db_stats;

int r1d_db_stat(r1d_db *db, r1d_db_stats *out, r1d_error *err);
const char *r1d_db_dir(const r1d_db *db);

/* The last write's outcome, for /health: 1 and the message when storage is
 * failing (full or I/O), 0 when the last write went through. */
int r1d_db_failing(r1d_db *db, char *msg, size_t n);

typedef struct r1d_retention {
  double max_age_s; /* interactions older than this go; 0: keep */
  size_t max_bytes; /* while data_bytes exceed this, the oldest go; 0: no cap */
} r1d_retention;

/* Deletes interactions (with their feedback), oldest first, older than
 * max_age_s and then while data_bytes > max_bytes. Tasks are never pruned.
 * *pruned (may be NULL) gets the count. Runs in short write transactions. */
int r1d_db_prune(r1d_db *db, const r1d_retention *r, size_t *pruned,
                 r1d_error *err);

#endif
