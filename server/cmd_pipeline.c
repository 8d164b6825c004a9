/* cmd_pipeline.c - `r1d pipeline RECIPE.json`: runs a training recipe's named
 * stages in order, each one an r1d subcommand run as a child process, with
 * state that survives a stop: a stage whose folder holds a stage.json saying
 * "done" with the same command line is skipped on the next run, so a run
 * stopped at stage 5 resumes there, and editing stage 3's settings re-runs
 * stage 3 and everything after it (make's rule, for models).
 *
 * Why child processes: every stage already is a command with its own
 * progress, checkpoints, signals and exit status; running them as they are
 * means the recipe exercises exactly what users run by hand, and a crash in
 * one stage cannot corrupt the pipeline's state.
 *
 * The recipe (see models/r1d-tiny/recipe.json):
 *   {"vars": {"steps": 200, ...},         values for {name} placeholders
 *    "eval": ["--task-gen", "addition:3", ...],   `r1d eval` arguments run
 *                                       on each stage's model afterwards
 *    "stages": [{"name": "pretrain",
 *                "cmd": ["pretrain", "--model", "{base}", "--out", "{dir}"],
 *                "model": "{dir}/last",  the stage's model (omit: none)
 *                "stdout": "{dir}/x.jsonl",  keep the child's stdout there
 *                "eval": ["--template", "r1-zero"] | false,
 *                "metrics": "{dir}/metrics.jsonl"}, ...],
 *    "plots": [{"name": "zero-vs-cold", "stages": ["r1-zero", "reasoning"],
 *               "fields": "accuracy,format_rate,completion_len"}],
 *    "table": ["label", "pass1", ...]}      results.svg's columns (all: omit)
 * Placeholders: {dir} the stage's folder OUT/NAME, {out} OUT, {NAME} an
 * earlier stage's model, {VAR} a var (`--set VAR=VALUE` overrides one; a
 * var's value may hold placeholders). An argument that expands to the
 * empty string is left out, so a var can switch an option on and off.
 *
 * Each stage leaves OUT/NAME/{log.txt, stage.json, eval.json, plots/}; the
 * pipeline keeps OUT/results.jsonl (one evaluation row per stage, in order),
 * OUT/results.svg and OUT/pipeline.json (every stage's status and wall
 * time). A stage fails when its command fails, its model does not load, or
 * its metrics hold a non-finite number. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "cli.h"

const char cmd_pipeline_help[] =
    "usage: r1d pipeline RECIPE.json --out DIR [options]\n"
    "\n"
    "Runs the recipe's stages in order, each an r1d command in its own\n"
    "process, then `r1d eval` on the stage's model and `r1d plot` on its\n"
    "metrics. A stage already done with the same command line is skipped,\n"
    "so running the same command again resumes after the last finished\n"
    "stage; a stage whose settings changed runs again, and so does every\n"
    "stage after it.\n"
    "  --out DIR          where stages write: DIR/STAGE/..., "
    "DIR/results.jsonl,\n"
    "                     DIR/results.svg, DIR/pipeline.json\n"
    "  --set VAR=VALUE    override one of the recipe's vars (repeatable)\n"
    "  --only NAME        run this stage (and what it needs is taken as is)\n"
    "  --from NAME        run again from this stage on\n"
    "  --dry-run          print the commands, run nothing\n"
    "Exit status: 0 every stage done, 1 a stage failed (its log is named),\n"
    "2 a bad recipe or arguments.\n";

enum { MAX_STAGES = 64, MAX_SETS = 64, MAX_ARGS = 256 };

typedef struct stage {
  const char *name;
  json_t *def; /* the recipe's object (borrowed) */
  char *dir;   /* OUT/NAME */
  char *model; /* expanded "model", or NULL */
  char **argv; /* expanded "cmd", NULL-terminated */
  int argc;
  char *argv_json; /* the expanded command as JSON: the stage's identity */
  int done;        /* finished with this command line */
  double wall_s, eval_wall_s;
} stage;

typedef struct pipeline {
  const char *recipe_path, *out;
  json_t *recipe, *vars;
  const char *sets[MAX_SETS];
  int n_sets;
  stage st[MAX_STAGES];
  int n;
  int dry_run;
  int lock_fd;     /* OUT/.lock, held while running */
  char self[4096]; /* this binary, for the children */
} pipeline;

