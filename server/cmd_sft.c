/* cmd_sft.c - `r1d sft` and `r1d pretrain`: the command line of the training
 * run in rl/sft.h. This file loads the model, tokenizer, template and data,
 * shows progress (a one-line bar on a terminal, JSON lines otherwise, and
 * always OUT/metrics.jsonl) and stops cleanly on SIGINT/SIGTERM at the next
 * step boundary after a checkpoint. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/file.h"
#include "../engine/model/model.h"
#include "../engine/model/train.h"
#include "../kernels/cpu/cpu_backend.h"
#include "../kernels/cuda/cuda_backend.h"
#include "../rl/sft.h"
#include "../storage/checkpoints.h"
#include "../storage/db.h"
#include "cli.h"

#define TRAIN_COMMON_HELP                                                      \
  "  --out DIR              checkpoints go to DIR/checkpoint-STEP; DIR/last\n" \
  "                         links the newest (required)\n"                     \
  "  --max-len N            tokens per document (default 2048, at most the\n"  \
  "                         model's max_position_embeddings)\n"                \
  "  --max-tokens N         tokens per packed micro-batch (default: "          \
  "max-len)\n"                                                                 \
  "  --grad-accum K         micro-batches per optimizer step (default 1)\n"    \
  "  --epochs E             passes over the data (default 1; fractions ok)\n"  \
  "  --max-steps N          optimizer steps (overrides --epochs)\n"            \
  "  --lr X --min-lr X      peak and final learning rate\n"                    \
  "  --schedule S           cosine (default: linear warmup, cosine decay) "    \
  "or\n"                                                                       \
  "                         constant (after warmup)\n"                         \
  "  --warmup-steps N | --warmup-ratio R   warmup length (default 0)\n"        \
  "  --weight-decay X --beta1 X --beta2 X --eps X   AdamW (norms and biases\n" \
  "                         never decay)\n"                                    \
  "  --clip X               clip the gradient's global norm (default 1, 0 "    \
  "off)\n"                                                                     \
  "  --eval-split F         hold out this fraction of the documents "          \
  "(default\n"                                                                 \
  "                         0) or --eval-data FILE; --eval-every N steps "     \
  "(and\n"                                                                     \
  "                         at the end)\n"                                     \
  "  --save-every N         checkpoint every N steps (and at the end);\n"      \
  "                         --save-limit K keeps the newest K; --bf16 "        \
  "stores\n"                                                                   \
  "                         bf16 weights (smaller; resume is then not "        \
  "exact)\n"                                                                   \
  "  --resume               continue from DIR/last: same data, --seed,\n"      \
  "                         --max-tokens and --grad-accum give the same\n"     \
  "                         losses as an uninterrupted run\n"                  \
  "  --seed S               data order (default 42)\n"                         \
  "  --strict               a malformed line stops the run (default: it is\n"  \
  "                         reported with its number and skipped)\n"           \
  "  --progress bar|json    default: bar on a terminal, else JSON lines\n"     \
  "  --threads N            CPU threads (default: all cores)\n"                \
  "  --recompute            keep only each layer's input and recompute the\n"  \
  "                         rest in the backward (activation checkpointing:\n" \
  "                         less memory, ~1/3 more compute, same gradients;\n" \
  "                         --backend cpu)\n"                                  \
  "  --backend B            cpu (default: the host trainer), cuda (the\n"      \
  "                         device trainer on GPU 0: fp32 master weights,\n"   \
  "                         gradients and moments, bf16 forward GEMMs;\n"      \
  "                         --tf32 runs the backward GEMMs in TF32) or\n"      \
  "                         cpu-ops (the device trainer on the CPU ops\n"      \
  "                         table: the CUDA path's code, checked where no\n"   \
  "                         GPU is)\n"                                         \
  "  --data-dir DIR         register each checkpoint in the checkpoints "      \
  "table\n"                                                                    \
  "                         of DIR (r1d serve's data dir), with its step,\n"   \
  "                         losses, parent and SHA-256 of its files\n"         \
  "Exit status: 0 done (or stopped by a signal after a checkpoint), 1 a\n"     \
  "failure (a non-finite loss stops the run and names the last good\n"         \
  "checkpoint), 2 bad arguments or data.\n"

const char cmd_sft_help[] =
    "usage: r1d sft --model DIR --data FILE.jsonl --out DIR [options]\n"
    "\n"
    "Supervised fine-tuning (CPU, or a GPU with --backend cuda). Lines of FILE "
    "(TRL's "
    "formats):\n"
    "  {\"messages\": [...]}: the chat template renders the conversation up\n"
    "     to its last assistant turn; loss on that turn (thoughts included)\n"
    "  {\"prompt\": \"...\", \"completion\": \"...\"}: loss on completion + "
    "EOS\n"
    "  {\"prompt\": [messages], \"completion\": [assistant message]}\n"
    "  {\"text\": \"...\"}: loss on every token\n"
    "Documents are packed without padding (each attends only to itself).\n"
    "Longer than --max-len: cut and counted.\n"
    "  --model DIR            Hugging Face folder (Qwen2 or Llama)\n"
    "  --data FILE            JSONL (- reads stdin)\n"
    "  --template NAME        chat template override (see r1d "
    "template)\n" TRAIN_COMMON_HELP
    "Defaults: lr 2e-5, weight decay 0, betas 0.9/0.999, eps 1e-8.\n";

const char cmd_pretrain_help[] =
    "usage: r1d pretrain --model DIR (--text FILE | --data FILE.jsonl) --out "
    "DIR\n"
    "                    [options]\n"
    "\n"
    "Language-model training on every token, e.g. of a model made by\n"
    "`r1d model init`. --text FILE is one document; --data takes\n"
    "{\"text\": \"...\"} lines. Documents longer than --max-len are split.\n"
    "  --model DIR            Hugging Face folder (Qwen2 or "
    "Llama)\n" TRAIN_COMMON_HELP
    "Defaults: lr 3e-4, weight decay 0.1, betas 0.9/0.95, eps 1e-8.\n";

typedef struct sft_opts {
  int pretrain;
  const char *model, *data, *text, *out, *template_name, *eval_data;
  const char *schedule, *progress, *data_dir, *backend;
  long long max_len, max_tokens, grad_accum, max_steps, warmup_steps;
  long long eval_every, save_every, save_limit, seed, threads;
  double epochs, lr, min_lr, warmup_ratio, weight_decay, beta1, beta2, eps;
  double clip, eval_split;
  int resume, strict, bf16, tf32, recompute;
} sft_opts;

typedef struct int_opt {
  const char *name;
  long long lo, hi;
  long long *dst;
} int_opt;

typedef struct float_opt {
  const char *name;
  double lo, hi;
  double *dst;
} float_opt;

static int parse_args(int argc, char **argv, sft_opts *o) {
  const char *cmd = o->pretrain ? "pretrain" : "sft";
  const int_opt ints[] = {
      {"max-len", 2, 1 << 20, &o->max_len},
      {"max-tokens", 2, 1 << 22, &o->max_tokens},
      {"grad-accum", 1, 1 << 16, &o->grad_accum},
      {"max-steps", 1, 1LL << 40, &o->max_steps},
      {"warmup-steps", 0, 1LL << 40, &o->warmup_steps},
      {"eval-every", 1, 1LL << 40, &o->eval_every},
      {"save-every", 1, 1LL << 40, &o->save_every},
      {"save-limit", 1, 1 << 20, &o->save_limit},
      {"seed", 0, 1LL << 62, &o->seed},
      {"threads", 1, 1024, &o->threads},
  };
  const float_opt floats[] = {
      {"epochs", 1e-9, 1e6, &o->epochs},
      {"lr", 0, 10, &o->lr},
      {"min-lr", 0, 10, &o->min_lr},
      {"warmup-ratio", 0, 0.999999, &o->warmup_ratio},
      {"weight-decay", 0, 10, &o->weight_decay},
      {"beta1", 0, 0.999999999, &o->beta1},
      {"beta2", 0, 0.999999999, &o->beta2},
      {"eps", 0, 1, &o->eps},
      {"clip", 0, 1e9, &o->clip},
      {"eval-split", 0, 0.9, &o->eval_split},
  };
  enum { N_INT = sizeof ints / sizeof ints[0] };
  enum { N_FLOAT = sizeof floats / sizeof floats[0] };
  enum { OPT_INT = 1000, OPT_FLOAT = 2000 };
  struct option opts[N_INT + N_FLOAT + 20];
  int k = 0;
  for (int i = 0; i < N_INT; i++)
    opts[k++] =
        (struct option){ints[i].name, required_argument, 0, OPT_INT + i};
  for (int i = 0; i < N_FLOAT; i++)
    opts[k++] =
        (struct option){floats[i].name, required_argument, 0, OPT_FLOAT + i};
  const struct option named[] = {{"model", required_argument, 0, 'm'},
                                 {"data", required_argument, 0, 'd'},
                                 {"text", required_argument, 0, 'x'},
                                 {"out", required_argument, 0, 'o'},
                                 {"template", required_argument, 0, 'T'},
                                 {"eval-data", required_argument, 0, 'E'},
                                 {"schedule", required_argument, 0, 'S'},
                                 {"progress", required_argument, 0, 'P'},
                                 {"resume", no_argument, 0, 'r'},
                                 {"strict", no_argument, 0, 's'},
                                 {"bf16", no_argument, 0, 'b'},
                                 {"data-dir", required_argument, 0, 'D'},
                                 {"backend", required_argument, 0, 'B'},
                                 {"tf32", no_argument, 0, 't'},
                                 {"recompute", no_argument, 0, 'R'},
                                 {"help", no_argument, 0, 'h'},
                                 {0, 0, 0, 0}};
  for (int i = 0; named[i].name; i++)
    opts[k++] = named[i];
  opts[k] = (struct option){0, 0, 0, 0};

  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    if (c >= OPT_INT && c < OPT_INT + N_INT) {
      const int_opt *io = &ints[c - OPT_INT];
      if (cli_parse_int(optarg, io->lo, io->hi, io->dst))
        return cli_usage_error(
            "%s --%s: expected an integer in [%lld, %lld], got '%s'", cmd,
            io->name, io->lo, io->hi, optarg);
      continue;
    }
    if (c >= OPT_FLOAT && c < OPT_FLOAT + N_FLOAT) {
      const float_opt *fo = &floats[c - OPT_FLOAT];
      if (cli_parse_float(optarg, fo->lo, fo->hi, fo->dst))
        return cli_usage_error("%s --%s: expected a number in [%g, %g], got "
                               "'%s'",
                               cmd, fo->name, fo->lo, fo->hi, optarg);
      continue;
    }
    switch (c) {
    case 'm': o->model = optarg; break;
    case 'd': o->data = optarg; break;
    case 'x': o->text = optarg; break;
    case 'o': o->out = optarg; break;
    case 'T': o->template_name = optarg; break;
    case 'E': o->eval_data = optarg; break;
    case 'S': o->schedule = optarg; break;
    case 'P': o->progress = optarg; break;
    case 'r': o->resume = 1; break;
    case 's': o->strict = 1; break;
    case 'b': o->bf16 = 1; break;
    case 'D': o->data_dir = optarg; break;
    case 'B': o->backend = optarg; break;
    case 't': o->tf32 = 1; break;
    case 'R': o->recompute = 1; break;
    case 'h':
      fputs(o->pretrain ? cmd_pretrain_help : cmd_sft_help, stdout);
      return -1;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
  if (!o->model) return cli_usage_error("%s: --model DIR is required", cmd);
  if (!o->out) return cli_usage_error("%s: --out DIR is required", cmd);
  if (o->pretrain ? !!o->text + !!o->data != 1 : !o->data)
    return cli_usage_error(o->pretrain
                               ? "pretrain: give one of --text FILE or --data "
                                 "FILE.jsonl"
                               : "sft: --data FILE.jsonl is required");
  if (o->text && !o->pretrain)
    return cli_usage_error("sft: --text is for pretrain; use --data");
  if (strcmp(o->schedule, "cosine") != 0 && strcmp(o->schedule, "constant"))
    return cli_usage_error("%s --schedule: cosine or constant, not '%s'", cmd,
                           o->schedule);
  if (o->progress && strcmp(o->progress, "bar") && strcmp(o->progress, "json"))
    return cli_usage_error("%s --progress: bar or json, not '%s'", cmd,
                           o->progress);
  if (strcmp(o->backend, "cpu") && strcmp(o->backend, "cuda") &&
      strcmp(o->backend, "cpu-ops"))
    return cli_usage_error("%s --backend: cpu, cuda or cpu-ops, not '%s'", cmd,
                           o->backend);
  if (o->recompute && strcmp(o->backend, "cpu"))
    return cli_usage_error("%s --recompute: only with --backend cpu so far",
                           cmd);
  if (o->tf32 && strcmp(o->backend, "cuda"))
    return cli_usage_error("%s --tf32 needs --backend cuda", cmd);
  if (o->warmup_steps && o->warmup_ratio > 0)
    return cli_usage_error(
        "%s: give --warmup-steps or --warmup-ratio, not both", cmd);
  if (o->eval_data && o->eval_split > 0)
    return cli_usage_error("%s: give --eval-split or --eval-data, not both",
                           cmd);
  if (o->min_lr > o->lr)
    return cli_usage_error("%s: --min-lr %g is above --lr %g", cmd, o->min_lr,
                           o->lr);
  if (o->max_tokens && o->max_tokens < o->max_len)
    return cli_usage_error("%s: --max-tokens %lld is below --max-len %lld "
                           "(a document must fit a pack)",
                           cmd, o->max_tokens, o->max_len);
  return 0;
}

/* ---- progress --------------------------------------------------------- */

