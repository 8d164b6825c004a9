/* fuzz_stop.c - libFuzzer harness for the streaming stop-string filter.
 *
 * Input layout: byte 0 picks 1-4 stop strings; each stop is a length byte
 * (1-8) and that many bytes (NUL becomes 0x01: stops are C strings); one
 * byte seeds the piece lengths (0-8 bytes each, empty pieces included);
 * the rest is the generated text. A small alphabet would find more matches,
 * so bytes of stops and text are folded into "ab\xc3\xa9<>/" half the time
 * (seed bit 7).
 *
 * Reference: let P_k be the piece boundaries. A stop string that first
 * occurs at [f, f + len) becomes visible when the first boundary P >= its
 * end has been fed; the filter stops at the first such boundary P and cuts
 * at the earliest start of any stop string wholly inside text[0..P). With
 * no match everything comes out (feeds + flush). After a match, feeds
 * return 1 and emit nothing more. When no stop string is a substring of
 * another, the cut does not depend on the split: it is the earliest start
 * of any stop in the whole text, which is checked too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/serve/stop.h"

#define MAX_STOPS 4
#define MAX_STOP_LEN 8

static const unsigned char small_alphabet[] = "ab\xc3\xa9<>/";

/* First occurrence of s[0..m) in t[0..n), or -1. */
static long find(const unsigned char *t, size_t n, const char *s, size_t m) {
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(t + i, s, m) == 0) return (long)i;
  return -1;
}

static uint32_t next_rand(uint32_t *x) {
  *x = *x * 1103515245u + 12345u;
  return *x >> 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t pos = 0;
  int n_stops = 1 + data[pos++] % MAX_STOPS;
  char stops[MAX_STOPS][MAX_STOP_LEN + 1];
  const char *sp[MAX_STOPS];
  size_t slen[MAX_STOPS];
  for (int i = 0; i < n_stops; i++) {
    if (pos >= size) return 0;
    size_t len = 1 + data[pos++] % MAX_STOP_LEN;
    if (size - pos < len) return 0;
    memcpy(stops[i], data + pos, len);
    stops[i][len] = 0;
    pos += len;
    slen[i] = len;
    sp[i] = stops[i];
  }
  if (pos >= size) return 0;
  uint8_t seed = data[pos++];
  int fold = seed & 0x80;
  size_t tlen = size - pos;
  unsigned char *text = malloc(tlen ? tlen : 1);
  if (!text) return 0;
  memcpy(text, data + pos, tlen);
  for (int i = 0; i < n_stops; i++)
    for (size_t k = 0; k < slen[i]; k++) {
      unsigned char c = (unsigned char)stops[i][k];
      if (fold) c = small_alphabet[c % (sizeof small_alphabet - 1)];
      stops[i][k] = (char)(c ? c : 1);
    }
  if (fold)
    for (size_t k = 0; k < tlen; k++)
      text[k] = small_alphabet[text[k] % (sizeof small_alphabet - 1)];

  /* piece boundaries */
  /* empty pieces never come twice in a row: at most 2 * tlen + 1 feeds */
  size_t *bound = malloc(sizeof *bound * (2 * tlen + 2));
  if (!bound) abort();
  size_t nb = 0, step = 1;
  uint32_t rnd = seed * 2654435761u + (uint32_t)tlen;
  for (size_t at = 0;;) {
    step = step == 0 ? 1 + next_rand(&rnd) % 8 : next_rand(&rnd) % 9;
    at = at + step > tlen ? tlen : at + step;
    bound[nb++] = at;
    if (at == tlen) break;
  }

  /* reference */
  long first[MAX_STOPS];
  size_t end_min = SIZE_MAX;
  for (int i = 0; i < n_stops; i++) {
    first[i] = find(text, tlen, stops[i], slen[i]);
    if (first[i] >= 0 && (size_t)first[i] + slen[i] < end_min)
      end_min = (size_t)first[i] + slen[i];
  }
  size_t want_len = tlen, match_piece = SIZE_MAX;
  if (end_min != SIZE_MAX) {
    size_t k = 0;
    while (bound[k] < end_min)
      k++;
    match_piece = k;
    for (int i = 0; i < n_stops; i++)
      if (first[i] >= 0 && (size_t)first[i] + slen[i] <= bound[k] &&
          (size_t)first[i] < want_len)
        want_len = (size_t)first[i];
  }
  int substring_free = 1;
  for (int i = 0; i < n_stops; i++)
    for (int j = 0; j < n_stops; j++)
      if (i != j && slen[i] < slen[j] &&
          find((const unsigned char *)stops[j], slen[j], stops[i], slen[i]) >=
              0)
        substring_free = 0;
  if (substring_free) {
    size_t whole = tlen;
    for (int i = 0; i < n_stops; i++)
      if (first[i] >= 0 && (size_t)first[i] < whole) whole = (size_t)first[i];
    if (whole != want_len) abort(); /* the reference itself */
  }

  /* the filter */
  r1d_stop *s = NULL;
  r1d_error err = {0};
  if (r1d_stop_create(sp, n_stops, &s, &err) != R1D_OK) abort();
  char *emit = NULL;
  size_t emit_len = 0, prev = 0;
  int matched = 0;
  for (size_t k = 0; k < nb; k++) {
    size_t from = prev, to = bound[k];
    prev = to;
    int rc = r1d_stop_feed(s, (const char *)text + from, to - from, &emit,
                           &emit_len);
    if (rc < 0 || rc > 1 || !emit) abort();
    if (rc != (k >= match_piece)) {
      fprintf(stderr, "stop: piece %zu returned %d, reference %zu\n", k, rc,
              match_piece);
      abort();
    }
    if (matched && rc != 1) abort();
    matched = rc;
  }
  if (matched) {
    /* after a match, feeds return 1 and add nothing */
    size_t before = emit_len;
    if (r1d_stop_feed(s, "x", 1, &emit, &emit_len) != 1 || emit_len != before)
      abort();
  } else if (r1d_stop_flush(s, &emit, &emit_len) != 0) {
    abort();
  }
  if (emit_len != want_len || memcmp(emit, text, want_len) != 0 ||
      emit[emit_len] != 0) {
    fprintf(stderr, "stop: emitted %zu bytes, reference %zu (matched %d)\n",
            emit_len, want_len, matched);
    abort();
  }
  free(emit);
  r1d_stop_free(s);
  free(bound);
  free(text);
  return 0;
}
