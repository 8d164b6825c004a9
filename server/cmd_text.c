/* cmd_text.c - `r1d tokenize` and `r1d template`: line-oriented JSON filters
 * over the tokenizer and the chat template, for scripts and for comparing r1d
 * with other implementations. One JSON value per input line, one per output
 * line; the first bad line stops the run with a message naming it (exit 2),
 * after the good lines before it have been printed. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/text/template.h"
#include "../engine/text/tokenizer.h"
#include "cli.h"

const char cmd_tokenize_help[] =
    "usage: r1d tokenize --model DIR [--decode] [--skip-special]\n"
    "\n"
    "Reads standard input, one JSON string per line, and prints one JSON "
    "array\n"
    "of token ids per line (no BOS/EOS added; special tokens written in the\n"
    "text are matched). With --decode: arrays of ids in, JSON strings out.\n"
    "DIR needs only tokenizer.json.\n"
    "\n"
    "  --model DIR      model or tokenizer folder\n"
    "  --decode         decode id arrays instead of encoding strings\n"
    "  --skip-special   with --decode: drop special tokens\n";

const char cmd_template_help[] =
    "usage: r1d template --model DIR [--no-generation-prompt] [--template "
    "NAME]\n"
    "\n"
    "Reads one JSON array of messages ({\"role\", \"content\"}) per line and\n"
    "prints the rendered prompt as one JSON string per line. DIR needs only\n"
    "tokenizer_config.json.\n"
    "\n"
    "  --model DIR               folder with tokenizer_config.json\n"
    "  --no-generation-prompt    do not append the assistant header\n"
    "  --template NAME           r1-distill | deepseek-v3 | qwen3 | chatml |\n"
    "                            llama3 | llama3-instruct | llama3.1 |\n"
    "                            r1-zero\n"
    "                            (overrides detection)\n";

/* Calls fn on each line of standard input (without its line ending) until
 * fn returns non-zero; returns that status, or CLI_EXIT_OK at the end. */
typedef int (*line_fn)(void *ctx, const char *line, long len, long lineno);
static int each_stdin_line(line_fn fn, void *ctx) {
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  ssize_t n;
  int status = CLI_EXIT_OK;
  while (status == CLI_EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
      n--;
    line[n] = '\0';
    status = fn(ctx, line, (long)n, ++lineno);
  }
  free(line);
  return status;
}

static int print_json_line(json_t *v) {
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!s) return -1;
  puts(s);
  free(s);
  return 0;
}

static int parse_line(const char *line, long n, long lineno, json_t **out) {
  json_error_t jerr;
  *out = json_loadb(line, (size_t)n, JSON_DECODE_ANY, &jerr);
  if (!*out) return cli_usage_error("stdin line %ld: %s", lineno, jerr.text);
  return 0;
}

static int tokenize_encode(const r1d_tokenizer *tok, json_t *v, long lineno) {
  if (!json_is_string(v))
    return cli_usage_error("stdin line %ld: expected a JSON string", lineno);
  r1d_ids ids = {0};
  r1d_error err = {0};
  int rc = r1d_tokenizer_encode(tok, json_string_value(v),
                                json_string_length(v), &ids, &err);
  if (rc) {
    r1d_ids_free(&ids);
    return cli_usage_error("stdin line %ld: %s", lineno, err.msg);
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < ids.n; i++)
    json_array_append_new(arr, json_integer(ids.v[i]));
  print_json_line(arr);
  json_decref(arr);
  r1d_ids_free(&ids);
  return 0;
}

