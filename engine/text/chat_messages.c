/* chat_messages.c - chat messages from OpenAI-style JSON, normalised the
 * way transformers normalises them before rendering: null values count as
 * absent, text parts are concatenated, "thinking" and "reasoning" are
 * aliases of "reasoning_content". Tools and non-text parts are refused. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

/* ---- messages from JSON -------------------------------------------------- */

/* The message text of "content": a string, OpenAI-style text parts
 * (concatenated), or null/absent (""). Writes into dst when non-NULL and
 * returns the byte length through *len. */
static int content_text(json_t *c, size_t idx, char *dst, size_t *len,
                        r1d_error *err) {
  *len = 0;
  if (!c || json_is_null(c)) return 0;
  if (json_is_string(c)) {
    *len = json_string_length(c);
    if (dst) memcpy(dst, json_string_value(c), *len);
    return 0;
  }
  if (!json_is_array(c))
    return r1d_fail(err, R1D_EINVAL,
                    "message %zu: content must be a string, a list of parts "
                    "or null",
                    idx);
  size_t i;
  json_t *part;
  json_array_foreach(c, i, part) {
    const char *type = json_string_value(json_object_get(part, "type"));
    json_t *text = json_object_get(part, "text");
    if (!type)
      return r1d_fail(err, R1D_EINVAL,
                      "message %zu: content part %zu has no \"type\"", idx, i);
    if (strcmp(type, "text") != 0)
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "message %zu: content part type \"%s\" is not supported",
                      idx, type);
    if (!json_is_string(text))
      return r1d_fail(err, R1D_EINVAL,
                      "message %zu: text part %zu has no string \"text\"", idx,
                      i);
    if (dst)
      memcpy(dst + *len, json_string_value(text), json_string_length(text));
    *len += json_string_length(text);
  }
  return 0;
}

/* The assistant's thoughts: the first non-null of reasoning_content,
 * thinking and reasoning (the names transformers also accepts). */
static int reasoning_of(json_t *msg, size_t idx, json_t **out, r1d_error *err) {
  static const char *const keys[] = {"reasoning_content", "thinking",
                                     "reasoning"};
  *out = NULL;
  for (size_t k = 0; k < 3; k++) {
    json_t *v = json_object_get(msg, keys[k]);
    if (!v || json_is_null(v)) continue;
    if (!json_is_string(v))
      return r1d_fail(err, R1D_EINVAL, "message %zu: %s must be a string", idx,
                      keys[k]);
    *out = v;
    return 0;
  }
  return 0;
}

/* Checks one message and adds the bytes its strings need to *bytes. */
static int message_size(json_t *msg, size_t idx, size_t *bytes,
                        r1d_error *err) {
  if (!json_is_object(msg))
    return r1d_fail(err, R1D_EINVAL, "message %zu is not an object", idx);
  json_t *role = json_object_get(msg, "role");
  if (!json_is_string(role))
    return r1d_fail(err, R1D_EINVAL, "message %zu: no string \"role\"", idx);
  json_t *calls = json_object_get(msg, "tool_calls");
  if (calls && !json_is_null(calls) &&
      !(json_is_array(calls) && json_array_size(calls) == 0))
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "message %zu: tool_calls are not supported", idx);
  size_t clen;
  json_t *reasoning;
  int rc = content_text(json_object_get(msg, "content"), idx, NULL, &clen, err);
  if (rc == 0) rc = reasoning_of(msg, idx, &reasoning, err);
  if (rc) return rc;
  *bytes += json_string_length(role) + 1 + clen + 1;
  if (reasoning) *bytes += json_string_length(reasoning) + 1;
  return 0;
}

/* Copies message idx's strings to *cursor (sized by message_size). */
static void message_fill(json_t *msg, size_t idx, r1d_chat_message *m,
                         char **cursor) {
  json_t *role = json_object_get(msg, "role"), *reasoning;
  size_t len;
  m->role = *cursor;
  memcpy(*cursor, json_string_value(role), json_string_length(role) + 1);
  *cursor += json_string_length(role) + 1;
  m->content = *cursor;
  content_text(json_object_get(msg, "content"), idx, *cursor, &len, NULL);
  (*cursor)[len] = 0;
  *cursor += len + 1;
  reasoning_of(msg, idx, &reasoning, NULL);
  m->reasoning_content = NULL;
  if (reasoning) {
    m->reasoning_content = *cursor;
    memcpy(*cursor, json_string_value(reasoning),
           json_string_length(reasoning) + 1);
    *cursor += json_string_length(reasoning) + 1;
  }
}

int r1d_chat_messages_parse(const char *json_text, r1d_chat_message **msgs,
                            size_t *n, r1d_error *err) {
  *msgs = NULL;
  *n = 0;
  json_error_t jerr;
  json_t *arr = json_loads(json_text, 0, &jerr);
  if (!arr)
    return r1d_fail(err, R1D_EINVAL, "messages: JSON error at line %d: %s",
                    jerr.line, jerr.text);
  int rc = 0;
  size_t count = json_array_size(arr), bytes = 0, i;
  json_t *msg;
  if (!json_is_array(arr))
    rc = r1d_fail(err, R1D_EINVAL, "messages: not a JSON array");
  else if (count == 0)
    rc = r1d_fail(err, R1D_EINVAL, "messages: the array is empty");
  json_array_foreach(arr, i, msg) {
    if (rc) break;
    rc = message_size(msg, i, &bytes, err);
  }
  r1d_chat_message *out = NULL;
  if (rc == 0) {
    out = malloc(count * sizeof *out + bytes);
    if (!out) rc = r1d_fail(err, R1D_ENOMEM, "messages: out of memory");
  }
  if (rc == 0) {
    char *cursor = (char *)(out + count);
    json_array_foreach(arr, i, msg) message_fill(msg, i, &out[i], &cursor);
    *msgs = out;
    *n = count;
  }
  json_decref(arr);
  return rc;
}
