/* test_bpe_train.c - the byte-level BPE trainer (engine/text/bpe_train.c):
 * a merge order worked out by hand (with the tie rule), determinism of the
 * written file, the vocab-size limit, that the written tokenizer.json loads
 * in r1d and round-trips any UTF-8 (and decodes lone bytes to U+FFFD), that
 * training's segmentation is the encoder's, and the named errors.
 * (tests/cli/test_tokenizer_cli.py checks the file against `tokenizers`.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "engine/text/bpe_train.h"
#include "engine/text/tokenizer.h"

static const char *const r1_added[] = {
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>"};
enum { N_R1_ADDED = 4 };

static r1d_bpe_trainer *train_text(const char *text, int vocab, long long minf,
                                   int n_added) {
  r1d_bpe_options o = {.vocab_size = vocab,
                       .min_frequency = minf,
                       .added = r1_added,
                       .n_added = n_added};
  r1d_bpe_trainer *tr = NULL;
  r1d_error err = {0};
  if (r1d_bpe_trainer_new(&o, &tr, &err) ||
      r1d_bpe_trainer_add_text(tr, text, strlen(text), &err) ||
      r1d_bpe_trainer_train(tr, &err))
    fail_msg("training failed: %s", err.msg);
  return tr;
}

/* Pair counts of the words "hug", " hug" x2, " pug", " pun", " bun",
 * " hugs" (the Qwen2 regex keeps the space before a word):
 *   u+g 5 -> "ug"; then h+ug 4 -> "hug"; then ' '+hug 3 -> " hug";
 *   then ' '+p and u+n tie at 2: the lower pair (32,112) first -> " p",
 *   then u+n -> "un"; every other pair occurs once (< min_frequency 2). */
static void test_merge_order_by_hand(void **state) {
  (void)state;
  r1d_bpe_trainer *tr = train_text("hug hug hug pug pun bun hugs", 1000, 2, 0);
  static const int32_t want[][3] = {{'u', 'g', 256},
                                    {'h', 256, 257},
                                    {' ', 257, 258},
                                    {' ', 'p', 259},
                                    {'u', 'n', 260}};
  r1d_bpe_stats st;
  r1d_bpe_trainer_stats(tr, &st);
  assert_int_equal(st.merges, 5);
  assert_int_equal(st.vocab_size, 261);
  assert_int_equal(st.words, 7);
  assert_int_equal(st.distinct, 6);
  for (int i = 0; i < 5; i++) {
    int32_t l, r, z;
    assert_int_equal(r1d_bpe_trainer_merge(tr, i, &l, &r, &z), 0);
    assert_int_equal(l, want[i][0]);
    assert_int_equal(r, want[i][1]);
    assert_int_equal(z, want[i][2]);
  }
  size_t len;
  const char *t = r1d_bpe_trainer_token(tr, 258, &len);
  assert_int_equal(len, 4);
  assert_memory_equal(t, " hug", 4);
  int32_t l, r, z;
  assert_int_equal(r1d_bpe_trainer_merge(tr, 5, &l, &r, &z), R1D_ERANGE);
  assert_null(r1d_bpe_trainer_token(tr, 261, &len));
  /* tokens: hug | hug x2 | " p" ug | " p" un | ' ' b un | " hug" s */
  assert_int_equal(st.tokens, 1 + 2 + 2 + 2 + 3 + 2);
  r1d_bpe_trainer_free(tr);
}

/* vocab_size counts bytes, learned tokens and added tokens. */
static void test_vocab_size_limit(void **state) {
  (void)state;
  const char *text = "hug hug hug pug pun bun hugs";
  r1d_bpe_trainer *tr = train_text(text, 256 + N_R1_ADDED + 2, 1, N_R1_ADDED);
  r1d_bpe_stats st;
  r1d_bpe_trainer_stats(tr, &st);
  assert_int_equal(st.merges, 2);
  assert_int_equal(st.vocab_size, 256 + N_R1_ADDED + 2);
  r1d_bpe_trainer_free(tr);
  /* no merges at all is a byte-level tokenizer */
  tr = train_text(text, 256 + N_R1_ADDED, 1, N_R1_ADDED);
  r1d_bpe_trainer_stats(tr, &st);
  assert_int_equal(st.merges, 0);
  r1d_bpe_trainer_free(tr);
  /* min_frequency 1 runs until every word is one token */
  tr = train_text(text, 100000, 1, 0);
  r1d_bpe_trainer_stats(tr, &st);
  assert_int_equal(st.tokens, st.words);
  r1d_bpe_trainer_free(tr);
}

