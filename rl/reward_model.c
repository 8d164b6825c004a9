/* reward_model.c - the LM-judge reward model of reward_model.h: loading
 * (a trained folder or any base model), rendering and encoding of
 * (prompt, answer) + judge suffix, batched scoring r = z_GOOD - z_BAD,
 * preference-pair loading in TRL's formats, and Bradley-Terry training with
 * AdamW through the host trainer's weighted logprob backward. */
#include "reward_model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/file.h"
#include "../engine/model/checkpoint.h"
#include "../engine/model/model.h"
#include "../engine/text/template.h"
#include "../kernels/cpu/cpu_backend.h"

enum { DEFAULT_MAX_LEN = 512, DEFAULT_BATCH = 8 };

struct r1d_reward_model {
  char *dir; /* the folder loaded: config and tokenizer files to copy */
  r1d_backend be;
  r1d_tokenizer *tok;
  r1d_template *tmpl; /* NULL: the "plain" rendering */
  char *template_name;
  r1d_train_model *tm;
  r1d_train_plan *plan;
  int max_len, max_tokens, vocab;
  char *suffix, *good_text, *bad_text;
  int32_t good, bad, bos;
  /* pack buffers, [max_tokens] each */
  int32_t *ids, *targets;
  int *doc_lens;
  float *dlp;
};

/* ---- small helpers --------------------------------------------------- */

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* A permutation of 0..n-1 made from (seed, epoch) alone. */
static void shuffle_order(size_t *order, size_t n, uint64_t seed, long epoch) {
  uint64_t s = seed * 0x2545F4914F6CDD1DULL + (uint64_t)epoch + 1;
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(splitmix(&s) % i);
    size_t t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
}

/* log(1 + e^x) without overflow. */
static double softplus(double x) {
  return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

void r1d_wilson95(long k, long n, double *lo, double *hi) {
  if (n <= 0) {
    *lo = 0.0, *hi = 1.0;
    return;
  }
  const double z = 1.959963984540054;
  double p = (double)k / (double)n, z2n = z * z / (double)n;
  double centre = (p + z2n / 2.0) / (1.0 + z2n);
  double half = z * sqrt(p * (1.0 - p) / (double)n + z2n / (4.0 * (double)n)) /
                (1.0 + z2n);
  *lo = centre - half < 0.0 ? 0.0 : centre - half;
  *hi = centre + half > 1.0 ? 1.0 : centre + half;
}

const char *r1d_rm_answer(const char *completion, size_t *len) {
  const char *s = completion ? completion : "", *p = s, *hit;
  while ((hit = strstr(p, "</think>")) != NULL)
    p = hit + strlen("</think>");
  /* p: after the last </think>, or the whole text when there is none */
  const char *end = p + strlen(p);
  while (p < end && isspace((unsigned char)*p))
    p++;
  while (end > p && isspace((unsigned char)end[-1]))
    end--;
  *len = (size_t)(end - p);
  return p;
}

/* ---- loading --------------------------------------------------------- */

/* The first token of text, or -1. */
static int32_t first_token(const r1d_tokenizer *tok, const char *text,
                           r1d_error *err) {
  r1d_ids ids = {0};
  int rc = r1d_tokenizer_encode(tok, text, strlen(text), &ids, err);
  int32_t id = rc == 0 && ids.n ? ids.v[0] : -1;
  r1d_ids_free(&ids);
  return id;
}

typedef struct rm_json {
  json_t *root;
  const char *suffix, *good_text, *bad_text, *tmpl;
  json_int_t good, bad, max_len;
} rm_json;

/* dir/reward_model.json into j (j->root NULL when there is none). */
static int read_rm_json(const char *dir, rm_json *j, r1d_error *err) {
  memset(j, 0, sizeof *j);
  j->good = j->bad = -1;
  char *path = r1d_path_join(dir, "reward_model.json");
  if (!path) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (!r1d_file_exists(path)) {
    free(path);
    return 0;
  }
  json_error_t jerr;
  j->root = json_load_file(path, 0, &jerr);
  int rc = 0;
  if (!j->root) {
    rc = r1d_fail(err, R1D_EINVAL, "%s: %s (line %d)", path, jerr.text,
                  jerr.line);
  } else {
    const char *kind = json_string_value(json_object_get(j->root, "kind"));
    json_t *suffix = json_object_get(j->root, "suffix");
    json_t *good = json_object_get(j->root, "good_token");
    json_t *bad = json_object_get(j->root, "bad_token");
    json_t *tmpl = json_object_get(j->root, "template");
    json_t *ml = json_object_get(j->root, "max_len");
    if (!kind || strcmp(kind, "lm-judge"))
      rc = r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: \"kind\" must be \"lm-judge\" (the only reward "
                    "model r1d has)",
                    path);
    else if (!json_is_string(suffix) || !json_is_integer(good) ||
             !json_is_integer(bad))
      rc = r1d_fail(err, R1D_EINVAL,
                    "%s: needs \"suffix\" (string), \"good_token\" and "
                    "\"bad_token\" (token ids)",
                    path);
    else if ((tmpl && !json_is_null(tmpl) && !json_is_string(tmpl)) ||
             (ml && !json_is_integer(ml)))
      rc = r1d_fail(err, R1D_EINVAL,
                    "%s: \"template\" must be a name or null, \"max_len\" an "
                    "integer",
                    path);
    if (rc == 0) {
      j->suffix = json_string_value(suffix);
      j->good = json_integer_value(good);
      j->bad = json_integer_value(bad);
      j->good_text = json_string_value(json_object_get(j->root, "good_text"));
      j->bad_text = json_string_value(json_object_get(j->root, "bad_text"));
      j->tmpl = json_string_value(tmpl);
      j->max_len = ml ? json_integer_value(ml) : 0;
    }
  }
  free(path);
  return rc;
}

