/* test_sft_data.c - SFT/pretraining data (rl/sft_data.h) with the real Qwen3
 * tokenizer of ../shared/fixtures and the qwen3 chat template:
 *  - the loss mask covers exactly the reply: decoding the loss tokens gives
 *    r1d_template_render_reply's text, decoding the rest the prompt (for
 *    messages and for both prompt/completion forms, completion + EOS);
 *  - {"text"} lines carry loss on every token but the first;
 *  - bad lines are reported with their numbers and skipped, or fail with
 *    strict; truncation and drops are counted; pretraining splits;
 *  - the eval split is seeded, disjoint and complete;
 *  - packing puts every document in exactly one pack within the limit,
 *    and the epoch order is a seeded permutation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rl/sft_data.h"

typedef struct fixture {
  r1d_tokenizer *tok;
  r1d_template *tmpl;
  int32_t eos;
} fixture;

static int setup(void **state) {
  const char *root = getenv("R1D_SHARED");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/fixtures/tokenizers/qwen3",
           root ? root : "../shared");
  fixture *f = calloc(1, sizeof *f);
  r1d_error err = {0};
  if (r1d_tokenizer_load_dir(dir, &f->tok, &err)) {
    print_error("%s\n", err.msg);
    return -1;
  }
  if (r1d_template_from_name("qwen3", NULL, "<|im_end|>", &f->tmpl, &err))
    return -1;
  f->eos = r1d_tokenizer_token_to_id(f->tok, "<|endoftext|>");
  *state = f;
  return f->eos >= 0 ? 0 : -1;
}

static int teardown(void **state) {
  fixture *f = *state;
  r1d_template_free(f->tmpl);
  r1d_tokenizer_free(f->tok);
  free(f);
  return 0;
}

static char *write_tmp(const char *text) {
  char *path = strdup("/tmp/r1d_sft_data_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *fp = fdopen(fd, "w");
  fputs(text, fp);
  fclose(fp);
  return path;
}

typedef struct bad_log {
  long lines[16];
  int n;
} bad_log;

static void on_bad(void *user, long line, const char *msg) {
  bad_log *b = user;
  (void)msg;
  if (b->n < 16) b->lines[b->n++] = line;
}

static r1d_data_opts opts_for(fixture *f, bad_log *log) {
  return (r1d_data_opts){.max_len = 4096,
                         .tok = f->tok,
                         .tmpl = f->tmpl,
                         .eos_id = f->eos,
                         .bos_id = -1,
                         .on_bad = on_bad,
                         .user = log};
}

/* The decoded text of the tokens of d whose loss flag is `flag`. */
static char *decode_where(fixture *f, const r1d_doc *d, int flag) {
  int32_t *ids = malloc((size_t)d->n * sizeof(int32_t));
  size_t n = 0;
  for (int i = 0; i < d->n; i++)
    if (d->loss[i] == flag) ids[n++] = d->ids[i];
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(r1d_tokenizer_decode(f->tok, ids, n, 0, &text, &len, NULL),
                   0);
  free(ids);
  return text;
}