/* Mixed text: English, Chinese, digits, code, odd spacing, R1 tokens. */
static char *mixed_corpus(size_t *len) {
  static const char *const parts[] = {
      "The quick brown fox jumps over the lazy dog. ",
      "数学是研究数量、结构以及空间等概念的一门学科。",
      "int main(void) { return 42; }\n",
      "<think>Let me compute 12345 * 678 = 8369910.</think> ",
      "  indented\tline\r\n\n",
      "Ünïcödé naïve café — “quotes” and emoji 🙂🙂 ",
      "x = [i**2 for i in range(10)]  # squares\n",
  };
  r1d_buf b = {0};
  for (int rep = 0; rep < 40; rep++)
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
      char num[32];
      int n = snprintf(num, sizeof num, "%d ", rep * 7 + (int)i);
      if (r1d_buf_append(&b, parts[i], strlen(parts[i])) ||
          r1d_buf_append(&b, num, (size_t)n))
        fail_msg("out of memory");
    }
  if (r1d_buf_append(&b, "", 1)) fail_msg("out of memory");
  *len = b.n - 1;
  return b.p;
}

static char *write_trained(r1d_bpe_trainer *tr, char *dir, size_t dir_size) {
  snprintf(dir, dir_size, "/tmp/r1d-bpe-test-XXXXXX");
  if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
  char *path = r1d_path_join(dir, "tokenizer.json");
  r1d_error err = {0};
  if (r1d_bpe_trainer_write(tr, path, &err)) fail_msg("write: %s", err.msg);
  return path;
}

static void remove_written(char *path, const char *dir) {
  unlink(path);
  free(path);
  rmdir(dir);
}

static void test_deterministic(void **state) {
  (void)state;
  size_t n;
  char *text = mixed_corpus(&n);
  char da[64], db[64];
  r1d_bpe_trainer *a = train_text(text, 600, 2, N_R1_ADDED);
  r1d_bpe_trainer *b = train_text(text, 600, 2, N_R1_ADDED);
  char *pa = write_trained(a, da, sizeof da);
  char *pb = write_trained(b, db, sizeof db);
  char *fa, *fb;
  size_t la, lb;
  r1d_error err = {0};
  assert_int_equal(r1d_read_file(pa, &fa, &la, &err), 0);
  assert_int_equal(r1d_read_file(pb, &fb, &lb, &err), 0);
  assert_int_equal(la, lb);
  assert_memory_equal(fa, fb, la);
  free(fa);
  free(fb);
  remove_written(pa, da);
  remove_written(pb, db);
  r1d_bpe_trainer_free(a);
  r1d_bpe_trainer_free(b);
  free(text);
}

static void roundtrip(const r1d_tokenizer *tok, const char *s, size_t n) {
  r1d_ids ids = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_tokenizer_encode(tok, s, n, &ids, &err), 0);
  char *back;
  size_t blen;
  assert_int_equal(
      r1d_tokenizer_decode(tok, ids.v, ids.n, 0, &back, &blen, &err), 0);
  assert_int_equal(blen, n);
  assert_memory_equal(back, s, n);
  free(back);
  r1d_ids_free(&ids);
}

