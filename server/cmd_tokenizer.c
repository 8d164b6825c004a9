/* cmd_tokenizer.c - `r1d tokenizer train`: learns a byte-level BPE tokenizer
 * from text files or JSONL (engine/text/bpe_train.c) and writes a folder
 * that `r1d tokenize`, `r1d template` and `r1d model init --tokenizer` take:
 * tokenizer.json plus tokenizer_config.json (the R1-distill chat template
 * that `model init` writes, or --from-model's own). Its added tokens are
 * r1d's R1 set, or --from-model's, so the result drops into the small
 * model family. Bad input is one line on stderr and exit 2. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/file.h"
#include "../engine/model/init.h"
#include "../engine/text/bpe_train.h"
#include "../engine/text/tokenizer.h"
#include "cli.h"

const char cmd_tokenizer_help[] =
    "usage: r1d tokenizer train (--corpus FILE | --jsonl FILE)... --vocab-size "
    "N\n"
    "                           --out DIR [--min-frequency N] [--from-model "
    "DIR]\n"
    "\n"
    "Trains a byte-level BPE tokenizer (Qwen2 pre-tokenizer, 256 byte tokens,\n"
    "then the most frequent adjacent pairs merged in turn, ties to the lowest\n"
    "pair of ids) and writes DIR/tokenizer.json and DIR/tokenizer_config.json\n"
    "(R1-distill chat template). Prints one summary line.\n"
    "\n"
    "  --corpus FILE        a UTF-8 text file, one document (repeatable)\n"
    "  --jsonl FILE         one JSON object per line with a \"text\" string\n"
    "                       (repeatable)\n"
    "  --vocab-size N       ids in all: 256 bytes + learned + added tokens\n"
    "  --out DIR            folder to write (created if missing)\n"
    "  --min-frequency N    merge only pairs seen at least N times "
    "(default 2)\n"
    "  --from-model DIR     take DIR's added tokens and tokenizer_config.json\n"
    "                       (chat template) instead of r1d's R1 set\n";

typedef struct added_list {
  char **content;
  unsigned char *special;
  int n;
} added_list;

static void added_free(added_list *a) {
  for (int i = 0; i < a->n; i++)
    free(a->content[i]);
  free(a->content);
  free(a->special);
}

typedef struct id_index {
  json_int_t id;
  size_t at;
} id_index;

static int by_id(const void *x, const void *y) {
  const id_index *a = x, *b = y;
  return a->id < b->id ? -1 : a->id > b->id;
}

/* The added tokens of DIR/tokenizer.json in id order, first of each
 * content only. */
static int load_added(const char *dir, added_list *out, r1d_error *err) {
  char *path = r1d_path_join(dir, "tokenizer.json");
  if (!path) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  json_error_t je;
  json_t *root = r1d_file_exists(path) ? json_load_file(path, 0, &je) : NULL;
  int rc = 0;
  if (!root) {
    rc = r1d_fail(err, R1D_ENOTFOUND, "%s: %s", path,
                  r1d_file_exists(path) ? je.text : "no such file");
    free(path);
    return rc;
  }
  json_t *arr = json_object_get(root, "added_tokens");
  size_t n = json_array_size(arr);
  id_index *order = calloc(n + 1, sizeof *order);
  out->content = calloc(n + 1, sizeof *out->content);
  out->special = calloc(n + 1, 1);
  if (!order || !out->content || !out->special) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(arr, i);
    if (!json_is_string(json_object_get(e, "content")) ||
        !json_is_integer(json_object_get(e, "id"))) {
      rc = r1d_fail(err, R1D_EFORMAT, "%s: added_tokens[%zu] is malformed",
                    path, i);
      goto done;
    }
    order[i] = (id_index){json_integer_value(json_object_get(e, "id")), i};
  }
  qsort(order, n, sizeof *order, by_id);
  for (size_t k = 0; k < n; k++) {
    json_t *e = json_array_get(arr, order[k].at);
    const char *c = json_string_value(json_object_get(e, "content"));
    int seen = 0;
    for (int j = 0; j < out->n && !seen; j++)
      seen = strcmp(out->content[j], c) == 0;
    if (seen) continue;
    if (!(out->content[out->n] = strdup(c))) {
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
      goto done;
    }
    out->special[out->n++] =
        (unsigned char)json_is_true(json_object_get(e, "special"));
  }
done:
  free(order);
  free(path);
  json_decref(root);
  return rc;
}

/* DIR/tokenizer_config.json from --from-model DIR: its own, without
 * added_tokens_decoder (whose ids are the old tokenizer's; transformers
 * takes the added tokens from tokenizer.json without it), and with
 * chat_template.jinja folded in when the config has no template. */