typedef struct progress {
  int bar;            /* 1: a \r-updated line on stderr */
  FILE *metrics_file; /* OUT/metrics.jsonl, appended */
  /* the checkpoints registry, when --data-dir is given */
  r1d_db *db;
  const char *kind, *base;
  char parent[R1D_CKPT_VERSION_MAX]; /* the last registered; "" none */
  long eval_step;                    /* the step eval_loss is of; -1 none */
  double eval_loss;
  int unregistered; /* checkpoints the registry refused */
} progress;

static void print_json(FILE *f, const r1d_sft_metrics *m) {
  if (m->is_eval)
    fprintf(f,
            "{\"step\": %ld, \"epoch\": %.4f, \"eval_loss\": %.9g, "
            "\"eval_tokens\": %ld}\n",
            m->step, m->epoch, m->loss, m->eval_tokens);
  else
    fprintf(f,
            "{\"step\": %ld, \"total_steps\": %ld, \"epoch\": %.4f, "
            "\"loss\": %.9g, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens\": "
            "%ld, \"loss_tokens\": %ld, \"tokens_per_s\": %.1f, "
            "\"elapsed_s\": %.3f, \"eta_s\": %.1f}\n",
            m->step, m->total_steps, m->epoch, m->loss, m->lr, m->grad_norm,
            m->tokens, m->counted, m->tokens_per_s, m->elapsed_s, m->eta_s);
  fflush(f);
}

