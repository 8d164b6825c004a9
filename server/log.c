/* log.c - JSON-lines logging on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int r1d_log_level_parse(const char *name) {
  for (int i = 0; name && i < 4; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

const char *r1d_log_level_name(r1d_log_level level) {
  return level >= 0 && level <= R1D_LOG_DEBUG ? level_names[level] : "?";
}

void r1d_log_json(r1d_log *log, r1d_log_level level, const char *event,
                  json_t *fields) {
  if (level > log->level) {
    json_decref(fields);
    return;
  }
  json_t *o = json_object();
  if (!o) {
    json_decref(fields);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double t = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) * 1e-3;
  json_object_set_new(o, "ts", json_real(t));
  json_object_set_new(o, "level", json_string(r1d_log_level_name(level)));
  json_object_set_new(o, "event", json_string(event));
  if (fields) json_object_update(o, fields);
  json_decref(fields);
  char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
  json_decref(o);
  if (!line) return;
  /* one fputs per line: stdio's lock keeps lines whole across threads */
  size_t n = strlen(line);
  line[n] = '\0';
  fprintf(log->out ? log->out : stderr, "%s\n", line);
  fflush(log->out ? log->out : stderr);
  free(line);
}

void r1d_log_msg(r1d_log *log, r1d_log_level level, const char *event,
                 const char *fmt, ...) {
  if (level > log->level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r1d_log_json(log, level, event, json_pack("{s:s}", "message", msg));
}