static int copy_model_config(const char *from, const char *out,
                             r1d_error *err) {
  char *src = r1d_path_join(from, "tokenizer_config.json");
  char *jinja = r1d_path_join(from, "chat_template.jinja");
  char *dst = r1d_path_join(out, "tokenizer_config.json");
  json_t *cfg = NULL;
  char *text = NULL, *tmpl = NULL;
  int rc = 0;
  if (!src || !jinja || !dst) {
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    goto done;
  }
  if (!r1d_file_exists(src)) {
    rc = r1d_model_write_tokenizer_config(out, err);
    goto done;
  }
  json_error_t je;
  cfg = json_load_file(src, JSON_DECODE_INT_AS_REAL, &je);
  if (!json_is_object(cfg)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: %s", src,
                  cfg ? "not a JSON object" : je.text);
    goto done;
  }
  json_object_del(cfg, "added_tokens_decoder");
  size_t tn;
  if (!json_object_get(cfg, "chat_template") && r1d_file_exists(jinja)) {
    if ((rc = r1d_read_file(jinja, &tmpl, &tn, err))) goto done;
    json_object_set_new(cfg, "chat_template", json_stringn(tmpl, tn));
  }
  text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  rc = text ? r1d_write_file_atomic(dst, text, strlen(text), err)
            : r1d_fail(err, R1D_ENOMEM, "out of memory");
done:
  json_decref(cfg);
  free(text);
  free(tmpl);
  free(src);
  free(jinja);
  free(dst);
  return rc;
}

/* Feeds each line's "text" of a JSONL file. */
static int feed_jsonl(r1d_bpe_trainer *tr, const char *path, const char *data,
                      size_t len, r1d_error *err) {
  size_t pos = 0;
  long lineno = 0;
  while (pos < len) {
    const char *nl = memchr(data + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - data) : len;
    lineno++;
    size_t a = pos, b = end;
    pos = end + 1;
    while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r'))
      a++;
    if (a == b) continue; /* blank line */
    json_error_t je;
    json_t *obj = json_loadb(data + a, b - a, 0, &je);
    json_t *t = json_object_get(obj, "text");
    if (!json_is_string(t)) {
      json_decref(obj);
      return r1d_fail(err, R1D_EFORMAT, "%s:%ld: %s", path, lineno,
                      obj ? "expected an object with a \"text\" string"
                          : je.text);
    }
    int rc = r1d_bpe_trainer_add_text(tr, json_string_value(t),
                                      json_string_length(t), err);
    json_decref(obj);
    if (rc) {
      r1d_error inner = *err;
      return r1d_fail(err, rc, "%s:%ld: %s", path, lineno, inner.msg);
    }
  }
  return 0;
}

typedef struct corpus_file {
  const char *path;
  int jsonl;
} corpus_file;

/* Checks that every file exists and that they fit the corpus limit before
 * reading any (a typo should not cost a long read first). */
static int check_files(const corpus_file *files, int n, r1d_error *err) {
  long long total = 0;
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (stat(files[i].path, &st) != 0 || !S_ISREG(st.st_mode))
      return r1d_fail(err, R1D_ENOTFOUND, "%s: no such corpus file",
                      files[i].path);
    total += (long long)st.st_size;
  }
  if (total > R1D_BPE_MAX_CORPUS_BYTES)
    return r1d_fail(err, R1D_ERANGE,
                    "corpus files hold %lld bytes, more than the %lld a "
                    "training run takes",
                    total, R1D_BPE_MAX_CORPUS_BYTES);
  return 0;
}

