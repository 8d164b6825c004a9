/* detok.h - a sequence's output text, token by token: token bytes become
 * UTF-8 text pieces (an incomplete character is held back until its last
 * byte arrives; invalid bytes are repaired as U+FFFD), and stop strings are
 * watched so no stop string, or part of one, ever reaches the client. Used
 * by the single-sequence loop (generate.c) and by every engine sequence. */
#ifndef R1D_ENGINE_SERVE_DETOK_H
#define R1D_ENGINE_SERVE_DETOK_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/buf.h"
#include "../../common/status.h"
#include "../text/tokenizer.h"
#include "stop.h"

typedef struct r1d_detok {
  const r1d_tokenizer *tok;
  int keep_special; /* stream special tokens' text too */
  r1d_buf pending;  /* token bytes not yet forming whole characters */
  r1d_buf text;     /* scratch: the bytes released this step, repaired */
  r1d_stop *stop;   /* NULL without stop strings */
} r1d_detok;

int r1d_detok_init(r1d_detok *d, const r1d_tokenizer *tok,
                   const char *const *stop, int n_stop, int keep_special,
                   r1d_error *err);
void r1d_detok_free(r1d_detok *d);

/* Adds token `id` (its text is shown unless `hidden`, or it is special and
 * keep_special is off); `final` releases everything held back. *text gets
 * the newly visible text (malloc'ed, NUL-terminated, caller frees; may be
 * empty). Returns 1 when a stop string matched (the text from it on is
 * dropped), 0 otherwise, R1D_ENOMEM on allocation failure. */
int r1d_detok_push(r1d_detok *d, int32_t id, int hidden, int final, char **text,
                   size_t *len);

#endif
