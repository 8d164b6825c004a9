/* test_auth.c - API key files and lists, Bearer header checks, key ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/status.h"
#include "server/auth.h"

#define KEY_A "sk-test-0123456789abcdef"
#define KEY_B "sk-other-0123456789abcdef"
#define KEY_C "sk-admin-AAAAAAAAAAAAAAAA"

/* Writes `text` to a fresh temp file; the caller unlinks and frees it. */
static char *write_temp(const char *text) {
  char *path = strdup("/tmp/r1d-auth-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
  return path;
}

static r1d_keyring *load_text(const char *text) {
  char *path = write_temp(text);
  r1d_keyring *k = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_keyring_load(path, NULL, &k, &err), 0);
  unlink(path);
  free(path);
  return k;
}

static int check(const r1d_keyring *k, const char *header) {
  return r1d_keyring_check(k, header, NULL);
}

static void test_file_comments_blanks_crlf(void **state) {
  (void)state;
  r1d_keyring *k = load_text("# API keys\r\n"
                             "\r\n"
                             "  " KEY_A "  \r\n"
                             "   # indented comment\n"
                             "\t\n" KEY_B "\r\n" KEY_C); /* no final newline */
  assert_int_equal(r1d_keyring_count(k), 3);
  /* ids are the first 8 hex digits of SHA-256 (python hashlib) */
  assert_string_equal(r1d_keyring_id(k, 0), "key-c871f067");
  assert_string_equal(r1d_keyring_id(k, 1), "key-c6334c78");
  assert_string_equal(r1d_keyring_id(k, 2), "key-4f195a42");
  assert_null(r1d_keyring_id(k, 3));
  const char *id = NULL;
  assert_int_equal(r1d_keyring_check(k, "Bearer " KEY_B, &id), 1);
  assert_string_equal(id, "key-c6334c78");
  assert_int_equal(r1d_keyring_check(k, "Bearer " KEY_C, &id), 1);
  assert_string_equal(id, "key-4f195a42");
  r1d_keyring_free(k);
}

static void test_short_key_names_line_not_key(void **state) {
  (void)state;
  char *path = write_temp("# keys\n" KEY_A "\n\nshortsecret123\n");
  r1d_keyring *k = (r1d_keyring *)0x1;
  r1d_error err = {0};
  assert_int_equal(r1d_keyring_load(path, NULL, &k, &err), R1D_EFORMAT);
  assert_null(k);
  char want[256];
  snprintf(want, sizeof want, "%s:4:", path);
  assert_non_null(strstr(err.msg, want));
  assert_non_null(strstr(err.msg, "too short"));
  assert_null(strstr(err.msg, "shortsecret123"));
  assert_null(strstr(err.msg, KEY_A));
  unlink(path);
  free(path);
}

static void test_bad_characters_and_lengths(void **state) {
  (void)state;
  r1d_keyring *k = NULL;
  r1d_error err = {0};
  /* a space inside: printable but not allowed */
  assert_int_equal(
      r1d_keyring_load(NULL, "sk-test-01234 56789abcdef", &k, &err),
      R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "entry 1"));
  assert_null(strstr(err.msg, "56789abcdef"));
  /* non-ASCII byte */
  assert_int_equal(
      r1d_keyring_load(NULL, KEY_A ",sk-\xc3\xa9-0123456789abcdef", &k, &err),
      R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "entry 2"));
  /* exactly 16 and 256 are fine, 15 and 257 are not */
  char key[300];
  memset(key, 'z', sizeof key);
  key[256] = '\0';
  assert_int_equal(r1d_keyring_load(NULL, key, &k, &err), 0);
  assert_string_equal(r1d_keyring_id(k, 0), "key-fcc01087");
  char header[320];
  snprintf(header, sizeof header, "Bearer %s", key);
  assert_int_equal(check(k, header), 1);
  snprintf(header, sizeof header, "Bearer %sz", key); /* 257 chars */
  assert_int_equal(check(k, header), 0);
  r1d_keyring_free(k);
  key[256] = 'z';
  key[257] = '\0';
  assert_int_equal(r1d_keyring_load(NULL, key, &k, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "too long"));
  key[16] = '\0';
  assert_int_equal(r1d_keyring_load(NULL, key, &k, &err), 0);
  r1d_keyring_free(k);
  key[15] = '\0';
  assert_int_equal(r1d_keyring_load(NULL, key, &k, &err), R1D_EFORMAT);
}

