/* cmd_generate.c - `r1d generate`: load a model folder, build the prompt (chat
 * template, raw text or token ids), and stream the completion. On a terminal
 * the reasoning (between <think> and </think>) is shown dimmed under a
 * "thinking" label and the answer follows in plain text; otherwise the text is
 * written as generated, or as one JSON object per token with --json. */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/file.h"
#include "../engine/model/model.h"
#include "../engine/serve/generate.h"
#include "../engine/text/template.h"
#include "../engine/text/tokenizer.h"
#include "../kernels/cpu/cpu_backend.h"
#include "cli.h"

const char cmd_generate_help[] =
    "usage: r1d generate --model DIR (--prompt TEXT | --messages FILE.json |\n"
    "                    --prompt-ids 1,2,3) [OPTIONS]\n"
    "\n"
    "Generates a completion and streams it to standard output. A --prompt is\n"
    "sent as one user message through the model's chat template (unless "
    "--raw);\n"
    "--messages reads a JSON array of {\"role\", \"content\"}.\n"
    "\n"
    "  --model DIR            Hugging Face folder (Qwen2 or Llama)\n"
    "  --prompt TEXT          user message (or raw text with --raw)\n"
    "  --messages FILE        JSON array of chat messages\n"
    "  --prompt-ids LIST      comma-separated token ids, used as they are\n"
    "  --raw                  no chat template: the prompt text is encoded\n"
    "                         as Hugging Face's encode() does (with the BOS\n"
    "                         the tokenizer adds, if any)\n"
    "  --system TEXT          system message before the prompt\n"
    "  --template NAME        override the detected chat template\n"
    "  --max-tokens N         tokens to generate (default 256)\n"
    "  --temperature T        0 = greedy\n"
    "  --top-p P              nucleus sampling\n"
    "  --top-k K              keep the K most likely tokens\n"
    "                         (defaults: the model's generation_config.json,\n"
    "                         else temperature 0.6, top-p 0.95, top-k off)\n"
    "  --min-p P              drop tokens below P * p(max) (default 0)\n"
    "  --repetition-penalty R, --presence-penalty P, --frequency-penalty F\n"
    "  --seed S               sampling seed (default: from the clock)\n"
    "  --stop STR             stop string (repeatable, up to 8)\n"
    "  --ignore-eos           keep going past end-of-sequence tokens\n"
    "  --json                 one JSON object per token: {\"id\", \"text\",\n"
    "                         \"logprob\", \"top_logprobs\": [[id, logprob], "
    "...]}\n"
    "  --top-logprobs N       alternatives per token with --json (0..20)\n"
    "  --threads N            CPU threads (default: all cores)\n"
    "  --stats                print token counts and tokens/s to stderr\n";

enum { MAX_STOPS = 8 };

typedef struct gen_opts {
  const char *model, *prompt, *messages, *prompt_ids, *system, *template_name;
  int raw, json, stats, threads, ignore_eos, top_logprobs, max_tokens;
  const char *stops[MAX_STOPS];
  int n_stops;
  r1d_sampling_params sp;
  int seed_given;
} gen_opts;

/* How the token stream is shown. */
typedef struct gen_view {
  int json, tty, thinking;
  int32_t think_start, think_end;
  const r1d_tokenizer *tok;
} gen_view;

static const char dim_on[] = "\033[2m", dim_off[] = "\033[0m";