static void on_metrics(void *user, const r1d_sft_metrics *m) {
  progress *p = user;
  if (p->metrics_file) print_json(p->metrics_file, m);
  if (m->is_eval) {
    p->eval_step = m->step;
    p->eval_loss = m->loss;
  }
  if (!p->bar) {
    print_json(stdout, m);
    return;
  }
  if (m->is_eval) {
    fprintf(stderr, "\r\033[K  eval at step %ld: loss %.4f over %ld tokens\n",
            m->step, m->loss, m->eval_tokens);
    return;
  }
  char bar[24 + 1], eta[32];
  cli_progress_bar(bar, 24, m->step, m->total_steps);
  cli_fmt_duration(m->eta_s, eta, sizeof eta);
  fprintf(stderr,
          "\r\033[K[%s] step %ld/%ld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s",
          bar, m->step, m->total_steps, m->loss, m->lr, m->tokens_per_s, eta);
  if (m->step == m->total_steps) fputc('\n', stderr);
  fflush(stderr);
}

static void on_checkpoint(void *user, const char *path, long step,
                          double loss) {
  progress *p = user;
  if (p->bar) fprintf(stderr, "\r\033[K  saved %s\n", path);
  if (!p->db) return;
  r1d_ckpt_info in = {.path = path,
                      .kind = p->kind,
                      .step = step,
                      .train_loss = loss,
                      .eval_loss = p->eval_step == step ? p->eval_loss : NAN,
                      .parent = p->parent[0] ? p->parent : NULL,
                      .base = p->base};
  r1d_error err = {0};
  char version[R1D_CKPT_VERSION_MAX];
  if (r1d_ckpt_register(p->db, &in, version, &err)) {
    /* the checkpoint itself is on disk: the run goes on, the exit says so */
    fprintf(stderr, "\r\033[Kr1d: %s not registered: %s\n", path, err.msg);
    p->unregistered++;
    return;
  }
  memcpy(p->parent, version, sizeof version);
  if (p->bar) fprintf(stderr, "  registered as %s\n", version);
}