void r1d_reward_model_free(r1d_reward_model *rm) {
  if (!rm) return;
  r1d_train_plan_free(rm->plan);
  r1d_train_model_free(rm->tm);
  r1d_template_free(rm->tmpl);
  r1d_tokenizer_free(rm->tok);
  r1d_cpu_backend_destroy(&rm->be);
  free(rm->dir);
  free(rm->template_name);
  free(rm->suffix);
  free(rm->good_text);
  free(rm->bad_text);
  free(rm->ids);
  free(rm->targets);
  free(rm->doc_lens);
  free(rm->dlp);
  free(rm);
}

int r1d_reward_model_load(const char *dir, int threads, r1d_reward_model **out,
                          r1d_error *err) {
  r1d_rm_options o = {.threads = threads};
  return r1d_reward_model_load_ex(dir, &o, out, err);
}

int r1d_reward_model_load_ex(const char *dir, const r1d_rm_options *o,
                             r1d_reward_model **out, r1d_error *err) {
  *out = NULL;
  r1d_rm_options none = {0};
  if (!o) o = &none;
  rm_json j;
  int rc = read_rm_json(dir, &j, err);
  if (rc) return rc;
  r1d_reward_model *rm = calloc(1, sizeof *rm);
  r1d_model *model = NULL;
  if (!rm) {
    json_decref(j.root);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  r1d_cpu_backend_init(&rm->be, o->threads);
  rm->dir = xstrdup(dir);
  const char *suffix = j.suffix    ? j.suffix
                       : o->suffix ? o->suffix
                                   : R1D_RM_DEFAULT_SUFFIX;
  const char *good = j.good_text    ? j.good_text
                     : o->good_text ? o->good_text
                                    : R1D_RM_DEFAULT_GOOD;
  const char *bad = j.bad_text    ? j.bad_text
                    : o->bad_text ? o->bad_text
                                  : R1D_RM_DEFAULT_BAD;
  rm->suffix = xstrdup(suffix);
  rm->good_text = xstrdup(good);
  rm->bad_text = xstrdup(bad);
  if (!rm->dir || !rm->suffix || !rm->good_text || !rm->bad_text) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto fail;
  }
  if (!suffix[0]) { /* the score is read after it: it cannot be empty */
    rc = r1d_fail(err, R1D_EINVAL, "%s: the judge suffix is empty", dir);
    goto fail;
  }
  if ((rc = r1d_tokenizer_load_dir(dir, &rm->tok, err)) ||
      (rc = r1d_model_load(dir, &rm->be, &model, err)) ||
      (rc = r1d_train_model_create(model, &rm->tm, err)))
    goto fail;
  r1d_model_free(model);
  model = NULL;
  rm->vocab = rm->tm->cfg.vocab_size;
  rm->bos = r1d_tokenizer_bos_to_add(rm->tok);

  /* the template: reward_model.json's, the override, or the folder's; an
   * unknown one falls back to plain "role: content" lines */
  const char *tname = o->template_name ? o->template_name : j.tmpl;
  if (tname && strcmp(tname, "plain") != 0) {
    if ((rc = r1d_template_load_dir_as(dir, tname, &rm->tmpl, err))) goto fail;
  } else if (!tname) {
    r1d_error terr = {0};
    if (r1d_template_load_dir(dir, &rm->tmpl, &terr)) rm->tmpl = NULL;
  }
  rm->template_name = xstrdup(rm->tmpl ? r1d_template_name(rm->tmpl) : "plain");

  if (j.root) {
    rm->good = (int32_t)j.good;
    rm->bad = (int32_t)j.bad;
  } else {
    rm->good = first_token(rm->tok, good, err);
    rm->bad = first_token(rm->tok, bad, err);
  }
  if (rm->good < 0 || rm->bad < 0 || rm->good >= rm->vocab ||
      rm->bad >= rm->vocab || rm->good == rm->bad) {
    rc = r1d_fail(err, R1D_EINVAL,
                  "%s: the judge's tokens (good %d from \"%s\", bad %d from "
                  "\"%s\") must be two different ids below the vocabulary "
                  "size %d",
                  dir, rm->good, good, rm->bad, bad, rm->vocab);
    goto fail;
  }

  int max_pos = rm->tm->cfg.max_position_embeddings;
  long ml = o->max_len > 0  ? o->max_len
            : j.max_len > 0 ? (long)j.max_len
                            : DEFAULT_MAX_LEN;
  if (ml > max_pos) ml = max_pos;
  if (o->max_tokens > 0 && o->max_tokens / 4 < ml) ml = o->max_tokens / 4;
  if (ml < 8) {
    rc = r1d_fail(err, R1D_EINVAL,
                  "reward model: max_len %ld is too small (>= 8 tokens)", ml);
    goto fail;
  }
  rm->max_len = (int)ml;
  /* a training pack holds one pair at least: two sequences, twice each */
  rm->max_tokens = o->max_tokens > 0 ? o->max_tokens : 4 * rm->max_len;
  size_t mt = (size_t)rm->max_tokens;
  rm->ids = malloc(mt * sizeof *rm->ids);
  rm->targets = malloc(mt * sizeof *rm->targets);
  rm->doc_lens = malloc(mt * sizeof *rm->doc_lens);
  rm->dlp = malloc(mt * sizeof *rm->dlp);
  if (!rm->ids || !rm->targets || !rm->doc_lens || !rm->dlp) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = r1d_train_plan_create(rm->tm, rm->max_tokens, o->recompute,
                                  &rm->plan, err)))
    goto fail;
  json_decref(j.root);
  *out = rm;
  return 0;
