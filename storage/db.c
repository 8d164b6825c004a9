/* db.c - the LMDB environment behind storage (see db.h for the key
 * schema): open and migrate, time keys, transactions that grow the map
 * when it fills, stats, and retention.
 *
 * Map growth: mdb_env_set_mapsize needs every transaction of this process
 * closed, so each transaction holds `resize` for reading and a grow takes
 * it for writing. Another process growing the map shows up here as
 * MDB_MAP_RESIZED, answered by adopting the new size the same way. */
#include "db.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/file.h"

struct r1d_db {
  MDB_env *env;
  MDB_dbi dbi[R1D_T_COUNT];
  char *dir;
  size_t map_size, map_max;
  int read_only;
  pthread_rwlock_t resize;
  /* health, written by whoever writes, read by /health */
  pthread_mutex_t health_mu;
  int failing, full;
  uint64_t write_errors;
  char last_error[512];
};

struct r1d_txn {
  r1d_db *db;
  MDB_txn *txn;
  int write;
  r1d_txn *root; /* the outermost transaction (itself when not nested) */
  int wrote;     /* root only: a put or delete was made */
};

static const char *const table_names[R1D_T_COUNT] = {
    "interactions", "tasks", "task_ids",    "feedback",
    "rollouts",     "jobs",  "checkpoints", "meta"};

const char *r1d_table_name(r1d_table t) {
  return t >= 0 && t < R1D_T_COUNT ? table_names[t] : "?";
}

static int lmdb_fail(r1d_error *err, int rc, const char *what) {
  int code = rc == MDB_MAP_FULL   ? R1D_EFULL
             : rc == ENOMEM       ? R1D_ENOMEM
             : rc == MDB_NOTFOUND ? R1D_ENOTFOUND
             : rc == MDB_KEYEXIST ? R1D_EEXIST
                                  : R1D_EIO;
  return r1d_fail(err, code, "storage: %s: %s", what, mdb_strerror(rc));
}

/* ---- time keys ---- */

uint64_t r1d_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t r1d_keygen_next(r1d_keygen *g, uint64_t now_ms) {
  uint64_t k = now_ms << 16;
  if (k <= g->last) k = g->last + 1;
  g->last = k;
  return k;
}

void r1d_key_encode(uint64_t key, uint8_t out[R1D_KEY_BYTES]) {
  for (int i = R1D_KEY_BYTES - 1; i >= 0; i--) {
    out[i] = (uint8_t)(key & 0xff);
    key >>= 8;
  }
}

uint64_t r1d_key_decode(const uint8_t in[R1D_KEY_BYTES]) {
  uint64_t k = 0;
  for (int i = 0; i < R1D_KEY_BYTES; i++)
    k = (k << 8) | in[i];
  return k;
}

/* ---- health ---- */

/* rc of a write transaction; wrote: it committed changes. Only a commit
 * that stored something clears a failure: a batch whose one write was
 * refused (feedback for an unknown id) says nothing about room. */
static void note_write(r1d_db *db, int rc, int wrote, const r1d_error *err) {
  pthread_mutex_lock(&db->health_mu);
  if (rc == 0) {
    if (wrote) db->failing = db->full = 0;
  } else if (rc == R1D_EFULL || rc == R1D_EIO || rc == R1D_ENOMEM) {
    /* the caller's own mistakes (a duplicate id) say nothing of storage */
    db->failing = 1;
    db->full = rc == R1D_EFULL;
    db->write_errors++;
    snprintf(db->last_error, sizeof db->last_error, "%s",
             err && err->msg[0] ? err->msg : r1d_strerror(rc));
  }
  pthread_mutex_unlock(&db->health_mu);
}

int r1d_db_failing(r1d_db *db, char *msg, size_t n) {
  pthread_mutex_lock(&db->health_mu);
  int f = db->failing;
  if (msg && n) snprintf(msg, n, "%s", f ? db->last_error : "");
  pthread_mutex_unlock(&db->health_mu);
  return f;
}

const char *r1d_db_dir(const r1d_db *db) {
  return db->dir;
}

/* ---- transactions ---- */

/* Adopts a map size another process set (MDB_MAP_RESIZED). */
static int adopt_map_size(r1d_db *db, r1d_error *err) {
  pthread_rwlock_wrlock(&db->resize);
  int rc = mdb_env_set_mapsize(db->env, 0);
  MDB_envinfo info;
  if (rc == 0 && mdb_env_info(db->env, &info) == 0)
    db->map_size = info.me_mapsize;
  pthread_rwlock_unlock(&db->resize);
  return rc ? lmdb_fail(err, rc, "adopting the new map size") : 0;
}

