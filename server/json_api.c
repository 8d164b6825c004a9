/* json_api.c - request parsing and typed field access (see json_api.h). */
#include "json_api.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

int api_fail(api_error *e, int status, const char *param, const char *code,
             const char *fmt, ...) {
  e->status = status;
  e->param = param;
  e->code = code;
  e->type = status == 401   ? "authentication_error"
            : status == 403 ? "permission_error"
            : status == 429 ? "rate_limit_error"
            : status >= 500 ? "server_error"
                            : "invalid_request_error";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return -1;
}

int api_parse_object(const char *body, size_t len, json_t **out, api_error *e) {
  json_error_t je;
  if (len == 0)
    return api_fail(e, 400, NULL, "invalid_json",
                    "the request body is empty; expected a JSON object");
  json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!v)
    return api_fail(e, 400, NULL, "invalid_json",
                    "invalid JSON at line %d column %d: %s", je.line, je.column,
                    je.text);
  if (!json_is_object(v)) {
    json_decref(v);
    return api_fail(e, 400, NULL, "invalid_json",
                    "the request body must be a JSON object");
  }
  *out = v;
  return 0;
}

static json_t *field(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_null(v) ? NULL : v;
}

int api_get_number(json_t *o, const char *key, double lo, double hi,
                   double *out, int *given, api_error *e) {
  json_t *v = field(o, key);
  if (given) *given = v != NULL;
  if (!v) return 0;
  if (!json_is_number(v))
    return api_fail(e, 400, key, "invalid_type", "'%s' must be a number", key);
  double d = json_number_value(v);
  if (!(d >= lo && d <= hi))
    return api_fail(e, 400, key, "invalid_value",
                    "'%s' must be in [%g, %g], got %g", key, lo, hi, d);
  *out = d;
  return 0;
}

int api_get_int(json_t *o, const char *key, long long lo, long long hi,
                long long *out, int *given, api_error *e) {
  json_t *v = field(o, key);
  if (given) *given = v != NULL;
  if (!v) return 0;
  long long x;
  if (json_is_integer(v)) {
    x = json_integer_value(v);
  } else if (json_is_real(v) &&
             json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e15) {
    x = (long long)json_real_value(v); /* 5.0 is an integer to Python too */
  } else {
    return api_fail(e, 400, key, "invalid_type", "'%s' must be an integer",
                    key);
  }
  if (x < lo || x > hi)
    return api_fail(e, 400, key, "invalid_value",
                    "'%s' must be in [%lld, %lld], got %lld", key, lo, hi, x);
  *out = x;
  return 0;
}

int api_get_bool(json_t *o, const char *key, int *out, int *given,
                 api_error *e) {
  json_t *v = field(o, key);
  if (given) *given = v != NULL;
  if (!v) return 0;
  if (!json_is_boolean(v))
    return api_fail(e, 400, key, "invalid_type", "'%s' must be a boolean", key);
  *out = json_is_true(v);
  return 0;
}

int api_get_string(json_t *o, const char *key, const char **out, api_error *e) {
  json_t *v = field(o, key);
  *out = NULL;
  if (!v) return 0;
  if (!json_is_string(v))
    return api_fail(e, 400, key, "invalid_type", "'%s' must be a string", key);
  *out = json_string_value(v);
  return 0;
}

void api_reply(http_exchange *ex, const api_error *e) {
  http_reply_error(ex, e->status, e->type, e->message, e->param, e->code);
}
