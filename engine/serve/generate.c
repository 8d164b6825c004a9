/* generate.c - the single-sequence generation loop (see generate.h). */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stop.h"

const char *r1d_finish_reason_name(r1d_finish_reason r) {
  switch (r) {
  case R1D_FINISH_STOP: return "stop";
  case R1D_FINISH_LENGTH: return "length";
  case R1D_FINISH_ABORT: return "abort";
  default: return "none";
  }
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Length of the longest prefix of b[0..n) that ends on a UTF-8 character
 * boundary, i.e. excluding a trailing incomplete sequence (at most 3 bytes).
 * A trailing sequence that can never complete (bad lead byte) is not held. */
static size_t utf8_complete_prefix(const unsigned char *b, size_t n) {
  size_t back = 0;
  while (back < 4 && back < n) {
    unsigned char c = b[n - 1 - back];
    if ((c & 0xC0) != 0x80) {
      size_t need = c < 0x80         ? 1
                    : (c >> 5) == 6  ? 2
                    : (c >> 4) == 14 ? 3
                    : (c >> 3) == 30 ? 4
                                     : 1;
      return back + 1 >= need ? n : n - back - 1;
    }
    back++;
  }
  return n;
}

/* Replaces invalid UTF-8 by U+FFFD (as the tokenizers decoder does) into a
 * new buffer; used when flushing bytes that can no longer complete. */
static char *utf8_lossy(const unsigned char *b, size_t n, size_t *out_len) {
  char *out = malloc(n * 3 + 1);
  if (!out) return NULL;
  size_t o = 0, i = 0;
  while (i < n) {
    unsigned char c = b[i];
    size_t need = c < 0x80         ? 1
                  : (c >> 5) == 6  ? 2
                  : (c >> 4) == 14 ? 3
                  : (c >> 3) == 30 ? 4
                                   : 0;
    size_t k = 1;
    if (need > 1 && i + need <= n) {
      while (k < need && (b[i + k] & 0xC0) == 0x80)
        k++;
    }
    if (need == 0 || k < need || i + need > n) {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += 1;
    } else {
      memcpy(out + o, b + i, need);
      o += need;
      i += need;
    }
  }
  out[o] = '\0';
  *out_len = o;
  return out;
}

typedef struct gen_state {
  unsigned char *pending; /* token bytes not yet forming whole characters */
  size_t n_pending, cap_pending;
  r1d_stop *stop;
} gen_state;

static int pending_append(gen_state *g, const char *b, size_t n) {
  if (g->n_pending + n > g->cap_pending) {
    size_t cap = (g->n_pending + n) * 2 + 16;
    unsigned char *nb = realloc(g->pending, cap);
    if (!nb) return R1D_ENOMEM;
    g->pending = nb;
    g->cap_pending = cap;
  }
  memcpy(g->pending + g->n_pending, b, n);
  g->n_pending += n;
  return 0;
}

/* Moves complete characters (all bytes when `final`) through the stop-string
 * filter. *text receives the visible text (malloc'ed); returns 1 when a stop
 * string matched, 0 otherwise, negative on error. */
static int release_text(gen_state *g, int final, char **text, size_t *len) {
  size_t ready =
      final ? g->n_pending : utf8_complete_prefix(g->pending, g->n_pending);
  size_t vlen = 0;
  char *valid = utf8_lossy(g->pending, ready, &vlen);
  if (!valid) return R1D_ENOMEM;
  memmove(g->pending, g->pending + ready, g->n_pending - ready);
  g->n_pending -= ready;
  *text = NULL;
  *len = 0;
  if (!g->stop) {
    *text = valid;
    *len = vlen;
    return 0;
  }
  int rc = r1d_stop_feed(g->stop, valid, vlen, text, len);
  free(valid);
  if (rc < 0) return rc;
  if (rc == 0 && final) {
    char *rest = NULL;
    size_t rest_len = 0;
    int frc = r1d_stop_flush(g->stop, &rest, &rest_len);
    if (frc < 0) return frc;
    if (rest_len > 0) {
      char *joined = realloc(*text, *len + rest_len + 1);
      if (!joined) {
        free(rest);
        return R1D_ENOMEM;
      }
      memcpy(joined + *len, rest, rest_len + 1);
      *text = joined;
      *len += rest_len;
    }
    free(rest);
  }
  return rc;
}

static int is_stop_id(const r1d_model *m, const r1d_gen_params *p, int32_t id) {
  if (!p->ignore_eos)
    for (int i = 0; i < m->cfg.n_eos; i++)
      if (m->cfg.eos_token_ids[i] == id) return 1;
  for (int i = 0; i < p->n_stop_ids; i++)
    if (p->stop_ids[i] == id) return 1;
  return 0;
}

int r1d_generate(r1d_model *m, const r1d_tokenizer *tok, const int32_t *prompt,
                 size_t n_prompt, const r1d_gen_params *p, r1d_gen_callback cb,
                 void *user, r1d_gen_result *res, r1d_error *err) {
  memset(res, 0, sizeof *res);
  const int vocab = m->cfg.vocab_size;
  if (n_prompt == 0)
    return r1d_fail(err, R1D_EINVAL, "prompt is empty (no tokens)");
  if (p->max_tokens <= 0)
    return r1d_fail(err, R1D_EINVAL, "max_tokens must be > 0, got %d",
                    p->max_tokens);
  if (p->n_top_logprobs < 0 || p->n_top_logprobs > R1D_GEN_MAX_TOP)
    return r1d_fail(err, R1D_EINVAL, "top_logprobs must be in [0, %d], got %d",
                    R1D_GEN_MAX_TOP, p->n_top_logprobs);
  int rc = r1d_sampling_params_validate(&p->sampling, vocab, err);
  if (rc) return rc;
  const int max_ctx = m->cfg.max_position_embeddings;
  if (n_prompt >= (size_t)max_ctx)
    return r1d_fail(err, R1D_ERANGE,
                    "prompt has %zu tokens; the model's context is %d",
                    n_prompt, max_ctx);
  int budget = p->max_tokens;
  if ((size_t)budget > (size_t)max_ctx - n_prompt)
    budget = (int)((size_t)max_ctx - n_prompt);

  gen_state g = {0};
  r1d_kv_cache *kv = NULL;
  r1d_sampler *sampler = NULL;
  float *logits = malloc(sizeof(float) * (size_t)vocab);
  if (!logits) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (p->n_stop > 0) {
    rc = r1d_stop_create(p->stop, p->n_stop, &g.stop, err);
    if (rc) goto done;
  }
  rc = r1d_kv_cache_create(m, (int)n_prompt + budget, &kv);
  if (rc) {
    r1d_fail(err, rc, "cannot allocate the KV cache for %zu tokens",
             n_prompt + (size_t)budget);
    goto done;
  }
  rc = r1d_sampler_create(&p->sampling, vocab, prompt, n_prompt, &sampler, err);
  if (rc) goto done;

  double t0 = now_seconds();
  rc = r1d_model_forward(m, kv, prompt, (int)n_prompt, 0, logits, err);
  if (rc) goto done;
  double t1 = now_seconds();
  res->prompt_tokens = (int)n_prompt;
  res->prefill_seconds = t1 - t0;

  r1d_top_logprob top[R1D_GEN_MAX_TOP];
  for (int step = 0; step < budget; step++) {
    float lp = 0.0f;
    int32_t id =
        r1d_sampler_sample(sampler, logits, &lp, p->n_top_logprobs ? top : NULL,
                           p->n_top_logprobs);
    res->completion_tokens++;
    int stop_token = is_stop_id(m, p, id);
    int last = stop_token || step + 1 == budget;
    if (!stop_token) { /* stop tokens are not part of the text (OpenAI) */
      size_t nb = 0;
      const char *bytes = r1d_tokenizer_token_bytes(tok, id, &nb);
      if (bytes && (rc = pending_append(&g, bytes, nb)) < 0) goto done;
    }
    char *text = NULL;
    size_t text_len = 0;
    int matched = release_text(&g, last, &text, &text_len);
    if (matched < 0) {
      rc = r1d_fail(err, matched, "out of memory");
      goto done;
    }
    r1d_gen_event ev = {.id = id,
                        .text = text ? text : "",
                        .text_len = text_len,
                        .logprob = lp,
                        .top = top,
                        .n_top = p->n_top_logprobs,
                        .is_stop = stop_token || matched};
    int abort_now = cb ? cb(user, &ev) : 0;
    free(text);
    if (stop_token || matched) {
      res->finish = R1D_FINISH_STOP;
      break;
    }
    if (abort_now) {
      res->finish = R1D_FINISH_ABORT;
      break;
    }
    if (step + 1 == budget) {
      res->finish = R1D_FINISH_LENGTH;
      break;
    }
    rc = r1d_model_forward(m, kv, &id, 1, 0, logits, err);
    if (rc) goto done;
  }
  res->decode_seconds = now_seconds() - t1;
  rc = R1D_OK;
done:
  free(logits);
  free(g.pending);
  r1d_stop_free(g.stop);
  r1d_sampler_free(sampler);
  r1d_kv_cache_free(kv);
  return rc;
}