static void test_loss_mask(void **state) {
  fixture *f = *state;
  bad_log log = {0};
  r1d_data_opts o = opts_for(f, &log);
  char *path = write_tmp(
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
      "{\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": "
      "\"assistant\", \"reasoning_content\": \"Two and two.\", \"content\": "
      "\"4\"}]}\n"
      "{\"prompt\": \"Capital of France?\", \"completion\": \" Paris\"}\n"
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"hi\"}], "
      "\"completion\": [{\"role\": \"assistant\", \"content\": "
      "\"<think>\\nGreet.\\n</think>\\n\\nHello!\"}]}\n"
      "{\"text\": \"plain text\"}\n");
  r1d_dataset ds = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_dataset_load_jsonl(path, &o, &ds, &err), 0);
  assert_int_equal(ds.n_docs, 4);
  assert_int_equal(ds.bad_lines, 0);

  /* 1: the conversation: context = template up to the generation prompt */
  r1d_chat_message m[] = {{"system", "Be brief.", NULL},
                          {"user", "2+2?", NULL},
                          {"assistant", "4", "Two and two."}};
  char *prompt = NULL, *reply = NULL;
  assert_int_equal(r1d_template_render(f->tmpl, m, 2, 1, &prompt, NULL), 0);
  assert_int_equal(r1d_template_render_reply(f->tmpl, &m[2], &reply, NULL), 0);
  char *ctx = decode_where(f, &ds.docs[0], 0);
  char *ans = decode_where(f, &ds.docs[0], 1);
  assert_string_equal(ctx, prompt);
  assert_string_equal(ans, reply);
  assert_string_equal(ans, "<think>\nTwo and two.\n</think>\n\n4<|im_end|>");
  free(ctx);
  free(ans);
  free(prompt);
  free(reply);

  /* 2: plain prompt/completion: completion + EOS */
  ctx = decode_where(f, &ds.docs[1], 0);
  ans = decode_where(f, &ds.docs[1], 1);
  assert_string_equal(ctx, "Capital of France?");
  assert_string_equal(ans, " Paris<|endoftext|>");
  free(ctx);
  free(ans);

  /* 3: conversational prompt/completion, thoughts from a think block */
  ans = decode_where(f, &ds.docs[2], 1);
  assert_string_equal(ans, "<think>\nGreet.\n</think>\n\nHello!<|im_end|>");
  free(ans);

  /* 4: text: every token but the first is a target */
  const r1d_doc *t = &ds.docs[3];
  assert_int_equal(t->loss[0], 0);
  for (int i = 1; i < t->n; i++)
    assert_int_equal(t->loss[i], 1);
  assert_int_equal(t->ids[t->n - 1], f->eos);

  /* targets: the next token where it carries loss, else -1 */
  const r1d_doc *d = &ds.docs[1];
  int32_t *targets = malloc((size_t)d->n * sizeof(int32_t));
  int counted = r1d_doc_targets(d, targets);
  int want = 0;
  for (int i = 0; i + 1 < d->n; i++) {
    assert_int_equal(targets[i], d->loss[i + 1] ? d->ids[i + 1] : -1);
    want += d->loss[i + 1];
  }
  assert_int_equal(targets[d->n - 1], -1);
  assert_int_equal(counted, want);
  free(targets);
  long loss_tokens = 0, tokens = 0;
  for (size_t i = 0; i < ds.n_docs; i++) {
    tokens += ds.docs[i].n;
    for (int k = 1; k < ds.docs[i].n; k++)
      loss_tokens += ds.docs[i].loss[k];
  }
  assert_int_equal(ds.tokens, tokens);
  assert_int_equal(ds.loss_tokens, loss_tokens);
  r1d_dataset_free(&ds);
  unlink(path);
  free(path);
}

