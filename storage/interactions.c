/* interactions.c - response ids, interaction records, feedback, and the
 * export of chat records as training rows (see interactions.h). */
#include "interactions.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void r1d_response_id(const char *prefix, uint64_t key, uint32_t nonce,
                     char *out, size_t n) {
  snprintf(out, n, "%s%016" PRIx64 "%08" PRIx32, prefix, key, nonce);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int r1d_response_id_key(const char *id, uint64_t *key) {
  const char *dash = id ? strrchr(id, '-') : NULL;
  if (!dash || strlen(dash + 1) != 24) return R1D_EINVAL;
  uint64_t k = 0;
  for (int i = 0; i < 24; i++) {
    int v = hexval(dash[1 + i]);
    if (v < 0) return R1D_EINVAL;
    if (i < 16) k = (k << 4) | (uint64_t)v;
  }
  *key = k;
  return 0;
}

int r1d_interaction_put(r1d_txn *t, uint64_t key, const char *json, size_t len,
                        r1d_error *err) {
  uint8_t k[R1D_KEY_BYTES];
  r1d_key_encode(key, k);
  return r1d_txn_put(t, R1D_T_INTERACTIONS, k, sizeof k, json, len,
                     R1D_PUT_NOOVERWRITE, err);
}

static int get_by_key(r1d_txn *t, uint64_t key, json_t **out, r1d_error *err) {
  uint8_t k[R1D_KEY_BYTES];
  r1d_key_encode(key, k);
  const void *v;
  size_t n;
  int rc = r1d_txn_get(t, R1D_T_INTERACTIONS, k, sizeof k, &v, &n, err);
  if (rc) return rc;
  json_error_t je;
  *out = json_loadb(v, n, JSON_ALLOW_NUL, &je); /* answers may hold U+0000 */
  if (!*out)
    return r1d_fail(err, R1D_EFORMAT,
                    "storage: interaction %016" PRIx64 " is not JSON: %s", key,
                    je.text);
  return 0;
}

int r1d_interaction_get(r1d_txn *t, const char *id, json_t **out,
                        r1d_error *err) {
  *out = NULL;
  uint64_t key;
  if (r1d_response_id_key(id, &key)) return R1D_ENOTFOUND;
  json_t *rec = NULL;
  int rc = get_by_key(t, key, &rec, err);
  if (rc) return rc;
  const char *sid = json_string_value(json_object_get(rec, "id"));
  if (!sid || strcmp(sid, id) != 0) { /* right time, wrong nonce */
    json_decref(rec);
    return R1D_ENOTFOUND;
  }
  *out = rec;
  return 0;
}

/* ---- feedback ---- */

int r1d_feedback_normalize(json_t *body, json_t **out, r1d_error *err) {
  *out = NULL;
  if (!json_is_object(body))
    return r1d_fail(err, R1D_EINVAL, "body: expected a JSON object");
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    if (strcmp(key, "id") && strcmp(key, "rating") &&
        strcmp(key, "preferred") && strcmp(key, "comment"))
      return r1d_fail(err, R1D_EINVAL,
                      "%s: unknown field (expected id, rating, preferred, "
                      "comment)",
                      key);
  }
  json_t *id = json_object_get(body, "id");
  if (!json_is_string(id) || !json_string_length(id))
    return r1d_fail(err, R1D_EINVAL,
                    "id: the response id (\"chatcmpl-...\") is required");
  json_t *o = json_pack("{s:O}", "id", id);
  int given = 0;
  json_t *r = json_object_get(body, "rating");
  if (r && !json_is_null(r)) {
    double x = json_number_value(r);
    if (!json_is_number(r) || !isfinite(x) || x < -1 || x > 5) {
      json_decref(o);
      return r1d_fail(err, R1D_EINVAL,
                      "rating: expected a number, -1..1 (thumbs) or 1..5 "
                      "(stars)");
    }
    json_object_set(o, "rating", r);
    given++;
  }
  const char *texts[] = {"preferred", "comment"};
  for (int i = 0; i < 2; i++) {
    json_t *s = json_object_get(body, texts[i]);
    if (!s || json_is_null(s)) continue;
    if (!json_is_string(s)) {
      json_decref(o);
      return r1d_fail(err, R1D_EINVAL, "%s: expected a string", texts[i]);
    }
    json_object_set(o, texts[i], s);
    given++;
  }
  if (!given) {
    json_decref(o);
    return r1d_fail(err, R1D_EINVAL,
                    "rating: give at least one of rating, preferred, comment");
  }
  json_object_set_new(o, "created", json_integer((json_int_t)time(NULL)));
  *out = o;
  return 0;
}

typedef struct last_fb {
  const uint8_t *prefix; /* the interaction's key */
  uint64_t last;         /* its latest feedback's own key, 0: none */
} last_fb;

static int last_fb_of(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen) {
  (void)val;
  (void)vlen;
  last_fb *l = arg;
  if (klen == 2 * R1D_KEY_BYTES && !memcmp(key, l->prefix, R1D_KEY_BYTES))
    l->last = r1d_key_decode((const uint8_t *)key + R1D_KEY_BYTES);
  return 1; /* only the first entry at or below (ikey, max) matters */
}

