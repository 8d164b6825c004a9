/* tasks.h - rule-verifiable tasks: a prompt (or chat messages) plus the spec
 * of the checker that scores an answer to it (RL.md, "Rewards"). Tasks come
 * in as JSONL or one JSON object (`r1d tasks import`, POST /admin/v1/tasks),
 * are validated and normalised here, and live in the tasks table under their
 * insertion time key, with the task_ids index (id -> time key) for lookups,
 * deletes and de-duplication by id.
 *
 * The stored value is the normalised task as compact JSON, keys in this
 * order, then any other top-level keys in input order (kept, same value):
 *   {"id": "...",                   1..128 printable ASCII, no '/' or space;
 *                                   absent: "task-" + 16 hex of the time key
 *    "prompt": "..."                non-empty string, or
 *    "messages": [{"role","content"}, ...]   non-empty; role system, user or
 *                                   assistant; content a string
 *    "checker": {"type": T, ...},   fields in a fixed order per type:
 *      math       answer (string; a number becomes its JSON text), tolerance
 *                 (number >= 0)
 *      exact      answer (string), case_sensitive (bool), strip (bool)
 *      regex      pattern (string, valid for PCRE2 with PCRE2_UTF and the
 *                 flags), flags (string of i, m, s, x)
 *      countdown  numbers (1..16 integers), target (integer), answer (string)
 *      code       language ("python"), tests ([{"input","output"}], strings,
 *                 non-empty), time_limit_s (number in (0, 60])
 *    "split": "train" | "eval",     default "train"
 *    "source": "...",               default ""
 *    "tags": ["...", ...],          default []
 *    "created": 1700000000}         unix seconds; default: the parse time
 * Optional checker fields are stored only when given: their defaults belong
 * to the checker. The input form "checker": "math" with a top-level
 * "answer" is accepted and moves the answer into the checker (so rows in the
 * GSM8K shape import as they are). Reals are written in the shortest form
 * that reads back as the same double, so a stored task re-imports to the
 * same bytes: export -> import -> export is the identity. */
#ifndef R1D_STORAGE_TASKS_H
#define R1D_STORAGE_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../common/status.h"
#include "db.h"

enum {
  R1D_TASK_ID_MAX = 128,
  R1D_TASK_MAX_BYTES = 1 << 20, /* one task, input line and stored value */
  R1D_TASK_MAX_NUMBERS = 16,    /* countdown */
};

typedef struct r1d_task_error {
  size_t line;   /* 1-based line in the input text */
  int code;      /* R1D_EINVAL: a bad task; R1D_EEXIST: its id is taken */
  char msg[256]; /* without the line: `checker.answer is required ...` */
} r1d_task_error;

typedef struct r1d_task {
  size_t line;      /* where the task starts in the input text */
  char *id;         /* given, or written by r1d_tasks_store (id_generated) */
  char *json;       /* the normalised task, NUL-terminated; a generated id */
  size_t len;       /* is a placeholder until r1d_tasks_store fills it */
  uint64_t key;     /* its time key once stored; 0 while not */
  int id_generated; /* the input had no id */
} r1d_task;

/* The good tasks of one input, in input order, and one error per bad line,
 * in line order. cap_* are the allocations' sizes (private). */
typedef struct r1d_task_batch {
  r1d_task *tasks;
  size_t n, cap_tasks;
  r1d_task_error *errors;
  size_t n_errors, cap_errors;
} r1d_task_batch;

/* Parses text[0..len) as JSONL (one task per line, blank lines skipped, a
 * bad line recorded in out->errors and skipped) or, when its first line is
 * the start of a longer JSON value, as one JSON object spanning the text.
 * Every task is validated and normalised. Bad input is never a failure:
 * only R1D_ENOMEM is (then out is empty). Free out with
 * r1d_task_batch_free. */
int r1d_tasks_parse(const char *text, size_t len, r1d_task_batch *out,
                    r1d_error *err);
void r1d_task_batch_free(r1d_task_batch *b);

/* Stores b's tasks inside the write transaction t. Ids must be new: one
 * taken earlier in the batch or already in task_ids is a line error with
 * code R1D_EEXIST ("duplicate id \"x\" (first on line 3)", "id \"x\" is
 * already stored"). Not strict: every other task is stored. Strict: any
 * error in b (parse or duplicate) stores nothing and returns R1D_EINVAL
 * naming the first one. Each stored task gets a fresh time key (task->key)
 * and, when it had none, the id from it (task->id and task->json updated).
 * Safe to call again on the same batch in a retried transaction (what
 * r1d_db_write does when the map fills): it first drops what a previous try
 * added (duplicate errors, keys). Keys and ids are final only once the
 * transaction commits. *stored (may be NULL) gets the count. */
int r1d_tasks_store(r1d_txn *t, r1d_task_batch *b, int strict, size_t *stored,
                    r1d_error *err);

/* Parse + store in one write transaction of db: a crash leaves all of the
 * import or none of it. out keeps the tasks and errors for the report
 * (free it with r1d_task_batch_free, also after a failure). Returns what
 * r1d_tasks_store or r1d_db_write returned; bad lines alone are not a
 * failure unless strict. */
int r1d_tasks_import(r1d_db *db, const char *text, size_t len, int strict,
                     r1d_task_batch *out, size_t *stored, r1d_error *err);

/* The stored JSON of task `id`, malloc'ed and NUL-terminated.
 * R1D_ENOTFOUND (with a message) when there is none. */
int r1d_tasks_get(r1d_txn *t, const char *id, char **json, r1d_error *err);

/* Removes task `id` and its index entry; R1D_ENOTFOUND when absent. */
int r1d_tasks_delete(r1d_txn *t, const char *id, r1d_error *err);

/* Called with each listed task's stored JSON (json[0..len), not
 * NUL-terminated, valid during the call). Returns 0 to go on, 1 to stop, or
 * a negative R1D_E* code, which stops the listing and is returned. */
typedef int (*r1d_task_fn)(void *arg, uint64_t key, const char *json,
                           size_t len);

/* Lists tasks in insertion order: those of `split` (NULL: all), starting
 * after task `after_id` (NULL: from the first; R1D_ENOTFOUND when no task
 * has that id), at most `limit` of them (0: no limit). */
int r1d_tasks_list(r1d_txn *t, const char *split, const char *after_id,
                   size_t limit, r1d_task_fn fn, void *arg, r1d_error *err);

/* Counts over all tasks: {"total": N, "by_split": {"train", "eval"},
 * "by_checker": {one count per checker type}, "by_source": {source: N, in
 * order of first appearance}}. Every split and checker type is present, 0
 * when unused, so the shape is fixed. *out is a new reference. */
int r1d_tasks_stats(r1d_txn *t, json_t **out, r1d_error *err);

#endif
