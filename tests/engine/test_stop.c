/* test_stop.c - stop strings over streamed pieces: matches split across
 * pieces, partial prefixes that are released, flush, several stop strings,
 * matches at the very start, UTF-8 text and stop strings, and a randomised
 * comparison with a whole-text reference over many piece splits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the four headers it needs */

#include "engine/serve/stop.h"

static r1d_stop *make(const char *const *stops, int n) {
  r1d_stop *s = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_stop_create(stops, n, &s, &err), 0);
  assert_non_null(s);
  return s;
}

/* Feeds one piece; checks the return code and the text it released. */
static void feed(r1d_stop *s, const char *piece, int want_rc,
                 const char *want_text) {
  char *e = NULL;
  size_t n = 0;
  int rc = r1d_stop_feed(s, piece, strlen(piece), &e, &n);
  assert_int_equal(rc, want_rc);
  assert_non_null(e);
  assert_int_equal(n, strlen(want_text));
  assert_string_equal(e, want_text);
  free(e);
}

static void flush(r1d_stop *s, const char *want_text) {
  char *e = NULL;
  size_t n = 0;
  assert_int_equal(r1d_stop_flush(s, &e, &n), 0);
  assert_non_null(e);
  assert_int_equal(n, strlen(want_text));
  assert_string_equal(e, want_text);
  free(e);
}

static void test_split_across_pieces(void **state) {
  (void)state;
  const char *stops[] = {"STOP"};
  r1d_stop *s = make(stops, 1);
  feed(s, "hello S", 0, "hello ");
  feed(s, "T", 0, "");
  feed(s, "O", 0, "");
  feed(s, "P world", 1, "");
  feed(s, "more", 1, ""); /* after a match nothing more comes out */
  r1d_stop_free(s);

  s = make(stops, 1);
  feed(s, "xS", 0, "x");
  feed(s, "TOPy", 1, "");
  r1d_stop_free(s);

  s = make(stops, 1);
  feed(s, "ab", 0, "ab");
  feed(s, "cSTOPd", 1, "c");
  r1d_stop_free(s);
}

static void test_partial_released(void **state) {
  (void)state;
  const char *stops[] = {"</answer>"};
  r1d_stop *s = make(stops, 1);
  feed(s, "a </an", 0, "a ");
  feed(s, "d b", 0, "</and b");
  /* a held prefix that restarts inside itself: "<</answer>" */
  feed(s, "<", 0, "");
  feed(s, "<", 0, "<");
  feed(s, "/answer", 0, "");
  feed(s, ">", 1, "");
  r1d_stop_free(s);

  /* overlapping self-prefix: "aab" in "aaab" */
  const char *aab[] = {"aab"};
  s = make(aab, 1);
  feed(s, "a", 0, "");
  feed(s, "a", 0, "");
  feed(s, "a", 0, "a");
  feed(s, "b", 1, "");
  r1d_stop_free(s);
}

static void test_flush(void **state) {
  (void)state;
  const char *stops[] = {"STOP"};
  r1d_stop *s = make(stops, 1);
  feed(s, "abc ST", 0, "abc ");
  flush(s, "ST");
  flush(s, ""); /* nothing left */
  r1d_stop_free(s);

  /* appending to the caller's buffer (as generate.c joins feed and flush) */
  s = make(stops, 1);
  char *e = NULL;
  size_t n = 0;
  assert_int_equal(r1d_stop_feed(s, "xy STO", 6, &e, &n), 0);
  assert_int_equal(r1d_stop_flush(s, &e, &n), 0);
  assert_int_equal(n, 6);
  assert_string_equal(e, "xy STO");
  free(e);
  r1d_stop_free(s);
}