int r1d_feedback_put(r1d_txn *t, json_t *feedback, uint64_t *fkey,
                     r1d_error *err) {
  const char *id = json_string_value(json_object_get(feedback, "id"));
  json_t *rec = NULL;
  int rc = r1d_interaction_get(t, id, &rec, err);
  if (rc) return rc;
  json_decref(rec);
  uint64_t ikey;
  r1d_response_id_key(id, &ikey);
  /* the second half grows within one interaction's feedback: above its
   * latest (two ratings in one millisecond must not collide) */
  uint8_t k[2 * R1D_KEY_BYTES];
  r1d_key_encode(ikey, k);
  r1d_key_encode(UINT64_MAX, k + R1D_KEY_BYTES);
  last_fb lf = {.prefix = k};
  if ((rc = r1d_txn_scan(t, R1D_T_FEEDBACK, k, sizeof k, 1, last_fb_of, &lf,
                         err)))
    return rc;
  r1d_keygen g = {.last = lf.last};
  uint64_t fk = r1d_keygen_next(&g, r1d_now_ms());
  r1d_key_encode(fk, k + R1D_KEY_BYTES);
  char *s = json_dumps(feedback, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!s) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  rc = r1d_txn_put(t, R1D_T_FEEDBACK, k, sizeof k, s, strlen(s),
                   R1D_PUT_NOOVERWRITE, err);
  free(s);
  if (rc == 0 && fkey) *fkey = fk;
  return rc;
}

typedef struct fb_list {
  uint8_t prefix[R1D_KEY_BYTES];
  json_t *arr;
} fb_list;

static int fb_collect(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen) {
  fb_list *f = arg;
  if (klen < R1D_KEY_BYTES || memcmp(key, f->prefix, R1D_KEY_BYTES)) return 1;
  json_t *o = json_loadb(val, vlen, JSON_ALLOW_NUL, NULL);
  if (o) json_array_append_new(f->arr, o);
  return 0;
}

int r1d_feedback_list(r1d_txn *t, uint64_t ikey, json_t **out, r1d_error *err) {
  fb_list f;
  r1d_key_encode(ikey, f.prefix);
  f.arr = json_array();
  int rc = r1d_txn_scan(t, R1D_T_FEEDBACK, f.prefix, sizeof f.prefix, 0,
                        fb_collect, &f, err);
  if (rc) {
    json_decref(f.arr);
    return rc;
  }
  *out = f.arr;
  return 0;
}

/* ---- scans and export ---- */

typedef struct scan_arg {
  r1d_interaction_fn fn;
  void *arg;
  uint64_t after;
} scan_arg;

static int scan_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  scan_arg *a = arg;
  if (klen != R1D_KEY_BYTES) return 0;
  uint64_t k = r1d_key_decode(key);
  if (k <= a->after) return 0;
  return a->fn(a->arg, k, val, vlen);
}

int r1d_interactions_scan(r1d_txn *t, uint64_t after, r1d_interaction_fn fn,
                          void *arg, r1d_error *err) {
  scan_arg a = {fn, arg, after};
  uint8_t from[R1D_KEY_BYTES];
  r1d_key_encode(after, from);
  return r1d_txn_scan(t, R1D_T_INTERACTIONS, after ? from : NULL,
                      after ? sizeof from : 0, 0, scan_one, &a, err);
}

int r1d_interaction_to_messages(json_t *rec, int index, json_t *feedback,
                                json_t **out, r1d_error *err) {
  *out = NULL;
  const char *obj = json_string_value(json_object_get(rec, "object"));
  const char *status = json_string_value(json_object_get(rec, "status"));
  json_t *msgs = json_object_get(json_object_get(rec, "request"), "messages");
  json_t *ch = json_array_get(json_object_get(rec, "choices"), (size_t)index);
  if (!obj || strcmp(obj, "chat.completion") || !status ||
      strcmp(status, "ok") || !json_is_array(msgs) || !json_is_object(ch))
    return R1D_ENOTFOUND;
  json_t *m = json_array();
  size_t i;
  json_t *msg;
  json_array_foreach(msgs, i, msg) {
    json_t *c = json_deep_copy(msg);
    if (!json_is_object(c)) {
      json_decref(c);
      json_decref(m);
      return r1d_fail(err, R1D_EFORMAT, "messages[%zu] is not an object", i);
    }
    json_object_del(c, "reasoning_content");
    json_object_del(c, "reasoning");
    json_array_append_new(m, c);
  }
  json_t *content = json_object_get(ch, "content");
  json_t *reasoning = json_object_get(ch, "reasoning_content");
  json_array_append_new(
      m, json_pack("{s:s, s:o, s:o}", "role", "assistant", "content",
                   content ? json_incref(content) : json_string(""),
                   "reasoning_content",
                   reasoning ? json_incref(reasoning) : json_string("")));
  json_t *rating = json_null();
  size_t nf = json_array_size(feedback);
  for (size_t k = nf; k-- > 0;) {
    json_t *r = json_object_get(json_array_get(feedback, k), "rating");
    if (r) {
      rating = json_incref(r);
      break;
    }
  }
  json_t *row = json_object();
  json_object_set_new(row, "messages", m);
  const char *keep[] = {"id", "created", "model", "weight_version"};
  for (int k = 0; k < 4; k++) {
    json_t *v = json_object_get(rec, keep[k]);
    json_object_set(row, keep[k], v ? v : json_null());
  }
  json_t *fin = json_object_get(ch, "finish_reason");
  json_object_set(row, "finish_reason", fin ? fin : json_null());
  json_object_set_new(row, "rating", rating);
  *out = row;
  return 0;
}
