/* cmd_model.c - `r1d model init` (a random Hugging Face folder from a preset)
 * and `r1d model info` (what r1d reads from a folder). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../engine/model/config.h"
#include "../engine/model/init.h"
#include "cli.h"

const char cmd_model_help[] =
    "usage: r1d model init --arch qwen2|llama --preset micro|tiny|small\n"
    "                      --out DIR [--seed S] [--tokenizer FILE]\n"
    "       r1d model info --model DIR\n"
    "\n"
    "init writes a Hugging Face model folder with seeded random weights "
    "(F32),\n"
    "a byte-level tokenizer with the R1 chat and <think>/</think>/<answer>/\n"
    "</answer> tokens, and an R1-distill chat template. Presets: micro "
    "(hidden\n"
    "64, 2 layers: a student for distillation), tiny (~1M parameters), small\n"
    "(~100M). --tokenizer FILE uses that tokenizer.json instead (e.g. from\n"
    "`r1d tokenizer train`): vocab size from it (rounded up to a multiple of\n"
    "16), bos/eos from the tokenizer_config.json beside it (else the R1\n"
    "tokens), which is copied too. info prints the config r1d reads.\n";

static int model_init(int argc, char **argv) {
  static const struct option opts[] = {{"arch", required_argument, 0, 'a'},
                                       {"preset", required_argument, 0, 'p'},
                                       {"out", required_argument, 0, 'o'},
                                       {"seed", required_argument, 0, 's'},
                                       {"tokenizer", required_argument, 0, 't'},
                                       {0, 0, 0, 0}};
  const char *arch = "qwen2", *preset = "tiny", *out = NULL, *tok = NULL;
  long long seed = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'a': arch = optarg; break;
    case 'p': preset = optarg; break;
    case 'o': out = optarg; break;
    case 't': tok = optarg; break;
    case 's':
      if (cli_parse_int(optarg, 0, 1LL << 62, &seed))
        return cli_usage_error(
            "--seed: expected a non-negative integer, got '%s'", optarg);
      break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (!out) return cli_usage_error("model init: --out DIR is required");
  r1d_arch a;
  if (strcmp(arch, "qwen2") == 0)
    a = R1D_ARCH_QWEN2;
  else if (strcmp(arch, "llama") == 0)
    a = R1D_ARCH_LLAMA;
  else
    return cli_usage_error("--arch: expected qwen2 or llama, got '%s'", arch);
  r1d_config cfg;
  r1d_error err = {0};
  if (r1d_model_preset(a, preset, &cfg, &err) ||
      (tok && r1d_model_use_tokenizer(&cfg, tok, &err)) ||
      r1d_model_init_dir_tokenizer(out, &cfg, (uint64_t)seed, tok, &err))
    return cli_report(&err);
  printf("wrote %s: %s %s, %.2fM parameters\n", out, arch, preset,
         (double)r1d_config_param_count(&cfg) / 1e6);
  return CLI_EXIT_OK;
}

static int model_info(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                       {0, 0, 0, 0}};
  const char *dir = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'm')
      dir = optarg;
    else
      return CLI_EXIT_USAGE;
  }
  if (!dir) return cli_usage_error("model info: --model DIR is required");
  r1d_config cfg;
  r1d_error err = {0};
  if (r1d_config_load(dir, &cfg, &err)) return cli_report(&err);
  printf("architecture      %s\n",
         cfg.arch == R1D_ARCH_QWEN2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
  printf("parameters        %.2fM\n",
         (double)r1d_config_param_count(&cfg) / 1e6);
  printf("layers            %d\n", cfg.num_layers);
  printf("hidden / ffn      %d / %d\n", cfg.hidden_size, cfg.intermediate_size);
  printf("heads / kv heads  %d / %d (head_dim %d)\n", cfg.num_heads,
         cfg.num_kv_heads, cfg.head_dim);
  printf("vocab             %d\n", cfg.vocab_size);
  printf("context           %d\n", cfg.max_position_embeddings);
  printf("rope              theta %g%s\n", (double)cfg.rope_theta,
         cfg.rope_type == R1D_ROPE_LLAMA3 ? ", llama3 scaling" : "");
  printf("tied embeddings   %s\n", cfg.tie_word_embeddings ? "yes" : "no");
  printf("qkv bias          %s\n", cfg.qkv_bias ? "yes" : "no");
  printf("bos / eos         %d /", cfg.bos_token_id);
  for (int i = 0; i < cfg.n_eos; i++)
    printf(" %d", cfg.eos_token_ids[i]);
  printf("\n");
  return CLI_EXIT_OK;
}

int cmd_model(int argc, char **argv) {
  if (argc < 2)
    return cli_usage_error(
        "model: expected `init` or `info` (see r1d help model)");
  if (strcmp(argv[1], "init") == 0) return model_init(argc - 1, argv + 1);
  if (strcmp(argv[1], "info") == 0) return model_info(argc - 1, argv + 1);
  return cli_usage_error("model: unknown action '%s' (expected init or info)",
                         argv[1]);
}
