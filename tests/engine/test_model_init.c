/* test_model_init.c - `r1d model init` folders: preset sizes, and that every
 * file written loads back through r1d's own loaders with the expected
 * contents (the transformers side is tests/ref/check_model_init.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "engine/model/config.h"
#include "engine/model/init.h"
#include "engine/model/weights.h"
#include "engine/text/template.h"
#include "engine/text/tokenizer.h"

static void test_preset_sizes(void **state) {
  (void)state;
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err), 0);
  long long tiny = r1d_config_param_count(&c);
  assert_true(tiny > 500000 && tiny < 2000000); /* ~1M */
  assert_int_equal(r1d_model_preset(R1D_ARCH_LLAMA, "small", &c, &err), 0);
  long long small = r1d_config_param_count(&c);
  assert_true(small > 80000000 && small < 120000000); /* ~100M */
  assert_int_equal(c.num_heads % c.num_kv_heads, 0);
  assert_false(c.qkv_bias); /* Llama has no q/k/v bias */
  assert_int_equal(r1d_model_preset(R1D_ARCH_QWEN2, "huge", &c, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "huge"));
}

static void test_init_dir_loads_back(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-init-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[64];
  snprintf(sub, sizeof sub, "%s/nested/model", dir);
  r1d_config c, loaded;
  r1d_error err = {0};
  assert_int_equal(r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err), 0);
  assert_int_equal(r1d_model_init_dir(sub, &c, 42, &err), 0);

  assert_int_equal(r1d_config_load(sub, &loaded, &err), 0);
  assert_int_equal(loaded.arch, R1D_ARCH_QWEN2);
  assert_int_equal(loaded.hidden_size, c.hidden_size);
  assert_int_equal(loaded.num_kv_heads, c.num_kv_heads);
  assert_true(loaded.qkv_bias);
  assert_true(loaded.tie_word_embeddings);
  assert_int_equal(loaded.bos_token_id, c.bos_token_id);
  assert_int_equal(loaded.eos_token_ids[0], c.eos_token_ids[0]);

  r1d_weights w;
  assert_int_equal(r1d_weights_load(sub, &loaded, &w, &err), 0);
  /* norms are ones, biases zeros, matrices random with std ~0.02 */
  assert_true(w.final_norm[0] == 1.0f);
  assert_true(w.layers[0].q_b[3] == 0.0f);
  double sum = 0, sq = 0;
  size_t n = (size_t)c.hidden_size * c.hidden_size;
  for (size_t i = 0; i < n; i++) {
    sum += w.layers[0].q_w[i];
    sq += (double)w.layers[0].q_w[i] * w.layers[0].q_w[i];
  }
  double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
  assert_true(fabs(mean) < 0.002);
  assert_true(sd > 0.018 && sd < 0.022);
  r1d_weights_free(&w);

  r1d_tokenizer *tok = NULL;
  assert_int_equal(r1d_tokenizer_load_dir(sub, &tok, &err), 0);
  for (int i = 0; i < r1d_init_n_added_tokens; i++) {
    int32_t id = r1d_tokenizer_token_to_id(tok, r1d_init_added_tokens[i]);
    assert_int_equal(id, 256 + i);
    assert_true(id < c.vocab_size);
  }
  assert_int_equal(r1d_tokenizer_token_to_id(tok, "<think>"), 256 + 5);
  /* the 256 byte tokens: "A" is byte 65 */
  r1d_ids ids = {0};
  assert_int_equal(r1d_tokenizer_encode(tok, "A<think>", 8, &ids, &err), 0);
  assert_int_equal(ids.n, 2);
  assert_int_equal(ids.v[0], 65);
  assert_int_equal(ids.v[1], 261);
  r1d_ids_free(&ids);
  r1d_tokenizer_free(tok);

  r1d_template *tpl = NULL;
  assert_int_equal(r1d_template_load_dir(sub, &tpl, &err), 0);
  assert_string_equal(r1d_template_name(tpl), "r1-distill");
  r1d_chat_message m[] = {{"system", "S", NULL}, {"user", "Q", NULL}};
  char *out = NULL;
  assert_int_equal(r1d_template_render(tpl, m, 2, 1, &out, &err), 0);
  assert_string_equal(
      out, "<｜begin▁of▁sentence｜>S<｜User｜>Q<｜Assistant｜><think>\n");
  free(out);
  r1d_template_free(tpl);

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_init_refuses_foreign_checkpoint(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-foreign-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("{}", f);
  fclose(f);
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, NULL), 0);
  assert_int_equal(r1d_model_init_dir(dir, &c, 1, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "model.safetensors.index.json"));
  snprintf(path, sizeof path, "%s/config.json", dir);
  assert_false(r1d_file_exists(path)); /* nothing written */
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_init_is_seeded(void **state) {
  (void)state;
  r1d_config c;
  assert_int_equal(r1d_model_preset(R1D_ARCH_LLAMA, "tiny", &c, NULL), 0);
  char a[] = "/tmp/r1d-seed-XXXXXX", b[] = "/tmp/r1d-seed-XXXXXX";
  assert_non_null(mkdtemp(a));
  assert_non_null(mkdtemp(b));
  assert_int_equal(r1d_model_init_dir(a, &c, 9, NULL), 0);
  assert_int_equal(r1d_model_init_dir(b, &c, 10, NULL), 0);
  r1d_weights wa, wb;
  assert_int_equal(r1d_weights_load(a, &c, &wa, NULL), 0);
  assert_int_equal(r1d_weights_load(b, &c, &wb, NULL), 0);
  assert_true(wa.n_floats == wb.n_floats);
  assert_true(memcmp(wa.embed, wb.embed, 64 * sizeof(float)) != 0);
  r1d_weights_free(&wa);
  r1d_weights_free(&wb);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", a, b);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_preset_sizes),
      cmocka_unit_test(test_init_dir_loads_back),
      cmocka_unit_test(test_init_is_seeded),
      cmocka_unit_test(test_init_refuses_foreign_checkpoint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