/* Doubles the map (up to the cap). R1D_EFULL when already at the cap. */
static int grow_map(r1d_db *db, r1d_error *err) {
  pthread_rwlock_wrlock(&db->resize);
  int rc = 0;
  if (db->map_size >= db->map_max) {
    rc = r1d_fail(err, R1D_EFULL,
                  "storage full: the LMDB map in %s is at its cap of %zu KiB "
                  "(raise --db-map-max or set a retention limit)",
                  db->dir, db->map_max >> 10);
  } else {
    size_t want = db->map_size * 2;
    if (want > db->map_max || want < db->map_size) want = db->map_max;
    int mrc = mdb_env_set_mapsize(db->env, want);
    if (mrc)
      rc = lmdb_fail(err, mrc, "growing the map");
    else
      db->map_size = want;
  }
  pthread_rwlock_unlock(&db->resize);
  return rc;
}

static int txn_begin(r1d_db *db, int write, r1d_txn *t, r1d_error *err) {
  t->db = db;
  t->write = write;
  t->txn = NULL;
  t->root = t;
  t->wrote = 0;
  for (int attempt = 0; attempt < 4; attempt++) {
    pthread_rwlock_rdlock(&db->resize);
    int rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc == 0) return 0;
    pthread_rwlock_unlock(&db->resize);
    if (rc != MDB_MAP_RESIZED)
      return lmdb_fail(err, rc, write ? "starting a write" : "starting a read");
    int arc = adopt_map_size(db, err);
    if (arc) return arc;
  }
  return r1d_fail(err, R1D_EIO, "storage: the map kept changing size");
}

static void txn_end(r1d_txn *t) {
  pthread_rwlock_unlock(&t->db->resize);
}

int r1d_db_write(r1d_db *db, r1d_txn_fn fn, void *arg, r1d_error *err) {
  if (db->read_only)
    return r1d_fail(err, R1D_ESTATE, "storage: %s is open read-only", db->dir);
  for (;;) {
    r1d_txn t;
    int rc = txn_begin(db, 1, &t, err);
    if (rc) {
      note_write(db, rc, 0, err);
      return rc;
    }
    rc = fn(&t, arg, err);
    if (rc == 0) {
      int crc = mdb_txn_commit(t.txn);
      txn_end(&t);
      if (crc == 0) {
        note_write(db, 0, t.wrote, NULL);
        return 0;
      }
      rc = lmdb_fail(err, crc, "commit");
    } else {
      mdb_txn_abort(t.txn);
      txn_end(&t);
    }
    if (rc != R1D_EFULL) {
      note_write(db, rc, 0, err);
      return rc;
    }
    r1d_error gerr = {0};
    int grc = grow_map(db, &gerr);
    if (grc) {
      if (err) *err = gerr;
      note_write(db, grc, 0, &gerr);
      return grc;
    }
  }
}

int r1d_db_read(r1d_db *db, r1d_txn_fn fn, void *arg, r1d_error *err) {
  r1d_txn t;
  int rc = txn_begin(db, 0, &t, err);
  if (rc) return rc;
  rc = fn(&t, arg, err);
  mdb_txn_abort(t.txn); /* read transactions end by abort */
  txn_end(&t);
  return rc;
}

int r1d_txn_nested(r1d_txn *t, r1d_txn_fn fn, void *arg, r1d_error *err) {
  if (!t->write)
    return r1d_fail(err, R1D_ESTATE, "storage: nested write in a read");
  r1d_txn child = {.db = t->db, .write = 1, .root = t->root};
  int rc = mdb_txn_begin(t->db->env, t->txn, 0, &child.txn);
  if (rc) return lmdb_fail(err, rc, "starting a nested write");
  rc = fn(&child, arg, err);
  if (rc == 0) {
    int crc = mdb_txn_commit(child.txn);
    return crc ? lmdb_fail(err, crc, "nested commit") : 0;
  }
  mdb_txn_abort(child.txn);
  return rc;
}