fail:
  json_decref(j.root);
  r1d_model_free(model);
  r1d_reward_model_free(rm);
  return rc;
}

r1d_train_model *r1d_reward_model_params(r1d_reward_model *rm) {
  return rm->tm;
}
int32_t r1d_reward_model_good_token(const r1d_reward_model *rm) {
  return rm->good;
}
int32_t r1d_reward_model_bad_token(const r1d_reward_model *rm) {
  return rm->bad;
}
const char *r1d_reward_model_suffix(const r1d_reward_model *rm) {
  return rm->suffix;
}
int r1d_reward_model_max_len(const r1d_reward_model *rm) {
  return rm->max_len;
}

/* ---- rendering and encoding ------------------------------------------ */

/* A growable string. */
typedef struct sbuf {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

/* The text of the conversation + answer (before the suffix); *use_bos when
 * the caller must put BOS in front (the template writes its own). */
static int render_text(const r1d_reward_model *rm, const json_t *prompt,
                       const char *answer, sbuf *b, int *use_bos,
                       r1d_error *err) {
  *use_bos = 1;
  if (!prompt || json_is_null(prompt)) {
    sb_str(b, answer);
    return 0;
  }
  r1d_chat_message *msgs = NULL, one = {"user", NULL, NULL};
  size_t n = 0;
  if (json_is_string(prompt)) {
    one.content = json_string_value(prompt);
  } else if (json_is_array(prompt)) {
    char *text = json_dumps(prompt, JSON_COMPACT);
    if (!text) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    int rc = r1d_chat_messages_parse(text, &msgs, &n, err);
    free(text);
    if (rc) return rc;
  } else {
    return r1d_fail(err, R1D_EINVAL,
                    "a prompt must be a string or a list of messages");
  }
  const r1d_chat_message *src = msgs ? msgs : &one;
  size_t k = msgs ? n : 1;
  r1d_chat_message *all = malloc((k + 1) * sizeof *all);
  if (!all) {
    free(msgs);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  memcpy(all, src, k * sizeof *all);
  all[k] = (r1d_chat_message){"assistant", answer, NULL};
  int rc = 0;
  if (rm->tmpl) {
    char *text = NULL;
    rc = r1d_template_render(rm->tmpl, all, k + 1, 0, &text, err);
    if (rc == 0) sb_str(b, text);
    free(text);
    *use_bos = 0;
  } else {
    for (size_t i = 0; i <= k; i++) {
      sb_str(b, all[i].role);
      sb_str(b, ": ");
      sb_str(b, all[i].content ? all[i].content : "");
      if (i < k) sb_str(b, "\n");
    }
  }
  free(all);
  free(msgs);
  return rc;
}

int r1d_reward_model_encode(const r1d_reward_model *rm, const json_t *prompt,
                            const char *completion, r1d_ids *ids,
                            r1d_error *err) {
  size_t alen;
  const char *a = r1d_rm_answer(completion, &alen);
  char *answer = malloc(alen + 1);
  if (!answer) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  memcpy(answer, a, alen);
  answer[alen] = 0;
  sbuf b = {0};
  int use_bos = 0;
  int rc = render_text(rm, prompt, answer, &b, &use_bos, err);
  free(answer);
  if (rc == 0) sb_str(&b, rm->suffix);
  if (rc == 0 && b.oom) rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  r1d_ids all = {0};
  if (rc == 0 && use_bos && rm->bos >= 0 && r1d_ids_push(&all, rm->bos))
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0) rc = r1d_tokenizer_encode(rm->tok, b.s, b.n, &all, err);
  free(b.s);
  /* too long: the last max_len tokens (the answer and the suffix) */
  size_t from = all.n > (size_t)rm->max_len ? all.n - (size_t)rm->max_len : 0;
  for (size_t i = from; rc == 0 && i < all.n; i++)
    if (r1d_ids_push(ids, all.v[i]))
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  r1d_ids_free(&all);
  return rc;
}

/* ---- packed forwards ------------------------------------------------- */

/* One sequence to score: ids[n], n in 1..max_len. */
typedef struct rm_seq {
  const int32_t *ids;
  int n;
} rm_seq;

/* Lays s[0..k) out in rm's pack buffers from token `off` and document
 * `*n_docs` on, each `copies` times (copy 0 with target GOOD at its last
 * row, copy 1 with BAD). Returns the new token count, advances *n_docs. */
static int pack_seqs(r1d_reward_model *rm, const rm_seq *s, int k, int copies,
                     int off, int *n_docs) {
  int d = *n_docs;
  for (int i = 0; i < k; i++)
    for (int c = 0; c < copies; c++) {
      memcpy(rm->ids + off, s[i].ids, (size_t)s[i].n * sizeof(int32_t));
      for (int t = 0; t < s[i].n; t++)
        rm->targets[off + t] = -1;
      rm->targets[off + s[i].n - 1] = c == 0 ? rm->good : rm->bad;
      rm->doc_lens[d++] = s[i].n;
      off += s[i].n;
    }
  *n_docs = d;
  return off;
}

/* r at row `row` of the last forward. */
static double score_at(const r1d_reward_model *rm, int row) {
  const float *z = rm->plan->logits + (size_t)row * (size_t)rm->vocab;
  return (double)z[rm->good] - (double)z[rm->bad];
}

static int forward_pack(r1d_reward_model *rm, int n_tokens, int n_docs,
                        r1d_error *err) {
  float loss;
  return r1d_train_forward_docs(rm->tm, rm->plan, rm->ids, rm->targets,
                                n_tokens, rm->doc_lens, n_docs, &loss, err);
}

/* Scores s[0..k) into out, as many per forward as fit (row-invariant
 * kernels: the same bits whatever the packing). */
static int score_seqs(r1d_reward_model *rm, const rm_seq *s, int k, double *out,
                      r1d_error *err) {
  int saved = rm->plan->row_invariant, rc = 0;
  rm->plan->row_invariant = 1;
  for (int first = 0; rc == 0 && first < k;) {
    int end = first, tokens = 0;
    while (end < k && tokens + s[end].n <= rm->max_tokens)
      tokens += s[end++].n;
    int n_docs = 0;
    int n = pack_seqs(rm, s + first, end - first, 1, 0, &n_docs);
    if ((rc = forward_pack(rm, n, n_docs, err))) break;
    for (int i = first, row = 0; i < end; i++) {
      row += s[i].n;
      out[i] = score_at(rm, row - 1);
    }
    first = end;
  }
  rm->plan->row_invariant = saved;
  return rc;
}

int r1d_reward_model_score(r1d_reward_model *rm, const json_t *const *prompts,
                           const char *const *completions, int n,
                           double *scores, r1d_error *err) {
  if (n <= 0) return 0;
  if (!completions || !scores)
    return r1d_fail(err, R1D_EINVAL, "reward model: no completions");
  r1d_ids *enc = calloc((size_t)n, sizeof *enc);
  rm_seq *s = calloc((size_t)n, sizeof *s);
  int rc = enc && s ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (int i = 0; rc == 0 && i < n; i++) {
    rc = r1d_reward_model_encode(rm, prompts ? prompts[i] : NULL,
                                 completions[i], &enc[i], err);
    if (rc) rc = r1d_fail(err, rc, "reward model: input %d: %s", i, err->msg);
    s[i] = (rm_seq){enc[i].v, (int)enc[i].n};
  }
  if (rc == 0) rc = score_seqs(rm, s, n, scores, err);
  for (int i = 0; enc && i < n; i++)
    r1d_ids_free(&enc[i]);
  free(enc);
  free(s);
  return rc;
}

/* ---- pairs: encoding, loss and gradient ------------------------------ */

typedef struct enc_pair {
  r1d_ids c, r;
} enc_pair;

static void enc_free(enc_pair *e, size_t n) {
  for (size_t i = 0; e && i < n; i++) {
    r1d_ids_free(&e[i].c);
    r1d_ids_free(&e[i].r);
  }
  free(e);
}

static int encode_pairs(const r1d_reward_model *rm, const r1d_pref_pair *p,
                        size_t n, enc_pair **out, r1d_error *err) {
  enc_pair *e = calloc(n ? n : 1, sizeof *e);
  if (!e) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    int rc =
        r1d_reward_model_encode(rm, p[i].prompt, p[i].chosen, &e[i].c, err);
    if (rc == 0)
      rc =
          r1d_reward_model_encode(rm, p[i].prompt, p[i].rejected, &e[i].r, err);
    if (rc) {
      enc_free(e, n);
      return r1d_fail(err, rc, "pair %zu: %s", i, err->msg);
    }
  }
  *out = e;
  return 0;
}

