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
#include "common/status.h"

static void test_fail_formats_message(void **state) {
  (void)state;
  r1d_error err = {0};
  int rc = r1d_fail(&err, R1D_EFORMAT, "%s: bad %d", "x.json", 7);
  assert_int_equal(rc, R1D_EFORMAT);
  assert_int_equal(err.code, R1D_EFORMAT);
  assert_string_equal(err.msg, "x.json: bad 7");
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fail_formats_message),
      cmocka_unit_test(test_path_join),
      cmocka_unit_test(test_atomic_write_and_read),
      cmocka_unit_test(test_read_missing_names_file),
      cmocka_unit_test(test_write_into_missing_dir_fails),
      cmocka_unit_test(test_mkdir_p),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