typedef struct parent_args {
  const char *path;
  char *version;
} parent_args;

static int find_parent_fn(r1d_txn *t, void *arg, r1d_error *err) {
  parent_args *a = arg;
  json_t *rec = NULL;
  int rc = r1d_ckpt_find_path(t, a->path, &rec, err);
  if (rc == 0)
    snprintf(a->version, R1D_CKPT_VERSION_MAX, "%s",
             json_string_value(json_object_get(rec, "version")));
  json_decref(rec);
  return rc == R1D_ENOTFOUND ? 0 : rc;
}

/* ---- data ------------------------------------------------------------- */

typedef struct bad_ctx {
  const char *path;
} bad_ctx;

static void on_bad_line(void *user, long line, const char *msg) {
  const bad_ctx *b = user;
  fprintf(stderr, "r1d: %s:%ld: %s\n", b->path, line, msg);
}

static int load_data(const sft_opts *o, r1d_data_opts *dopt, const char *path,
                     int text, r1d_dataset *ds, r1d_error *err) {
  bad_ctx b = {path};
  dopt->on_bad = on_bad_line;
  dopt->user = &b;
  return text ? r1d_dataset_load_text(path, dopt, ds, err)
              : r1d_dataset_load_jsonl(path, dopt, ds, err);
  (void)o;
}

