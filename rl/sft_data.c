/* sft_data.c - JSONL/text to tokenized training documents with loss masks,
 * the eval split and best-fit-decreasing packing (see sft_data.h). */
#include "sft_data.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

/* ---- building one document ------------------------------------------- */

typedef struct doc_builder {
  r1d_ids ids;
  uint8_t *loss;
  size_t loss_cap;
} doc_builder;

static int mark(doc_builder *b, size_t from, int value) {
  if (b->ids.n > b->loss_cap) {
    size_t cap = b->loss_cap ? b->loss_cap : 256;
    while (cap < b->ids.n)
      cap *= 2;
    uint8_t *p = realloc(b->loss, cap);
    if (!p) return -1;
    b->loss = p;
    b->loss_cap = cap;
  }
  for (size_t i = from; i < b->ids.n; i++)
    b->loss[i] = (uint8_t)value;
  return 0;
}

/* Appends the tokens of text with loss `value`. */
static int add_text(doc_builder *b, const r1d_data_opts *o, const char *text,
                    int value, r1d_error *err) {
  size_t from = b->ids.n;
  int rc = r1d_tokenizer_encode(o->tok, text, strlen(text), &b->ids, err);
  if (rc) return rc;
  if (mark(b, from, value)) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  return 0;
}

static int add_id(doc_builder *b, int32_t id, int value, r1d_error *err) {
  if (id < 0) return 0;
  size_t from = b->ids.n;
  if (r1d_ids_push(&b->ids, id) || mark(b, from, value))
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  return 0;
}

static void builder_free(doc_builder *b) {
  r1d_ids_free(&b->ids);
  free(b->loss);
}

