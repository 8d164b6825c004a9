/* stop.h - stop strings over streamed text. Text arrives in pieces; a piece
 * that might be the start of a stop string is held back until it is clear,
 * so no stop string (or part of one) ever reaches the client.
 *
 * Generation ends at the first stop string completed, as in vLLM. When one
 * stop string contains another ("b" inside "abc"), where the cut falls can
 * depend on how the text was split into pieces: "abc" in one piece cuts at
 * "a", byte by byte the inner "b" completes first and "a" is shown. */
#ifndef R1D_ENGINE_SERVE_STOP_H
#define R1D_ENGINE_SERVE_STOP_H

#include <stddef.h>

#include "../../common/status.h"

typedef struct r1d_stop r1d_stop;

/* stops: n non-empty strings (copied). */
int r1d_stop_create(const char *const *stops, int n, r1d_stop **out,
                    r1d_error *err);
void r1d_stop_free(r1d_stop *s);

/* Feeds a text piece. Appends to *emit (malloc'ed, NUL-terminated, caller
 * frees; *emit_len its length) the text that is now safe to show. Returns 1
 * when a stop string matched (text from the match on is dropped and the
 * generation should end), 0 otherwise, negative on allocation failure.
 * *emit must be NULL (then *emit_len is ignored) or a buffer from an earlier
 * feed/flush with its length in *emit_len; on success it is never NULL.
 * Several stop strings: the earliest match position wins (stop strings that
 * match at the same position leave the same visible text). Comparison is
 * bytewise; with valid UTF-8 stop strings and text, cuts fall on character
 * boundaries. After a match, further feeds emit nothing and return 1. */
int r1d_stop_feed(r1d_stop *s, const char *piece, size_t len, char **emit,
                  size_t *emit_len);

/* At the end of generation: the held-back text (no stop matched). */
int r1d_stop_flush(r1d_stop *s, char **emit, size_t *emit_len);

#endif