static void test_env_list_and_file_together(void **state) {
  (void)state;
  r1d_keyring *k = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_keyring_load(NULL, " " KEY_A " ,," KEY_B ",", &k, &err),
                   0);
  assert_int_equal(r1d_keyring_count(k), 2);
  assert_int_equal(check(k, "Bearer " KEY_A), 1);
  assert_int_equal(check(k, "Bearer " KEY_B), 1);
  assert_int_equal(check(k, "Bearer " KEY_C), 0);
  r1d_keyring_free(k);

  char *path = write_temp(KEY_C "\n" KEY_A "\n");
  assert_int_equal(r1d_keyring_load(path, KEY_A "," KEY_B, &k, &err), 0);
  assert_int_equal(r1d_keyring_count(k), 3); /* KEY_A kept once */
  const char *id = NULL;
  assert_int_equal(r1d_keyring_check(k, "Bearer " KEY_B, &id), 1);
  assert_string_equal(id, "key-c6334c78");
  assert_int_equal(r1d_keyring_check(k, "Bearer " KEY_C, &id), 1);
  assert_string_equal(id, "key-4f195a42");
  r1d_keyring_free(k);
  unlink(path);
  free(path);
}

static void test_no_keys_and_missing_file(void **state) {
  (void)state;
  r1d_keyring *k = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_keyring_load(NULL, NULL, &k, &err), R1D_EINVAL);
  assert_int_equal(r1d_keyring_load(NULL, " , ,", &k, &err), R1D_EINVAL);
  char *path = write_temp("# nothing here\n\n");
  assert_int_equal(r1d_keyring_load(path, NULL, &k, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, path));
  unlink(path);
  assert_int_equal(r1d_keyring_load(path, NULL, &k, &err), R1D_EIO);
  assert_null(k);
  free(path);
}

static void test_headers(void **state) {
  (void)state;
  r1d_keyring *k = NULL;
  assert_int_equal(r1d_keyring_load(NULL, KEY_A "," KEY_B, &k, NULL), 0);
  const char *id = "untouched";
  assert_int_equal(r1d_keyring_check(k, "Bearer " KEY_A, &id), 1);
  assert_string_equal(id, "key-c871f067");
  assert_int_equal(check(k, "bearer " KEY_A), 1);
  assert_int_equal(check(k, "BEARER " KEY_A), 1);
  assert_int_equal(check(k, "Bearer   " KEY_A), 1);
  assert_int_equal(check(k, "Bearer " KEY_A " \r\n"), 1);
  id = "untouched";
  assert_int_equal(r1d_keyring_check(k, "Basic " KEY_A, &id), 0);
  assert_string_equal(id, "untouched");
  assert_int_equal(check(k, "Bearer"), 0);
  assert_int_equal(check(k, "Bearer "), 0);
  assert_int_equal(check(k, "Bearer" KEY_A), 0);
  assert_int_equal(check(k, ""), 0);
  assert_int_equal(check(k, NULL), 0);
  assert_int_equal(check(NULL, "Bearer " KEY_A), 0);
  assert_int_equal(check(k, " Bearer " KEY_A), 0);
  /* a prefix of a stored key, and a stored key plus more */
  assert_int_equal(check(k, "Bearer sk-test-0123456789abcde"), 0);
  assert_int_equal(check(k, "Bearer sk-test-"), 0);
  assert_int_equal(check(k, "Bearer " KEY_A "0"), 0);
  assert_int_equal(check(k, "Bearer " KEY_A " x"), 0);
  /* differs in the last character only; keys are case-sensitive */
  assert_int_equal(check(k, "Bearer sk-test-0123456789abcdeF"), 0);
  assert_int_equal(check(k, "Bearer SK-TEST-0123456789ABCDEF"), 0);
  r1d_keyring_free(k);
}