/* ---- placeholders ------------------------------------------------------ */

static const char *set_value(const pipeline *p, const char *name, size_t len) {
  for (int i = 0; i < p->n_sets; i++)
    if (!strncmp(p->sets[i], name, len) && p->sets[i][len] == '=')
      return p->sets[i] + len + 1;
  return NULL;
}

/* Appends the value of placeholder name[0..len) for stage s. */
static int expand_depth(const pipeline *p, int s, const char *text, char **out,
                        int depth, r1d_error *err);

/* Appends the value of placeholder name[0..len) for stage s; a var's value
 * may hold placeholders itself ("{out}/x"), up to 4 levels deep. */
static int expand_name(const pipeline *p, int s, const char *name, size_t len,
                       int depth, r1d_buf *b, r1d_error *err) {
  char key[128];
  if (len == 0 || len >= sizeof key)
    return r1d_fail(err, R1D_EINVAL, "stage %s: a bad placeholder",
                    p->st[s].name);
  memcpy(key, name, len);
  key[len] = 0;
  const char *v = NULL;
  char num[64];
  if (!strcmp(key, "dir"))
    v = p->st[s].dir;
  else if (!strcmp(key, "out"))
    v = p->out;
  if (!v) v = set_value(p, name, len);
  for (int i = 0; !v && i < s; i++)
    if (!strcmp(p->st[i].name, key)) {
      if (!p->st[i].model)
        return r1d_fail(err, R1D_EINVAL,
                        "stage %s: {%s} names a stage that has no model",
                        p->st[s].name, key);
      v = p->st[i].model;
    }
  if (!v) {
    json_t *j = json_object_get(p->vars, key);
    if (json_is_string(j))
      v = json_string_value(j);
    else if (json_is_integer(j)) {
      snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j));
      v = num;
    } else if (json_is_real(j)) {
      snprintf(num, sizeof num, "%.10g", json_real_value(j));
      v = num;
    }
  }
  if (!v)
    return r1d_fail(err, R1D_EINVAL,
                    "stage %s: {%s} is neither dir, out, an earlier stage nor "
                    "a var",
                    p->st[s].name, key);
  if (strchr(v, '{') && strchr(v, '}')) {
    if (depth >= 4)
      return r1d_fail(err, R1D_EINVAL,
                      "stage %s: {%s} nests placeholders too deep",
                      p->st[s].name, key);
    char *inner = NULL;
    int rc = expand_depth(p, s, v, &inner, depth + 1, err);
    if (rc) return rc;
    rc = r1d_buf_append(b, inner, strlen(inner))
             ? r1d_fail(err, R1D_ENOMEM, "out of memory")
             : R1D_OK;
    free(inner);
    return rc;
  }
  return r1d_buf_append(b, v, strlen(v))
             ? r1d_fail(err, R1D_ENOMEM, "out of memory")
             : R1D_OK;
}

/* A new string: text with every {name} replaced. */
static int expand_depth(const pipeline *p, int s, const char *text, char **out,
                        int depth, r1d_error *err);

static int expand(const pipeline *p, int s, const char *text, char **out,
                  r1d_error *err) {
  return expand_depth(p, s, text, out, 0, err);
}

