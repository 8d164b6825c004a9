/* test_runner.c - the batched, paged forward (engine/model/runner.c) against
 * the contiguous single-sequence forward, which test_forward.c checks
 * against transformers within 1e-4.
 *
 * On the tiny Qwen2 (QKV bias, GQA 2) and Llama (llama3 rope, GQA 3)
 * fixtures, two prompts run as chunked prefills through the runner, their
 * chunks sharing steps, with shuffled block tables and block sizes 16 and 5
 * (chunks straddle block boundaries). Every row's logits must match the
 * contiguous forward's within 1e-4. Also: a malformed step is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/model.h"
#include "engine/model/runner.h"
#include "kernels/cpu/cpu_backend.h"

#define TOL 1e-4
#define N_SEQ 2
#define MAX_LEN 64

static r1d_model *load(const char *name) {
  const char *root = getenv("R1D_SOURCE_ROOT");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/tests/fixtures/models/%s", root ? root : ".",
           name);
  static r1d_backend be;
  r1d_cpu_backend_init(&be, 2);
  r1d_model *m = NULL;
  r1d_error err = {0};
  if (r1d_model_load(dir, &be, &m, &err)) print_error("%s\n", err.msg);
  assert_non_null(m);
  return m;
}

/* Reference logits [n, vocab] of ids from the contiguous forward. */
static float *reference(r1d_model *m, const int32_t *ids, int n) {
  r1d_kv_cache *kv = NULL;
  assert_int_equal(r1d_kv_cache_create(m, n, &kv), 0);
  float *out = malloc((size_t)n * m->cfg.vocab_size * sizeof(float));
  r1d_error err = {0};
  assert_int_equal(r1d_model_forward(m, kv, ids, n, 1, out, &err), 0);
  r1d_kv_cache_free(kv);
  return out;
}

static void run_model(const char *name, int block_size) {
  r1d_model *m = load(name);
  const int vocab = m->cfg.vocab_size;
  const int lens[N_SEQ] = {50, 23};
  int32_t ids[N_SEQ][MAX_LEN];
  float *ref[N_SEQ];
  for (int s = 0; s < N_SEQ; s++) {
    for (int i = 0; i < lens[s]; i++)
      ids[s][i] = (int32_t)((i * 37 + s * 11 + 5) % vocab);
    ref[s] = reference(m, ids[s], lens[s]);
  }

  int max_blocks = (MAX_LEN + block_size - 1) / block_size;
  r1d_runner_limits lim = {.n_blocks = N_SEQ * max_blocks + 3,
                           .block_size = block_size,
                           .max_tokens = 64,
                           .max_seqs = 64,
                           .max_blocks_per_seq = max_blocks};
  r1d_backend be;
  r1d_cpu_backend_init(&be, 2);
  r1d_runner *r = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_runner_create(m, &be, &lim, &r, &err), 0);

  /* Block tables: seq s's logical block b is physical block
   * (lim.n_blocks - 1 - (b * N_SEQ + s)), i.e. reversed and interleaved. */
  int32_t tables[N_SEQ * 16];
  for (int s = 0; s < N_SEQ; s++)
    for (int b = 0; b < max_blocks; b++)
      tables[s * max_blocks + b] = lim.n_blocks - 1 - (b * N_SEQ + s);

  /* Chunks: seq 0 in [0,20) [20,37) [37,50); seq 1 in [0,9) [9,23) []. */
  const int cuts[N_SEQ][4] = {{0, 20, 37, 50}, {0, 9, 23, 23}};
  float *logits = malloc((size_t)64 * vocab * sizeof(float));
  for (int step = 0; step < 3; step++) {
    int32_t b_ids[64], b_pos[64], b_seq[64], rows[64];
    int64_t slots[64];
    int t = 0, n_seqs = 0, max_pos = 0;
    int32_t b_tables[N_SEQ * 16];
    int first_row[N_SEQ], which[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
      int a = cuts[s][step], z = cuts[s][step + 1];
      if (a == z) continue;
      memcpy(b_tables + n_seqs * max_blocks, tables + s * max_blocks,
             (size_t)max_blocks * sizeof(int32_t));
      first_row[s] = t;
      which[n_seqs] = s;
      for (int p = a; p < z; p++, t++) {
        b_ids[t] = ids[s][p];
        b_pos[t] = p;
        b_seq[t] = n_seqs;
        slots[t] =
            (int64_t)tables[s * max_blocks + p / block_size] * block_size +
            p % block_size;
        rows[t] = t;
        if (p > max_pos) max_pos = p;
      }
      n_seqs++;
    }
    r1d_batch b = {.n_tokens = t,
                   .ids = b_ids,
                   .pos = b_pos,
                   .q_seq = b_seq,
                   .slots = slots,
                   .n_seqs = n_seqs,
                   .block_tables = b_tables,
                   .max_pos = max_pos,
                   .n_logits = t,
                   .logit_rows = rows};
    assert_int_equal(r1d_runner_step(r, &b, logits, &err), 0);
    double worst = 0;
    for (int q = 0; q < n_seqs; q++) {
      int s = which[q];
      for (int p = cuts[s][step]; p < cuts[s][step + 1]; p++) {
        const float *got =
            logits + (size_t)(first_row[s] + p - cuts[s][step]) * vocab;
        const float *want = ref[s] + (size_t)p * vocab;
        for (int v = 0; v < vocab; v++) {
          double d = fabs((double)got[v] - want[v]);
          if (!(d <= worst)) worst = d; /* NaN propagates */
        }
      }
    }
    if (!(worst <= TOL))
      print_error("%s bs=%d step %d: max diff %g\n", name, block_size, step,
                  worst);
    assert_true(worst <= TOL);
  }

  /* a token id outside the vocabulary is refused, nothing runs */
  int32_t bad_id = vocab, pos0 = 0, seq0 = 0, row0 = 0;
  int64_t slot0 = 0;
  r1d_batch bad = {.n_tokens = 1,
                   .ids = &bad_id,
                   .pos = &pos0,
                   .q_seq = &seq0,
                   .slots = &slot0,
                   .n_seqs = 1,
                   .block_tables = tables,
                   .n_logits = 1,
                   .logit_rows = &row0};
  assert_int_equal(r1d_runner_step(r, &bad, logits, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "vocabulary"));
  bad_id = 1;
  slot0 = (int64_t)lim.n_blocks * block_size; /* past the pool */
  assert_int_equal(r1d_runner_step(r, &bad, logits, &err), R1D_EINVAL);

  free(logits);
  for (int s = 0; s < N_SEQ; s++)
    free(ref[s]);
  r1d_runner_destroy(r);
  r1d_model_free(m);
}

static void test_qwen2_block16(void **state) {
  (void)state;
  run_model("tiny-qwen2", 16);
}
static void test_qwen2_block5(void **state) {
  (void)state;
  run_model("tiny-qwen2", 5);
}
static void test_llama_block16(void **state) {
  (void)state;
  run_model("tiny-llama", 16);
}
static void test_llama_block5(void **state) {
  (void)state;
  run_model("tiny-llama", 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen2_block16),
      cmocka_unit_test(test_qwen2_block5),
      cmocka_unit_test(test_llama_block16),
      cmocka_unit_test(test_llama_block5),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