static void test_bad_lines_and_limits(void **state) {
  fixture *f = *state;
  bad_log log = {0};
  r1d_data_opts o = opts_for(f, &log);
  char *path = write_tmp(
      "{\"prompt\": \"a\", \"completion\": \" b\"}\n"
      "\n"
      "{not json\n"
      "{\"messages\": [{\"role\": \"user\", \"content\": \"no reply\"}]}\n"
      "[1, 2]\n"
      "{\"prompt\": \"a\"}\n"
      "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}, "
      "{\"role\": \"assistant\", \"content\": \"y\"}]}\n"
      "{\"prompt\": \"one two three four five six seven eight nine ten\", "
      "\"completion\": \" eleven\"}\n");
  r1d_dataset ds = {0};
  r1d_error err = {0};
  o.max_len = 6; /* the last line's prompt alone is longer: dropped */
  assert_int_equal(r1d_dataset_load_jsonl(path, &o, &ds, &err), 0);
  assert_int_equal(ds.lines, 7);
  assert_int_equal(ds.bad_lines, 5);
  long want_lines[] = {3, 4, 5, 6, 7};
  assert_int_equal(log.n, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(log.lines[i], want_lines[i]);
  assert_int_equal(ds.n_docs, 1);
  assert_int_equal(ds.truncated, 1);
  assert_int_equal(ds.dropped, 1);
  assert_true(ds.truncated_tokens > 0);
  r1d_dataset_free(&ds);

  /* strict: the first bad line fails, naming it */
  o.strict = 1;
  log.n = 0;
  assert_int_equal(r1d_dataset_load_jsonl(path, &o, &ds, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, ":3: invalid JSON"));
  r1d_dataset_free(&ds);

  /* a missing file */
  assert_int_equal(
      r1d_dataset_load_jsonl("/nonexistent/x.jsonl", &o, &ds, &err), R1D_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/x.jsonl"));
  unlink(path);
  free(path);

  /* pretraining: only {"text"}; long documents are split, not cut */
  o.strict = 0;
  o.pretrain = 1;
  o.max_len = 4;
  path = write_tmp("{\"text\": \"one two three four five six seven\"}\n"
                   "{\"prompt\": \"a\", \"completion\": \"b\"}\n");
  assert_int_equal(r1d_dataset_load_jsonl(path, &o, &ds, &err), 0);
  assert_int_equal(ds.bad_lines, 1);
  assert_true(ds.n_docs >= 2);
  long total = 0;
  for (size_t i = 0; i < ds.n_docs; i++) {
    assert_true(ds.docs[i].n <= 4);
    total += ds.docs[i].n;
  }
  assert_int_equal(ds.truncated, 0);
  assert_true(total >= 8); /* 7 words + EOS, none lost but a 1-token tail */
  r1d_dataset_free(&ds);
  unlink(path);
  free(path);
}

static void test_split_and_pack(void **state) {
  fixture *f = *state;
  bad_log log = {0};
  r1d_data_opts o = opts_for(f, &log);
  char *text = malloc(64 * 1024);
  size_t off = 0;
  for (int i = 0; i < 200; i++) {
    off += (size_t)sprintf(text + off, "{\"prompt\": \"Question %d:", i);
    for (int k = 0; k < i % 17; k++)
      off += (size_t)sprintf(text + off, " word");
    off += (size_t)sprintf(text + off, "\", \"completion\": \" %d\"}\n", i);
  }
  char *path = write_tmp(text);
  free(text);
  r1d_dataset ds = {0}, eval = {0}, ds2 = {0}, eval2 = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_dataset_load_jsonl(path, &o, &ds, &err), 0);
  assert_int_equal(r1d_dataset_load_jsonl(path, &o, &ds2, &err), 0);
  long tokens = ds.tokens;
  assert_int_equal(r1d_dataset_split(&ds, 0.1, 7, &eval, &err), 0);
  assert_int_equal(r1d_dataset_split(&ds2, 0.1, 7, &eval2, &err), 0);
  assert_int_equal(eval.n_docs, 20);
  assert_int_equal(ds.n_docs, 180);
  assert_int_equal(ds.tokens + eval.tokens, tokens);
  for (size_t i = 0; i < eval.n_docs; i++) /* same seed, same split */
    assert_int_equal(eval.docs[i].line, eval2.docs[i].line);
  for (size_t i = 0; i < eval.n_docs; i++) /* disjoint */
    for (size_t j = 0; j < ds.n_docs; j++)
      assert_true(eval.docs[i].line != ds.docs[j].line);
  assert_int_equal(r1d_dataset_split(&ds, 1.0, 7, &eval, &err), R1D_EINVAL);

  r1d_packing pk;
  assert_int_equal(r1d_pack_documents(&ds, 64, &pk, &err), 0);
  int *seen = calloc(ds.n_docs, sizeof(int));
  long packed = 0;
  for (size_t p = 0; p < pk.n_packs; p++) {
    int sum = 0;
    for (int d = 0; d < pk.packs[p].n_docs; d++) {
      size_t doc = pk.doc_index[pk.packs[p].first + (size_t)d];
      seen[doc]++;
      sum += ds.docs[doc].n;
    }
    assert_int_equal(sum, pk.packs[p].n_tokens);
    assert_true(sum <= 64);
    packed += sum;
  }
  for (size_t i = 0; i < ds.n_docs; i++)
    assert_int_equal(seen[i], 1);
  assert_int_equal(packed, ds.tokens);
  assert_int_equal(pk.tokens, ds.tokens);
  /* best fit wastes little: within 10% of the ideal pack count */
  size_t ideal = (size_t)((ds.tokens + 63) / 64);
  print_message("  %zu packs for %ld tokens (ideal %zu)\n", pk.n_packs,
                ds.tokens, ideal);
  assert_true(pk.n_packs * 10 <= ideal * 11 + 10);
  free(seen);

  /* a document over the pack size is refused */
  r1d_packing small;
  assert_int_equal(r1d_pack_documents(&ds, 4, &small, &err), R1D_EINVAL);

  /* the epoch order: a permutation, the same for the same (seed, epoch) */
  size_t n = pk.n_packs;
  size_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  int *hit = calloc(n, sizeof(int));
  r1d_pack_order(n, 42, 3, a);
  r1d_pack_order(n, 42, 3, b);
  assert_memory_equal(a, b, n * sizeof *a);
  for (size_t i = 0; i < n; i++)
    hit[a[i]]++;
  for (size_t i = 0; i < n; i++)
    assert_int_equal(hit[i], 1);
  r1d_pack_order(n, 42, 4, b);
  assert_true(memcmp(a, b, n * sizeof *a) != 0);
  free(a);
  free(b);
  free(hit);
  r1d_packing_free(&pk);
  r1d_dataset_free(&ds);
  r1d_dataset_free(&eval);
  r1d_dataset_free(&ds2);
  r1d_dataset_free(&eval2);
  unlink(path);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loss_mask),
      cmocka_unit_test(test_bad_lines_and_limits),
      cmocka_unit_test(test_split_and_pack),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
