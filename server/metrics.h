/* metrics.h - the server's Prometheus metrics (names in design/API.md,
 * prefix r1d_). Counters and histograms are updated on the loop thread only
 * (every HTTP callback runs there), so they need no locks; the engine's own
 * counters are read through r1d_engine_stats_get when /metrics is rendered. */
#ifndef R1D_SERVER_METRICS_H
#define R1D_SERVER_METRICS_H

#include <stdint.h>

#include "../common/buf.h"
#include "../engine/serve/engine.h"

enum { R1D_HIST_BUCKETS = 16, R1D_METRICS_MAX_SERIES = 96 };

typedef struct r1d_histogram {
  const char *name, *help;
  int n_bounds;
  double bounds[R1D_HIST_BUCKETS]; /* upper bounds, ascending; +Inf implied */
  uint64_t counts[R1D_HIST_BUCKETS + 1];
  double sum;
  uint64_t count;
} r1d_histogram;

typedef struct r1d_request_series {
  char route[48];
  int code;
  uint64_t count;
} r1d_request_series;

typedef struct r1d_metrics {
  r1d_request_series series[R1D_METRICS_MAX_SERIES];
  int n_series;
  r1d_histogram request_duration, ttft, itl;
  uint64_t prompt_tokens, generation_tokens, reasoning_tokens;
  uint64_t weight_swaps;
  double weight_swap_seconds; /* flips, summed (the loads are apart) */
} r1d_metrics;

/* Storage's numbers, gathered when /metrics is rendered. */
typedef struct r1d_storage_metrics {
  int enabled, failing;
  size_t map_used, map_size, map_max, data_bytes, queued;
  uint64_t logged, log_failed, write_errors, commits, pruned, prune_errors;
  double commit_seconds;
} r1d_storage_metrics;

void r1d_metrics_init(r1d_metrics *m);
void r1d_histogram_observe(r1d_histogram *h, double v);
/* Counts one answered request; routes beyond the table's size share the
 * label "other" so a scanner cannot grow the table. */
void r1d_metrics_count_request(r1d_metrics *m, const char *route, int code);

/* Appends the Prometheus text exposition of m and the engine's stats. */
int r1d_metrics_render(const r1d_metrics *m, const r1d_engine_stats *st,
                       const char *model_id, r1d_buf *out);
int r1d_metrics_render_storage(const r1d_storage_metrics *m, r1d_buf *out);

#endif
