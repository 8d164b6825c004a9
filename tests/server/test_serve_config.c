/* test_serve_config.c - `r1d serve` settings: defaults, the config file,
 * flags over the file, bad values named, sizes, and the shipped example
 * config/r1d.json loading cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/serve_config.h"

static int load(r1d_serve_config *c, r1d_error *err, int argc, ...) {
  char *argv[32];
  va_list ap;
  va_start(ap, argc);
  argv[0] = "serve";
  for (int i = 1; i < argc; i++)
    argv[i] = va_arg(ap, char *);
  va_end(ap);
  argv[argc] = NULL;
  return r1d_serve_config_load(c, argc, argv, err);
}

static char *write_tmp(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/r1d-cfg-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static void test_defaults(void **state) {
  (void)state;
  r1d_serve_config c;
  r1d_error err = {0};
  assert_int_equal(load(&c, &err, 3, "--model", "/m"), 0);
  assert_string_equal(c.model, "/m");
  assert_string_equal(c.host, "127.0.0.1");
  assert_int_equal(c.port, 8000);
  assert_string_equal(c.backend, "auto");
  assert_string_equal(c.reasoning_field, "reasoning_content");
  assert_int_equal(c.max_body, 4 << 20);
  assert_int_equal(c.max_num_seqs, 64);
  assert_int_equal(c.prefix_cache, 1);
  assert_null(c.api_key_file);
  r1d_serve_config_free(&c);
}

static void test_file_then_flags(void **state) {
  (void)state;
  char *path = write_tmp("{\"model\": \"/file\", \"port\": 9000, "
                         "\"max_body\": \"1MiB\", \"max_num_seqs\": 8, "
                         "\"prefix_cache\": false, \"_note\": 1, "
                         "\"cors_origins\": [\"http://a\", \"http://b\"]}");
  r1d_serve_config c;
  r1d_error err = {0};
  assert_int_equal(load(&c, &err, 5, "--port", "9100", "--config", path), 0);
  assert_string_equal(c.model, "/file");
  assert_int_equal(c.port, 9100); /* the flag wins, wherever it stands */
  assert_int_equal(c.max_body, 1 << 20);
  assert_int_equal(c.max_num_seqs, 8);
  assert_int_equal(c.prefix_cache, 0);
  assert_string_equal(c.cors_origins, "http://a,http://b");
  r1d_serve_config_free(&c);
  unlink(path);
}

static void test_errors_name_the_option(void **state) {
  (void)state;
  r1d_serve_config c;
  r1d_error err = {0};
  assert_int_not_equal(load(&c, &err, 5, "--model", "/m", "--port", "70000"),
                       0);
  assert_non_null(strstr(err.msg, "--port"));
  r1d_serve_config_free(&c);
  assert_int_not_equal(load(&c, &err, 2, "--bogus"), 0);
  assert_non_null(strstr(err.msg, "--bogus"));
  r1d_serve_config_free(&c);
  assert_int_not_equal(load(&c, &err, 1), 0);
  assert_non_null(strstr(err.msg, "--model"));
  r1d_serve_config_free(&c);
  assert_int_not_equal(
      load(&c, &err, 5, "--model", "/m", "--reasoning-field", "thoughts"), 0);
  assert_non_null(strstr(err.msg, "--reasoning-field"));
  r1d_serve_config_free(&c);
  char *path = write_tmp("{\"model\": \"/m\", \"max_num_seq\": 8}");
  assert_int_not_equal(load(&c, &err, 3, "--config", path), 0);
  assert_non_null(strstr(err.msg, "max_num_seq"));
  r1d_serve_config_free(&c);
  unlink(path);
  path = write_tmp("{\"model\": \"/m\",\n \"port\": }");
  assert_int_not_equal(load(&c, &err, 3, "--config", path), 0);
  assert_non_null(strstr(err.msg, "line 2"));
  r1d_serve_config_free(&c);
  unlink(path);
  assert_int_not_equal(
      load(&c, &err, 5, "--model", "/m", "--kv-memory", "lots"), 0);
  assert_non_null(strstr(err.msg, "--kv-memory"));
  r1d_serve_config_free(&c);
}

static void test_sizes_and_hosts(void **state) {
  (void)state;
  assert_int_equal(r1d_parse_size("65536"), 65536);
  assert_int_equal(r1d_parse_size("4MiB"), 4 << 20);
  assert_int_equal(r1d_parse_size("2G"), 2LL << 30);
  assert_int_equal(r1d_parse_size("1.5k"), 1536);
  assert_int_equal(r1d_parse_size("3 MB"), 3 << 20);
  assert_int_equal(r1d_parse_size("x"), -1);
  assert_int_equal(r1d_parse_size("4Q"), -1);
  assert_int_equal(r1d_parse_size("-1"), -1);
  assert_true(r1d_host_is_loopback("127.0.0.1"));
  assert_true(r1d_host_is_loopback("::1"));
  assert_false(r1d_host_is_loopback("0.0.0.0"));
  assert_false(r1d_host_is_loopback("10.0.0.1"));
}

static void test_shipped_example_loads(void **state) {
  (void)state;
  const char *root = getenv("R1D_SOURCE_ROOT");
  assert_non_null(root);
  char path[4096];
  snprintf(path, sizeof path, "%s/config/r1d.json", root);
  r1d_serve_config c;
  r1d_error err = {0};
  int rc = load(&c, &err, 3, "--config", path);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(c.max_body, 4 << 20);
  assert_string_equal(c.log_level, "info");
  r1d_serve_config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_file_then_flags),
      cmocka_unit_test(test_errors_name_the_option),
      cmocka_unit_test(test_sizes_and_hosts),
      cmocka_unit_test(test_shipped_example_loads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