typedef struct pass_stats {
  double loss, margin;
  long right, pairs, tokens;
} pass_stats;

/* The BT loss of pairs P[0..n) (pointers), as a mean; with backward its
 * gradient is ADDED to rm's. A pack holds whole pairs: chosen (GOOD copy,
 * BAD copy), rejected (GOOD, BAD); without backward one copy each. */
static int pairs_pass(r1d_reward_model *rm, enc_pair *const *P, size_t n,
                      double coef, int backward, pass_stats *st,
                      r1d_error *err) {
  int copies = backward ? 2 : 1, rc = 0;
  size_t first = 0;
  while (rc == 0 && first < n) {
    size_t end = first;
    int tokens = 0;
    while (end < n) {
      int need = copies * (int)(P[end]->c.n + P[end]->r.n);
      if (tokens + need > rm->max_tokens) break;
      tokens += need;
      end++;
    }
    if (end == first) /* cannot happen: max_tokens >= 4 max_len */
      return r1d_fail(err, R1D_ERANGE, "reward model: a pair does not fit");
    rm_seq s[2];
    int off = 0, d = 0;
    for (size_t i = first; i < end; i++) {
      s[0] = (rm_seq){P[i]->c.v, (int)P[i]->c.n};
      s[1] = (rm_seq){P[i]->r.v, (int)P[i]->r.n};
      off = pack_seqs(rm, s, 2, copies, off, &d);
    }
    if ((rc = forward_pack(rm, off, d, err))) break;
    if (backward) memset(rm->dlp, 0, (size_t)off * sizeof *rm->dlp);
    int row = 0;
    for (size_t i = first; i < end; i++) {
      int nc = (int)P[i]->c.n, nr = (int)P[i]->r.n;
      int rc0 = row + nc - 1;               /* chosen, GOOD copy */
      int rr0 = row + copies * nc + nr - 1; /* rejected, GOOD copy */
      double r_c = score_at(rm, rc0), r_r = score_at(rm, rr0);
      double m = r_c - r_r, sum = r_c + r_r;
      if (!isfinite(m) || !isfinite(sum))
        return r1d_fail(err, R1D_ERANGE,
                        "reward model: a non-finite score (pair %zu of the "
                        "batch)",
                        i);
      st->loss += (softplus(-m) + coef * sum * sum) / (double)n;
      st->margin += m / (double)n;
      st->right += m > 0;
      st->pairs++;
      if (backward) {
        /* dL/dr_c = -sigmoid(-m) + 2 coef sum, dL/dr_r = sigmoid(-m) +
         * 2 coef sum, each over n; r = lp(GOOD) - lp(BAD) */
        double sg = 1.0 / (1.0 + exp(m));
        double gc = (-sg + 2.0 * coef * sum) / (double)n;
        double gr = (sg + 2.0 * coef * sum) / (double)n;
        rm->dlp[rc0] = (float)gc;
        rm->dlp[rc0 + nc] = (float)-gc;
        rm->dlp[rr0] = (float)gr;
        rm->dlp[rr0 + nr] = (float)-gr;
      }
      row += copies * (nc + nr);
    }
    st->tokens += off;
    if (backward)
      rc = r1d_train_backward_weighted(rm->tm, rm->plan, rm->dlp, err);
    first = end;
  }
  return rc;
}

