/* log.h - the server's log: one JSON object per line on stderr, which
 * journald stores as it is and jq reads back. Every line has "ts" (Unix
 * seconds with milliseconds), "level" and "event"; access lines add the
 * request id, route, status, tokens and latency. Keys never appear in a line,
 * only their ids (auth.h). The level can change at run time (SIGHUP). */
#ifndef R1D_SERVER_LOG_H
#define R1D_SERVER_LOG_H

#include <jansson.h>
#include <stdio.h>

typedef enum r1d_log_level {
  R1D_LOG_ERROR = 0,
  R1D_LOG_WARN = 1,
  R1D_LOG_INFO = 2,
  R1D_LOG_DEBUG = 3,
} r1d_log_level;

typedef struct r1d_log {
  r1d_log_level level;
  FILE *out; /* stderr */
} r1d_log;

/* "error", "warn", "info", "debug" -> the level; -1 for anything else. */
int r1d_log_level_parse(const char *name);
const char *r1d_log_level_name(r1d_log_level level);

/* Writes `fields` (an object; stolen, may be NULL) with ts, level and event
 * added, as one line, when level is enabled. */
void r1d_log_json(r1d_log *log, r1d_log_level level, const char *event,
                  json_t *fields);

/* A line {"event": event, "message": printf(...)}. */
void r1d_log_msg(r1d_log *log, r1d_log_level level, const char *event,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