static int push_doc(r1d_dataset *ds, const int32_t *ids, const uint8_t *loss,
                    int n, long line, r1d_error *err) {
  if (ds->n_docs == ds->cap) {
    size_t cap = ds->cap ? ds->cap * 2 : 64;
    r1d_doc *p = realloc(ds->docs, cap * sizeof *p);
    if (!p) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    ds->docs = p;
    ds->cap = cap;
  }
  r1d_doc d = {.n = n, .line = line};
  d.ids = malloc((size_t)n * sizeof(int32_t));
  d.loss = malloc((size_t)n);
  if (!d.ids || !d.loss) {
    free(d.ids);
    free(d.loss);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  memcpy(d.ids, ids, (size_t)n * sizeof(int32_t));
  memcpy(d.loss, loss, (size_t)n);
  d.loss[0] = 0; /* nothing predicts the first token */
  long counted = 0;
  for (int i = 1; i < n; i++)
    counted += d.loss[i];
  ds->docs[ds->n_docs++] = d;
  ds->tokens += n;
  ds->loss_tokens += counted;
  return 0;
}

/* Stores the built document: SFT cuts it to max_len, pretraining splits it
 * into max_len pieces. A document without a loss token is dropped. */
static int finish_doc(r1d_dataset *ds, const r1d_data_opts *o, doc_builder *b,
                      long line, r1d_error *err) {
  int n = (int)b->ids.n;
  if (o->pretrain) {
    for (int s = 0; s < n; s += o->max_len) {
      int len = n - s < o->max_len ? n - s : o->max_len;
      if (len < 2) {
        ds->dropped++;
        continue;
      }
      int rc = push_doc(ds, b->ids.v + s, b->loss + s, len, line, err);
      if (rc) return rc;
    }
    return 0;
  }
  if (n > o->max_len) {
    ds->truncated++;
    ds->truncated_tokens += n - o->max_len;
    n = o->max_len;
  }
  int any = 0;
  for (int i = 1; i < n; i++)
    any |= b->loss[i];
  if (!any) {
    ds->dropped++;
    return 0;
  }
  return push_doc(ds, b->ids.v, b->loss, n, line, err);
}

/* ---- the line formats ------------------------------------------------- */

/* Messages of a JSON array, via the server's own parser (same rules). */
static int parse_messages(json_t *arr, r1d_chat_message **msgs, size_t *n,
                          r1d_error *err) {
  char *text = json_dumps(arr, JSON_COMPACT);
  if (!text) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int rc = r1d_chat_messages_parse(text, msgs, n, err);
  free(text);
  return rc;
}

/* context = template(msgs[0..n-1), generation prompt), loss on the reply
 * msgs[n-1] (an assistant message). */
static int add_conversation(doc_builder *b, const r1d_data_opts *o,
                            const r1d_chat_message *msgs, size_t n,
                            r1d_error *err) {
  if (!o->tmpl)
    return r1d_fail(err, R1D_EINVAL,
                    "messages need the model's chat template, and it has none "
                    "r1d knows");
  if (n < 2 || strcmp(msgs[n - 1].role, "assistant") != 0)
    return r1d_fail(err, R1D_EINVAL,
                    "the conversation must end with an assistant message "
                    "after at least one other message");
  char *prompt = NULL, *reply = NULL;
  int rc = r1d_template_render(o->tmpl, msgs, n - 1, 1, &prompt, err);
  if (rc == 0)
    rc = r1d_template_render_reply(o->tmpl, &msgs[n - 1], &reply, err);
  if (rc == 0) rc = add_text(b, o, prompt, 0, err);
  if (rc == 0) rc = add_text(b, o, reply, 1, err);
  free(prompt);
  free(reply);
  return rc;
}

static int line_messages(doc_builder *b, const r1d_data_opts *o, json_t *arr,
                         r1d_error *err) {
  r1d_chat_message *msgs = NULL;
  size_t n = 0;
  int rc = parse_messages(arr, &msgs, &n, err);
  if (rc == 0) rc = add_conversation(b, o, msgs, n, err);
  free(msgs);
  return rc;
}

/* {"prompt": [messages], "completion": [one assistant message]} */
static int line_conv_prompt(doc_builder *b, const r1d_data_opts *o,
                            json_t *prompt, json_t *completion,
                            r1d_error *err) {
  if (!json_is_array(completion) || json_array_size(completion) != 1)
    return r1d_fail(err, R1D_EINVAL,
                    "\"completion\" must be a string, or a list of exactly "
                    "one assistant message when \"prompt\" is a list");
  json_t *all = json_copy(prompt);
  if (!all || json_array_append(all, json_array_get(completion, 0))) {
    json_decref(all);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  int rc = line_messages(b, o, all, err);
  json_decref(all);
  return rc;
}

static int line_text(doc_builder *b, const r1d_data_opts *o, const char *text,
                     r1d_error *err) {
  int rc = add_id(b, o->bos_id, 1, err);
  if (rc == 0) rc = add_text(b, o, text, 1, err);
  if (rc == 0) rc = add_id(b, o->eos_id, 1, err);
  return rc;
}

static int parse_line(doc_builder *b, const r1d_data_opts *o, const char *line,
                      size_t len, r1d_error *err) {
  json_error_t jerr;
  json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return r1d_fail(err, R1D_EINVAL, "invalid JSON: %s (column %d)", jerr.text,
                    jerr.column);
  int rc;
  json_t *text = json_object_get(root, "text");
  json_t *messages = json_object_get(root, "messages");
  json_t *prompt = json_object_get(root, "prompt");
  json_t *completion = json_object_get(root, "completion");
  if (!json_is_object(root)) {
    rc = r1d_fail(err, R1D_EINVAL, "a line must be a JSON object");
  } else if (o->pretrain) {
    rc = json_is_string(text)
             ? line_text(b, o, json_string_value(text), err)
             : r1d_fail(err, R1D_EINVAL,
                        "pretraining takes {\"text\": \"...\"} lines");
  } else if (messages) {
    rc = json_is_array(messages)
             ? line_messages(b, o, messages, err)
             : r1d_fail(err, R1D_EINVAL, "\"messages\" must be a list");
  } else if (prompt || completion) {
    if (json_is_string(prompt) && json_is_string(completion)) {
      rc = add_id(b, o->bos_id, 0, err);
      if (rc == 0) rc = add_text(b, o, json_string_value(prompt), 0, err);
      if (rc == 0) rc = add_text(b, o, json_string_value(completion), 1, err);
      if (rc == 0) rc = add_id(b, o->eos_id, 1, err);
    } else if (json_is_array(prompt) && completion) {
      rc = line_conv_prompt(b, o, prompt, completion, err);
    } else {
      rc = r1d_fail(err, R1D_EINVAL,
                    "\"prompt\" and \"completion\" must both be strings, or "
                    "a message list and a one-message list");
    }
  } else if (json_is_string(text)) {
    rc = line_text(b, o, json_string_value(text), err);
  } else {
    rc = r1d_fail(err, R1D_EINVAL,
                  "expected {\"messages\": [...]}, {\"prompt\", "
                  "\"completion\"} or {\"text\"}");
  }
  json_decref(root);
  return rc;
}

static int check_opts(const r1d_data_opts *o, r1d_error *err) {
  if (!o || !o->tok || o->max_len < 2)
    return r1d_fail(err, R1D_EINVAL,
                    "training data: need a tokenizer and max_len >= 2");
  return 0;
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
  return 1;
}

int r1d_dataset_load_jsonl(const char *path, const r1d_data_opts *o,
                           r1d_dataset *ds, r1d_error *err) {
  int rc = check_opts(o, err);
  if (rc) return rc;
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (!f) return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if (is_blank(line, (size_t)len)) continue;
    ds->lines++;
    doc_builder b = {0};
    r1d_error lerr = {0};
    rc = parse_line(&b, o, line, (size_t)len, &lerr);
    if (rc == 0 && b.ids.n == 0)
      rc = r1d_fail(&lerr, R1D_EINVAL, "the example has no tokens");
    if (rc == 0) rc = finish_doc(ds, o, &b, lineno, &lerr);
    builder_free(&b);
    if (rc == R1D_ENOMEM) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s:%ld: %s", path, lineno, lerr.msg);
      goto done;
    }
    if (rc) {
      ds->bad_lines++;
      if (o->on_bad) o->on_bad(o->user, lineno, lerr.msg);
      if (o->strict) {
        rc = r1d_fail(err, R1D_EINVAL, "%s:%ld: %s", path, lineno, lerr.msg);
        goto done;
      }
      rc = 0;
    }
  }
  if (ferror(f)) rc = r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
done:
  free(line);
  if (f != stdin) fclose(f);
  return rc;
}