static void test_two_stops(void **state) {
  (void)state;
  const char *stops[] = {"xyz", "bc"};
  r1d_stop *s = make(stops, 2);
  feed(s, "abcxyz", 1, "a"); /* earliest position wins */
  r1d_stop_free(s);

  s = make(stops, 2);
  feed(s, "axyzbc", 1, "a");
  r1d_stop_free(s);

  /* the longest held prefix over both strings */
  const char *ab[] = {"<|end|>", "<|eot|>"};
  s = make(ab, 2);
  feed(s, "hi <|e", 0, "hi ");
  feed(s, "o", 0, "");
  feed(s, "x", 0, "<|eox");
  feed(s, "<|end", 0, "");
  feed(s, "|>", 1, "");
  r1d_stop_free(s);

  /* same start: either string leaves the same text */
  const char *same[] = {"ab", "abc"};
  s = make(same, 2);
  feed(s, "zzabc", 1, "zz");
  r1d_stop_free(s);
}

static void test_stop_at_start(void **state) {
  (void)state;
  const char *stops[] = {"STOP"};
  r1d_stop *s = make(stops, 1);
  feed(s, "STOP and more", 1, "");
  r1d_stop_free(s);

  s = make(stops, 1);
  feed(s, "ST", 0, "");
  feed(s, "OP", 1, "");
  r1d_stop_free(s);
}

static void test_stop_whole_piece(void **state) {
  (void)state;
  const char *stops[] = {"\n\n", "User:"};
  r1d_stop *s = make(stops, 2);
  feed(s, "Hi", 0, "Hi");
  feed(s, "User:", 1, "");
  r1d_stop_free(s);

  s = make(stops, 2);
  feed(s, "line\n", 0, "line");
  feed(s, "\n", 1, "");
  r1d_stop_free(s);
}

static void test_utf8(void **state) {
  (void)state;
  const char *stops[] = {"。"};
  r1d_stop *s = make(stops, 1);
  feed(s, "你", 0, "你");
  feed(s, "好", 0, "好");
  feed(s, "。世界", 1, "");
  r1d_stop_free(s);

  /* a two-character stop string is held character-whole, then released */
  const char *two[] = {"。」"};
  s = make(two, 1);
  feed(s, "好。", 0, "好");
  feed(s, "x", 0, "。x");
  feed(s, "世。", 0, "世");
  feed(s, "」", 1, "");
  r1d_stop_free(s);

  /* shared lead byte: 中 (E4 B8 AD) vs 中文; 国 (E5 9B BD) differs early */
  const char *zh[] = {"中文"};
  s = make(zh, 1);
  feed(s, "说中", 0, "说");
  feed(s, "国话", 0, "中国话");
  feed(s, "中", 0, "");
  feed(s, "文", 1, "");
  r1d_stop_free(s);
}

static void test_create_errors(void **state) {
  (void)state;
  r1d_stop *s = NULL;
  r1d_error err = {0};
  const char *bad[] = {"ok", ""};
  assert_int_equal(r1d_stop_create(bad, 2, &s, &err), R1D_EINVAL);
  assert_null(s);
  assert_non_null(strstr(err.msg, "stop string 1 is empty"));
  /* no stop strings: everything passes straight through */
  assert_int_equal(r1d_stop_create(NULL, 0, &s, &err), 0);
  feed(s, "anything", 0, "anything");
  flush(s, "");
  r1d_stop_free(s);
}

/* ---- randomised: streamed result equals a whole-text reference ---- */

static uint64_t rng(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* 1 when b[0..n) is valid UTF-8 (no overlong/surrogate checks needed here:
 * the test text is built from whole characters). */
static int utf8_valid(const char *b, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)b[i];
    size_t len = c < 0x80         ? 1
                 : (c >> 5) == 6  ? 2
                 : (c >> 4) == 14 ? 3
                 : (c >> 3) == 30 ? 4
                                  : 0;
    if (len == 0 || i + len > n) return 0;
    for (size_t k = 1; k < len; k++)
      if (((unsigned char)b[i + k] >> 6) != 2) return 0;
    i += len;
  }
  return 1;
}

/* Whole-text reference: after the first piece whose end completes any stop
 * string, the visible text ends at the earliest start among the matches in
 * the text so far. Returns the visible length; *stopped says whether. */