static void test_written_file_roundtrips(void **state) {
  (void)state;
  size_t n;
  char *text = mixed_corpus(&n);
  r1d_bpe_trainer *tr = train_text(text, 700, 2, N_R1_ADDED);
  r1d_bpe_stats st;
  r1d_bpe_trainer_stats(tr, &st);
  /* the 7 repeated parts run out of pairs seen twice before 700 */
  assert_true(st.merges >= 150 && st.vocab_size < 700);
  assert_int_equal(st.added_matches, 80); /* <think> and </think> x 40 */
  char dir[64];
  char *path = write_trained(tr, dir, sizeof dir);
  r1d_tokenizer *tok;
  r1d_error err = {0};
  assert_int_equal(r1d_tokenizer_load(path, &tok, &err), 0);
  assert_int_equal(r1d_tokenizer_vocab_size(tok), st.vocab_size);
  /* the added tokens follow the learned ones */
  assert_int_equal(r1d_tokenizer_token_to_id(tok, "<think>"),
                   st.vocab_size - 2);
  assert_true(r1d_tokenizer_is_special(tok, st.vocab_size - 1));

  /* training's segmentation is the encoder's */
  r1d_ids ids = {0};
  assert_int_equal(r1d_tokenizer_encode(tok, text, n, &ids, &err), 0);
  assert_int_equal((long long)ids.n, st.tokens);
  assert_true(ids.n * 2 < n); /* it compresses */
  r1d_ids_free(&ids);

  static const char *const samples[] = {
      "",
      "hello world",
      "unseen wörds ＷＩＤＥ ｔｅｘｔ",
      "<think>a</think><think>",
      "\xF0\x9F\xA4\x96 robot, \xE2\x80\x8B zero width, \xC2\xA0 nbsp",
      "tabs\t\tand\n\n\r\nnewlines   ",
      "数学 12345678901234567890 ",
      "a\x01\x7f control bytes",
  };
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
    roundtrip(tok, samples[i], strlen(samples[i]));
  /* every byte has a token: invalid UTF-8 comes back as U+FFFD */
  int32_t lone = r1d_tokenizer_token_to_id(tok, "ÿ"); /* byte 0xFF */
  assert_int_equal(lone, 0xFF);
  size_t bl;
  const char *bytes = r1d_tokenizer_token_bytes(tok, lone, &bl);
  assert_int_equal(bl, 1);
  assert_int_equal((unsigned char)bytes[0], 0xFF);
  char *dec;
  size_t dl;
  assert_int_equal(r1d_tokenizer_decode(tok, &lone, 1, 0, &dec, &dl, &err), 0);
  assert_string_equal(dec, "\xEF\xBF\xBD");
  free(dec);
  r1d_tokenizer_free(tok);
  remove_written(path, dir);
  r1d_bpe_trainer_free(tr);
  free(text);
}

static void test_errors(void **state) {
  (void)state;
  r1d_bpe_trainer *tr = NULL;
  r1d_error err = {0};
  r1d_bpe_options o = {.vocab_size = 255, .min_frequency = 2};
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_ERANGE);
  assert_non_null(strstr(err.msg, "vocab size 255"));
  assert_null(tr);
  o.vocab_size = R1D_BPE_MAX_VOCAB + 1;
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_ERANGE);
  o = (r1d_bpe_options){.vocab_size = 256 + 3,
                        .min_frequency = 2,
                        .added = r1_added,
                        .n_added = 4};
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_ERANGE);
  o.vocab_size = 1000;
  o.min_frequency = 0;
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_ERANGE);
  o.min_frequency = 2;
  static const char *const dup[] = {"<a>", "<a>"};
  o.added = dup;
  o.n_added = 2;
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_EINVAL);
  static const char *const empty[] = {""};
  o.added = empty;
  o.n_added = 1;
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_EINVAL);
  static const char *const bad[] = {"\xff"};
  o.added = bad;
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), R1D_EINVAL);

  o = (r1d_bpe_options){.vocab_size = 1000, .min_frequency = 2};
  assert_int_equal(r1d_bpe_trainer_new(&o, &tr, &err), 0);
  assert_int_equal(r1d_bpe_trainer_write(tr, "/tmp/never-written.json", &err),
                   R1D_ESTATE);
  assert_int_equal(r1d_bpe_trainer_add_text(tr, "ok \xC3(", 5, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "offset 3"));
  assert_int_equal(r1d_bpe_trainer_add_text(tr, "fine text", 9, &err), 0);
  assert_int_equal(r1d_bpe_trainer_train(tr, &err), 0);
  assert_int_equal(r1d_bpe_trainer_train(tr, &err), R1D_ESTATE);
  assert_int_equal(r1d_bpe_trainer_add_text(tr, "more", 4, &err), R1D_ESTATE);
  r1d_bpe_trainer_free(tr);
}

/* Empty corpus: nothing to merge, still a valid byte-level tokenizer. */
static void test_empty_corpus(void **state) {
  (void)state;
  r1d_bpe_trainer *tr = train_text("", 1000, 2, N_R1_ADDED);
  r1d_bpe_stats st;
  r1d_bpe_trainer_stats(tr, &st);
  assert_int_equal(st.merges, 0);
  assert_int_equal(st.vocab_size, 256 + N_R1_ADDED);
  char dir[64];
  char *path = write_trained(tr, dir, sizeof dir);
  r1d_tokenizer *tok;
  r1d_error err = {0};
  assert_int_equal(r1d_tokenizer_load(path, &tok, &err), 0);
  roundtrip(tok, "abc <think>", 11);
  r1d_tokenizer_free(tok);
  remove_written(path, dir);
  r1d_bpe_trainer_free(tr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merge_order_by_hand),
      cmocka_unit_test(test_vocab_size_limit),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_written_file_roundtrips),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_empty_corpus),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
