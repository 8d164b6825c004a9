/* detok.c - token ids to streamed text pieces with stop strings (see
 * detok.h). */
#include "detok.h"

#include <stdlib.h>
#include <string.h>

#include "../../common/utf8.h"

int r1d_detok_init(r1d_detok *d, const r1d_tokenizer *tok,
                   const char *const *stop, int n_stop, int keep_special,
                   r1d_error *err) {
  memset(d, 0, sizeof *d);
  d->tok = tok;
  d->keep_special = keep_special;
  if (n_stop > 0) return r1d_stop_create(stop, n_stop, &d->stop, err);
  return 0;
}

void r1d_detok_free(r1d_detok *d) {
  if (!d) return;
  r1d_buf_free(&d->pending);
  r1d_buf_free(&d->text);
  r1d_stop_free(d->stop);
  d->stop = NULL;
}

/* Moves complete characters (all bytes when `final`) through the stop-string
 * filter into *text. */
static int release_text(r1d_detok *d, int final, char **text, size_t *len) {
  const unsigned char *p = (const unsigned char *)d->pending.p;
  size_t ready =
      final ? d->pending.n : r1d_utf8_complete_prefix(p, d->pending.n);
  d->text.n = 0;
  if (r1d_utf8_lossy_append(&d->text, p, ready) ||
      r1d_buf_append(&d->text, "", 1))
    return R1D_ENOMEM;
  r1d_buf_consume(&d->pending, ready);
  size_t vlen = d->text.n - 1;
  *text = NULL;
  *len = 0;
  if (!d->stop) {
    *text = malloc(vlen + 1); /* token bytes may include NUL: no strdup */
    if (!*text) return R1D_ENOMEM;
    memcpy(*text, d->text.p, vlen + 1);
    *len = vlen;
    return 0;
  }
  int rc = r1d_stop_feed(d->stop, d->text.p, vlen, text, len);
  if (rc == 0 && final) /* no stop matched: release what was held back */
    rc = r1d_stop_flush(d->stop, text, len);
  return rc;
}

int r1d_detok_push(r1d_detok *d, int32_t id, int hidden, int final, char **text,
                   size_t *len) {
  /* without a tokenizer (benchmarks on random models) there is no text */
  if (d->tok && !hidden &&
      (d->keep_special || !r1d_tokenizer_is_special(d->tok, id))) {
    size_t nb = 0;
    const char *bytes = r1d_tokenizer_token_bytes(d->tok, id, &nb);
    if (bytes && r1d_buf_append(&d->pending, bytes, nb)) return R1D_ENOMEM;
  }
  return release_text(d, final, text, len);
}
