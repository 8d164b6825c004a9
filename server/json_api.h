/* json_api.h - reading OpenAI-style request bodies: the body parsed with
 * line and column on error, typed field getters that name the field in the
 * error's `param`, and the error record every route answers with. A field
 * that is absent or null takes its default; one with a wrong type or out of
 * range is a 400 naming it. */
#ifndef R1D_SERVER_JSON_API_H
#define R1D_SERVER_JSON_API_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"

typedef struct api_error {
  int status;
  const char *type;  /* invalid_request_error, authentication_error, ... */
  const char *param; /* the field, or NULL */
  const char *code;  /* machine-readable code, or NULL */
  char message[640];
} api_error;

/* Fills e and returns -1. */
int api_fail(api_error *e, int status, const char *param, const char *code,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parses the body as a JSON object. */
int api_parse_object(const char *body, size_t len, json_t **out, api_error *e);

/* Getters: return 0 (with *given = 1 when the field was there) or -1. */
int api_get_number(json_t *o, const char *key, double lo, double hi,
                   double *out, int *given, api_error *e);
int api_get_int(json_t *o, const char *key, long long lo, long long hi,
                long long *out, int *given, api_error *e);
int api_get_bool(json_t *o, const char *key, int *out, int *given,
                 api_error *e);
/* *out points into o (NULL when absent). */
int api_get_string(json_t *o, const char *key, const char **out, api_error *e);

void api_reply(http_exchange *ex, const api_error *e);

#endif