int r1d_rm_loss(r1d_reward_model *rm, const r1d_pref_pair *pairs, size_t n,
                double center_coef, int backward, double *loss,
                double *accuracy, double *margin, r1d_error *err) {
  if (n == 0) return r1d_fail(err, R1D_EINVAL, "reward model: no pairs");
  enc_pair *e = NULL;
  enc_pair **P = malloc(n * sizeof *P);
  if (!P) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int rc = encode_pairs(rm, pairs, n, &e, err);
  pass_stats st = {0};
  if (rc == 0) {
    for (size_t i = 0; i < n; i++)
      P[i] = &e[i];
    rc = pairs_pass(rm, P, n, center_coef, backward, &st, err);
  }
  if (rc == 0) {
    if (loss) *loss = st.loss;
    if (accuracy) *accuracy = (double)st.right / (double)n;
    if (margin) *margin = st.margin;
  }
  enc_free(e, n);
  free(P);
  return rc;
}

/* Scores of the encoded pairs (row-invariant), summarised. */
static int eval_encoded(r1d_reward_model *rm, const enc_pair *e, size_t n,
                        r1d_rm_eval *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  if (n == 0) return 0;
  rm_seq *s = calloc(2 * n, sizeof *s);
  double *sc = calloc(2 * n, sizeof *sc);
  int rc = s && sc ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    s[2 * i] = (rm_seq){e[i].c.v, (int)e[i].c.n};
    s[2 * i + 1] = (rm_seq){e[i].r.v, (int)e[i].r.n};
  }
  if (rc == 0) rc = score_seqs(rm, s, (int)(2 * n), sc, err);
  long right = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    double m = sc[2 * i] - sc[2 * i + 1];
    right += m > 0;
    out->loss += softplus(-m) / (double)n;
    out->margin += m / (double)n;
    out->score_mean += (sc[2 * i] + sc[2 * i + 1]) / (2.0 * (double)n);
  }
  if (rc == 0) {
    out->pairs = (long)n;
    out->accuracy = (double)right / (double)n;
    r1d_wilson95(right, (long)n, &out->lo, &out->hi);
  }
  free(s);
  free(sc);
  return rc;
}

int r1d_rm_evaluate(r1d_reward_model *rm, const r1d_pref_pair *pairs, size_t n,
                    r1d_rm_eval *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  if (n == 0) return 0;
  enc_pair *e = NULL;
  int rc = encode_pairs(rm, pairs, n, &e, err);
  if (rc == 0) rc = eval_encoded(rm, e, n, out, err);
  enc_free(e, n);
  return rc;
}

/* ---- saving ---------------------------------------------------------- */

int r1d_reward_model_save(r1d_reward_model *rm, const char *out_dir,
                          const json_t *state, r1d_error *err) {
  json_t *j = json_pack(
      "{s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:b, s:i}", "kind", "lm-judge",
      "suffix", rm->suffix, "good_token", (int)rm->good, "bad_token",
      (int)rm->bad, "good_text", rm->good_text, "bad_text", rm->bad_text,
      "template", rm->template_name, "answer_only", 1, "max_len", rm->max_len);
  char *js = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  char *ss = state ? json_dumps(state, JSON_INDENT(2) | JSON_SORT_KEYS |
                                           JSON_REAL_PRECISION(10))
                   : NULL;
  json_decref(j);
  int rc =
      js && (!state || ss) ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0) {
    r1d_checkpoint_file extra[2] = {{"reward_model.json", js, strlen(js)},
                                    {"rm_state.json", ss, ss ? strlen(ss) : 0}};
    rc = r1d_checkpoint_write_extra(rm->dir, &rm->tm->cfg, &rm->tm->param, 0,
                                    extra, ss ? 2 : 1, out_dir, err);
  }
  free(js);
  free(ss);
  return rc;
}

/* ---- training -------------------------------------------------------- */

static json_t *eval_json(const r1d_rm_eval *e) {
  return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "pairs",
                   (json_int_t)e->pairs, "accuracy", e->accuracy, "lo", e->lo,
                   "hi", e->hi, "loss", e->loss, "margin", e->margin,
                   "score_mean", e->score_mean);
}

static int check_config(const r1d_rm_config *c, r1d_error *err) {
  if (c->max_steps < 0 || (c->max_steps == 0 && !(c->epochs > 0.0)))
    return r1d_fail(err, R1D_EINVAL,
                    "reward model: need epochs > 0 or max_steps > 0");
  if (c->batch_pairs < 0 || c->clip < 0.0 || !isfinite(c->clip) ||
      c->center_coef < 0.0 || !isfinite(c->center_coef))
    return r1d_fail(err, R1D_EINVAL,
                    "reward model: batch, clip and center coefficient must "
                    "be >= 0");
  if (c->warmup_ratio < 0.0 || c->warmup_ratio >= 1.0)
    return r1d_fail(err, R1D_EINVAL,
                    "reward model: warmup ratio must be in [0, 1)");
  if (c->save && !c->out_dir)
    return r1d_fail(err, R1D_EINVAL, "reward model: save needs an out dir");
  return 0;
}

