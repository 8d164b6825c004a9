/* fuzz_config.c - libFuzzer harness for r1d_config_parse (config.json text).
 *
 * The input is NUL-terminated and parsed. A config that parses is handed to
 * the two consumers of a parsed config that need no weights: the parameter
 * count and the RoPE frequencies (the latter only for head sizes a real
 * model could have, as it writes head_dim / 2 floats). Build:
 * tests/fuzz/build.sh. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  r1d_config cfg;
  r1d_error err = {0};
  int rc = r1d_config_parse(text, "fuzz/config.json", &cfg, &err);
  free(text);
  if (rc != R1D_OK) {
    if (rc > 0 || err.code != rc || !err.msg[0]) abort();
    return 0;
  }
  /* What validate() promises to the model code. */
  if (cfg.vocab_size <= 0 || cfg.hidden_size <= 0 || cfg.num_heads <= 0 ||
      cfg.num_kv_heads <= 0 || cfg.num_heads % cfg.num_kv_heads != 0 ||
      cfg.head_dim <= 0 || cfg.head_dim % 2 != 0 || cfg.n_eos < 0 ||
      cfg.n_eos > R1D_MAX_EOS || !(cfg.rope_theta > 0) ||
      !(cfg.rms_norm_eps > 0) ||
      memchr(cfg.torch_dtype, 0, sizeof cfg.torch_dtype) == NULL)
    abort();
  volatile long long params = r1d_config_param_count(&cfg);
  (void)params;
  if (cfg.head_dim <= 4096) {
    float *inv = malloc(sizeof *inv * (size_t)(cfg.head_dim / 2));
    if (!inv) abort();
    r1d_config_rope_inv_freq(&cfg, inv);
    free(inv);
  }
  return 0;
}