static void test_ids_stable_and_distinct(void **state) {
  (void)state;
  r1d_keyring *a = NULL, *b = NULL;
  assert_int_equal(r1d_keyring_load(NULL, KEY_A "," KEY_B "," KEY_C, &a, NULL),
                   0);
  assert_int_equal(r1d_keyring_load(NULL, KEY_C "," KEY_A, &b, NULL), 0);
  /* same key, same id across loads and orders */
  assert_string_equal(r1d_keyring_id(a, 0), r1d_keyring_id(b, 1));
  assert_string_equal(r1d_keyring_id(a, 2), r1d_keyring_id(b, 0));
  assert_string_not_equal(r1d_keyring_id(a, 0), r1d_keyring_id(a, 1));
  assert_string_not_equal(r1d_keyring_id(a, 1), r1d_keyring_id(a, 2));
  assert_string_not_equal(r1d_keyring_id(a, 0), r1d_keyring_id(a, 2));
  for (size_t i = 0; i < 3; i++) {
    const char *id = r1d_keyring_id(a, i);
    assert_int_equal(strlen(id), R1D_KEY_ID_LEN);
    assert_null(strstr(KEY_A KEY_B KEY_C, id + 4)); /* not a key substring */
  }
  /* SHA-256 padding edge: 56 and 64 byte keys (python hashlib) */
  char key[65];
  memset(key, 'x', 56);
  key[56] = '\0';
  r1d_keyring *c = NULL;
  assert_int_equal(r1d_keyring_load(NULL, key, &c, NULL), 0);
  assert_string_equal(r1d_keyring_id(c, 0), "key-04c26261");
  r1d_keyring_free(c);
  memset(key, 'y', 64);
  key[64] = '\0';
  assert_int_equal(r1d_keyring_load(NULL, key, &c, NULL), 0);
  assert_string_equal(r1d_keyring_id(c, 0), "key-ffbf30ab");
  r1d_keyring_free(c);
  r1d_keyring_free(a);
  r1d_keyring_free(b);
  r1d_keyring_free(NULL);
}

/* Reload as documented: a failed load leaves the caller's old ring intact. */
static void test_failed_reload_keeps_old_ring(void **state) {
  (void)state;
  r1d_keyring *live = NULL, *next = NULL;
  assert_int_equal(r1d_keyring_load(NULL, KEY_A, &live, NULL), 0);
  r1d_error err = {0};
  assert_int_equal(r1d_keyring_load(NULL, "tooshort", &next, &err),
                   R1D_EFORMAT);
  assert_null(next);
  assert_int_equal(check(live, "Bearer " KEY_A), 1);
  assert_int_equal(r1d_keyring_load(NULL, KEY_B, &next, &err), 0);
  r1d_keyring *old = live;
  live = next;
  r1d_keyring_free(old);
  assert_int_equal(check(live, "Bearer " KEY_A), 0);
  assert_int_equal(check(live, "Bearer " KEY_B), 1);
  r1d_keyring_free(live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_comments_blanks_crlf),
      cmocka_unit_test(test_short_key_names_line_not_key),
      cmocka_unit_test(test_bad_characters_and_lengths),
      cmocka_unit_test(test_env_list_and_file_together),
      cmocka_unit_test(test_no_keys_and_missing_file),
      cmocka_unit_test(test_headers),
      cmocka_unit_test(test_ids_stable_and_distinct),
      cmocka_unit_test(test_failed_reload_keeps_old_ring),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
