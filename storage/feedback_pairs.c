/* feedback_pairs.c - chosen/rejected pairs from logged answers and their
 * feedback (see feedback_pairs.h): one read transaction scans the
 * interactions oldest first, emits the "preferred" pairs as it goes and
 * groups rated answers by prompt; the groups are paired at the end. */
#include "feedback_pairs.h"

#include <stdlib.h>
#include <string.h>

#include "interactions.h"

typedef struct collect {
  r1d_txn *t;
  long max;
  json_t *out;    /* the pairs */
  json_t *seen;   /* dedup keys of emitted pairs */
  json_t *groups; /* canonical prompt -> {"prompt", "answers": [...]} */
  json_t *order;  /* canonical prompts, first seen first */
  int rc;         /* an out-of-memory inside the scan */
} collect;

static int is_full(const collect *c) {
  return c->max > 0 && (long)json_array_size(c->out) >= c->max;
}

/* Appends a pair unless it is empty of preference or a duplicate. */
static int emit(collect *c, const char *canon, json_t *prompt,
                const char *chosen, const char *rejected, const char *source,
                json_t *ids, json_t *ratings) {
  int rc = 0;
  if (!strcmp(chosen, rejected) || is_full(c)) goto done;
  size_t n = strlen(canon) + strlen(chosen) + strlen(rejected) + 3;
  char *key = malloc(n);
  if (!key) {
    rc = R1D_ENOMEM;
    goto done;
  }
  /* unit separators cannot be confused with the texts' own characters
   * often enough to matter; a collision only drops a pair */
  snprintf(key, n, "%s\x1f%s\x1f%s", canon, chosen, rejected);
  if (!json_object_get(c->seen, key)) {
    json_object_set_new(c->seen, key, json_true());
    json_t *p =
        json_pack("{s:O, s:s, s:s, s:s, s:O}", "prompt", prompt, "chosen",
                  chosen, "rejected", rejected, "source", source, "ids", ids);
    if (p && ratings) json_object_set(p, "ratings", ratings);
    if (!p || json_array_append_new(c->out, p)) rc = R1D_ENOMEM;
  }
  free(key);
done:
  json_decref(ids);
  json_decref(ratings);
  return rc;
}

