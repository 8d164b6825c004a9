/* test_metrics.c - the Prometheus exposition: histogram buckets are
 * cumulative and end in +Inf = count, request counters are per route and
 * code, and the route table cannot grow past its size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/metrics.h"

static void test_histogram_and_counters(void **state) {
  (void)state;
  r1d_metrics m;
  r1d_metrics_init(&m);
  r1d_histogram_observe(&m.ttft, 0.003); /* le 0.005 */
  r1d_histogram_observe(&m.ttft, 0.05);  /* le 0.06 */
  r1d_histogram_observe(&m.ttft, 100.0); /* only +Inf */
  r1d_metrics_count_request(&m, "/v1/chat/completions", 200);
  r1d_metrics_count_request(&m, "/v1/chat/completions", 200);
  r1d_metrics_count_request(&m, "/v1/chat/completions", 400);
  m.generation_tokens = 42;
  r1d_engine_stats st = {.running = 3,
                         .kv_blocks_total = 10,
                         .kv_blocks_used = 5,
                         .weight_version = 7};
  r1d_buf out = {0};
  assert_int_equal(r1d_metrics_render(&m, &st, "tiny", &out), 0);
  assert_int_equal(r1d_buf_append(&out, "", 1), 0);
  const char *t = out.p;
  assert_non_null(
      strstr(t, "r1d_time_to_first_token_seconds_bucket{le=\"0.001\"} 0\n"));
  assert_non_null(
      strstr(t, "r1d_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
  assert_non_null(
      strstr(t, "r1d_time_to_first_token_seconds_bucket{le=\"0.06\"} 2\n"));
  assert_non_null(
      strstr(t, "r1d_time_to_first_token_seconds_bucket{le=\"10\"} 2\n"));
  assert_non_null(
      strstr(t, "r1d_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"));
  assert_non_null(strstr(t, "r1d_time_to_first_token_seconds_count 3\n"));
  assert_non_null(strstr(
      t,
      "r1d_requests_total{route=\"/v1/chat/completions\",code=\"200\"} 2\n"));
  assert_non_null(strstr(
      t,
      "r1d_requests_total{route=\"/v1/chat/completions\",code=\"400\"} 1\n"));
  assert_non_null(strstr(t, "r1d_generation_tokens_total 42\n"));
  assert_non_null(strstr(t, "r1d_num_requests_running 3\n"));
  assert_non_null(strstr(t, "r1d_kv_cache_usage_ratio 0.5\n"));
  assert_non_null(
      strstr(t, "r1d_weight_version{model=\"tiny\",version=\"7\"} 1\n"));
  r1d_buf_free(&out);
}

static void test_series_are_bounded(void **state) {
  (void)state;
  r1d_metrics m;
  r1d_metrics_init(&m);
  char route[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(route, sizeof route, "/scan/%d", i);
    r1d_metrics_count_request(&m, route, 404);
  }
  assert_int_equal(m.n_series, R1D_METRICS_MAX_SERIES);
  assert_string_equal(m.series[R1D_METRICS_MAX_SERIES - 1].route, "other");
  assert_true(m.series[R1D_METRICS_MAX_SERIES - 1].count >=
              1000 - R1D_METRICS_MAX_SERIES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_histogram_and_counters),
      cmocka_unit_test(test_series_are_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