static void emit(const r1d_rm_hooks *h, const r1d_rm_metrics *m) {
  if (h && h->on_metrics) h->on_metrics(h->user, m);
}

int r1d_rm_train(const r1d_rm_config *cfg, r1d_reward_model *rm,
                 const r1d_pref_pair *train, size_t n,
                 const r1d_pref_pair *eval, size_t m, const r1d_rm_hooks *hooks,
                 r1d_rm_result *res, r1d_error *err) {
  r1d_rm_result local = {0};
  if (!res) res = &local;
  memset(res, 0, sizeof *res);
  int rc = check_config(cfg, err);
  if (rc) return rc;
  if (n == 0) return r1d_fail(err, R1D_EINVAL, "reward model: no train pairs");
  if (!eval) m = 0;
  size_t B = cfg->batch_pairs > 0 ? (size_t)cfg->batch_pairs : DEFAULT_BATCH;
  double lr = cfg->lr > 0 ? cfg->lr : 1e-4;
  long total = cfg->max_steps > 0
                   ? cfg->max_steps
                   : (long)ceil(cfg->epochs * (double)n / (double)B);
  if (total < 1) total = 1;
  r1d_adamw_config aw = {.lr = lr,
                         .beta1 = cfg->beta1 > 0 ? cfg->beta1 : 0.9,
                         .beta2 = cfg->beta2 > 0 ? cfg->beta2 : 0.999,
                         .eps = cfg->eps > 0 ? cfg->eps : 1e-8,
                         .weight_decay = cfg->weight_decay};
  r1d_lr_schedule sched = {
      .kind = cfg->constant_lr ? R1D_LR_WARMUP_CONSTANT : R1D_LR_WARMUP_COSINE,
      .lr = lr,
      .min_lr = cfg->min_lr < lr ? cfg->min_lr : lr,
      .warmup_steps = (long)ceil(cfg->warmup_ratio * (double)total),
      .total_steps = total};
  if ((rc = r1d_adamw_config_check(&aw, err)) ||
      (rc = r1d_lr_schedule_check(&sched, err)))
    return rc;

  enc_pair *etr = NULL, *eev = NULL;
  enc_pair **batch = malloc(B * sizeof *batch);
  size_t *order = malloc(n * sizeof *order);
  r1d_optim *opt = NULL;
  r1d_optim_tensor *tensors = NULL;
  size_t n_tensors = 0;
  if (!batch || !order) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = encode_pairs(rm, train, n, &etr, err))) goto done;
  if (m && (rc = encode_pairs(rm, eval, m, &eev, err))) {
    rc = r1d_fail(err, rc, "eval %s", err->msg);
    goto done;
  }
  if ((rc = r1d_train_optim_tensors(rm->tm, &tensors, &n_tensors, err)) ||
      (rc = r1d_optim_create(&aw, tensors, n_tensors, &opt, err)))
    goto done;

  r1d_rm_metrics em = {.total_steps = total, .is_eval = 1};
  if (m) {
    if ((rc = eval_encoded(rm, eev, m, &res->eval_before, err))) goto done;
    res->has_eval = 1;
    res->eval_after = res->eval_before;
    em.eval = res->eval_before;
    emit(hooks, &em);
  }
  long order_epoch = -1, pairs_done = 0;
  double t0 = now_s();
  long step = 0;
  while (step < total) {
    for (size_t j = 0; j < B; j++) {
      long g = step * (long)B + (long)j;
      long epoch = g / (long)n;
      if (epoch != order_epoch) {
        shuffle_order(order, n, cfg->seed, epoch);
        order_epoch = epoch;
      }
      batch[j] = &etr[order[g % (long)n]];
    }
    r1d_train_zero_grad(rm->tm);
    pass_stats st = {0};
    if ((rc = pairs_pass(rm, batch, B, cfg->center_coef, 1, &st, err)))
      goto done;
    double norm = r1d_optim_grad_norm(opt);
    if (!isfinite(st.loss) || !isfinite(norm)) {
      rc = r1d_fail(err, R1D_ERANGE,
                    "reward model: step %ld: loss %g, gradient norm %g; "
                    "stopped without applying it (lower the lr)",
                    step + 1, st.loss, norm);
      goto done;
    }
    if (cfg->clip > 0 &&
        (rc = r1d_optim_clip_grad_norm(opt, cfg->clip, &norm, err)))
      goto done;
    double step_lr = r1d_lr_at(&sched, step);
    if ((rc = r1d_optim_step(opt, step_lr, err))) goto done;
    step++;
    pairs_done += (long)B;
    double el = now_s() - t0;
    r1d_rm_metrics sm = {.step = step,
                         .total_steps = total,
                         .epoch = (double)(step * (long)B) / (double)n,
                         .loss = st.loss,
                         .accuracy = (double)st.right / (double)B,
                         .margin = st.margin,
                         .lr = step_lr,
                         .grad_norm = norm,
                         .pairs = (long)B,
                         .tokens = st.tokens,
                         .elapsed_s = el,
                         .pairs_per_s = el > 0 ? (double)pairs_done / el : 0.0,
                         .eta_s = el / (double)step * (double)(total - step)};
    emit(hooks, &sm);
    res->steps = step;
    res->train_loss = sm.loss;
    res->train_accuracy = sm.accuracy;
    int stop = hooks && hooks->stop && *hooks->stop;
    int last = step == total || stop;
    if (m && (last || (cfg->eval_every > 0 && step % cfg->eval_every == 0))) {
      if ((rc = eval_encoded(rm, eev, m, &res->eval_after, err))) goto done;
      em.step = step;
      em.epoch = sm.epoch;
      em.eval = res->eval_after;
      emit(hooks, &em);
    }
    if (stop) break;
  }
  if (cfg->save) {
    json_t *state = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:{s:f, s:f, s:f, s:i, s:f, s:f, s:I}, "
        "s:f, s:f}",
        "kind", "reward_model", "steps", (json_int_t)res->steps, "total_steps",
        (json_int_t)total, "train_pairs", (json_int_t)n, "eval_pairs",
        (json_int_t)m, "config", "lr", lr, "weight_decay", cfg->weight_decay,
        "clip", cfg->clip, "batch_pairs", (int)B, "center_coef",
        cfg->center_coef, "warmup_ratio", cfg->warmup_ratio, "seed",
        (json_int_t)cfg->seed, "train_loss", res->train_loss, "train_accuracy",
        res->train_accuracy);
    if (state && res->has_eval) {
      json_object_set_new(state, "eval_before", eval_json(&res->eval_before));
      json_object_set_new(state, "eval_after", eval_json(&res->eval_after));
    }
    rc = state ? r1d_reward_model_save(rm, cfg->out_dir, state, err)
               : r1d_fail(err, R1D_ENOMEM, "out of memory");
    json_decref(state);
  }