static int tokenize_decode(const r1d_tokenizer *tok, json_t *v, long lineno,
                           int skip_special) {
  if (!json_is_array(v))
    return cli_usage_error("stdin line %ld: expected a JSON array of ids",
                           lineno);
  size_t n = json_array_size(v);
  int32_t *ids = malloc(sizeof(int32_t) * (n ? n : 1));
  if (!ids) return cli_usage_error("out of memory");
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(v, i);
    if (!json_is_integer(e) || json_integer_value(e) < 0 ||
        json_integer_value(e) > INT32_MAX) {
      free(ids);
      return cli_usage_error("stdin line %ld: element %zu is not a token id",
                             lineno, i);
    }
    ids[i] = (int32_t)json_integer_value(e);
  }
  char *text = NULL;
  size_t len = 0;
  r1d_error err = {0};
  int rc = r1d_tokenizer_decode(tok, ids, n, skip_special, &text, &len, &err);
  free(ids);
  if (rc) return cli_usage_error("stdin line %ld: %s", lineno, err.msg);
  json_t *s = json_stringn(text, len);
  free(text);
  if (!s)
    return cli_usage_error("stdin line %ld: decoded text is not UTF-8", lineno);
  print_json_line(s);
  json_decref(s);
  return 0;
}

typedef struct tokenize_ctx {
  const r1d_tokenizer *tok;
  int decode, skip_special;
} tokenize_ctx;

static int tokenize_line(void *ctx, const char *line, long len, long lineno) {
  tokenize_ctx *tc = ctx;
  json_t *v = NULL;
  int status = parse_line(line, len, lineno, &v);
  if (status) return status;
  status = tc->decode ? tokenize_decode(tc->tok, v, lineno, tc->skip_special)
                      : tokenize_encode(tc->tok, v, lineno);
  json_decref(v);
  return status;
}

int cmd_tokenize(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                       {"decode", no_argument, 0, 'd'},
                                       {"skip-special", no_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *model = NULL;
  int decode = 0, skip_special = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'd': decode = 1; break;
    case 's': skip_special = 1; break;
    case 'h': fputs(cmd_tokenize_help, stdout); return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (!model) return cli_usage_error("tokenize: --model DIR is required");
  if (optind < argc)
    return cli_usage_error("tokenize: unexpected argument '%s'", argv[optind]);
  r1d_tokenizer *tok = NULL;
  r1d_error err = {0};
  if (r1d_tokenizer_load_dir(model, &tok, &err)) return cli_report(&err);
  tokenize_ctx tc = {tok, decode, skip_special};
  int status = each_stdin_line(tokenize_line, &tc);
  r1d_tokenizer_free(tok);
  return status;
}

typedef struct template_ctx {
  const r1d_template *tpl;
  int gen_prompt;
} template_ctx;

static int template_line(void *ctx, const char *line, long len, long lineno) {
  template_ctx *tc = ctx;
  r1d_chat_message *msgs = NULL;
  size_t n_msgs = 0;
  char *out = NULL;
  r1d_error err = {0};
  int status = CLI_EXIT_OK;
  (void)len;
  if (r1d_chat_messages_parse(line, &msgs, &n_msgs, &err) ||
      r1d_template_render(tc->tpl, msgs, n_msgs, tc->gen_prompt, &out, &err)) {
    status = cli_usage_error("stdin line %ld: %s", lineno, err.msg);
  } else {
    json_t *s = json_string(out);
    print_json_line(s);
    json_decref(s);
  }
  free(out);
  free(msgs);
  return status;
}

int cmd_template(int argc, char **argv) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},
      {"no-generation-prompt", no_argument, 0, 'n'},
      {"template", required_argument, 0, 't'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *model = NULL, *name = NULL;
  int gen_prompt = 1, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'n': gen_prompt = 0; break;
    case 't': name = optarg; break;
    case 'h': fputs(cmd_template_help, stdout); return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (!model && !name)
    return cli_usage_error(
        "template: --model DIR (or --template NAME) is required");
  if (optind < argc)
    return cli_usage_error("template: unexpected argument '%s'", argv[optind]);
  r1d_template *tpl = NULL;
  r1d_error err = {0};
  /* With both, the folder gives bos/eos and the name gives the format. */
  int rc = model ? r1d_template_load_dir_as(model, name, &tpl, &err)
                 : r1d_template_from_name(name, "", "", &tpl, &err);
  if (rc) return cli_report(&err);
  template_ctx tc = {tpl, gen_prompt};
  int status = each_stdin_line(template_line, &tc);
  r1d_template_free(tpl);
  return status;
}
