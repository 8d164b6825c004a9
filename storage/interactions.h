/* interactions.h - the log of answers the server gave, and users' feedback
 * on them (tables interactions and feedback, keys in db.h).
 *
 * A response id is its interaction's key in hex, so feedback finds the
 * record without an index: "chatcmpl-" (or "cmpl-") + 16 hex digits of the
 * time key + 8 hex digits of a random nonce. The nonce is checked against
 * the stored record's id, so an id cannot be guessed from the time alone.
 *
 * An interaction record (JSON, written by the server):
 *   {"id", "object": "chat.completion"|"text_completion", "created" (unix s),
 *    "model", "weight_version", "key_id" (API key id or null),
 *    "request": the request body as sent (messages or prompt, sampling),
 *    "prompt_tokens" (rendered prompt, summed over prompts),
 *    "choices": [{"index", "reasoning_content", "content", "finish_reason",
 *                 optional "tokens": [ids], "logprobs": [sampled logprobs]}],
 *    "usage": as answered, "latency_s", "ttft_s",
 *    "status": "ok" | "error" | "timeout" | "cancelled", "error" (if any)}
 * A feedback record: {"id" (the interaction's), "rating", "preferred",
 *   "comment", "created", "key_id"}; at least one of the first three. */
#ifndef R1D_STORAGE_INTERACTIONS_H
#define R1D_STORAGE_INTERACTIONS_H

#include <jansson.h>
#include <stdint.h>

#include "db.h"

enum { R1D_RESPONSE_ID_MAX = 48 };

/* Writes prefix + hex(key) + hex(nonce) into out (R1D_RESPONSE_ID_MAX). */
void r1d_response_id(const char *prefix, uint64_t key, uint32_t nonce,
                     char *out, size_t n);
/* The key of an r1d response id; R1D_EINVAL when id is not one. */
int r1d_response_id_key(const char *id, uint64_t *key);

/* Stores a record under key (never replacing one). */
int r1d_interaction_put(r1d_txn *t, uint64_t key, const char *json, size_t len,
                        r1d_error *err);
/* The record of response id as parsed JSON (*out owned by the caller).
 * R1D_ENOTFOUND when no record has that id. */
int r1d_interaction_get(r1d_txn *t, const char *id, json_t **out,
                        r1d_error *err);

/* Checks and normalises a feedback body ({"id", "rating" in [-1, 5],
 * "preferred" string, "comment" string; at least one of the last three;
 * other fields are refused}) into *out, adding "created". On failure err
 * names the field (err->msg begins with the field's name and ": "). */
int r1d_feedback_normalize(json_t *body, json_t **out, r1d_error *err);
/* Stores feedback for its "id"; R1D_ENOTFOUND when there is no such
 * interaction. *fkey (may be NULL) gets the feedback's own time key. */
int r1d_feedback_put(r1d_txn *t, json_t *feedback, uint64_t *fkey,
                     r1d_error *err);
/* The feedback of the interaction with key ikey, oldest first, as a new
 * JSON array. */
int r1d_feedback_list(r1d_txn *t, uint64_t ikey, json_t **out, r1d_error *err);

/* Calls fn for each record with key > after (0: all), oldest first, until
 * fn returns non-zero (1 stops quietly; negative is returned). */
typedef int (*r1d_interaction_fn)(void *arg, uint64_t key, const char *json,
                                  size_t len);
int r1d_interactions_scan(r1d_txn *t, uint64_t after, r1d_interaction_fn fn,
                          void *arg, r1d_error *err);

/* Choice `index` of a chat record as a TRL / Hugging Face "messages" row:
 * {"messages": the request's messages (earlier turns' reasoning_content
 * dropped, as the R1 template does) + {"role": "assistant", "content",
 * "reasoning_content"}, "id", "created", "model", "weight_version",
 * "finish_reason", "rating": the latest feedback's, or null}. feedback is
 * the record's feedback list (may be NULL). R1D_ENOTFOUND when the record
 * is not a successful chat answer with that choice. */
int r1d_interaction_to_messages(json_t *rec, int index, json_t *feedback,
                                json_t **out, r1d_error *err);

#endif