static void print_data_summary(const char *what, const r1d_dataset *ds) {
  fprintf(stderr,
          "r1d: %s: %zu documents, %ld tokens (%ld with loss); %ld bad lines "
          "skipped, %ld truncated (%ld tokens cut), %ld without loss "
          "tokens dropped\n",
          what, ds->n_docs, ds->tokens, ds->loss_tokens, ds->bad_lines,
          ds->truncated, ds->truncated_tokens, ds->dropped);
}

/* ---- the command ------------------------------------------------------ */

static int train_main(int argc, char **argv, int pretrain) {
  sft_opts o = {.pretrain = pretrain,
                .max_len = 2048,
                .grad_accum = 1,
                .epochs = 1.0,
                .lr = pretrain ? 3e-4 : 2e-5,
                .weight_decay = pretrain ? 0.1 : 0.0,
                .beta1 = 0.9,
                .beta2 = pretrain ? 0.95 : 0.999,
                .eps = 1e-8,
                .clip = 1.0,
                .seed = 42,
                .schedule = "cosine",
                .backend = "cpu"};
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;

  r1d_error err = {0};
  r1d_backend be, dev_be = {0};
  r1d_cpu_backend_init(&be, (int)o.threads);
  int dev_is_cuda = 0;
  r1d_tokenizer *tok = NULL;
  r1d_template *tmpl = NULL;
  r1d_model *model = NULL;
  r1d_train_model *tm = NULL;
  r1d_dataset train = {0}, eval = {0};
  progress prog = {.eval_step = -1};
  int status = CLI_EXIT_FAIL;
  char resume_dir[4096] = "";

  if (!strcmp(o.backend, "cuda")) {
    if (r1d_cuda_backend_init(&dev_be, 0, &err)) {
      fprintf(stderr, "r1d: --backend cuda: %s\n", err.msg);
      goto done;
    }
    dev_is_cuda = 1;
    r1d_cuda_backend_set_tf32(&dev_be, o.tf32);
    char desc[256];
    r1d_cuda_backend_describe(&dev_be, desc, sizeof desc);
    fprintf(stderr, "r1d: training on %s\n", desc);
  } else if (!strcmp(o.backend, "cpu-ops")) {
    dev_be = be;
  }

  if (o.resume) {
    if (r1d_sft_last_checkpoint(o.out, resume_dir, sizeof resume_dir, &err)) {
      fprintf(stderr, "r1d: %s; starting from %s\n", err.msg, o.model);
      resume_dir[0] = 0;
    } else {
      fprintf(stderr, "r1d: resuming from %s\n", resume_dir);
    }
  }
  const char *weights = resume_dir[0] ? resume_dir : o.model;
  if (o.data_dir) {
    /* opened first: a bad data dir fails before any training is spent */
    r1d_db_options dbo = {0};
    parent_args pa = {.path = weights, .version = prog.parent};
    if (r1d_db_open(o.data_dir, &dbo, &prog.db, &err) ||
        r1d_db_read(prog.db, find_parent_fn, &pa, &err)) {
      status = cli_report(&err);
      goto done;
    }
    prog.kind = pretrain ? "pretrain" : "sft";
    prog.base = o.model;
  }
  if (r1d_tokenizer_load_dir(o.model, &tok, &err) ||
      r1d_model_load(weights, &be, &model, &err)) {
    status = cli_report(&err);
    goto done;
  }
  if (o.max_len > model->cfg.max_position_embeddings) {
    fprintf(stderr,
            "r1d: --max-len %lld is over the model's "
            "max_position_embeddings; using %d\n",
            o.max_len, model->cfg.max_position_embeddings);
    o.max_len = model->cfg.max_position_embeddings;
  }
  if (!o.max_tokens) o.max_tokens = o.max_len;
  if (!pretrain) {
    int trc =
        o.template_name
            ? r1d_template_load_dir_as(o.model, o.template_name, &tmpl, &err)
            : r1d_template_load_dir(o.model, &tmpl, &err);
    if (trc && o.template_name) {
      status = cli_report(&err);
      goto done;
    }
    if (trc)
      fprintf(stderr, "r1d: note: %s; {\"messages\"} lines will be refused\n",
              err.msg);
  }
  r1d_data_opts dopt = {.pretrain = pretrain,
                        .max_len = (int)o.max_len,
                        .strict = o.strict,
                        .tok = tok,
                        .tmpl = tmpl,
                        .eos_id =
                            model->cfg.n_eos ? model->cfg.eos_token_ids[0] : -1,
                        .bos_id = r1d_tokenizer_bos_to_add(tok)};
  const char *data_path = o.text ? o.text : o.data;
  if (load_data(&o, &dopt, data_path, !!o.text, &train, &err) ||
      (o.eval_data && load_data(&o, &dopt, o.eval_data, 0, &eval, &err)) ||
      r1d_dataset_split(&train, o.eval_split, (uint64_t)o.seed, &eval, &err)) {
    status = cli_report(&err);
    goto done;
  }
  print_data_summary("train", &train);
  if (eval.n_docs) print_data_summary("eval", &eval);
  if (train.n_docs == 0) {
    fprintf(stderr, "r1d: %s: no usable training example\n", data_path);
    status = CLI_EXIT_USAGE;
    goto done;
  }
  if (r1d_train_model_create(model, &tm, &err)) {
    status = cli_report(&err);
    goto done;
  }
  r1d_model_free(model);
  model = NULL;

  if (r1d_mkdir_p(o.out, &err)) {
    status = cli_report(&err);
    goto done;
  }
  prog.metrics_file = cli_open_metrics(o.out);
  prog.bar = o.progress ? strcmp(o.progress, "bar") == 0 : isatty(2);

  r1d_sft_config cfg = {.src_dir = o.model,
                        .out_dir = o.out,
                        .kind = pretrain ? "pretrain" : "sft",
                        .max_tokens = (int)o.max_tokens,
                        .grad_accum = (int)o.grad_accum,
                        .epochs = o.epochs,
                        .max_steps = (long)o.max_steps,
                        .adamw = {.lr = o.lr,
                                  .beta1 = o.beta1,
                                  .beta2 = o.beta2,
                                  .eps = o.eps,
                                  .weight_decay = o.weight_decay},
                        .sched = {.kind = strcmp(o.schedule, "cosine") == 0
                                              ? R1D_LR_WARMUP_COSINE
                                              : R1D_LR_WARMUP_CONSTANT,
                                  .lr = o.lr,
                                  .min_lr = o.min_lr,
                                  .warmup_steps = (long)o.warmup_steps},
                        .warmup_ratio = o.warmup_ratio,
                        .clip = o.clip,
                        .save_every = (long)o.save_every,
                        .save_limit = (int)o.save_limit,
                        .save_bf16 = o.bf16,
                        .eval_every = (long)o.eval_every,
                        .seed = (uint64_t)o.seed,
                        .resume_dir = resume_dir[0] ? resume_dir : NULL,
                        .device = dev_be.ops ? &dev_be : NULL,
                        .recompute = o.recompute};
  r1d_sft_hooks hooks = {.on_metrics = on_metrics,
                         .on_checkpoint = on_checkpoint,
                         .stop = cli_stop_flag(),
                         .user = &prog};
  cli_catch_stop_signals();
  long final_step = 0;
  int rc = r1d_sft_run(&cfg, tm, &train, &eval, &hooks, &final_step, &err);
  if (prog.bar) fputc('\n', stderr);
  if (rc) {
    status = rc == R1D_EINVAL ? cli_report(&err) : CLI_EXIT_FAIL;
    if (rc != R1D_EINVAL) fprintf(stderr, "r1d: %s\n", err.msg);
    goto done;
  }
  char last[4096];
  if (r1d_sft_last_checkpoint(o.out, last, sizeof last, &err) == 0)
    fprintf(stderr, "r1d: %s at step %ld; the model is %s%s%s\n",
            *cli_stop_flag() ? "stopped by a signal" : "done", final_step, last,
            prog.parent[0] ? ", registered as " : "", prog.parent);
  status = CLI_EXIT_OK;
  if (prog.unregistered) {
    fprintf(stderr, "r1d: %d checkpoints were not registered in %s\n",
            prog.unregistered, o.data_dir);
    status = CLI_EXIT_FAIL;
  }
done:
  r1d_db_close(prog.db);
  if (prog.metrics_file) fclose(prog.metrics_file);
  r1d_dataset_free(&train);
  r1d_dataset_free(&eval);
  r1d_train_model_free(tm);
  r1d_model_free(model);
  r1d_template_free(tmpl);
  r1d_tokenizer_free(tok);
  if (dev_is_cuda) r1d_cuda_backend_destroy(&dev_be);
  return status;
}

int cmd_sft(int argc, char **argv) {
  return train_main(argc, argv, 0);
}

int cmd_pretrain(int argc, char **argv) {
  return train_main(argc, argv, 1);
}
