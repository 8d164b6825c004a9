/* fuzz_tokenizer.c - libFuzzer harness for r1d_tokenizer_encode/decode with
 * the real Qwen3 and Llama-3 tokenizers ($R1D_SHARED/fixtures/tokenizers,
 * R1D_SHARED, default ../shared from the repository root), loaded once.
 *
 * Each input is encoded by both tokenizers. Checked:
 *   - encode fails (R1D_EINVAL) exactly when the input is not valid UTF-8,
 *     judged by an independent validator below;
 *   - decode(encode(x)) gives back x: exactly for Llama-3 (no normalizer),
 *     and NFC(x) for Qwen3. Qwen3 normalizes each gap between raw-matched
 *     added tokens on its own, so an input where an added token matched is
 *     not compared (a combining mark right after "<|im_end|>" would compose
 *     with '>' in NFC(x) but not in the tokenizer, as in `tokenizers`). NFC
 *     here is the tokenizer's own tok_nfc_dup (utf8proc adjusted to the
 *     Unicode version of `tokenizers`), so this checks pre-tokenization,
 *     BPE and decoding rather than the normalizer tables;
 *   - the input read as int32 ids decodes or fails with R1D_ERANGE.
 * Build: tests/fuzz/build.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/tokenizer_internal.h"

typedef struct {
  const char *name;
  r1d_tokenizer *t;
  uint8_t *is_added; /* id -> 1 if an added token */
  int added_strips;  /* some added token has lstrip/rstrip/single_word */
} tok_case;

static tok_case cases[] = {{"qwen3", NULL, NULL, 0}, {"llama3", NULL, NULL, 0}};
#define NCASES (sizeof cases / sizeof cases[0])

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *shared = getenv("R1D_SHARED");
  if (!shared) shared = "../shared"; /* run from the repository root */
  for (size_t i = 0; i < NCASES; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/tokenizers/%s/tokenizer.json",
             shared, cases[i].name);
    r1d_error err = {0};
    if (r1d_tokenizer_load(path, &cases[i].t, &err) != R1D_OK) {
      fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
      abort();
    }
    const r1d_tokenizer *t = cases[i].t;
    cases[i].is_added = calloc((size_t)t->n_ids, 1);
    if (!cases[i].is_added) abort();
    for (int k = 0; k < t->n_added; k++) {
      cases[i].is_added[t->added[k].id] = 1;
      if (t->added[k].lstrip || t->added[k].rstrip || t->added[k].single_word)
        cases[i].added_strips = 1;
    }
  }
  return 0;
}

/* Independent UTF-8 check (RFC 3629: no overlongs, surrogates or values
 * past U+10FFFF). */
static int valid_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += len;
  }
  return 1;
}

static void round_trip(tok_case *tc, const uint8_t *data, size_t size) {
  const r1d_tokenizer *t = tc->t;
  r1d_ids ids = {0};
  r1d_error err = {0};
  int valid = valid_utf8(data, size);
  int rc = r1d_tokenizer_encode(t, (const char *)data, size, &ids, &err);
  if (!valid) {
    if (rc != R1D_EINVAL || err.code != rc || !err.msg[0] || ids.n != 0) {
      fprintf(stderr, "%s: invalid UTF-8 gave rc %d\n", tc->name, rc);
      abort();
    }
    r1d_ids_free(&ids);
    return;
  }
  if (rc != R1D_OK) {
    fprintf(stderr, "%s: valid UTF-8 failed: %s\n", tc->name, err.msg);
    abort();
  }
  int has_added = 0;
  for (size_t i = 0; i < ids.n; i++) {
    if (ids.v[i] < 0 || ids.v[i] >= t->n_ids) abort();
    has_added |= tc->is_added[ids.v[i]];
  }
  char *text = NULL;
  size_t len = 0;
  if (r1d_tokenizer_decode(t, ids.v, ids.n, 0, &text, &len, &err) != R1D_OK)
    abort();
  if (!(has_added && (t->nfc || tc->added_strips))) {
    char *want = (char *)data;
    size_t want_len = size;
    char *nfc = NULL;
    if (t->nfc) {
      nfc = tok_nfc_dup((const char *)data, size, &want_len);
      if (!nfc) abort();
      want = nfc;
    }
    if (len != want_len || memcmp(text, want, len) != 0) {
      fprintf(stderr, "%s: decode(encode(x)) != %s(x) (%zu vs %zu bytes)\n",
              tc->name, t->nfc ? "NFC" : "", len, want_len);
      abort();
    }
    free(nfc);
  }
  free(text);
  /* skip_special drops ids; must still succeed. */
  if (r1d_tokenizer_decode(t, ids.v, ids.n, 1, &text, &len, &err) != R1D_OK)
    abort();
  free(text);
  r1d_ids_free(&ids);
}

/* The input as little-endian int32 ids folded around the vocabulary, with
 * some out of range: decode must succeed or fail with R1D_ERANGE. */
static void decode_ids(const r1d_tokenizer *t, const uint8_t *data,
                       size_t size) {
  size_t n = size / 4;
  if (n == 0) return;
  int32_t *ids = malloc(n * sizeof *ids);
  if (!ids) abort();
  int range_ok = 1;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, data + 4 * i, 4);
    ids[i] = (u & 0x80000000u) ? (int32_t)u
                               : (int32_t)(u % (uint32_t)(t->n_ids + 8));
    if (ids[i] < 0 || ids[i] >= t->n_ids || !t->tok_str[ids[i]]) range_ok = 0;
  }
  char *text = NULL;
  size_t len = 0;
  r1d_error err = {0};
  int rc =
      r1d_tokenizer_decode(t, ids, n, (int)(data[0] & 1), &text, &len, &err);
  if (range_ok ? rc != R1D_OK : rc != R1D_ERANGE) abort();
  if (rc == R1D_OK && (!text || strlen(text) > len)) abort();
  free(text);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (size_t i = 0; i < NCASES; i++)
    round_trip(&cases[i], data, size);
  decode_ids(cases[size % NCASES].t, data, size);
  return 0;
}
