/* stop.c - stop strings over streamed text.
 *
 * The filter keeps a pending buffer: the held-back tail of the text so far
 * plus the new piece. Each feed first looks for a complete stop string in the
 * pending text (the earliest match position wins; stop strings matching at
 * the same position give the same visible text, so which one "won" does not
 * matter). Without a match, the longest suffix of the pending text that is a
 * proper prefix of some stop string is held back and the rest is released.
 * No match can start before that suffix: if one did, the text from its start
 * would be a prefix of a stop string and a longer suffix would have been held.
 *
 * UTF-8: the comparison is bytewise. A valid UTF-8 stop string starts with a
 * lead byte, never a continuation byte, so every cut point (the start of a
 * match or of the held suffix) falls on a character boundary of valid UTF-8
 * text; released text never ends inside a character the caller sent whole.
 *
 * The pending buffer never holds more than the longest stop string minus one
 * byte between feeds, so each feed costs O((piece + max_stop) * n_stops). */
#include "stop.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/buf.h"

struct r1d_stop {
  char **stops;
  size_t *lens;
  int n;
  r1d_buf pending; /* held-back text, not NUL-terminated */
  int matched;     /* a stop string was found: everything after is dropped */
};

void r1d_stop_free(r1d_stop *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++)
    free(s->stops[i]);
  free(s->stops);
  free(s->lens);
  r1d_buf_free(&s->pending);
  free(s);
}

int r1d_stop_create(const char *const *stops, int n, r1d_stop **out,
                    r1d_error *err) {
  *out = NULL;
  if (n < 0 || (n > 0 && !stops))
    return r1d_fail(err, R1D_EINVAL, "stop: %d strings but no array", n);
  for (int i = 0; i < n; i++)
    if (!stops[i] || !stops[i][0])
      return r1d_fail(err, R1D_EINVAL, "stop string %d is empty", i);
  r1d_stop *s = calloc(1, sizeof *s);
  if (!s) goto nomem;
  if (n > 0) {
    s->stops = calloc((size_t)n, sizeof *s->stops);
    s->lens = calloc((size_t)n, sizeof *s->lens);
    if (!s->stops || !s->lens) goto nomem;
  }
  for (int i = 0; i < n; i++) {
    s->stops[i] = strdup(stops[i]);
    if (!s->stops[i]) goto nomem;
    s->lens[i] = strlen(stops[i]);
    s->n = i + 1;
  }
  *out = s;
  return 0;
nomem:
  r1d_stop_free(s);
  return r1d_fail(err, R1D_ENOMEM, "out of memory copying %d stop strings", n);
}

/* Appends b[0..n) to the caller's *emit (NULL or from an earlier call),
 * keeping it NUL-terminated and non-NULL. */
static int emit_append(char **emit, size_t *emit_len, const char *b, size_t n) {
  size_t have = *emit ? *emit_len : 0;
  if (*emit && n == 0) return 0;
  char *e = realloc(*emit, have + n + 1);
  if (!e) return R1D_ENOMEM;
  if (n) memcpy(e + have, b, n);
  e[have + n] = '\0';
  *emit = e;
  *emit_len = have + n;
  return 0;
}

/* Earliest start of any stop string in the pending text, or -1. */
static long earliest_match(const r1d_stop *s) {
  long best = -1;
  if (s->pending.n == 0) return -1;
  for (int i = 0; i < s->n; i++) {
    const char *hit =
        memmem(s->pending.p, s->pending.n, s->stops[i], s->lens[i]);
    if (hit && (best < 0 || hit - s->pending.p < best))
      best = hit - s->pending.p;
  }
  return best;
}

/* Length of the longest suffix of the pending text that is a proper prefix
 * of some stop string. */
static size_t held_suffix(const r1d_stop *s) {
  size_t best = 0;
  for (int i = 0; i < s->n; i++) {
    size_t max = s->lens[i] - 1;
    if (max > s->pending.n) max = s->pending.n;
    for (size_t k = max; k > best; k--)
      if (memcmp(s->pending.p + s->pending.n - k, s->stops[i], k) == 0) {
        best = k;
        break;
      }
  }
  return best;
}

int r1d_stop_feed(r1d_stop *s, const char *piece, size_t len, char **emit,
                  size_t *emit_len) {
  if (s->matched) return emit_append(emit, emit_len, NULL, 0) ? R1D_ENOMEM : 1;
  if (r1d_buf_append(&s->pending, piece, len)) return R1D_ENOMEM;
  long at = earliest_match(s);
  if (at >= 0) {
    if (emit_append(emit, emit_len, s->pending.p, (size_t)at))
      return R1D_ENOMEM;
    s->pending.n = 0;
    s->matched = 1;
    return 1;
  }
  size_t hold = held_suffix(s);
  size_t out = s->pending.n - hold;
  if (emit_append(emit, emit_len, s->pending.p, out)) return R1D_ENOMEM;
  r1d_buf_consume(&s->pending, out);
  return 0;
}

int r1d_stop_flush(r1d_stop *s, char **emit, size_t *emit_len) {
  if (emit_append(emit, emit_len, s->pending.p, s->pending.n))
    return R1D_ENOMEM;
  s->pending.n = 0;
  return 0;
}