int r1d_dataset_load_text(const char *path, const r1d_data_opts *o,
                          r1d_dataset *ds, r1d_error *err) {
  int rc = check_opts(o, err);
  if (rc) return rc;
  FILE *f = fopen(path, "rb");
  if (!f) return r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
  char *text = NULL;
  size_t len = 0, cap = 0;
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + got + 1 > cap) {
      size_t ncap = cap ? cap * 2 : sizeof chunk * 2;
      while (ncap < len + got + 1)
        ncap *= 2;
      char *p = realloc(text, ncap);
      if (!p) {
        free(text);
        fclose(f);
        return r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
      }
      text = p;
      cap = ncap;
    }
    memcpy(text + len, chunk, got);
    len += got;
  }
  int read_error = ferror(f);
  fclose(f);
  if (read_error) {
    free(text);
    return r1d_fail(err, R1D_EIO, "%s: read error", path);
  }
  if (!text || is_blank(text, len)) {
    free(text);
    return r1d_fail(err, R1D_EINVAL, "%s: the text file is empty", path);
  }
  text[len] = 0;
  r1d_data_opts po = *o;
  po.pretrain = 1;
  doc_builder b = {0};
  rc = line_text(&b, &po, text, err);
  if (rc == 0) rc = finish_doc(ds, &po, &b, 0, err);
  builder_free(&b);
  free(text);
  if (rc) return r1d_fail(err, rc, "%s: %s", path, err->msg);
  ds->lines++;
  return 0;
}