int r1d_txn_put(r1d_txn *t, r1d_table tb, const void *key, size_t klen,
                const void *val, size_t vlen, int flags, r1d_error *err) {
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  int rc = mdb_put(t->txn, t->db->dbi[tb], &k, &v,
                   (flags & R1D_PUT_NOOVERWRITE) ? MDB_NOOVERWRITE : 0);
  if (rc == 0) {
    t->root->wrote = 1;
    return 0;
  }
  char what[64];
  snprintf(what, sizeof what, "writing to %s", table_names[tb]);
  return lmdb_fail(err, rc, what);
}

int r1d_txn_get(r1d_txn *t, r1d_table tb, const void *key, size_t klen,
                const void **val, size_t *vlen, r1d_error *err) {
  MDB_val k = {klen, (void *)key}, v;
  int rc = mdb_get(t->txn, t->db->dbi[tb], &k, &v);
  if (rc == MDB_NOTFOUND) return R1D_ENOTFOUND;
  if (rc) return lmdb_fail(err, rc, "reading");
  *val = v.mv_data;
  *vlen = v.mv_size;
  return 0;
}

int r1d_txn_del(r1d_txn *t, r1d_table tb, const void *key, size_t klen,
                r1d_error *err) {
  MDB_val k = {klen, (void *)key};
  int rc = mdb_del(t->txn, t->db->dbi[tb], &k, NULL);
  if (rc == MDB_NOTFOUND) return R1D_ENOTFOUND;
  if (rc == 0) t->root->wrote = 1;
  return rc ? lmdb_fail(err, rc, "deleting") : 0;
}

int r1d_txn_scan(r1d_txn *t, r1d_table tb, const void *from, size_t flen,
                 int reverse, r1d_scan_fn fn, void *arg, r1d_error *err) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(t->txn, t->db->dbi[tb], &cur);
  if (rc) return lmdb_fail(err, rc, "opening a cursor");
  MDB_val k = {flen, (void *)from}, v;
  MDB_cursor_op first, step = reverse ? MDB_PREV : MDB_NEXT;
  if (!from)
    first = reverse ? MDB_LAST : MDB_FIRST;
  else
    first = MDB_SET_RANGE; /* the first key >= from */
  rc = mdb_cursor_get(cur, &k, &v, first);
  if (from && reverse) {
    /* going down from `from`: start at the last key <= from */
    if (rc == MDB_NOTFOUND)
      rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    else if (rc == 0 && (k.mv_size != flen || memcmp(k.mv_data, from, flen)))
      rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
  }
  int out = 0;
  while (rc == 0) {
    int r = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
    if (r) {
      out = r < 0 ? r : 0;
      break;
    }
    rc = mdb_cursor_get(cur, &k, &v, step);
  }
  mdb_cursor_close(cur);
  if (rc && rc != MDB_NOTFOUND && out == 0)
    return lmdb_fail(err, rc, "scanning");
  return out;
}

int r1d_txn_last_key(r1d_txn *t, r1d_table tb, uint64_t *key, r1d_error *err) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(t->txn, t->db->dbi[tb], &cur);
  if (rc) return lmdb_fail(err, rc, "opening a cursor");
  MDB_val k, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  *key = 0;
  if (rc == 0 && k.mv_size >= R1D_KEY_BYTES) *key = r1d_key_decode(k.mv_data);
  mdb_cursor_close(cur);
  if (rc && rc != MDB_NOTFOUND) return lmdb_fail(err, rc, "reading a key");
  return 0;
}

int r1d_txn_next_key(r1d_txn *t, r1d_table tb, uint64_t *key, r1d_error *err) {
  uint64_t last;
  int rc = r1d_txn_last_key(t, tb, &last, err);
  if (rc) return rc;
  r1d_keygen g = {.last = last};
  *key = r1d_keygen_next(&g, r1d_now_ms());
  return 0;
}

size_t r1d_txn_entries(r1d_txn *t, r1d_table tb) {
  MDB_stat st;
  if (mdb_stat(t->txn, t->db->dbi[tb], &st)) return 0;
  return st.ms_entries;
}

/* ---- meta ---- */