static int on_token(void *user, const r1d_gen_event *ev) {
  gen_view *v = user;
  if (v->json) {
    json_t *top = json_array();
    for (int i = 0; i < ev->n_top; i++)
      json_array_append_new(
          top, json_pack("[i,f]", ev->top[i].id, (double)ev->top[i].logprob));
    json_t *o = json_pack("{s:i, s:s%, s:f, s:o}", "id", ev->id, "text",
                          ev->text, ev->text_len, "logprob",
                          (double)ev->logprob, "top_logprobs", top);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) puts(s);
    free(s);
    json_decref(o);
  } else if (v->tty && (ev->id == v->think_start || ev->id == v->think_end)) {
    /* The piece may carry text released with the tag (bytes held back for
     * a character or a stop string): show it, minus the tag itself. */
    int open = ev->id == v->think_start;
    const char *tag = open ? "<think>" : "</think>";
    const char *at = memmem(ev->text, ev->text_len, tag, strlen(tag));
    size_t before = at ? (size_t)(at - ev->text) : ev->text_len;
    size_t after = at ? before + strlen(tag) : ev->text_len;
    fwrite(ev->text, 1, before, stdout);
    fputs(open ? dim_on : dim_off, stdout);
    fputs(open ? "thinking: " : "\n", stdout);
    fwrite(ev->text + after, 1, ev->text_len - after, stdout);
    v->thinking = open;
  } else {
    fwrite(ev->text, 1, ev->text_len, stdout);
  }
  fflush(stdout);
  return 0;
}

static int parse_ids(const char *list, int vocab, r1d_ids *ids) {
  const char *p = list;
  while (*p) {
    char *end = NULL;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v >= vocab)
      return cli_usage_error("--prompt-ids: '%s' is not a token id below %d", p,
                             vocab);
    if (r1d_ids_push(ids, (int32_t)v)) return cli_usage_error("out of memory");
    p = end;
    if (*p == ',')
      p++;
    else if (*p)
      return cli_usage_error("--prompt-ids: expected a comma at '%s'", p);
  }
  if (ids->n == 0) return cli_usage_error("--prompt-ids: no ids given");
  return 0;
}

/* Sampling settings the flags left unset come from the model's
 * generation_config.json (as transformers and vLLM do), else DeepSeek's
 * recommendation for R1 models: temperature 0.6, top-p 0.95. */
static void apply_generation_defaults(r1d_sampling_params *sp,
                                      const r1d_config *cfg) {
  if (isnan(sp->temperature))
    sp->temperature = isnan(cfg->gen_temperature) ? 0.6f : cfg->gen_temperature;
  if (isnan(sp->top_p))
    sp->top_p = isnan(cfg->gen_top_p) ? 0.95f : cfg->gen_top_p;
  if (sp->top_k == INT_MIN)
    sp->top_k = cfg->gen_top_k > 0 ? cfg->gen_top_k : -1;
}

/* Renders the chat prompt; *text is malloc'ed. */
static int build_chat_prompt(const gen_opts *o, char **text, r1d_error *err) {
  r1d_template *tpl = NULL;
  int rc = r1d_template_load_dir_as(o->model, o->template_name, &tpl, err);
  if (rc) return rc;
  r1d_chat_message *msgs = NULL, one[2];
  size_t n = 0;
  char *file_text = NULL;
  if (o->messages) {
    rc = r1d_read_file(o->messages, &file_text, NULL, err);
    if (rc == 0) rc = r1d_chat_messages_parse(file_text, &msgs, &n, err);
  } else {
    if (o->system) one[n++] = (r1d_chat_message){"system", o->system, NULL};
    one[n++] = (r1d_chat_message){"user", o->prompt, NULL};
  }
  if (rc == 0)
    rc = r1d_template_render(tpl, msgs ? msgs : one, n, 1, text, err);
  if (rc && rc != R1D_EIO && o->messages) {
    /* name the file (read errors already do); msg cannot be its own source */
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    r1d_fail(err, rc, "%s: %s", o->messages, why);
  }
  free(msgs);
  free(file_text);
  r1d_template_free(tpl);
  return rc;
}