static int expand_depth(const pipeline *p, int s, const char *text, char **out,
                        int depth, r1d_error *err) {
  r1d_buf b = {0};
  int rc = R1D_OK;
  for (const char *c = text; rc == 0 && *c;) {
    const char *open = strchr(c, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    if (!open || !close) {
      if (r1d_buf_append(&b, c, strlen(c)))
        rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
      break;
    }
    if (r1d_buf_append(&b, c, (size_t)(open - c)))
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    if (rc == 0)
      rc = expand_name(p, s, open + 1, (size_t)(close - open - 1), depth, &b,
                       err);
    c = close + 1;
  }
  if (rc == 0 && r1d_buf_append(&b, "", 1))
    rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (rc) {
    r1d_buf_free(&b);
    return rc;
  }
  *out = b.p;
  return R1D_OK;
}

/* ---- the recipe --------------------------------------------------------- */

static int valid_name(const char *s) {
  if (!*s || strlen(s) > 64) return 0;
  for (; *s; s++)
    if (!(*s == '-' || *s == '_' || (*s >= 'a' && *s <= 'z') ||
          (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
      return 0;
  return 1;
}

static int eval_argv(const pipeline *p, int si, char ***out, r1d_error *err);
static void argv_free(char **argv);

static int load_recipe(pipeline *p, r1d_error *err) {
  json_error_t je;
  p->recipe = json_load_file(p->recipe_path, 0, &je);
  if (!p->recipe)
    return r1d_fail(err, R1D_EINVAL, "%s:%d: %s", p->recipe_path, je.line,
                    je.text);
  p->vars = json_object_get(p->recipe, "vars");
  json_t *stages = json_object_get(p->recipe, "stages");
  if (!json_is_array(stages) || json_array_size(stages) == 0)
    return r1d_fail(err, R1D_EINVAL, "%s: \"stages\" must be a non-empty array",
                    p->recipe_path);
  if (json_array_size(stages) > MAX_STAGES)
    return r1d_fail(err, R1D_EINVAL, "%s: more than %d stages", p->recipe_path,
                    MAX_STAGES);
  for (int i = 0; i < p->n_sets; i++) {
    const char *eq = strchr(p->sets[i], '=');
    if (!eq || eq == p->sets[i])
      return r1d_fail(err, R1D_EINVAL, "--set %s: expected VAR=VALUE",
                      p->sets[i]);
    if (!json_object_getn(p->vars, p->sets[i], (size_t)(eq - p->sets[i])))
      return r1d_fail(err, R1D_EINVAL, "--set %s: the recipe has no such var",
                      p->sets[i]);
  }
  size_t i;
  json_t *def;
  json_array_foreach(stages, i, def) {
    stage *s = &p->st[p->n];
    const char *name = json_string_value(json_object_get(def, "name"));
    json_t *cmd = json_object_get(def, "cmd");
    if (!name || !valid_name(name))
      return r1d_fail(err, R1D_EINVAL,
                      "%s: stage %zu needs a \"name\" of letters, digits, - "
                      "and _",
                      p->recipe_path, i + 1);
    for (int j = 0; j < p->n; j++)
      if (!strcmp(p->st[j].name, name))
        return r1d_fail(err, R1D_EINVAL, "%s: two stages named %s",
                        p->recipe_path, name);
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 ||
        json_array_size(cmd) >= MAX_ARGS)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: stage %s: \"cmd\" must be an array of 1..%d "
                      "strings",
                      p->recipe_path, name, MAX_ARGS - 1);
    s->name = name;
    s->def = def;
    s->dir = r1d_path_join(p->out, name);
    s->argv = calloc(json_array_size(cmd) + 2, sizeof *s->argv);
    if (!s->dir || !s->argv) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    p->n++;
    s->argv[0] = strdup(p->self);
    s->argc = 1;
    size_t a;
    json_t *arg;
    json_t *expanded = json_array();
    json_array_foreach(cmd, a, arg) {
      char num[64];
      const char *text = json_string_value(arg);
      if (json_is_number(arg)) {
        snprintf(num, sizeof num, "%.10g", json_number_value(arg));
        text = num;
      }
      if (!text) {
        json_decref(expanded);
        return r1d_fail(err, R1D_EINVAL,
                        "%s: stage %s: cmd[%zu] is not a string",
                        p->recipe_path, name, a);
      }
      int rc = expand(p, p->n - 1, text, &s->argv[s->argc], err);
      if (rc) {
        json_decref(expanded);
        return rc;
      }
      if (!s->argv[s->argc][0]) { /* an empty var: no argument at all */
        free(s->argv[s->argc]);
        s->argv[s->argc] = NULL;
        continue;
      }
      json_array_append_new(expanded, json_string(s->argv[s->argc]));
      s->argc++;
    }
    s->argv_json = json_dumps(expanded, JSON_COMPACT);
    json_decref(expanded);
    const char *model = json_string_value(json_object_get(def, "model"));
    if (model && expand(p, p->n - 1, model, &s->model, err)) return err->code;
    /* the eval's arguments too, now rather than after a long stage */
    json_t *own = json_object_get(def, "eval");
    if (own && !json_is_array(own) && !json_is_false(own))
      return r1d_fail(err, R1D_EINVAL,
                      "%s: stage %s: \"eval\" must be an array or false",
                      p->recipe_path, name);
    char **probe = NULL;
    if (eval_argv(p, p->n - 1, &probe, err)) return err->code;
    argv_free(probe);
  }
  json_t *common = json_object_get(p->recipe, "eval");
  if (common && !json_is_array(common))
    return r1d_fail(err, R1D_EINVAL, "%s: \"eval\" must be an array",
                    p->recipe_path);
  return R1D_OK;
}

static void pipeline_free(pipeline *p) {
  for (int i = 0; i < p->n; i++) {
    stage *s = &p->st[i];
    for (int a = 0; a < s->argc; a++)
      free(s->argv[a]);
    free(s->argv);
    free(s->argv_json);
    free(s->dir);
    free(s->model);
  }
  json_decref(p->recipe);
  if (p->lock_fd > 0) close(p->lock_fd);
}

/* ---- running ------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs argv with stdout to stdout_path (or the log) and stderr appended to
 * log_path; returns the exit status, or -1 when it could not start. */
static int run_child(char *const *argv, const char *stdout_path,
                     const char *log_path) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int out = stdout_path
                  ? open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644)
                  : log;
    if (log < 0 || out < 0) _exit(127);
    dup2(out, 1);
    dup2(log, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  int status, forwarded = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
    /* a stop for the pipeline is a stop for its stage: the child saves a
     * checkpoint and exits at its next step boundary */
    if (*cli_stop_flag() && !forwarded) {
      kill(pid, SIGTERM);
      forwarded = 1;
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void log_line(const char *log_path, const char *fmt, const char *arg) {
  FILE *f = fopen(log_path, "a");
  if (!f) return;
  fprintf(f, fmt, arg);
  fclose(f);
}

/* The stage's recorded state: done with the same command line? */
static int stage_is_done(const stage *s) {
  char *path = r1d_path_join(s->dir, "stage.json");
  json_t *j = path ? json_load_file(path, 0, NULL) : NULL;
  free(path);
  int done =
      j && json_is_true(json_object_get(j, "done")) &&
      !strcmp(json_string_value(json_object_get(j, "cmd")) ?: "", s->argv_json);
  json_decref(j);
  return done;
}

static int write_json(const char *path, json_t *j, r1d_error *err) {
  char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
  if (!text) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  size_t n = strlen(text);
  text[n] = '\n'; /* json_dumps' terminator becomes the final newline */
  int rc = r1d_write_file_atomic(path, text, n + 1, err);
  free(text);
  return rc;
}

/* Every number of every line of a metrics JSONL file is finite; jansson
 * itself refuses NaN and Infinity, which also counts as a failure. */
static int check_metrics(const char *path, r1d_error *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = r1d_read_file(path, &text, &len, err);
  if (rc) return rc;
  long line = 0, rows = 0;
  size_t pos = 0, n;
  const char *c;
  while (rc == 0 && r1d_next_line(text, len, &pos, &c, &n)) {
    line++;
    if (n == 0) continue;
    json_error_t je;
    json_t *j = json_loadb(c, n, 0, &je);
    if (!j) {
      rc = r1d_fail(err, R1D_ERANGE, "%s:%ld: not a finite JSON row (%s)", path,
                    line, je.text);
      break;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      if (json_is_real(v) && !isfinite(json_real_value(v)))
        rc = r1d_fail(err, R1D_ERANGE, "%s:%ld: %s is not finite", path, line,
                      k);
    }
    json_decref(j);
    rows++;
  }
  free(text);
  if (rc == 0 && rows == 0)
    rc = r1d_fail(err, R1D_ERANGE, "%s: no metrics rows", path);
  return rc;
}

/* The stage's model loads as a model: its config parses and its weights
 * file is there (r1d model info reads both). */
static int check_model(const pipeline *p, const stage *s, const char *log,
                       r1d_error *err) {
  char *argv[] = {(char *)p->self, "model", "info", "--model", s->model, NULL};
  int st = run_child(argv, "/dev/null", log);
  if (st != 0)
    return r1d_fail(err, R1D_EINVAL, "stage %s: its model %s does not load",
                    s->name, s->model);
  return R1D_OK;
}

/* The eval arguments of stage s: the recipe's, then the stage's own. */
static int eval_argv(const pipeline *p, int si, char ***out, r1d_error *err) {
  const stage *s = &p->st[si];
  json_t *common = json_object_get(p->recipe, "eval");
  json_t *own = json_object_get(s->def, "eval");
  *out = NULL;
  if (!s->model || !json_is_array(common) || json_is_false(own)) return R1D_OK;
  size_t n =
      json_array_size(common) + (json_is_array(own) ? json_array_size(own) : 0);
  char **argv = calloc(n + 16, sizeof *argv);
  if (!argv) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int a = 0, rc = 0;
  argv[a++] = strdup(p->self);
  argv[a++] = strdup("eval");
  argv[a++] = strdup("--model");
  argv[a++] = strdup(s->model);
  json_t *lists[2] = {common, json_is_array(own) ? own : NULL};
  for (int l = 0; rc == 0 && l < 2; l++) {
    size_t i;
    json_t *v;
    if (!lists[l]) continue;
    json_array_foreach(lists[l], i, v) {
      char num[64];
      const char *text = json_string_value(v);
      if (json_is_number(v)) {
        snprintf(num, sizeof num, "%.10g", json_number_value(v));
        text = num;
      }
      if (!text) {
        rc = r1d_fail(err, R1D_EINVAL,
                      "%s: stage %s: an eval argument is not "
                      "a string",
                      p->recipe_path, s->name);
        break;
      }
      if ((rc = expand(p, si, text, &argv[a], err))) break;
      if (!argv[a][0]) { /* an empty var: no argument at all */
        free(argv[a]);
        argv[a] = NULL;
        continue;
      }
      a++;
    }
  }
  char *row = r1d_path_join(s->dir, "eval.json");
  argv[a++] = strdup("--label");
  argv[a++] = strdup(s->name);
  argv[a++] = strdup("--out");
  argv[a++] = row;
  if (rc) {
    for (int i = 0; i < a; i++)
      free(argv[i]);
    free(argv);
    return rc;
  }
  *out = argv;
  return R1D_OK;
}

static void argv_free(char **argv) {
  for (int i = 0; argv && argv[i]; i++)
    free(argv[i]);
  free(argv);
}

static void print_cmd(FILE *f, char *const *argv) {
  fputs("  r1d", f);
  for (int i = 1; argv[i]; i++)
    fprintf(f, " %s", argv[i]);
  fputc('\n', f);
}

/* Draws the stage's metrics (when it has some) into DIR/plots. */
static void plot_stage(const pipeline *p, const stage *s, const char *metrics,
                       const char *log) {
  char *plots = r1d_path_join(s->dir, "plots");
  char *argv[] = {(char *)p->self, "plot",  (char *)metrics, "--label",
                  (char *)s->name, "--out", plots,           NULL};
  if (plots && run_child(argv, "/dev/null", log) != 0)
    log_line(log, "r1d pipeline: plotting %s failed\n", metrics);
  free(plots);
}

/* OUT/results.jsonl from the done stages' eval.json, in recipe order, and
 * OUT/results.svg from it. */
static int write_results(const pipeline *p, r1d_error *err) {
  r1d_buf b = {0};
  int rows = 0, rc = 0;
  for (int i = 0; rc == 0 && i < p->n; i++) {
    char *path = r1d_path_join(p->st[i].dir, "eval.json");
    json_t *row = path && p->st[i].done ? json_load_file(path, 0, NULL) : NULL;
    free(path);
    if (!row) continue;
    json_object_set_new(row, "stage_wall_s", json_real(p->st[i].wall_s));
    char *line = json_dumps(row, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(row);
    if (!line || r1d_buf_append(&b, line, strlen(line)) ||
        r1d_buf_append(&b, "\n", 1))
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
    free(line);
    rows++;
  }
  char *path = r1d_path_join(p->out, "results.jsonl");
  if (rc == 0 && path)
    rc = r1d_write_file_atomic(path, b.p ? b.p : "", b.n, err);
  r1d_buf_free(&b);
  if (rc == 0 && rows > 0) {
    char *svg = r1d_path_join(p->out, "results.svg");
    char *log = r1d_path_join(p->out, "pipeline.log");
    /* the recipe's "table": the columns worth a glance, in order */
    json_t *cols = json_object_get(p->recipe, "table");
    r1d_buf list = {0};
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
      const char *name = json_string_value(c);
      if (name && (r1d_buf_append(&list, ",", i ? 1 : 0) ||
                   r1d_buf_append(&list, name, strlen(name))))
        break;
    }
    int has_cols = list.n > 0 && r1d_buf_append(&list, "", 1) == 0;
    char *argv[] = {(char *)p->self,
                    "plot",
                    "--table",
                    path,
                    "--out",
                    svg,
                    has_cols ? "--columns" : NULL,
                    has_cols ? list.p : NULL,
                    NULL};
    if (svg && log && run_child(argv, "/dev/null", log) != 0)
      fprintf(stderr, "r1d: pipeline: drawing %s failed (see %s)\n", svg, log);
    r1d_buf_free(&list);
    free(svg);
    free(log);
  }
  free(path);
  return rc;
}

/* The recipe's "plots": one stage's metrics against another's. */
static void write_plots(const pipeline *p) {
  json_t *plots = json_object_get(p->recipe, "plots");
  size_t i;
  json_t *def;
  char *log = r1d_path_join(p->out, "pipeline.log");
  json_array_foreach(plots, i, def) {
    const char *name = json_string_value(json_object_get(def, "name"));
    const char *fields = json_string_value(json_object_get(def, "fields"));
    json_t *stages = json_object_get(def, "stages");
    if (!name || !valid_name(name) || !json_is_array(stages)) continue;
    char *argv[MAX_STAGES * 3 + 10] = {0};
    char *own[MAX_STAGES * 3 + 10] = {0};
    int a = 0, n_own = 0, ok = 1;
    argv[a++] = (char *)p->self;
    argv[a++] = "plot";
    size_t j;
    json_t *sn;
    json_array_foreach(stages, j, sn) {
      const stage *s = NULL;
      for (int k = 0; k < p->n; k++)
        if (json_is_string(sn) && !strcmp(p->st[k].name, json_string_value(sn)))
          s = &p->st[k];
      const char *m =
          s ? json_string_value(json_object_get(s->def, "metrics")) : NULL;
      char *path = NULL;
      r1d_error err = {0};
      if (!s || !s->done || !m || a > MAX_STAGES * 3 ||
          expand(p, (int)(s - p->st), m, &path, &err)) {
        ok = 0;
        break;
      }
      own[n_own++] = path;
      argv[a++] = path;
      argv[a++] = "--label";
      argv[a++] = (char *)s->name;
    }
    char *dir = r1d_path_join(p->out, "plots");
    char *out = dir ? r1d_path_join(dir, name) : NULL;
    if (ok && out) {
      if (fields) {
        argv[a++] = "--fields";
        argv[a++] = (char *)fields;
      }
      argv[a++] = "--out";
      argv[a++] = out;
      if (run_child(argv, "/dev/null", log) != 0)
        fprintf(stderr, "r1d: pipeline: plot %s failed (see %s)\n", name, log);
    }
    for (int k = 0; k < n_own; k++)
      free(own[k]);
    free(dir);
    free(out);
  }
  free(log);
}

static int write_state(const pipeline *p, const char *running, r1d_error *err) {
  json_t *j = json_pack("{s:s, s:[]}", "recipe", p->recipe_path, "stages");
  json_t *arr = json_object_get(j, "stages");
  double total = 0;
  for (int i = 0; i < p->n; i++) {
    const stage *s = &p->st[i];
    const char *status = s->done                                ? "done"
                         : running && !strcmp(running, s->name) ? "running"
                                                                : "pending";
    json_array_append_new(arr, json_pack("{s:s, s:s, s:f, s:f, s:s?}", "name",
                                         s->name, "status", status, "wall_s",
                                         s->wall_s, "eval_wall_s",
                                         s->eval_wall_s, "model", s->model));
    total += s->wall_s + s->eval_wall_s;
  }
  json_object_set_new(j, "wall_s", json_real(total));
  char *path = r1d_path_join(p->out, "pipeline.json");
  int rc = path ? write_json(path, j, err)
                : r1d_fail(err, R1D_ENOMEM, "out of memory");
  free(path);
  json_decref(j);
  return rc;
}

/* Removes a stage folder's old contents (a stage runs from scratch). */
static void clear_dir(const char *dir) {
  pid_t pid = fork();
  if (pid == 0) {
    execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
    _exit(127);
  }
  int st;
  if (pid > 0) waitpid(pid, &st, 0);
}

static int run_stage(pipeline *p, int si, int index, r1d_error *err) {
  stage *s = &p->st[si];
  char *log = r1d_path_join(s->dir, "log.txt");
  char *state = r1d_path_join(s->dir, "stage.json");
  char *stdout_path = NULL;
  char **eval = NULL;
  int rc = log && state ? 0 : r1d_fail(err, R1D_ENOMEM, "out of memory");
  const char *so = json_string_value(json_object_get(s->def, "stdout"));
  if (rc == 0 && so) rc = expand(p, si, so, &stdout_path, err);
  if (rc == 0) {
    clear_dir(s->dir);
    rc = r1d_mkdir_p(s->dir, err);
  }
  if (rc == 0) rc = write_state(p, s->name, err);
  if (rc) goto done;
  fprintf(stderr, "[%d/%d] %s\n", index, p->n, s->name);
  print_cmd(stderr, s->argv);
  double t0 = now_s();
  int st = run_child(s->argv, stdout_path, log);
  s->wall_s = now_s() - t0;
  if (*cli_stop_flag()) {
    rc = r1d_fail(err, R1D_EBACKEND,
                  "stopped by a signal during stage %s; run the same command "
                  "again to redo it",
                  s->name);
    goto done;
  }
  if (st != 0) {
    rc = r1d_fail(err, R1D_EBACKEND, "stage %s failed (exit %d): see %s",
                  s->name, st, log);
    goto done;
  }
  if (s->model && (rc = check_model(p, s, log, err))) goto done;
  const char *m = json_string_value(json_object_get(s->def, "metrics"));
  char *metrics = NULL;
  if (m && (rc = expand(p, si, m, &metrics, err))) goto done;
  if (metrics) {
    rc = check_metrics(metrics, err);
    if (rc == 0) plot_stage(p, s, metrics, log);
    free(metrics);
    if (rc) goto done;
  }
  if ((rc = eval_argv(p, si, &eval, err))) goto done;
  if (eval) {
    double t1 = now_s();
    st = run_child(eval, NULL, log);
    s->eval_wall_s = now_s() - t1;
    if (st != 0) {
      rc = r1d_fail(err, R1D_EBACKEND, "stage %s: its eval failed: see %s",
                    s->name, log);
      goto done;
    }
  }
  char wall[32];
  cli_fmt_duration(s->wall_s, wall, sizeof wall);
  fprintf(stderr, "  done in %s", wall);
  char *row_path = r1d_path_join(s->dir, "eval.json");
  json_t *row = row_path ? json_load_file(row_path, 0, NULL) : NULL;
  free(row_path);
  if (row)
    fprintf(stderr, "; pass@1 %.3f +- %.3f, cons@k %.3f, format %.2f",
            json_number_value(json_object_get(row, "pass1")),
            json_number_value(json_object_get(row, "pass1_ci")),
            json_number_value(json_object_get(row, "cons")),
            json_number_value(json_object_get(row, "format_rate")));
  json_decref(row);
  fputc('\n', stderr);
  json_t *j = json_pack("{s:b, s:s, s:f, s:f, s:s?}", "done", 1, "cmd",
                        s->argv_json, "wall_s", s->wall_s, "eval_wall_s",
                        s->eval_wall_s, "model", s->model);
  rc = write_json(state, j, err);
  json_decref(j);
  if (rc == 0) s->done = 1;
done:
  argv_free(eval);
  free(stdout_path);
  free(log);
  free(state);
  return rc;
}

/* Wall times of stages done in an earlier run, from their stage.json. */
static void load_done_times(stage *s) {
  char *path = r1d_path_join(s->dir, "stage.json");
  json_t *j = path ? json_load_file(path, 0, NULL) : NULL;
  free(path);
  s->wall_s = json_number_value(json_object_get(j, "wall_s"));
  s->eval_wall_s = json_number_value(json_object_get(j, "eval_wall_s"));
  json_decref(j);
}

/* One pipeline per folder: a second one would clear the stage folders the
 * first one's children are writing. The lock (flock on OUT/.lock) goes
 * with the process, however it ends. */
static int lock_out(pipeline *p, r1d_error *err) {
  char *path = r1d_path_join(p->out, ".lock");
  if (!path) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  int rc = R1D_OK;
  if (p->lock_fd < 0)
    rc = r1d_fail(err, R1D_EIO, "%s: %s", path, strerror(errno));
  else if (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0)
    rc = r1d_fail(err, R1D_ESTATE,
                  "another r1d pipeline is running in %s (wait for it, or "
                  "stop it)",
                  p->out);
  free(path);
  return rc;
}

int cmd_pipeline(int argc, char **argv) {
  pipeline p = {0};
  const char *only = NULL, *from = NULL;
  const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                {"set", required_argument, 0, 's'},
                                {"only", required_argument, 0, 'O'},
                                {"from", required_argument, 0, 'f'},
                                {"dry-run", no_argument, 0, 'n'},
                                {"help", no_argument, 0, 'h'},
                                {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'o': p.out = optarg; break;
    case 's':
      if (p.n_sets == MAX_SETS)
        return cli_usage_error("pipeline: at most %d --set", MAX_SETS);
      p.sets[p.n_sets++] = optarg;
      break;
    case 'O': only = optarg; break;
    case 'f': from = optarg; break;
    case 'n': p.dry_run = 1; break;
    case 'h': fputs(cmd_pipeline_help, stdout); return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind != argc - 1 || !p.out)
    return cli_usage_error("pipeline: usage: r1d pipeline RECIPE.json --out "
                           "DIR");
  p.recipe_path = argv[optind];
  ssize_t n = readlink("/proc/self/exe", p.self, sizeof p.self - 1);
  if (n <= 0) return cli_usage_error("pipeline: cannot find the r1d binary");
  p.self[n] = 0;

  r1d_error err = {0};
  int status = CLI_EXIT_OK;
  cli_catch_stop_signals();
  if (load_recipe(&p, &err)) {
    status = cli_report(&err);
    goto out;
  }
  int first = -1;
  for (int i = 0; i < p.n; i++)
    if ((only && !strcmp(p.st[i].name, only)) ||
        (from && !strcmp(p.st[i].name, from)))
      first = i;
  if ((only || from) && first < 0) {
    status = cli_usage_error("pipeline: the recipe has no stage %s",
                             only ? only : from);
    goto out;
  }
  if (p.dry_run) { /* what a run would do, by the same rule */
    int stale = 0;
    for (int i = 0; i < p.n; i++) {
      int forced = (from && i >= first) || (only && i == first);
      int skip =
          only ? i != first : !forced && !stale && stage_is_done(&p.st[i]);
      stale |= !skip;
      printf("%s: %s\n", p.st[i].name, skip ? "done, skipped" : "runs");
      print_cmd(stdout, p.st[i].argv);
    }
    goto out;
  }
  if (r1d_mkdir_p(p.out, &err) || lock_out(&p, &err)) {
    status = cli_report(&err);
    goto out;
  }
  /* Done stages before the first one that must run stay done; from there on
   * everything runs (a later stage was built from an older model). */
  int rerun = 0;
  for (int i = 0; i < p.n; i++) {
    stage *s = &p.st[i];
    int forced = (from && i >= first) || (only && i == first);
    if (only && i != first) {
      s->done = stage_is_done(s);
      if (s->done) load_done_times(s);
      continue;
    }
    if (!forced && !rerun && stage_is_done(s)) {
      s->done = 1;
      load_done_times(s);
      fprintf(stderr, "[%d/%d] %s: done before, skipped\n", i + 1, p.n,
              s->name);
      continue;
    }
    rerun = 1;
    if (run_stage(&p, i, i + 1, &err)) {
      fprintf(stderr, "r1d: %s\n", err.msg);
      status = CLI_EXIT_FAIL;
      write_state(&p, NULL, &err);
      write_results(&p, &err);
      goto out;
    }
    if (write_state(&p, NULL, &err) || write_results(&p, &err)) {
      status = cli_report(&err);
      goto out;
    }
    if (*cli_stop_flag()) break;
  }
  write_plots(&p);
  if (write_state(&p, NULL, &err) || write_results(&p, &err)) {
    status = cli_report(&err);
    goto out;
  }
  double total = 0;
  for (int i = 0; i < p.n; i++)
    total += p.st[i].wall_s + p.st[i].eval_wall_s;
  char wall[32];
  cli_fmt_duration(total, wall, sizeof wall);
  fprintf(stderr, "r1d: pipeline done (%s of stage time); %s/results.jsonl\n",
          wall, p.out);
out:
  pipeline_free(&p);
  return status;
}