void r1d_dataset_free(r1d_dataset *ds) {
  if (!ds) return;
  for (size_t i = 0; i < ds->n_docs; i++) {
    free(ds->docs[i].ids);
    free(ds->docs[i].loss);
  }
  free(ds->docs);
  memset(ds, 0, sizeof *ds);
}

int r1d_doc_targets(const r1d_doc *d, int32_t *targets) {
  int counted = 0;
  for (int i = 0; i + 1 < d->n; i++) {
    targets[i] = d->loss[i + 1] ? d->ids[i + 1] : -1;
    counted += d->loss[i + 1];
  }
  targets[d->n - 1] = -1;
  return counted;
}

/* ---- eval split ------------------------------------------------------- */

/* Fisher-Yates with the project's seeded generator. */
static void shuffle(size_t *v, size_t n, r1d_rng *r) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(r1d_rng_next(r) % i);
    size_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

static void count_doc(r1d_dataset *ds, const r1d_doc *d, int sign) {
  long counted = 0;
  for (int i = 1; i < d->n; i++)
    counted += d->loss[i];
  ds->tokens += sign * d->n;
  ds->loss_tokens += sign * counted;
}

int r1d_dataset_split(r1d_dataset *ds, double fraction, uint64_t seed,
                      r1d_dataset *eval, r1d_error *err) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    return r1d_fail(err, R1D_EINVAL,
                    "eval split: the fraction must be in [0, 1) (got %g)",
                    fraction);
  if (fraction == 0.0) return 0;
  size_t n = ds->n_docs;
  size_t n_eval = (size_t)(fraction * (double)n + 0.5);
  if (n_eval == 0) n_eval = 1;
  if (n_eval >= n)
    return r1d_fail(err, R1D_EINVAL,
                    "eval split: %zu documents are too few to hold out %g of "
                    "them and still train",
                    n, fraction);
  size_t *order = malloc(n * sizeof *order);
  uint8_t *is_eval = calloc(n, 1);
  r1d_doc *moved = malloc(n_eval * sizeof *moved);
  if (!order || !is_eval || !moved) {
    free(order);
    free(is_eval);
    free(moved);
    return r1d_fail(err, R1D_ENOMEM, "eval split: out of memory");
  }
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  r1d_rng r;
  r1d_rng_seed(&r, seed ^ 0x65766131u); /* its own stream, not the order's */
  shuffle(order, n, &r);
  for (size_t i = 0; i < n_eval; i++)
    is_eval[order[i]] = 1;
  /* both sides keep the file's order */
  size_t kept = 0, k = 0;
  for (size_t i = 0; i < n; i++) {
    if (is_eval[i]) {
      moved[k++] = ds->docs[i];
      count_doc(ds, &ds->docs[i], -1);
    } else {
      ds->docs[kept++] = ds->docs[i];
    }
  }
  ds->n_docs = kept;
  int rc = 0;
  for (size_t i = 0; i < n_eval; i++) {
    if (rc == 0 && eval->n_docs == eval->cap) {
      size_t cap = eval->cap ? eval->cap * 2 : 16;
      r1d_doc *p = realloc(eval->docs, cap * sizeof *p);
      if (!p) {
        rc = r1d_fail(err, R1D_ENOMEM, "eval split: out of memory");
      } else {
        eval->docs = p;
        eval->cap = cap;
      }
    }
    if (rc) {
      free(moved[i].ids);
      free(moved[i].loss);
      continue;
    }
    eval->docs[eval->n_docs++] = moved[i];
    count_doc(eval, &moved[i], +1);
  }
  free(order);
  free(is_eval);
  free(moved);
  return rc;
}