static int parse_args(int argc, char **argv, gen_opts *o) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},
      {"prompt", required_argument, 0, 'p'},
      {"messages", required_argument, 0, 'M'},
      {"prompt-ids", required_argument, 0, 'I'},
      {"raw", no_argument, 0, 'r'},
      {"system", required_argument, 0, 'S'},
      {"template", required_argument, 0, 'T'},
      {"max-tokens", required_argument, 0, 'n'},
      {"temperature", required_argument, 0, 't'},
      {"top-p", required_argument, 0, 'P'},
      {"top-k", required_argument, 0, 'k'},
      {"min-p", required_argument, 0, 'x'},
      {"repetition-penalty", required_argument, 0, 'R'},
      {"presence-penalty", required_argument, 0, 'E'},
      {"frequency-penalty", required_argument, 0, 'F'},
      {"seed", required_argument, 0, 's'},
      {"stop", required_argument, 0, 'o'},
      {"ignore-eos", no_argument, 0, 'i'},
      {"json", no_argument, 0, 'j'},
      {"top-logprobs", required_argument, 0, 'L'},
      {"threads", required_argument, 0, 'H'},
      {"stats", no_argument, 0, 'z'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  long long iv;
  double fv;
  int c, idx = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
    const char *name = NULL;
    for (int i = 0; opts[i].name; i++)
      if (opts[i].val == c) name = opts[i].name;
    switch (c) {
    case 'm': o->model = optarg; break;
    case 'p': o->prompt = optarg; break;
    case 'M': o->messages = optarg; break;
    case 'I': o->prompt_ids = optarg; break;
    case 'r': o->raw = 1; break;
    case 'S': o->system = optarg; break;
    case 'T': o->template_name = optarg; break;
    case 'i': o->ignore_eos = 1; break;
    case 'j': o->json = 1; break;
    case 'z': o->stats = 1; break;
    case 'o':
      if (o->n_stops == MAX_STOPS)
        return cli_usage_error("--stop: at most %d stop strings", MAX_STOPS);
      if (!*optarg) return cli_usage_error("--stop: empty stop string");
      o->stops[o->n_stops++] = optarg;
      break;
    case 'n':
    case 'k':
    case 's':
    case 'L':
    case 'H': {
      long long lo = c == 'k' ? -1 : c == 's' ? 0 : c == 'L' ? 0 : 1;
      long long hi = c == 's' ? (1LL << 62) : c == 'L' ? 20 : 1 << 24;
      if (cli_parse_int(optarg, lo, hi, &iv))
        return cli_usage_error(
            "--%s: expected an integer in [%lld, %lld], got '%s'", name, lo, hi,
            optarg);
      if (c == 'n') o->max_tokens = (int)iv;
      if (c == 'k') o->sp.top_k = (int)iv;
      if (c == 's') o->sp.seed = (uint64_t)iv, o->seed_given = 1;
      if (c == 'L') o->top_logprobs = (int)iv;
      if (c == 'H') o->threads = (int)iv;
      break;
    }
    case 't':
    case 'P':
    case 'x':
    case 'R':
    case 'E':
    case 'F':
      if (cli_parse_float(optarg, -1e9, 1e9, &fv))
        return cli_usage_error("--%s: expected a number, got '%s'", name,
                               optarg);
      if (c == 't') o->sp.temperature = (float)fv;
      if (c == 'P') o->sp.top_p = (float)fv;
      if (c == 'x') o->sp.min_p = (float)fv;
      if (c == 'R') o->sp.repetition_penalty = (float)fv;
      if (c == 'E') o->sp.presence_penalty = (float)fv;
      if (c == 'F') o->sp.frequency_penalty = (float)fv;
      break;
    case 'h': fputs(cmd_generate_help, stdout); return -1;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc)
    return cli_usage_error("generate: unexpected argument '%s'", argv[optind]);
  if (!o->model) return cli_usage_error("generate: --model DIR is required");
  int sources = !!o->prompt + !!o->messages + !!o->prompt_ids;
  if (sources != 1)
    return cli_usage_error(
        "generate: give exactly one of --prompt, --messages, --prompt-ids");
  if (o->raw && o->messages)
    return cli_usage_error(
        "generate: --raw applies to --prompt, not --messages");
  return 0;
}

