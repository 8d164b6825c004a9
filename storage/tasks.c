/* tasks.c - the tasks table (time key -> stored JSON) and its id index
 * (task_ids): storing a parsed batch with its duplicate-id checks, safe to
 * rerun in a retried transaction; import (parse + store in one write);
 * get, delete, list and stats. What a task may hold and its stored byte
 * form belong to task_parse.c; this file only relies on that form's key
 * order (tasks.h) to read a stored task's split, checker type and source
 * without a full parse. Kept apart so the table's transaction logic reads
 * without the input rules in the way. */
#include "tasks.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "task_parse.h"

enum { MSG_MAX = sizeof(((r1d_task_error *)0)->msg) };

/* ---- the table ---- */

typedef struct id_ref {
  const char *id;
  size_t index; /* into the batch's tasks: ties keep input order */
} id_ref;

static int cmp_id_ref(const void *a, const void *b) {
  const id_ref *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  if (c) return c;
  return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_id_str(const void *key, const void *elem) {
  return strcmp(key, ((const id_ref *)elem)->id);
}

static int cmp_error_line(const void *a, const void *b) {
  const r1d_task_error *x = a, *y = b;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* 1 when id is in the batch's given ids or in task_ids. */
static int id_taken(r1d_txn *t, const id_ref *given, size_t n, const char *id,
                    r1d_error *err) {
  if (bsearch(id, given, n, sizeof *given, cmp_id_str)) return 1;
  const void *v;
  size_t vlen;
  int rc = r1d_txn_get(t, R1D_T_TASK_IDS, id, strlen(id), &v, &vlen, err);
  return rc == R1D_ENOTFOUND ? 0 : rc == 0 ? 1 : rc;
}

/* What an earlier try of r1d_tasks_store added to b goes: duplicate
 * errors (the ids they name may not be taken any more) and keys. */
static void drop_store_results(r1d_task_batch *b) {
  size_t k = 0;
  for (size_t i = 0; i < b->n_errors; i++)
    if (b->errors[i].code != R1D_EEXIST) b->errors[k++] = b->errors[i];
  b->n_errors = k;
  for (size_t i = 0; i < b->n; i++)
    b->tasks[i].key = 0;
}

int r1d_tasks_store(r1d_txn *t, r1d_task_batch *b, int strict, size_t *stored,
                    r1d_error *err) {
  size_t n_given = 0, n_stored = 0;
  id_ref *given = malloc((b->n ? b->n : 1) * sizeof *given);
  unsigned char *skip = calloc(b->n ? b->n : 1, 1);
  int rc = 0;
  char msg[MSG_MAX];
  drop_store_results(b);
  if (!given || !skip) {
    rc = r1d_fail(err, R1D_ENOMEM, "storing tasks: out of memory");
    goto fail;
  }
  for (size_t i = 0; i < b->n; i++)
    if (!b->tasks[i].id_generated)
      given[n_given++] = (id_ref){b->tasks[i].id, i};
  qsort(given, n_given, sizeof *given, cmp_id_ref);
  for (size_t g = 0; g < n_given; g++) {
    r1d_task *task = &b->tasks[given[g].index];
    if (g && strcmp(given[g - 1].id, given[g].id) == 0) {
      size_t first = g;
      while (first && strcmp(given[first - 1].id, given[g].id) == 0)
        first--;
      snprintf(msg, sizeof msg, "duplicate id \"%s\" (first on line %zu)",
               task->id, b->tasks[given[first].index].line);
    } else {
      const void *v;
      size_t vlen;
      rc = r1d_txn_get(t, R1D_T_TASK_IDS, task->id, strlen(task->id), &v, &vlen,
                       err);
      if (rc == R1D_ENOTFOUND) {
        rc = 0;
        continue;
      }
      if (rc) goto fail;
      snprintf(msg, sizeof msg, "id \"%s\" is already stored", task->id);
    }
    skip[given[g].index] = 1;
    if ((rc = r1d_task_batch_add_error(b, task->line, R1D_EEXIST, msg))) {
      rc = r1d_fail(err, rc, "storing tasks: out of memory");
      goto fail;
    }
  }
  if (b->n_errors > 1)
    qsort(b->errors, b->n_errors, sizeof *b->errors, cmp_error_line);
  if (strict && b->n_errors) {
    const r1d_task_error *e = &b->errors[0];
    if (b->n_errors > 1)
      rc = r1d_fail(err, R1D_EINVAL,
                    "line %zu: %s (and %zu more bad lines); nothing stored",
                    e->line, e->msg, b->n_errors - 1);
    else
      rc = r1d_fail(err, R1D_EINVAL, "line %zu: %s; nothing stored", e->line,
                    e->msg);
    goto fail;
  }
  for (size_t i = 0; i < b->n; i++) {
    r1d_task *task = &b->tasks[i];
    uint64_t key;
    uint8_t kb[R1D_KEY_BYTES];
    if (skip[i]) continue;
    if ((rc = r1d_txn_next_key(t, R1D_T_TASKS, &key, err))) goto fail;
    if (task->id_generated) {
      /* Someone may have chosen "task-<hex>" by hand: step past it. The
       * key stays above the table's last one, as next_key promises. */
      for (;; key++) {
        r1d_task_set_generated_id(task, key);
        rc = id_taken(t, given, n_given, task->id, err);
        if (rc < 0) goto fail;
        if (!rc) break;
      }
    }
    r1d_key_encode(key, kb);
    if ((rc = r1d_txn_put(t, R1D_T_TASKS, kb, sizeof kb, task->json, task->len,
                          R1D_PUT_NOOVERWRITE, err)) ||
        (rc = r1d_txn_put(t, R1D_T_TASK_IDS, task->id, strlen(task->id), kb,
                          sizeof kb, R1D_PUT_NOOVERWRITE, err)))
      goto fail;
    task->key = key;
    n_stored++;
  }
  free(given);
  free(skip);
  if (stored) *stored = n_stored;
  return 0;
fail:
  for (size_t i = 0; i < b->n; i++)
    b->tasks[i].key = 0;
  free(given);
  free(skip);
  if (stored) *stored = 0;
  return rc;
}

typedef struct import_call {
  r1d_task_batch *batch;
  int strict;
  size_t stored;
} import_call;

static int import_fn(r1d_txn *t, void *arg, r1d_error *err) {
  import_call *c = arg;
  return r1d_tasks_store(t, c->batch, c->strict, &c->stored, err);
}

int r1d_tasks_import(r1d_db *db, const char *text, size_t len, int strict,
                     r1d_task_batch *out, size_t *stored, r1d_error *err) {
  import_call c = {.batch = out, .strict = strict};
  if (stored) *stored = 0;
  int rc = r1d_tasks_parse(text, len, out, err);
  if (rc) return rc;
  rc = r1d_db_write(db, import_fn, &c, err);
  if (rc) {
    /* An aborted transaction stored nothing, whatever the last try did. */
    for (size_t i = 0; i < out->n; i++)
      out->tasks[i].key = 0;
    return rc;
  }
  if (stored) *stored = c.stored;
  return 0;
}

/* The time key of task `id`; R1D_ENOTFOUND with a message. */
static int lookup_key(r1d_txn *t, const char *id, uint8_t kb[R1D_KEY_BYTES],
                      r1d_error *err) {
  const void *v;
  size_t vlen, n = id ? strlen(id) : 0;
  int rc = n == 0 || n > R1D_TASK_ID_MAX
               ? R1D_ENOTFOUND
               : r1d_txn_get(t, R1D_T_TASK_IDS, id, n, &v, &vlen, err);
  if (rc == R1D_ENOTFOUND)
    return r1d_fail(err, rc, "no task with id \"%.*s\"", R1D_TASK_ID_MAX,
                    id ? id : "");
  if (rc) return rc;
  if (vlen != R1D_KEY_BYTES)
    return r1d_fail(err, R1D_EFORMAT,
                    "task_ids entry of \"%s\" is %zu bytes, not %d", id, vlen,
                    R1D_KEY_BYTES);
  memcpy(kb, v, R1D_KEY_BYTES);
  return 0;
}

int r1d_tasks_get(r1d_txn *t, const char *id, char **json, r1d_error *err) {
  uint8_t kb[R1D_KEY_BYTES];
  const void *v;
  size_t vlen;
  *json = NULL;
  int rc = lookup_key(t, id, kb, err);
  if (rc) return rc;
  rc = r1d_txn_get(t, R1D_T_TASKS, kb, sizeof kb, &v, &vlen, err);
  if (rc == R1D_ENOTFOUND)
    return r1d_fail(err, R1D_EFORMAT,
                    "task_ids has \"%s\" but its task is missing", id);
  if (rc) return rc;
  if (!(*json = malloc(vlen + 1)))
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  memcpy(*json, v, vlen);
  (*json)[vlen] = '\0';
  return 0;
}

int r1d_tasks_delete(r1d_txn *t, const char *id, r1d_error *err) {
  uint8_t kb[R1D_KEY_BYTES];
  int rc = lookup_key(t, id, kb, err);
  if (rc) return rc;
  /* A task missing under an index entry still loses the entry. */
  rc = r1d_txn_del(t, R1D_T_TASKS, kb, sizeof kb, err);
  if (rc && rc != R1D_ENOTFOUND) return rc;
  return r1d_txn_del(t, R1D_T_TASK_IDS, id, strlen(id), err);
}

/* What listing and stats read of a stored task, NUL-terminated. */
typedef struct task_meta {
  char split[8], type[16];
  r1d_buf source;
} task_meta;

/* The raw (still escaped) string value after the first `pat` in json. */
static int find_str(const char *json, size_t len, const char *pat,
                    const char **s, size_t *n) {
  size_t pl = strlen(pat);
  const char *p = memmem(json, len, pat, pl);
  if (!p) return 0;
  const char *at = p + pl, *end = json + len;
  for (const char *c = at; c < end; c++) {
    if (*c == '\\') {
      c++;
    } else if (*c == '"') {
      *s = at;
      *n = (size_t)(c - at);
      return 1;
    }
  }
  return 0;
}

static int copy_plain(char *out, size_t cap, const char *s, size_t n) {
  if (n >= cap || memchr(s, '\\', n)) return 0;
  memcpy(out, s, n);
  out[n] = '\0';
  return 1;
}

static int meta_from_tree(const char *json, size_t len, task_meta *m) {
  json_t *v = json_loadb(json, len, 0, NULL);
  const char *split = json_string_value(json_object_get(v, "split"));
  const char *type =
      json_string_value(json_object_get(json_object_get(v, "checker"), "type"));
  const char *source = json_string_value(json_object_get(v, "source"));
  int ok = split && type && source;
  if (ok) {
    snprintf(m->split, sizeof m->split, "%s", split);
    snprintf(m->type, sizeof m->type, "%s", type);
    m->source.n = 0;
    ok = r1d_buf_append(&m->source, source, strlen(source) + 1) == 0;
  }
  json_decref(v);
  return ok ? 0 : R1D_EFORMAT;
}

/* Reads m from a stored task without parsing all of it: in the normalised
 * form the checker, split and source are the first members with those
 * names, since no value before them can hold such a key (the checker's and
 * the messages' keys are fixed), and `,"` never occurs inside a JSON string
 * (a quote there is always escaped). Listing by split and stats then cost a
 * search rather than a parse (10x over a million tasks). Anything else,
 * such as an escaped source, takes a full parse. */
static int read_meta(const char *json, size_t len, task_meta *m) {
  const char *type, *split, *source;
  size_t nt, ns, nsrc;
  if (!find_str(json, len, ",\"checker\":{\"type\":\"", &type, &nt) ||
      !find_str(json, len, ",\"split\":\"", &split, &ns) ||
      !find_str(split, len - (size_t)(split - json), ",\"source\":\"", &source,
                &nsrc) ||
      !copy_plain(m->type, sizeof m->type, type, nt) ||
      !copy_plain(m->split, sizeof m->split, split, ns) ||
      memchr(source, '\\', nsrc))
    return meta_from_tree(json, len, m);
  m->source.n = 0;
  if (r1d_buf_append(&m->source, source, nsrc) ||
      r1d_buf_append(&m->source, "", 1))
    return R1D_ENOMEM;
  return 0;
}

typedef struct list_scan {
  const char *split;
  task_meta meta;
  size_t limit, count;
  r1d_task_fn fn;
  void *arg;
  uint64_t bad_key; /* the entry that failed to parse, when one did */
} list_scan;

static int list_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  list_scan *s = arg;
  uint64_t k = klen == R1D_KEY_BYTES ? r1d_key_decode(key) : 0;
  if (s->split) {
    int rc = read_meta(val, vlen, &s->meta);
    if (rc) {
      s->bad_key = k;
      return rc;
    }
    if (strcmp(s->meta.split, s->split) != 0) return 0;
  }
  int rc = s->fn(s->arg, k, val, vlen);
  if (rc) return rc;
  s->count++;
  return s->limit && s->count >= s->limit;
}

int r1d_tasks_list(r1d_txn *t, const char *split, const char *after_id,
                   size_t limit, r1d_task_fn fn, void *arg, r1d_error *err) {
  list_scan s = {.split = split, .limit = limit, .fn = fn, .arg = arg};
  uint8_t from[R1D_KEY_BYTES];
  int rc;
  if (after_id) {
    if ((rc = lookup_key(t, after_id, from, err))) return rc;
    r1d_key_encode(r1d_key_decode(from) + 1, from);
  }
  rc = r1d_txn_scan(t, R1D_T_TASKS, after_id ? from : NULL,
                    after_id ? sizeof from : 0, 0, list_cb, &s, err);
  r1d_buf_free(&s.meta.source);
  if (rc == R1D_ENOMEM)
    return r1d_fail(err, rc, "listing tasks: out of memory");
  if (rc == R1D_EFORMAT && s.bad_key)
    return r1d_fail(err, rc, "tasks entry %016" PRIx64 " is not a valid task",
                    s.bad_key);
  return rc;
}

typedef struct stats_scan {
  json_t *by_split, *by_checker, *by_source;
  task_meta meta;
  size_t total;
  uint64_t bad_key;
  int oom;
} stats_scan;

static void count_in(stats_scan *s, json_t *obj, const char *name) {
  json_t *n = json_object_get(obj, name);
  if (n)
    json_integer_set(n, json_integer_value(n) + 1);
  else if (json_object_set_new(obj, name, json_integer(1)))
    s->oom = 1;
}

static int stats_cb(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  stats_scan *s = arg;
  int rc = read_meta(val, vlen, &s->meta);
  if (rc) {
    s->bad_key = klen == R1D_KEY_BYTES ? r1d_key_decode(key) : 0;
    return rc;
  }
  count_in(s, s->by_split, s->meta.split);
  count_in(s, s->by_checker, s->meta.type);
  count_in(s, s->by_source, s->meta.source.p);
  s->total++;
  return s->oom ? R1D_ENOMEM : 0;
}

int r1d_tasks_stats(r1d_txn *t, json_t **out, r1d_error *err) {
  stats_scan s = {.by_split = json_object(),
                  .by_checker = json_object(),
                  .by_source = json_object()};
  int rc = R1D_ENOMEM;
  *out = NULL;
  if (!s.by_split || !s.by_checker || !s.by_source ||
      json_object_set_new(s.by_split, "train", json_integer(0)) ||
      json_object_set_new(s.by_split, "eval", json_integer(0)))
    goto fail;
  size_t n_types;
  const char *const *types = r1d_task_checker_types(&n_types);
  for (size_t i = 0; i < n_types; i++)
    if (json_object_set_new(s.by_checker, types[i], json_integer(0))) goto fail;
  rc = r1d_txn_scan(t, R1D_T_TASKS, NULL, 0, 0, stats_cb, &s, err);
  if (rc) goto fail;
  *out = json_pack("{sIsOsOsO}", "total", (json_int_t)s.total, "by_split",
                   s.by_split, "by_checker", s.by_checker, "by_source",
                   s.by_source);
  rc = *out ? 0 : R1D_ENOMEM;
fail:
  if (rc == R1D_ENOMEM)
    r1d_fail(err, rc, "task stats: out of memory");
  else if (rc == R1D_EFORMAT && s.bad_key)
    r1d_fail(err, rc, "tasks entry %016" PRIx64 " is not a valid task",
             s.bad_key);
  json_decref(s.by_split);
  json_decref(s.by_checker);
  json_decref(s.by_source);
  r1d_buf_free(&s.meta.source);
  return rc;
}