int r1d_txn_meta_get_int(r1d_txn *t, const char *name, long long *v,
                         r1d_error *err) {
  const void *p;
  size_t n;
  int rc = r1d_txn_get(t, R1D_T_META, name, strlen(name), &p, &n, err);
  if (rc) return rc;
  char buf[32];
  if (n == 0 || n >= sizeof buf)
    return r1d_fail(err, R1D_EFORMAT, "storage: meta %s is not a number", name);
  memcpy(buf, p, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  *v = strtoll(buf, &end, 10);
  if (errno || *end)
    return r1d_fail(err, R1D_EFORMAT, "storage: meta %s is not a number: %s",
                    name, buf);
  return 0;
}

int r1d_txn_meta_set_int(r1d_txn *t, const char *name, long long v,
                         r1d_error *err) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%lld", v);
  return r1d_txn_put(t, R1D_T_META, name, strlen(name), buf, (size_t)n, 0, err);
}

typedef struct migrate_arg {
  const r1d_db_migration *steps;
  size_t n;
  int to;
} migrate_arg;

static int migrate_txn(r1d_txn *t, void *arg, r1d_error *err) {
  migrate_arg *m = arg;
  long long v;
  int rc = r1d_txn_meta_get_int(t, "schema_version", &v, err);
  if (rc == R1D_ENOTFOUND) {
    /* empty tables and no version: a database made just now */
    for (int i = 0; i < R1D_T_COUNT; i++)
      if (i != R1D_T_META && r1d_txn_entries(t, (r1d_table)i))
        return r1d_fail(err, R1D_EFORMAT,
                        "storage: %s has data but no schema_version",
                        t->db->dir);
    if ((rc = r1d_txn_meta_set_int(t, "schema_version", m->to, err))) return rc;
    return r1d_txn_meta_set_int(t, "created_ms", (long long)r1d_now_ms(), err);
  }
  if (rc) return rc;
  if (v > m->to)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "storage: %s has schema version %lld, newer than this "
                    "r1d's %d; use a newer r1d",
                    t->db->dir, v, m->to);
  while (v < m->to) {
    const r1d_db_migration *step = NULL;
    for (size_t i = 0; i < m->n; i++)
      if (m->steps[i].from == v) step = &m->steps[i];
    if (!step)
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "storage: no migration from schema version %lld", v);
    if ((rc = step->apply(t, NULL, err))) return rc;
    v++;
    if ((rc = r1d_txn_meta_set_int(t, "schema_version", v, err))) return rc;
  }
  return 0;
}

int r1d_db_migrate(r1d_db *db, const r1d_db_migration *steps, size_t n, int to,
                   r1d_error *err) {
  migrate_arg m = {steps, n, to};
  return r1d_db_write(db, migrate_txn, &m, err);
}

/* The schema steps of released versions; empty while version 1 is the
 * only one. A step is added here, with a test, when a layout changes. */
static const r1d_db_migration builtin_migrations[1] = {{0, NULL, NULL}};
static const size_t n_builtin_migrations = 0;

static int check_version_txn(r1d_txn *t, void *arg, r1d_error *err) {
  (void)arg;
  long long v;
  int rc = r1d_txn_meta_get_int(t, "schema_version", &v, err);
  if (rc == R1D_ENOTFOUND)
    return r1d_fail(err, R1D_EFORMAT, "storage: %s has no schema_version",
                    t->db->dir);
  if (rc) return rc;
  if (v != R1D_DB_SCHEMA_VERSION)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "storage: %s has schema version %lld, this r1d reads %d "
                    "(open it read-write once to migrate)",
                    t->db->dir, v, R1D_DB_SCHEMA_VERSION);
  return 0;
}

/* ---- open / close ---- */