static size_t reference(const char *text, const size_t *ends, int n_pieces,
                        const char *const *stops, int n_stops, int *stopped) {
  char buf[512];
  for (int p = 0; p < n_pieces; p++) {
    memcpy(buf, text, ends[p]);
    buf[ends[p]] = '\0';
    long best = -1;
    for (int i = 0; i < n_stops; i++) {
      const char *hit = strstr(buf, stops[i]);
      if (hit && (best < 0 || hit - buf < best)) best = hit - buf;
    }
    if (best >= 0) {
      *stopped = 1;
      return (size_t)best;
    }
  }
  *stopped = 0;
  return ends[n_pieces - 1];
}

static void test_random_against_reference(void **state) {
  (void)state;
  static const char *const alphabet[] = {"a",  "b", "。", "」", "你",
                                         "好", "<", "/",  ">",  "é"};
  static const char *const stop_sets[][3] = {
      {"。", NULL, NULL},   {"好。", "」", NULL},      {"ab", "b你", "</>"},
      {"aab", "aba", NULL}, {"。」好", "你好a", NULL}, {"é<", "<é", "éé"},
  };
  uint64_t x = 31337;
  int stopped_runs = 0, open_runs = 0;
  for (int run = 0; run < 3000; run++) {
    const char *const *stops = stop_sets[run % 6];
    int n_stops = 0;
    while (n_stops < 3 && stops[n_stops])
      n_stops++;
    /* text of 1..40 characters, pieces of 1..4 characters */
    char text[512];
    size_t ends[64], len = 0;
    int n_chars = 1 + (int)(rng(&x) % 40), n_pieces = 0, in_piece = 0;
    int piece_chars = 1 + (int)(rng(&x) % 4);
    for (int c = 0; c < n_chars; c++) {
      const char *ch = alphabet[rng(&x) % 10];
      memcpy(text + len, ch, strlen(ch));
      len += strlen(ch);
      if (++in_piece == piece_chars || c == n_chars - 1) {
        ends[n_pieces++] = len;
        in_piece = 0;
        piece_chars = 1 + (int)(rng(&x) % 4);
      }
    }
    text[len] = '\0';

    int want_stopped;
    size_t want_len =
        reference(text, ends, n_pieces, stops, n_stops, &want_stopped);
    r1d_stop *s = make(stops, n_stops);
    char out[512];
    size_t out_len = 0, start = 0;
    int got_stopped = 0;
    for (int p = 0; p < n_pieces && !got_stopped; p++) {
      char *e = NULL;
      size_t n = 0;
      int rc = r1d_stop_feed(s, text + start, ends[p] - start, &e, &n);
      assert_true(rc == 0 || rc == 1);
      assert_true(utf8_valid(e, n)); /* never half a character */
      memcpy(out + out_len, e, n);
      out_len += n;
      free(e);
      got_stopped = rc;
      start = ends[p];
    }
    if (!got_stopped) {
      char *e = NULL;
      size_t n = 0;
      assert_int_equal(r1d_stop_flush(s, &e, &n), 0);
      memcpy(out + out_len, e, n);
      out_len += n;
      free(e);
    }
    r1d_stop_free(s);
    out[out_len] = '\0';
    if (got_stopped != want_stopped || out_len != want_len)
      fprintf(stderr, "run %d text '%s': got '%s' (%d), want %zu (%d)\n", run,
              text, out, got_stopped, want_len, want_stopped);
    assert_int_equal(got_stopped, want_stopped);
    assert_int_equal(out_len, want_len);
    assert_memory_equal(out, text, out_len);
    stopped_runs += want_stopped;
    open_runs += !want_stopped;
  }
  /* both outcomes were exercised plenty */
  assert_true(stopped_runs > 300);
  assert_true(open_runs > 300);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_across_pieces),
      cmocka_unit_test(test_partial_released),
      cmocka_unit_test(test_flush),
      cmocka_unit_test(test_two_stops),
      cmocka_unit_test(test_stop_at_start),
      cmocka_unit_test(test_stop_whole_piece),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_create_errors),
      cmocka_unit_test(test_random_against_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
