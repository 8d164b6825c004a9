/* metrics.c - Prometheus counters and histograms (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void hist_init(r1d_histogram *h, const char *name, const char *help,
                      const double *bounds, int n) {
  memset(h, 0, sizeof *h);
  h->name = name;
  h->help = help;
  h->n_bounds = n;
  memcpy(h->bounds, bounds, (size_t)n * sizeof *bounds);
}

void r1d_metrics_init(r1d_metrics *m) {
  memset(m, 0, sizeof *m);
  static const double dur[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                               5,    10,    20,   30,  60,   120, 300, 600};
  static const double ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                0.25,  0.5,   0.75, 1,    2.5,  5,    7.5,  10};
  static const double itl[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015,
                               0.02,   0.025, 0.05,   0.075, 0.1,  0.15,
                               0.2,    0.3,   0.5,    1};
  hist_init(&m->request_duration, "r1d_request_duration_seconds",
            "Time from request to the last byte of the answer", dur, 16);
  hist_init(&m->ttft, "r1d_time_to_first_token_seconds",
            "Time from request to the first generated token", ttft, 16);
  hist_init(&m->itl, "r1d_inter_token_latency_seconds",
            "Time between two generated tokens of one choice", itl, 16);
}

void r1d_histogram_observe(r1d_histogram *h, double v) {
  int i = 0;
  while (i < h->n_bounds && v > h->bounds[i])
    i++;
  h->counts[i]++;
  h->sum += v;
  h->count++;
}

static r1d_request_series *find_series(r1d_metrics *m, const char *route,
                                       int code) {
  for (int i = 0; i < m->n_series; i++)
    if (m->series[i].code == code && strcmp(m->series[i].route, route) == 0)
      return &m->series[i];
  return NULL;
}

void r1d_metrics_count_request(r1d_metrics *m, const char *route, int code) {
  r1d_request_series *s = find_series(m, route, code);
  if (!s && m->n_series >= R1D_METRICS_MAX_SERIES - 1) {
    /* the last slot is kept for the overflow label */
    route = "other";
    s = find_series(m, route, code);
    if (!s && m->n_series == R1D_METRICS_MAX_SERIES) return;
  }
  if (!s) {
    s = &m->series[m->n_series++];
    snprintf(s->route, sizeof s->route, "%s", route);
    s->code = code;
    s->count = 0;
  }
  s->count++;
}

static int put(r1d_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int put(r1d_buf *out, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return R1D_EINVAL;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  return r1d_buf_append(out, line, (size_t)n);
}

static int put_hist(r1d_buf *out, const r1d_histogram *h) {
  int rc = put(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help,
               h->name);
  uint64_t cum = 0;
  for (int i = 0; i < h->n_bounds && !rc; i++) {
    cum += h->counts[i];
    rc = put(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i],
             (unsigned long long)cum);
  }
  cum += h->counts[h->n_bounds];
  if (!rc)
    rc = put(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
             h->name, (unsigned long long)cum, h->name, h->sum, h->name,
             (unsigned long long)h->count);
  return rc;
}

static int put_metric(r1d_buf *out, const char *name, const char *type,
                      const char *help, double v) {
  return put(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name,
             type, name, v);
}