int cmd_generate(int argc, char **argv) {
  gen_opts o = {.max_tokens = 256};
  r1d_sampling_params_default(&o.sp);
  /* unset until the flags or the model's generation_config.json say */
  o.sp.temperature = NAN;
  o.sp.top_p = NAN;
  o.sp.top_k = INT_MIN;
  int st = parse_args(argc, argv, &o);
  if (st == -1) return CLI_EXIT_OK;
  if (st) return st;
  if (!o.seed_given)
    o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

  r1d_error err = {0};
  r1d_backend be;
  r1d_cpu_backend_init(&be, o.threads);
  r1d_tokenizer *tok = NULL;
  r1d_model *model = NULL;
  r1d_ids ids = {0};
  char *prompt_text = NULL;
  int status = CLI_EXIT_OK;

  if (r1d_tokenizer_load_dir(o.model, &tok, &err) ||
      r1d_model_load(o.model, &be, &model, &err)) {
    status = cli_report(&err);
    goto done;
  }
  apply_generation_defaults(&o.sp, &model->cfg);
  if (o.prompt_ids) {
    if ((status = parse_ids(o.prompt_ids, model->cfg.vocab_size, &ids)))
      goto done;
  } else {
    if (o.raw) {
      prompt_text = strdup(o.prompt);
      if (!prompt_text) {
        status = cli_usage_error("out of memory");
        goto done;
      }
    } else if (build_chat_prompt(&o, &prompt_text, &err)) {
      status = cli_report(&err);
      goto done;
    }
    /* Raw text gets the BOS that Hugging Face's encode adds for this model
     * (chat templates write theirs as text). */
    int32_t bos = o.raw ? r1d_tokenizer_bos_to_add(tok) : -1;
    if (bos >= 0 && r1d_ids_push(&ids, bos)) {
      status = cli_usage_error("out of memory");
      goto done;
    }
    if (r1d_tokenizer_encode(tok, prompt_text, strlen(prompt_text), &ids,
                             &err)) {
      status = cli_report(&err);
      goto done;
    }
  }

  gen_view view = {.json = o.json,
                   .tty = isatty(STDOUT_FILENO),
                   .think_start = r1d_tokenizer_token_to_id(tok, "<think>"),
                   .think_end = r1d_tokenizer_token_to_id(tok, "</think>"),
                   .tok = tok};
  /* R1 templates open the thought in the prompt: the model starts inside it. */
  if (view.tty && !view.json && ids.n > 0 &&
      ids.v[ids.n - 1] != view.think_end) {
    for (size_t i = ids.n; i-- > 0 && ids.n - i <= 2;)
      if (ids.v[i] == view.think_start) {
        fputs(dim_on, stdout);
        fputs("thinking: ", stdout);
        view.thinking = 1;
      }
  }
  r1d_gen_params gp = {.sampling = o.sp,
                       .max_tokens = o.max_tokens,
                       .stop = o.stops,
                       .n_stop = o.n_stops,
                       .ignore_eos = o.ignore_eos,
                       .n_top_logprobs = o.json ? o.top_logprobs : 0};
  r1d_gen_result res;
  if (r1d_generate(model, tok, ids.v, ids.n, &gp, on_token, &view, &res,
                   &err)) {
    if (view.thinking) fputs(dim_off, stdout);
    status = cli_report(&err);
    goto done;
  }
  if (view.thinking) fputs(dim_off, stdout);
  if (!o.json) fputc('\n', stdout);
  if (o.stats)
    fprintf(stderr,
            "prompt %d tokens, prefill %.1f tok/s; completion %d tokens, "
            "decode %.1f tok/s; finish %s\n",
            res.prompt_tokens,
            res.prefill_seconds > 0 ? res.prompt_tokens / res.prefill_seconds
                                    : 0,
            res.completion_tokens,
            /* the first token comes from the prefill pass */
            res.decode_seconds > 0 && res.completion_tokens > 1
                ? (res.completion_tokens - 1) / res.decode_seconds
                : 0,
            r1d_finish_reason_name(res.finish));
done:
  free(prompt_text);
  r1d_ids_free(&ids);
  r1d_model_free(model);
  r1d_tokenizer_free(tok);
  r1d_cpu_backend_destroy(&be);
  return status;
}