int r1d_db_open(const char *dir, const r1d_db_options *o, r1d_db **out,
                r1d_error *err) {
  *out = NULL;
  r1d_db_options def = {0};
  if (!o) o = &def;
  r1d_db *db = calloc(1, sizeof *db);
  if (!db) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  pthread_rwlock_init(&db->resize, NULL);
  pthread_mutex_init(&db->health_mu, NULL);
  db->read_only = o->read_only;
  db->map_size = o->map_size ? o->map_size : (size_t)64 << 20;
  db->map_max = o->map_max ? o->map_max : (size_t)16 << 30;
  if (db->map_max < db->map_size) db->map_max = db->map_size;
  int rc;
  db->dir = r1d_path_join(dir, "db");
  if (!db->dir) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto fail;
  }
  struct stat st;
  if (o->read_only) {
    if (stat(db->dir, &st) != 0) {
      rc = r1d_fail(err, R1D_ENOTFOUND,
                    "no database in %s (start r1d serve or import tasks "
                    "first)",
                    dir);
      goto fail;
    }
  } else if ((rc = r1d_mkdir_p(db->dir, err))) {
    goto fail;
  }
  int mrc = mdb_env_create(&db->env);
  if (mrc == 0) mrc = mdb_env_set_maxdbs(db->env, R1D_T_COUNT);
  /* readers: server threads, CLI processes; each short-lived */
  if (mrc == 0) mrc = mdb_env_set_maxreaders(db->env, 254);
  if (mrc == 0) mrc = mdb_env_set_mapsize(db->env, db->map_size);
  unsigned flags = MDB_NOTLS | (o->read_only ? MDB_RDONLY : 0) |
                   (o->no_sync ? MDB_NOSYNC : 0);
  if (mrc == 0) mrc = mdb_env_open(db->env, db->dir, flags, 0640);
  if (mrc) {
    rc = lmdb_fail(err, mrc, db->dir);
    goto fail;
  }
  /* a map grown earlier (by us or another process) is larger than asked */
  MDB_envinfo info;
  if (mdb_env_info(db->env, &info) == 0 && info.me_mapsize > db->map_size) {
    db->map_size = info.me_mapsize;
    if (db->map_max < db->map_size) db->map_max = db->map_size;
  }
  /* the tables: created by the first read-write open */
  MDB_txn *txn;
  if ((mrc =
           mdb_txn_begin(db->env, NULL, o->read_only ? MDB_RDONLY : 0, &txn))) {
    rc = lmdb_fail(err, mrc, "opening the tables");
    goto fail;
  }
  for (int i = 0; i < R1D_T_COUNT; i++) {
    mrc = mdb_dbi_open(txn, table_names[i], o->read_only ? 0 : MDB_CREATE,
                       &db->dbi[i]);
    if (mrc) {
      mdb_txn_abort(txn);
      rc = mrc == MDB_NOTFOUND
               ? r1d_fail(err, R1D_EFORMAT,
                          "storage: %s has no %s table (not an r1d database, "
                          "or one never opened read-write)",
                          db->dir, table_names[i])
               : lmdb_fail(err, mrc, table_names[i]);
      goto fail;
    }
  }
  if ((mrc = mdb_txn_commit(txn))) {
    rc = lmdb_fail(err, mrc, "opening the tables");
    goto fail;
  }
  if (o->read_only)
    rc = r1d_db_read(db, check_version_txn, NULL, err);
  else
    rc = r1d_db_migrate(db, builtin_migrations, n_builtin_migrations,
                        R1D_DB_SCHEMA_VERSION, err);
  if (rc) goto fail;
  *out = db;
  return 0;
fail:
  r1d_db_close(db);
  return rc;
}

void r1d_db_close(r1d_db *db) {
  if (!db) return;
  if (db->env) mdb_env_close(db->env);
  pthread_rwlock_destroy(&db->resize);
  pthread_mutex_destroy(&db->health_mu);
  free(db->dir);
  free(db);
}

/* ---- stats ---- */

typedef struct stat_arg {
  r1d_db_stats *out;
} stat_arg;