int r1d_metrics_render(const r1d_metrics *m, const r1d_engine_stats *st,
                       const char *model_id, r1d_buf *out) {
  int rc =
      put(out, "# HELP r1d_requests_total HTTP requests answered, by route "
               "and status code\n# TYPE r1d_requests_total counter\n");
  for (int i = 0; i < m->n_series && !rc; i++)
    rc = put(out, "r1d_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
             m->series[i].route, m->series[i].code,
             (unsigned long long)m->series[i].count);
  if (!rc) rc = put_hist(out, &m->request_duration);
  if (!rc) rc = put_hist(out, &m->ttft);
  if (!rc) rc = put_hist(out, &m->itl);
  double kv_used = st->kv_blocks_total > 0 ? (double)st->kv_blocks_used /
                                                 (double)st->kv_blocks_total
                                           : 0.0;
  double hit = st->prefix_queries > 0
                   ? (double)st->prefix_hit_tokens / (double)st->prefix_queries
                   : 0.0;
  struct {
    const char *name, *type, *help;
    double v;
  } plain[] = {
      {"r1d_prompt_tokens_total", "counter",
       "Prompt tokens of answered "
       "requests",
       (double)m->prompt_tokens},
      {"r1d_generation_tokens_total", "counter", "Generated tokens",
       (double)m->generation_tokens},
      {"r1d_reasoning_tokens_total", "counter",
       "Generated tokens inside <think>", (double)m->reasoning_tokens},
      {"r1d_num_requests_running", "gauge",
       "Sequences holding KV blocks in the engine", (double)st->running},
      {"r1d_num_requests_waiting", "gauge", "Sequences queued in the engine",
       (double)st->waiting},
      {"r1d_kv_cache_usage_ratio", "gauge", "Share of KV blocks in use",
       kv_used},
      {"r1d_prefix_cache_hit_ratio", "gauge",
       "Prompt tokens served from the prefix cache per prompt token looked "
       "up",
       hit},
      {"r1d_preemptions_total", "counter",
       "Sequences preempted (recomputed "
       "later)",
       (double)st->preemptions},
      {"r1d_engine_steps_total", "counter", "Engine steps run",
       (double)st->steps},
      {"r1d_weight_swaps_total", "counter", "Weight swaps and rollbacks done",
       (double)m->weight_swaps},
      {"r1d_weight_swap_seconds_total", "counter",
       "Seconds the swaps' flips took (loading the weights is apart)",
       m->weight_swap_seconds},
  };
  for (size_t i = 0; i < sizeof plain / sizeof plain[0] && !rc; i++)
    rc = put_metric(out, plain[i].name, plain[i].type, plain[i].help,
                    plain[i].v);
  if (!rc)
    rc = put(out,
             "# HELP r1d_weight_version The live weight version\n"
             "# TYPE r1d_weight_version gauge\n"
             "r1d_weight_version{model=\"%s\",version=\"%llu\"} 1\n",
             model_id, (unsigned long long)st->weight_version);
  return rc;
}

int r1d_metrics_render_storage(const r1d_storage_metrics *m, r1d_buf *out) {
  int rc = put_metric(out, "r1d_interactions_logged_total", "counter",
                      "answers committed to storage", (double)m->logged);
  rc |= put_metric(out, "r1d_interactions_log_failed_total", "counter",
                   "answers that could not be stored (storage full, I/O)",
                   (double)m->log_failed);
  if (!m->enabled) return rc;
  rc |= put_metric(out, "r1d_lmdb_map_used_bytes", "gauge",
                   "LMDB pages written so far (the file's high-water mark)",
                   (double)m->map_used);
  rc |= put_metric(out, "r1d_lmdb_map_size_bytes", "gauge",
                   "current LMDB map size (grows by doubling)",
                   (double)m->map_size);
  rc |= put_metric(out, "r1d_lmdb_map_max_bytes", "gauge",
                   "cap of the LMDB map (db_map_max)", (double)m->map_max);
  rc |= put_metric(out, "r1d_lmdb_data_bytes", "gauge",
                   "LMDB pages holding data now, all tables",
                   (double)m->data_bytes);
  rc |= put_metric(out, "r1d_storage_failing", "gauge",
                   "1 while the last storage write failed (full or I/O)",
                   (double)m->failing);
  rc |= put_metric(out, "r1d_storage_write_errors_total", "counter",
                   "storage write transactions that failed",
                   (double)m->write_errors);
  rc |= put_metric(out, "r1d_storage_commits_total", "counter",
                   "group-commit write transactions", (double)m->commits);
  rc |= put_metric(out, "r1d_storage_commit_seconds_total", "counter",
                   "time spent in group commits (apply + fsync)",
                   m->commit_seconds);
  rc |= put_metric(out, "r1d_storage_queued", "gauge",
                   "writes waiting for the writer thread", (double)m->queued);
  rc |= put_metric(out, "r1d_storage_pruned_total", "counter",
                   "interactions removed by retention", (double)m->pruned);
  rc |= put_metric(out, "r1d_storage_prune_errors_total", "counter",
                   "retention runs that failed", (double)m->prune_errors);
  return rc;
}