done:
  r1d_optim_destroy(opt);
  free(tensors);
  enc_free(etr, n);
  enc_free(eev, m);
  free(batch);
  free(order);
  return rc;
}

/* ---- preference pairs ------------------------------------------------ */

void r1d_pref_pair_clear(r1d_pref_pair *p) {
  json_decref(p->prompt);
  free(p->chosen);
  free(p->rejected);
  memset(p, 0, sizeof *p);
}

/* The text of an assistant message object (content: string, null or text
 * parts), through the server's own message parser. */
static int message_text(json_t *msg, const char *what, char **out,
                        r1d_error *err) {
  if (!json_is_object(msg))
    return r1d_fail(err, R1D_EINVAL, "\"%s\" must hold message objects", what);
  const char *role = json_string_value(json_object_get(msg, "role"));
  if (!role || strcmp(role, "assistant"))
    return r1d_fail(err, R1D_EINVAL,
                    "\"%s\" must end with an assistant message", what);
  json_t *arr = json_pack("[O]", msg);
  char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
  json_decref(arr);
  if (!text) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  r1d_chat_message *msgs = NULL;
  size_t n = 0;
  int rc = r1d_chat_messages_parse(text, &msgs, &n, err);
  free(text);
  if (rc) return r1d_fail(err, rc, "\"%s\": %s", what, err->msg);
  *out = xstrdup(n == 1 && msgs[0].content ? msgs[0].content : "");
  free(msgs);
  return *out ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
}

int r1d_pref_pair_from_json(json_t *row, r1d_pref_pair *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(row))
    return r1d_fail(err, R1D_EINVAL, "a row must be a JSON object");
  json_t *prompt = json_object_get(row, "prompt");
  json_t *ch = json_object_get(row, "chosen");
  json_t *rj = json_object_get(row, "rejected");
  if (!ch || !rj)
    return r1d_fail(err, R1D_EINVAL,
                    "expected \"chosen\" and \"rejected\" (and optionally "
                    "\"prompt\")");
  if (prompt && !json_is_null(prompt) && !json_is_string(prompt) &&
      !json_is_array(prompt))
    return r1d_fail(err, R1D_EINVAL,
                    "\"prompt\" must be a string or a list of messages");
  if (json_is_array(prompt) && json_array_size(prompt) == 0)
    return r1d_fail(err, R1D_EINVAL, "\"prompt\" is an empty list");
  int rc = 0;
  if (json_is_string(ch) && json_is_string(rj)) {
    out->chosen = xstrdup(json_string_value(ch));
    out->rejected = xstrdup(json_string_value(rj));
    if (prompt && !json_is_null(prompt)) out->prompt = json_incref(prompt);
  } else if (json_is_array(ch) && json_is_array(rj)) {
    size_t nc = json_array_size(ch), nr = json_array_size(rj);
    if (prompt && !json_is_null(prompt)) {
      /* explicit prompt: one assistant message each */
      if (!json_is_array(prompt))
        return r1d_fail(err, R1D_EINVAL,
                        "message lists in \"chosen\"/\"rejected\" need "
                        "\"prompt\" as a list of messages too");
      if (nc != 1 || nr != 1)
        return r1d_fail(err, R1D_EINVAL,
                        "with a \"prompt\", \"chosen\" and \"rejected\" must "
                        "be lists of exactly one assistant message");
      out->prompt = json_incref(prompt);
    } else {
      /* implicit prompt: full conversations sharing everything but the
       * last message */
      if (nc < 2 || nc != nr)
        return r1d_fail(err, R1D_EINVAL,
                        "without a \"prompt\", \"chosen\" and \"rejected\" "
                        "must be conversations of the same length (>= 2) "
                        "that differ only in the last message");
      json_t *pre = json_array();
      for (size_t i = 0; pre && i + 1 < nc; i++) {
        if (!json_equal(json_array_get(ch, i), json_array_get(rj, i))) {
          json_decref(pre);
          return r1d_fail(err, R1D_EINVAL,
                          "\"chosen\" and \"rejected\" differ at message "
                          "%zu; only the last message may differ",
                          i);
        }
        json_array_append(pre, json_array_get(ch, i));
      }
      if (!pre) return r1d_fail(err, R1D_ENOMEM, "out of memory");
      out->prompt = pre;
    }
    rc = message_text(json_array_get(ch, nc - 1), "chosen", &out->chosen, err);
    if (rc == 0)
      rc = message_text(json_array_get(rj, nr - 1), "rejected", &out->rejected,
                        err);
  } else {
    return r1d_fail(err, R1D_EINVAL,
                    "\"chosen\" and \"rejected\" must both be strings or "
                    "both message lists");
  }
  if (rc == 0 && (!out->chosen || !out->rejected))
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc == 0 && strcmp(out->chosen, out->rejected) == 0)
    rc = r1d_fail(err, R1D_EINVAL,
                  "\"chosen\" and \"rejected\" are the same text (no "
                  "preference)");
  if (rc) r1d_pref_pair_clear(out);
  return rc;
}