static int feed_files(r1d_bpe_trainer *tr, const corpus_file *files, int n,
                      r1d_error *err) {
  for (int i = 0; i < n; i++) {
    char *data;
    size_t len;
    int rc = r1d_read_file(files[i].path, &data, &len, err);
    if (rc) return rc;
    if (files[i].jsonl) {
      rc = feed_jsonl(tr, files[i].path, data, len, err);
    } else {
      rc = r1d_bpe_trainer_add_text(tr, data, len, err);
      if (rc) {
        r1d_error inner = *err;
        r1d_fail(err, rc, "%s: %s", files[i].path, inner.msg);
      }
    }
    free(data);
    if (rc) return rc;
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct train_args {
  corpus_file *files;
  int n_files;
  long long vocab, min_freq;
  const char *out, *from_model;
} train_args;

static int run_training(const train_args *a, r1d_error *err) {
  double t0 = now_s();
  added_list from = {0};
  int rc = check_files(a->files, a->n_files, err);
  if (!rc && a->from_model) rc = load_added(a->from_model, &from, err);
  if (rc) {
    added_free(&from);
    return rc;
  }
  r1d_bpe_options opt = {
      .vocab_size = (int)a->vocab,
      .min_frequency = a->min_freq,
      .added = a->from_model ? (const char *const *)from.content
                             : r1d_init_added_tokens,
      .added_special = a->from_model ? from.special : r1d_init_added_special,
      .n_added = a->from_model ? from.n : r1d_init_n_added_tokens};
  r1d_bpe_trainer *tr = NULL;
  char *path = r1d_path_join(a->out, "tokenizer.json");
  r1d_tokenizer *check = NULL;
  if (!path) rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (!rc) rc = r1d_bpe_trainer_new(&opt, &tr, err);
  if (!rc) rc = feed_files(tr, a->files, a->n_files, err);
  r1d_bpe_stats st = {0};
  if (tr) r1d_bpe_trainer_stats(tr, &st);
  if (!rc && st.corpus_bytes == 0)
    rc = r1d_fail(err, R1D_EINVAL, "the corpus is empty");
  if (!rc) rc = r1d_bpe_trainer_train(tr, err);
  if (!rc) rc = r1d_mkdir_p(a->out, err);
  if (!rc) rc = r1d_bpe_trainer_write(tr, path, err);
  if (!rc)
    rc = a->from_model ? copy_model_config(a->from_model, a->out, err)
                       : r1d_model_write_tokenizer_config(a->out, err);
  /* what we wrote must load: it is what every other command will read */
  if (!rc) rc = r1d_tokenizer_load_dir(a->out, &check, err);
  if (!rc) {
    r1d_bpe_trainer_stats(tr, &st);
    int learned = st.vocab_size - 256 - opt.n_added;
    printf("wrote %s: %d merges, vocab %d (256 bytes + %d learned + %d "
           "added), corpus %lld bytes, %.3f bytes/token, %.2f s\n",
           path, st.merges, st.vocab_size, learned, opt.n_added,
           st.corpus_bytes,
           st.tokens ? (double)st.corpus_bytes / (double)st.tokens : 0.0,
           now_s() - t0);
  }
  r1d_tokenizer_free(check);
  r1d_bpe_trainer_free(tr);
  free(path);
  added_free(&from);
  return rc;
}

static int tokenizer_train(int argc, char **argv) {
  static const struct option opts[] = {
      {"corpus", required_argument, 0, 'c'},
      {"jsonl", required_argument, 0, 'j'},
      {"vocab-size", required_argument, 0, 'v'},
      {"out", required_argument, 0, 'o'},
      {"min-frequency", required_argument, 0, 'f'},
      {"from-model", required_argument, 0, 'm'},
      {0, 0, 0, 0}};
  train_args a = {.vocab = -1, .min_freq = 2};
  a.files = calloc((size_t)argc + 1, sizeof *a.files);
  if (!a.files) return cli_usage_error("out of memory");
  int c, status = CLI_EXIT_OK;
  optind = 1;
  while (status == CLI_EXIT_OK &&
         (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'c':
    case 'j': a.files[a.n_files++] = (corpus_file){optarg, c == 'j'}; break;
    case 'v':
      if (cli_parse_int(optarg, 1, 1LL << 40, &a.vocab))
        status = cli_usage_error(
            "--vocab-size: expected a positive integer, got '%s'", optarg);
      break;
    case 'f':
      if (cli_parse_int(optarg, 1, 1LL << 60, &a.min_freq))
        status = cli_usage_error(
            "--min-frequency: expected a positive integer, got '%s'", optarg);
      break;
    case 'o': a.out = optarg; break;
    case 'm': a.from_model = optarg; break;
    default: status = CLI_EXIT_USAGE;
    }
  }
  if (status == CLI_EXIT_OK && optind < argc)
    status = cli_usage_error("tokenizer train: unexpected argument '%s'",
                             argv[optind]);
  if (status == CLI_EXIT_OK && a.n_files == 0)
    status = cli_usage_error(
        "tokenizer train: --corpus FILE or --jsonl FILE is required");
  if (status == CLI_EXIT_OK && a.vocab < 0)
    status = cli_usage_error("tokenizer train: --vocab-size N is required");
  if (status == CLI_EXIT_OK && !a.out)
    status = cli_usage_error("tokenizer train: --out DIR is required");
  if (status == CLI_EXIT_OK && a.vocab > R1D_BPE_MAX_VOCAB)
    status = cli_usage_error("--vocab-size %lld is larger than %d", a.vocab,
                             R1D_BPE_MAX_VOCAB);
  if (status == CLI_EXIT_OK) {
    r1d_error err = {0};
    if (run_training(&a, &err)) status = cli_report(&err);
  }
  free(a.files);
  return status;
}

int cmd_tokenizer(int argc, char **argv) {
  if (argc < 2)
    return cli_usage_error(
        "tokenizer: expected `train` (see r1d help tokenizer)");
  if (strcmp(argv[1], "train") == 0) return tokenizer_train(argc - 1, argv + 1);
  return cli_usage_error("tokenizer: unknown action '%s' (expected train)",
                         argv[1]);
}