/* ---- packing ---------------------------------------------------------- */

/* qsort has no context argument: sort (length, index) pairs instead. */
typedef struct len_index {
  int len;
  size_t index;
} len_index;

static int cmp_len_desc(const void *a, const void *b) {
  const len_index *x = a, *y = b;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

int r1d_pack_documents(const r1d_dataset *ds, int max_tokens, r1d_packing *out,
                       r1d_error *err) {
  memset(out, 0, sizeof *out);
  size_t n = ds->n_docs;
  if (n == 0)
    return r1d_fail(err, R1D_EINVAL, "packing: there are no documents");
  len_index *li = malloc(n * sizeof *li);
  int *fill = malloc(n * sizeof *fill);          /* tokens per pack */
  size_t *pack_of = malloc(n * sizeof *pack_of); /* pack of each sorted doc */
  out->doc_index = malloc(n * sizeof *out->doc_index);
  out->packs = calloc(n, sizeof *out->packs);
  if (!li || !fill || !pack_of || !out->doc_index || !out->packs) {
    free(li);
    free(fill);
    free(pack_of);
    r1d_packing_free(out);
    return r1d_fail(err, R1D_ENOMEM, "packing: out of memory");
  }
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    li[i] = (len_index){ds->docs[i].n, i};
    if (ds->docs[i].n > max_tokens)
      rc = r1d_fail(err, R1D_EINVAL,
                    "packing: document %zu has %d tokens, over the %d of a "
                    "pack",
                    i, ds->docs[i].n, max_tokens);
  }
  if (rc) {
    free(li);
    free(fill);
    free(pack_of);
    r1d_packing_free(out);
    return rc;
  }
  qsort(li, n, sizeof *li, cmp_len_desc);
  /* Best fit: the pack with the least room that still holds the document.
   * A linear scan per document is O(n * packs); fine for the tens of
   * thousands of documents of an SFT set. */
  size_t n_packs = 0;
  for (size_t i = 0; i < n; i++) {
    size_t best = n_packs;
    int best_room = max_tokens + 1;
    for (size_t p = 0; p < n_packs; p++) {
      int room = max_tokens - fill[p];
      if (room >= li[i].len && room < best_room) {
        best = p;
        best_room = room;
        if (room == li[i].len) break;
      }
    }
    if (best == n_packs) fill[n_packs++] = 0;
    fill[best] += li[i].len;
    pack_of[i] = best;
    out->packs[best].n_docs++;
  }
  /* lay the packs' documents out contiguously, in sorted order within each */
  size_t off = 0;
  for (size_t p = 0; p < n_packs; p++) {
    out->packs[p].first = off;
    off += (size_t)out->packs[p].n_docs;
    out->packs[p].n_docs = 0;
  }
  for (size_t i = 0; i < n; i++) {
    r1d_pack *pk = &out->packs[pack_of[i]];
    const r1d_doc *d = &ds->docs[li[i].index];
    out->doc_index[pk->first + (size_t)pk->n_docs++] = li[i].index;
    pk->n_tokens += d->n;
    for (int t = 1; t < d->n; t++)
      pk->n_counted += d->loss[t];
  }
  out->n_packs = n_packs;
  out->max_tokens = max_tokens;
  for (size_t p = 0; p < n_packs; p++)
    out->tokens += out->packs[p].n_tokens;
  free(li);
  free(fill);
  free(pack_of);
  return 0;
}

void r1d_packing_free(r1d_packing *p) {
  if (!p) return;
  free(p->packs);
  free(p->doc_index);
  memset(p, 0, sizeof *p);
}

void r1d_pack_order(size_t n, uint64_t seed, long epoch, size_t *order) {
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  r1d_rng r;
  r1d_rng_seed(&r, seed + 0x9e3779b97f4a7c15ull * (uint64_t)(epoch + 1));
  shuffle(order, n, &r);
}