int r1d_pref_set_push(r1d_pref_set *set, r1d_pref_pair *p, r1d_error *err) {
  if (set->n == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 64;
    r1d_pref_pair *q = realloc(set->pairs, cap * sizeof *q);
    if (!q) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    set->pairs = q;
    set->cap = cap;
  }
  set->pairs[set->n++] = *p;
  memset(p, 0, sizeof *p);
  return 0;
}

void r1d_pref_set_free(r1d_pref_set *set) {
  for (size_t i = 0; i < set->n; i++)
    r1d_pref_pair_clear(&set->pairs[i]);
  free(set->pairs);
  memset(set, 0, sizeof *set);
}

/* One row into set; a bad one is reported (or, strict, fails). */
static int add_row(json_t *row, long line, int strict,
                   r1d_pref_bad_line_fn on_bad, void *user, r1d_pref_set *set,
                   r1d_error *err) {
  r1d_pref_pair p;
  r1d_error rerr = {0};
  int rc = r1d_pref_pair_from_json(row, &p, &rerr);
  if (rc == R1D_ENOMEM) return r1d_fail(err, rc, "%s", rerr.msg);
  if (rc) {
    if (strict) return r1d_fail(err, R1D_EINVAL, "%ld: %s", line, rerr.msg);
    set->bad_lines++;
    if (on_bad) on_bad(user, line, rerr.msg);
    return 0;
  }
  rc = r1d_pref_set_push(set, &p, err);
  if (rc) r1d_pref_pair_clear(&p);
  return rc;
}

int r1d_pref_load_jsonl(const char *path, int strict,
                        r1d_pref_bad_line_fn on_bad, void *user,
                        r1d_pref_set *set, r1d_error *err) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (!f) return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long no = 0;
  int rc = 0;
  while (rc == 0 && (len = getline(&line, &cap, f)) != -1) {
    no++;
    int blank = 1;
    for (ssize_t i = 0; i < len && blank; i++)
      blank = isspace((unsigned char)line[i]) != 0;
    if (blank) continue;
    set->lines++;
    json_error_t jerr;
    json_t *row = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    if (!row) {
      char msg[300];
      snprintf(msg, sizeof msg, "invalid JSON: %s (column %d)", jerr.text,
               jerr.column);
      if (strict) {
        rc = r1d_fail(err, R1D_EINVAL, "%ld: %s", no, msg);
        break;
      }
      set->bad_lines++;
      if (on_bad) on_bad(user, no, msg);
      continue;
    }
    rc = add_row(row, no, strict, on_bad, user, set, err);
    json_decref(row);
  }
  if (rc == 0 && ferror(f))
    rc = r1d_fail(err, R1D_EIO, "%s: read failed", path);
  free(line);
  if (f != stdin) fclose(f);
  return rc;
}

int r1d_pref_add_json_array(json_t *rows, int strict,
                            r1d_pref_bad_line_fn on_bad, void *user,
                            r1d_pref_set *set, r1d_error *err) {
  if (!json_is_array(rows))
    return r1d_fail(err, R1D_EINVAL, "pairs: expected a JSON array");
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    set->lines++;
    int rc = add_row(row, (long)i + 1, strict, on_bad, user, set, err);
    if (rc) return rc;
  }
  return 0;
}

int r1d_pref_split(r1d_pref_set *set, double fraction, uint64_t seed,
                   r1d_pref_set *eval, r1d_error *err) {
  if (!(fraction > 0.0) || set->n < 2) return 0;
  if (fraction >= 1.0)
    return r1d_fail(err, R1D_EINVAL, "eval fraction must be below 1");
  size_t k = (size_t)llround(fraction * (double)set->n);
  if (k < 1) k = 1;
  if (k >= set->n) k = set->n - 1;
  size_t *order = malloc(set->n * sizeof *order);
  unsigned char *take = calloc(set->n, 1);
  if (!order || !take) {
    free(order);
    free(take);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  shuffle_order(order, set->n, seed, 1000003);
  for (size_t i = 0; i < k; i++)
    take[order[i]] = 1;
  /* eval gets them in file order; train keeps the rest in order */
  size_t w = 0;
  int rc = 0;
  for (size_t i = 0; i < set->n; i++) {
    if (take[i] && rc == 0) {
      rc = r1d_pref_set_push(eval, &set->pairs[i], err);
      if (rc == 0) continue;
    }
    set->pairs[w++] = set->pairs[i];
  }
  set->n = w;
  free(order);
  free(take);
  return rc;
}
