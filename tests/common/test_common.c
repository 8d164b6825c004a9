/* test_common.c - the error record, path joining and atomic file writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "common/sha256.h"
#include "common/status.h"

static void test_fail_formats_message(void **state) {
  (void)state;
  r1d_error err = {0};
  int rc = r1d_fail(&err, R1D_EFORMAT, "%s: bad %d", "x.json", 7);
  assert_int_equal(rc, R1D_EFORMAT);
  assert_int_equal(err.code, R1D_EFORMAT);
  assert_string_equal(err.msg, "x.json: bad 7");
  /* context added around the earlier message, passed as an argument */
  r1d_fail(&err, R1D_EIO, "step %d: %s; kept", 4, err.msg);
  assert_string_equal(err.msg, "step 4: x.json: bad 7; kept");
  assert_int_equal(r1d_fail(NULL, R1D_EIO, "ignored"), R1D_EIO);
  assert_string_equal(r1d_strerror(R1D_ENOTFOUND), "not found");
  assert_string_equal(r1d_strerror(12345), "unknown error");
}

static void test_path_join(void **state) {
  (void)state;
  char *a = r1d_path_join("dir", "f.json");
  char *b = r1d_path_join("dir/", "f.json");
  assert_string_equal(a, "dir/f.json");
  assert_string_equal(b, "dir/f.json");
  free(a);
  free(b);
}

static void test_atomic_write_and_read(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *path = r1d_path_join(dir, "out.bin");
  const char payload[] = "hello\0world";
  r1d_error err = {0};
  assert_int_equal(r1d_write_file_atomic(path, payload, sizeof payload, &err),
                   0);
  assert_true(r1d_file_exists(path));
  char *tmp = r1d_path_join(dir, "out.bin.tmp");
  assert_false(r1d_file_exists(tmp)); /* renamed away */
  char *data = NULL;
  size_t len = 0;
  assert_int_equal(r1d_read_file(path, &data, &len, &err), 0);
  assert_int_equal(len, sizeof payload);
  assert_memory_equal(data, payload, sizeof payload);
  assert_int_equal(data[len], '\0');
  free(data);
  unlink(path);
  rmdir(dir);
  free(tmp);
  free(path);
}

static void test_read_missing_names_file(void **state) {
  (void)state;
  r1d_error err = {0};
  char *data = (char *)1;
  int rc = r1d_read_file("/nonexistent/r1d.json", &data, NULL, &err);
  assert_int_equal(rc, R1D_EIO);
  assert_null(data);
  assert_non_null(strstr(err.msg, "/nonexistent/r1d.json"));
}

static void test_write_into_missing_dir_fails(void **state) {
  (void)state;
  r1d_error err = {0};
  int rc = r1d_write_file_atomic("/nonexistent/dir/x", "a", 1, &err);
  assert_int_equal(rc, R1D_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/dir/x"));
}

static void test_mkdir_p(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *deep = r1d_path_join(dir, "a/b/c");
  r1d_error err = {0};
  assert_int_equal(r1d_mkdir_p(deep, &err), 0);
  assert_int_equal(r1d_mkdir_p(deep, &err), 0); /* idempotent */
  char *file = r1d_path_join(deep, "f");
  assert_int_equal(r1d_write_file_atomic(file, "x", 1, &err), 0);
  /* a path through a regular file cannot be created */
  char *through = r1d_path_join(file, "d");
  assert_int_equal(r1d_mkdir_p(through, &err), R1D_EIO);
  assert_non_null(strstr(err.msg, through));
  assert_int_equal(r1d_mkdir_p(file, &err), R1D_EIO);
  unlink(file);
  char *b = r1d_path_join(dir, "a/b"), *a = r1d_path_join(dir, "a");
  rmdir(deep);
  rmdir(b);
  rmdir(a);
  rmdir(dir);
  free(a);
  free(b);
  free(through);
  free(file);
  free(deep);
}

static void expect_sha256(const void *data, size_t len, const char *want) {
  unsigned char d[R1D_SHA256_BYTES];
  char hex[R1D_SHA256_HEX + 1];
  r1d_sha256(data, len, d);
  r1d_sha256_hex(d, hex);
  assert_string_equal(hex, want);
}

/* FIPS 180-4 / NIST example vectors, and lengths around the padding edge
 * (55 bytes fit one block, 56 need two) fed in pieces of every size. */
static void test_sha256_vectors(void **state) {
  (void)state;
  expect_sha256(
      "", 0,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  expect_sha256(
      "abc", 3,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  expect_sha256(
      two, strlen(two),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  size_t n = 1000000;
  char *a = malloc(n);
  assert_non_null(a);
  memset(a, 'a', n);
  expect_sha256(
      a, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  /* streaming in uneven pieces gives the one-call digest */
  unsigned char whole[R1D_SHA256_BYTES], parts[R1D_SHA256_BYTES];
  for (size_t len = 50; len <= 130; len++) {
    r1d_sha256(a, len, whole);
    for (size_t piece = 1; piece <= 70; piece += 23) {
      r1d_sha256_ctx s;
      r1d_sha256_init(&s);
      for (size_t off = 0; off < len; off += piece)
        r1d_sha256_update(&s, a + off, len - off < piece ? len - off : piece);
      r1d_sha256_final(&s, parts);
      assert_memory_equal(whole, parts, sizeof whole);
    }
  }
  /* the file reader agrees and reports the size */
  char path[] = "/tmp/r1d-sha-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, a, n), (ssize_t)n);
  close(fd);
  char hex[R1D_SHA256_HEX + 1];
  uint64_t bytes = 0;
  r1d_error err = {0};
  assert_int_equal(r1d_sha256_file(path, hex, &bytes, &err), 0);
  assert_string_equal(
      hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  assert_int_equal(bytes, n);
  unlink(path);
  assert_int_equal(r1d_sha256_file(path, hex, NULL, &err), R1D_EIO);
  assert_non_null(strstr(err.msg, path));
  free(a);
}

/* Lines with and without a final newline, blank ones, and an empty text. */
static void test_next_line(void **state) {
  (void)state;
  const char text[] = "ab\n\nc";
  size_t pos = 0, n;
  const char *line;
  assert_int_equal(r1d_next_line(text, 5, &pos, &line, &n), 1);
  assert_int_equal(n, 2);
  assert_memory_equal(line, "ab", 2);
  assert_int_equal(r1d_next_line(text, 5, &pos, &line, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(r1d_next_line(text, 5, &pos, &line, &n), 1);
  assert_int_equal(n, 1);
  assert_int_equal(line[0], 'c');
  assert_int_equal(r1d_next_line(text, 5, &pos, &line, &n), 0);
  pos = 0;
  assert_int_equal(r1d_next_line("x\n", 2, &pos, &line, &n), 1);
  assert_int_equal(n, 1);
  assert_int_equal(r1d_next_line("x\n", 2, &pos, &line, &n), 0);
  pos = 0;
  assert_int_equal(r1d_next_line("", 0, &pos, &line, &n), 0);
  assert_int_equal(r1d_next_line(NULL, 0, &pos, &line, &n), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fail_formats_message),
      cmocka_unit_test(test_sha256_vectors),
      cmocka_unit_test(test_path_join),
      cmocka_unit_test(test_atomic_write_and_read),
      cmocka_unit_test(test_read_missing_names_file),
      cmocka_unit_test(test_write_into_missing_dir_fails),
      cmocka_unit_test(test_mkdir_p),
      cmocka_unit_test(test_next_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