static int stat_txn(r1d_txn *t, void *arg, r1d_error *err) {
  r1d_db_stats *o = ((stat_arg *)arg)->out;
  MDB_stat st;
  for (int i = 0; i < R1D_T_COUNT; i++) {
    int rc = mdb_stat(t->txn, t->db->dbi[i], &st);
    if (rc) return lmdb_fail(err, rc, "stat");
    o->entries[i] = st.ms_entries;
    o->bytes[i] =
        (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
        (size_t)st.ms_psize;
    o->data_bytes += o->bytes[i];
    o->page_size = st.ms_psize;
  }
  long long v = 0;
  if (r1d_txn_meta_get_int(t, "schema_version", &v, NULL) == 0)
    o->schema_version = (int)v;
  return 0;
}

int r1d_db_stat(r1d_db *db, r1d_db_stats *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  stat_arg a = {out};
  int rc = r1d_db_read(db, stat_txn, &a, err);
  if (rc) return rc;
  MDB_envinfo info;
  if (mdb_env_info(db->env, &info) == 0) {
    out->file_bytes = (info.me_last_pgno + 1) * out->page_size;
    out->map_size = info.me_mapsize;
  }
  out->map_max = db->map_max;
  pthread_mutex_lock(&db->health_mu);
  out->full = db->full;
  out->write_errors = db->write_errors;
  snprintf(out->last_error, sizeof out->last_error, "%s", db->last_error);
  pthread_mutex_unlock(&db->health_mu);
  return 0;
}

/* ---- retention ---- */

typedef struct prune_arg {
  uint64_t cutoff_key; /* delete interactions below this key */
  size_t max;          /* at most this many per transaction */
  size_t deleted;
  uint8_t first[R1D_KEY_BYTES]; /* scan state */
} prune_arg;

static int collect_first(void *arg, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  (void)val;
  (void)vlen;
  prune_arg *p = arg;
  if (klen != R1D_KEY_BYTES) return 1;
  memcpy(p->first, key, R1D_KEY_BYTES);
  return 1;
}

/* Deletes an interaction's feedback: keys starting with its 8 bytes. */
typedef struct fb_scan {
  uint8_t prefix[R1D_KEY_BYTES];
  uint8_t keys[64][2 * R1D_KEY_BYTES];
  size_t n;
} fb_scan;

static int collect_feedback(void *arg, const void *key, size_t klen,
                            const void *val, size_t vlen) {
  (void)val;
  (void)vlen;
  fb_scan *f = arg;
  if (klen < R1D_KEY_BYTES || memcmp(key, f->prefix, R1D_KEY_BYTES)) return 1;
  if (klen != 2 * R1D_KEY_BYTES) return 0;
  memcpy(f->keys[f->n++], key, klen);
  return f->n == 64;
}

static int delete_feedback_of(r1d_txn *t, const uint8_t ikey[R1D_KEY_BYTES],
                              r1d_error *err) {
  for (;;) {
    fb_scan f = {.n = 0};
    memcpy(f.prefix, ikey, R1D_KEY_BYTES);
    int rc = r1d_txn_scan(t, R1D_T_FEEDBACK, ikey, R1D_KEY_BYTES, 0,
                          collect_feedback, &f, err);
    if (rc) return rc;
    for (size_t i = 0; i < f.n; i++)
      if ((rc = r1d_txn_del(t, R1D_T_FEEDBACK, f.keys[i], sizeof f.keys[i],
                            err)))
        return rc;
    if (f.n < 64) return 0;
  }
}

static int prune_txn(r1d_txn *t, void *arg, r1d_error *err) {
  prune_arg *p = arg;
  p->deleted = 0;
  while (p->deleted < p->max) {
    int rc =
        r1d_txn_scan(t, R1D_T_INTERACTIONS, NULL, 0, 0, collect_first, p, err);
    if (rc) return rc;
    if (r1d_txn_entries(t, R1D_T_INTERACTIONS) == 0) break;
    if (r1d_key_decode(p->first) >= p->cutoff_key) break;
    if ((rc = delete_feedback_of(t, p->first, err)) ||
        (rc = r1d_txn_del(t, R1D_T_INTERACTIONS, p->first, R1D_KEY_BYTES, err)))
      return rc;
    p->deleted++;
  }
  return 0;
}

int r1d_db_prune(r1d_db *db, const r1d_retention *r, size_t *pruned,
                 r1d_error *err) {
  size_t total = 0;
  int rc = 0;
  if (pruned) *pruned = 0;
  if (r->max_age_s > 0) {
    uint64_t cut_ms = r1d_now_ms() - (uint64_t)(r->max_age_s * 1000.0);
    for (;;) {
      prune_arg p = {.cutoff_key = cut_ms << 16, .max = 1000};
      if ((rc = r1d_db_write(db, prune_txn, &p, err))) goto done;
      total += p.deleted;
      if (p.deleted < p.max) break;
    }
  }
  if (r->max_bytes > 0) {
    for (;;) {
      r1d_db_stats st;
      if ((rc = r1d_db_stat(db, &st, err))) goto done;
      if (st.data_bytes <= r->max_bytes || st.entries[R1D_T_INTERACTIONS] == 0)
        break;
      /* the oldest tenth (at least 1, at most 1000) of what is left */
      size_t n = st.entries[R1D_T_INTERACTIONS] / 10;
      if (n < 1) n = 1;
      if (n > 1000) n = 1000;
      prune_arg p = {.cutoff_key = UINT64_MAX, .max = n};
      if ((rc = r1d_db_write(db, prune_txn, &p, err))) goto done;
      total += p.deleted;
      if (p.deleted == 0) break;
    }
  }
done:
  if (pruned) *pruned = total;
  return rc;
}