static int scan_one(void *arg, uint64_t key, const char *json, size_t len) {
  collect *c = arg;
  json_t *rec = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
  if (!rec) return 0; /* not ours to judge here; `r1d db stat` counts */
  json_t *fb = NULL, *row = NULL;
  char *canon = NULL;
  int rc = r1d_feedback_list(c->t, key, &fb, NULL);
  if (rc) goto done;
  if (json_array_size(fb) == 0 ||
      r1d_interaction_to_messages(rec, 0, fb, &row, NULL) != 0)
    goto done;
  json_t *msgs = json_object_get(row, "messages");
  size_t n = json_array_size(msgs);
  if (n < 2) goto done;
  const char *answer = json_string_value(
      json_object_get(json_array_get(msgs, n - 1), "content"));
  if (!answer) answer = "";
  json_t *prompt = json_array();
  for (size_t i = 0; prompt && i + 1 < n; i++)
    json_array_append(prompt, json_array_get(msgs, i));
  canon = prompt ? json_dumps(prompt, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  if (!canon) {
    json_decref(prompt);
    rc = R1D_ENOMEM;
    goto done;
  }
  json_t *id = json_object_get(rec, "id");
  /* (a) every preferred text against the logged answer */
  size_t i;
  json_t *f;
  json_array_foreach(fb, i, f) {
    const char *pref = json_string_value(json_object_get(f, "preferred"));
    if (pref && rc == 0)
      rc = emit(c, canon, prompt, pref, answer, "preferred",
                json_pack("[O]", id), NULL);
  }
  /* (b) remember the rated answer under its prompt */
  json_t *rating = json_object_get(row, "rating");
  if (rc == 0 && json_is_number(rating)) {
    json_t *g = json_object_get(c->groups, canon);
    if (!g) {
      g = json_pack("{s:O, s:[]}", "prompt", prompt, "answers");
      if (!g || json_object_set_new(c->groups, canon, g) ||
          json_array_append_new(c->order, json_string(canon)))
        rc = R1D_ENOMEM;
    }
    json_t *a = json_pack("{s:s, s:O, s:O}", "a", answer, "r", rating, "id",
                          id ? id : json_null());
    if (rc == 0 &&
        (!a || json_array_append_new(json_object_get(g, "answers"), a)))
      rc = R1D_ENOMEM;
    else if (rc)
      json_decref(a);
  }
  json_decref(prompt);
done:
  free(canon);
  json_decref(row);
  json_decref(fb);
  json_decref(rec);
  if (rc) {
    c->rc = rc;
    return rc;
  }
  return is_full(c) ? 1 : 0;
}

typedef struct couple {
  size_t hi, lo; /* indexes into the group's answers */
  double gap;
} couple;

static int by_gap(const void *x, const void *y) {
  const couple *a = x, *b = y;
  if (a->gap != b->gap) return a->gap > b->gap ? -1 : 1;
  if (a->hi != b->hi) return a->hi < b->hi ? -1 : 1;
  return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* (b): the pairs of one prompt's rated answers. */
static int pair_group(collect *c, const char *canon, json_t *g) {
  json_t *ans = json_object_get(g, "answers");
  size_t n = json_array_size(ans);
  if (n < 2) return 0; /* (c) */
  couple *cs = malloc(n * (n - 1) / 2 * sizeof *cs);
  if (!cs) return R1D_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double ri =
          json_number_value(json_object_get(json_array_get(ans, i), "r"));
      double rj =
          json_number_value(json_object_get(json_array_get(ans, j), "r"));
      if (ri > rj) cs[k++] = (couple){i, j, ri - rj};
    }
  qsort(cs, k, sizeof *cs, by_gap);
  int rc = 0;
  size_t taken = 0;
  for (size_t q = 0; q < k && rc == 0 && !is_full(c); q++) {
    if (taken >= R1D_FEEDBACK_PAIRS_PER_PROMPT) break;
    json_t *h = json_array_get(ans, cs[q].hi),
           *l = json_array_get(ans, cs[q].lo);
    const char *ch = json_string_value(json_object_get(h, "a"));
    const char *rj = json_string_value(json_object_get(l, "a"));
    if (!strcmp(ch, rj)) continue;
    size_t before = json_array_size(c->out);
    rc = emit(
        c, canon, json_object_get(g, "prompt"), ch, rj, "ratings",
        json_pack("[O, O]", json_object_get(h, "id"), json_object_get(l, "id")),
        json_pack("[O, O]", json_object_get(h, "r"), json_object_get(l, "r")));
    taken += json_array_size(c->out) > before;
  }
  free(cs);
  return rc;
}

static int collect_txn(r1d_txn *t, void *arg, r1d_error *err) {
  collect *c = arg;
  c->t = t;
  int rc = r1d_interactions_scan(t, 0, scan_one, c, err);
  if (rc == 0 && c->rc) rc = c->rc;
  if (rc) {
    if (rc == R1D_ENOMEM) r1d_fail(err, rc, "feedback pairs: out of memory");
    return rc;
  }
  size_t i;
  json_t *k;
  json_array_foreach(c->order, i, k) {
    if (is_full(c)) break;
    const char *canon = json_string_value(k);
    rc = pair_group(c, canon, json_object_get(c->groups, canon));
    if (rc) return r1d_fail(err, rc, "feedback pairs: out of memory");
  }
  return 0;
}

int r1d_feedback_pairs_collect(r1d_db *db, long max_pairs, json_t **out,
                               r1d_error *err) {
  *out = NULL;
  collect c = {.max = max_pairs,
               .out = json_array(),
               .seen = json_object(),
               .groups = json_object(),
               .order = json_array()};
  int rc = c.out && c.seen && c.groups && c.order
               ? r1d_db_read(db, collect_txn, &c, err)
               : r1d_fail(err, R1D_ENOMEM, "feedback pairs: out of memory");
  json_decref(c.seen);
  json_decref(c.groups);
  json_decref(c.order);
  if (rc) {
    json_decref(c.out);
    return rc;
  }
  *out = c.out;
  return 0;
}
