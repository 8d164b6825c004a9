/* cmd_plot.c - `r1d plot`: training curves from metrics JSONL and results
 * tables from evaluation rows, as standalone SVG files (common/svg.h), so a
 * run on a box with nothing but r1d can still show how it went. The work is
 * in r1d_plot_metrics / r1d_plot_table (server/plot.h), which other commands
 * call too; this file adds only the command line.
 *
 * Metrics lines are read generically: any numeric key is a plottable field,
 * x is "step" (or the line's ordinal when there is none), and FIELD_ci95 or
 * FIELD_ci is the half-width of a band around FIELD. */
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "../common/svg.h"
#include "cli.h"
#include "plot.h"

const char cmd_plot_help[] =
    "usage: r1d plot METRICS.jsonl [METRICS2.jsonl ...] --out DIR\n"
    "                [--fields a,b,c|all] [--label NAME ...]\n"
    "       r1d plot --table ROWS.jsonl --out FILE.svg [--columns a,b,c]\n"
    "\n"
    "Draws SVG files a browser opens; prints the paths it wrote.\n"
    "Curves: METRICS files are what `r1d grpo` and `r1d sft` write to\n"
    "  OUT/metrics.jsonl. One chart DIR/FIELD.svg per field, x = step, one\n"
    "  line per file (so runs overlay), and DIR/index.html showing them all.\n"
    "  --fields a,b,c  the fields to draw; `all` draws every numeric one;\n"
    "                  default: those of reward, accuracy, completion_len, "
    "kl,\n"
    "                  loss, eval_pass1, eval_loss that are present\n"
    "  --label NAME    names the files' lines in order (repeat it); default:\n"
    "                  the name of each file's folder\n"
    "  FIELD_ci95 (or FIELD_ci) beside FIELD is drawn as a band around it;\n"
    "  nan/inf values break the line; a resumed run's repeated steps count\n"
    "  once (the later lines win); blank lines are skipped.\n"
    "Table: ROWS holds one JSON object per line (e.g. `r1d eval`'s rows).\n"
    "  --columns a,b,c  the columns in order (default: every key, in the\n"
    "                  order first seen); X with a sibling X_ci (or X_ci95)\n"
    "                  shows as \"X +- ci\"\n"
    "Exit status: 0 done, 2 bad arguments or input (a missing file, a line\n"
    "that is not a JSON object, nothing numeric to plot), 1 out of memory.\n";

enum {
  MAX_FIELDS = 64, /* charts per call; more is no longer a readable page */
  MAX_NAME = 128,  /* a field or column name */
};

/* ---- reading JSONL ------------------------------------------------------- */

/* Appends line[0..n) to out with bare nan / inf / infinity tokens (what
 * printf writes for a diverged loss; not JSON) replaced by null, so such a
 * line still parses and the value becomes a gap. Text inside strings is
 * copied as it is. */
static int repair_nonfinite(const char *s, size_t n, r1d_buf *out) {
  int in_str = 0;
  size_t i = 0;
  while (i < n) {
    char c = s[i];
    if (in_str) {
      size_t len = (c == '\\' && i + 1 < n) ? 2 : 1;
      if (c == '"') in_str = 0;
      if (r1d_buf_append(out, s + i, len)) return R1D_ENOMEM;
      i += len;
      continue;
    }
    if (c == '"') in_str = 1;
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    int signed_word = (c == '-' || c == '+') && i + 1 < n &&
                      ((s[i + 1] | 0x20) >= 'a' && (s[i + 1] | 0x20) <= 'z');
    if (!alpha && !signed_word) {
      if (r1d_buf_append(out, s + i, 1)) return R1D_ENOMEM;
      i++;
      continue;
    }
    size_t j = i + (signed_word ? 1 : 0), w = j;
    while (w < n && (((s[w] | 0x20) >= 'a' && (s[w] | 0x20) <= 'z')))
      w++;
    size_t wl = w - j;
    int nonfinite = (wl == 3 && !strncasecmp(s + j, "nan", 3)) ||
                    (wl == 3 && !strncasecmp(s + j, "inf", 3)) ||
                    (wl == 8 && !strncasecmp(s + j, "infinity", 8));
    int rc = nonfinite ? r1d_buf_append(out, "null", 4)
                       : r1d_buf_append(out, s + i, w - i);
    if (rc) return R1D_ENOMEM;
    i = w;
  }
  return 0;
}

/* The JSON objects of path's non-blank lines, in order, as a new array. */
static int load_jsonl(const char *path, json_t **rows, r1d_error *err) {
  char *data = NULL;
  size_t len = 0;
  int rc = r1d_read_file(path, &data, &len, err);
  if (rc) return rc;
  json_t *arr = json_array();
  r1d_buf line = {0};
  if (!arr) rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  size_t lineno = 0;
  for (size_t at = 0; !rc && at < len;) {
    const char *p = data + at;
    const char *nl = memchr(p, '\n', len - at);
    size_t n = nl ? (size_t)(nl - p) : len - at;
    at += n + 1;
    lineno++;
    size_t k = 0;
    while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r'))
      k++;
    if (k == n) continue; /* blank */
    line.n = 0;
    if (repair_nonfinite(p, n, &line)) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
      break;
    }
    json_error_t je;
    json_t *o = json_loadb(line.p, line.n, JSON_ALLOW_NUL, &je);
    if (!o) {
      rc = r1d_fail(err, R1D_EFORMAT, "%s:%zu: not JSON (%s)", path, lineno,
                    je.text);
    } else if (!json_is_object(o)) {
      rc =
          r1d_fail(err, R1D_EFORMAT, "%s:%zu: not a JSON object", path, lineno);
      json_decref(o);
    } else if (json_array_append_new(arr, o)) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
    }
  }
  r1d_buf_free(&line);
  free(data);
  if (rc) {
    json_decref(arr);
    return rc;
  }
  *rows = arr;
  return 0;
}

/* ---- names --------------------------------------------------------------- */

typedef struct name_list {
  char names[MAX_FIELDS][MAX_NAME];
  int n;
} name_list;

static int name_index(const name_list *l, const char *s) {
  for (int i = 0; i < l->n; i++)
    if (!strcmp(l->names[i], s)) return i;
  return -1;
}

/* Adds s unless present; R1D_ERANGE when full or s is too long. */
static int name_add(name_list *l, const char *s, size_t n) {
  if (n >= MAX_NAME) return R1D_ERANGE;
  char tmp[MAX_NAME];
  memcpy(tmp, s, n);
  tmp[n] = 0;
  if (name_index(l, tmp) >= 0) return 0;
  if (l->n == MAX_FIELDS) return R1D_ERANGE;
  memcpy(l->names[l->n++], tmp, n + 1);
  return 0;
}

/* Splits a comma list ("a, b,c") into l; R1D_EINVAL naming the problem. */
static int parse_list(const char *what, const char *s, name_list *l,
                      r1d_error *err) {
  l->n = 0;
  while (*s) {
    const char *end = strchr(s, ',');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    size_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
      a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
      b--;
    if (b > a && name_add(l, s + a, b - a))
      return r1d_fail(err, R1D_EINVAL,
                      "%s: at most %d names of under %d characters", what,
                      MAX_FIELDS, MAX_NAME);
    s += n + (end ? 1 : 0);
  }
  if (l->n == 0)
    return r1d_fail(err, R1D_EINVAL, "%s: expected a comma list of names",
                    what);
  return 0;
}

/* The key of the band around field in row: FIELD_ci95 or FIELD_ci, when that
 * holds a number; else NULL. */
static const char *ci_key(json_t *row, const char *field, char *buf, size_t n) {
  static const char *const suffixes[] = {"_ci95", "_ci"};
  for (int i = 0; i < 2; i++) {
    snprintf(buf, n, "%s%s", field, suffixes[i]);
    if (json_is_number(json_object_get(row, buf))) return suffixes[i];
  }
  return NULL;
}

/* 1 when key is FIELD_ci95 / FIELD_ci and row also holds FIELD. */
static int is_ci_of_present(json_t *row, const char *key) {
  static const char *const suffixes[] = {"_ci95", "_ci"};
  size_t kl = strlen(key);
  for (int i = 0; i < 2; i++) {
    size_t sl = strlen(suffixes[i]);
    if (kl > sl && !strcmp(key + kl - sl, suffixes[i])) {
      char base[MAX_NAME];
      if (kl - sl >= sizeof base) return 0;
      memcpy(base, key, kl - sl);
      base[kl - sl] = 0;
      if (json_object_get(row, base)) return 1;
    }
  }
  return 0;
}

static int has_number(json_t *rows, const char *field) {
  size_t i;
  json_t *row;
  json_array_foreach(rows, i, row) {
    if (json_is_number(json_object_get(row, field))) return 1;
  }
  return 0;
}

/* ---- curves -------------------------------------------------------------- */

typedef struct run {
  const char *path;
  char label[160];
  json_t *rows;
} run;

/* The default label: the name of the folder holding path. */
static void default_label(const char *path, char *out, size_t n) {
  char *real = realpath(path, NULL);
  char *copy = strdup(real ? real : path);
  free(real);
  if (!copy) {
    snprintf(out, n, "%s", path);
    return;
  }
  char *dir = dirname(copy);
  const char *base = basename(dir);
  if (!base[0] || !strcmp(base, "/") || !strcmp(base, "."))
    snprintf(out, n, "%s", path);
  else
    snprintf(out, n, "%s", base);
  free(copy);
}

/* Points of field in one run: x = step (or the ordinal), y, ci (NaN without
 * a band). A repeated or earlier step (a resumed run appending) drops the
 * points from that step on, so the later lines win. */
typedef struct points {
  double *x, *y, *ci;
  size_t n, cap;
  int any_ci, any_finite;
} points;

static void points_free(points *p) {
  free(p->x);
  free(p->y);
  free(p->ci);
  memset(p, 0, sizeof *p);
}

static int points_push(points *p, double x, double y, double ci) {
  while (p->n > 0 && p->x[p->n - 1] >= x)
    p->n--;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    double *nx = realloc(p->x, cap * sizeof *nx);
    if (!nx) return R1D_ENOMEM;
    p->x = nx;
    double *ny = realloc(p->y, cap * sizeof *ny);
    if (!ny) return R1D_ENOMEM;
    p->y = ny;
    double *nc = realloc(p->ci, cap * sizeof *nc);
    if (!nc) return R1D_ENOMEM;
    p->ci = nc;
    p->cap = cap;
  }
  p->x[p->n] = x;
  p->y[p->n] = y;
  p->ci[p->n] = ci;
  p->n++;
  return 0;
}

static int collect(json_t *rows, const char *field, points *p,
                   const char **ci_suffix) {
  size_t i, ordinal = 0;
  json_t *row;
  char key[MAX_NAME + 8];
  json_array_foreach(rows, i, row) {
    json_t *v = json_object_get(row, field);
    if (!v || !(json_is_number(v) || json_is_null(v))) continue;
    ordinal++;
    json_t *step = json_object_get(row, "step");
    double x = json_is_number(step) ? json_number_value(step) : (double)ordinal;
    double y = json_is_number(v) ? json_number_value(v) : NAN;
    const char *suf = ci_key(row, field, key, sizeof key);
    double ci = suf ? json_number_value(json_object_get(row, key)) : NAN;
    if (suf) {
      p->any_ci = 1;
      *ci_suffix = suf;
    }
    if (isfinite(y)) p->any_finite = 1;
    if (points_push(p, x, y, ci)) return R1D_ENOMEM;
  }
  return 0;
}

/* Titles for the fields r1d writes; others are titled by their key. */
static const char *field_title(const char *field) {
  static const char *const known[][2] = {
      {"reward", "reward (mean over completions)"},
      {"reward_mean", "reward (mean over completions)"},
      {"reward_std", "reward standard deviation"},
      {"accuracy", "accuracy of the training rollouts"},
      {"format_rate", "format rate of the training rollouts"},
      {"completion_len", "completion length (tokens)"},
      {"truncated_rate", "share of completions cut at the length limit"},
      {"kl", "KL divergence to the reference"},
      {"loss", "training loss"},
      {"lr", "learning rate"},
      {"grad_norm", "gradient norm (before clipping)"},
      {"clip_ratio", "clipped share of the ratios"},
      {"eval_pass1", "eval pass@1"},
      {"eval_gain", "eval pass@1 gain since step 0"},
      {"eval_format_rate", "eval format rate"},
      {"eval_completion_len", "eval completion length (tokens)"},
      {"eval_loss", "eval loss"},
  };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(known[i][0], field)) return known[i][1];
  return field;
}

/* field as a file name: [A-Za-z0-9_.-] kept, the rest '_', no leading dot. */
static void file_stem(const char *field, char *out, size_t n) {
  size_t i = 0;
  for (; field[i] && i + 1 < n; i++) {
    char c = field[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             (c == '.' && i > 0);
    out[i] = ok ? c : '_';
  }
  out[i] = 0;
}

/* Draws one field over all runs into out_dir/STEM.svg. */
static int draw_field(run *runs, int n_runs, const char *field,
                      const char *path, r1d_error *err) {
  points pts[R1D_SVG_MAX_SERIES];
  r1d_svg_series series[R1D_SVG_MAX_SERIES];
  memset(pts, 0, sizeof pts);
  int n_series = 0, rc = 0;
  const char *suffix = NULL;
  for (int r = 0; r < n_runs && !rc; r++) {
    points *p = &pts[r];
    rc = collect(runs[r].rows, field, p, &suffix);
    if (rc) {
      rc = r1d_fail(err, rc, "%s: out of memory", runs[r].path);
      break;
    }
    if (!p->any_finite) continue;
    series[n_series++] = (r1d_svg_series){.label = runs[r].label,
                                          .x = p->x,
                                          .y = p->y,
                                          .ci = p->any_ci ? p->ci : NULL,
                                          .n = p->n,
                                          .color = r + 1};
  }
  r1d_buf b = {0};
  if (!rc) {
    char title[256];
    snprintf(title, sizeof title, "%s%s", field_title(field),
             !suffix                    ? ""
             : !strcmp(suffix, "_ci95") ? " \xC2\xB1 95% CI"
                                        : " \xC2\xB1 CI");
    r1d_svg_chart chart = {.title = title,
                           .x_label = "step",
                           .y_label = field,
                           .series = series,
                           .n_series = n_series,
                           .x_integer = 1};
    rc = r1d_svg_line_chart(&chart, &b, err);
    if (!rc) rc = r1d_svg_save(&b, path, err);
  }
  r1d_buf_free(&b);
  for (int r = 0; r < n_runs; r++)
    points_free(&pts[r]);
  return rc;
}

/* Picks the fields to draw: the named ones, every numeric one ("all"), or
 * the defaults that are present. */
static int choose_fields(run *runs, int n_runs, const char *fields,
                         name_list *out, r1d_error *err) {
  static const char *const defaults[] = {
      "reward_mean", "reward", "accuracy",   "completion_len",
      "kl",          "loss",   "eval_pass1", "eval_loss"};
  out->n = 0;
  if (fields && strcmp(fields, "all")) {
    int rc = parse_list("--fields", fields, out, err);
    if (rc) return rc;
    for (int f = 0; f < out->n; f++) {
      int found = 0;
      for (int r = 0; r < n_runs && !found; r++)
        found = has_number(runs[r].rows, out->names[f]);
      if (!found)
        return r1d_fail(err, R1D_ENOTFOUND,
                        "%s: no numeric field '%s' to plot%s", runs[0].path,
                        out->names[f],
                        n_runs > 1 ? " (nor in the others)" : "");
    }
    return 0;
  }
  if (fields) { /* all: every numeric key but the x and the bands */
    for (int r = 0; r < n_runs; r++) {
      size_t i;
      json_t *row;
      json_array_foreach(runs[r].rows, i, row) {
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v) {
          if (!json_is_number(v) || !strcmp(key, "step") ||
              !strcmp(key, "total_steps") || is_ci_of_present(row, key))
            continue;
          if (name_add(out, key, strlen(key)) && name_index(out, key) < 0)
            return r1d_fail(err, R1D_ERANGE,
                            "%s: more than %d fields; name some with --fields",
                            runs[r].path, MAX_FIELDS);
        }
      }
    }
    return 0;
  }
  for (size_t d = 0; d < sizeof defaults / sizeof defaults[0]; d++)
    for (int r = 0; r < n_runs; r++)
      if (has_number(runs[r].rows, defaults[d])) {
        int rc = name_add(out, defaults[d], strlen(defaults[d]));
        if (rc) return r1d_fail(err, rc, "--fields: too many");
        break;
      }
  return 0;
}

static int write_index(run *runs, int n_runs, const name_list *fields,
                       char (*stems)[MAX_NAME], const char *path,
                       r1d_error *err) {
  r1d_buf b = {0};
  int rc = 0;
#define PUT(s)                                                                 \
  if (!rc) rc = r1d_buf_append(&b, s, strlen(s))
#define ESC(s)                                                                 \
  if (!rc) rc = r1d_svg_escape(&b, s)
  PUT("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
      "<title>r1d plots</title>\n<style>body{font-family:sans-serif;"
      "margin:1.5em}img{max-width:100%;margin:0.5em 0}</style></head>\n"
      "<body>\n<h1>Training curves</h1>\n<ul>\n");
  for (int r = 0; r < n_runs; r++) {
    PUT("<li><b>");
    ESC(runs[r].label);
    PUT("</b>: ");
    ESC(runs[r].path);
    PUT("</li>\n");
  }
  PUT("</ul>\n");
  for (int f = 0; f < fields->n; f++) {
    PUT("<div><img src=\"");
    ESC(stems[f]);
    PUT(".svg\" alt=\"");
    ESC(fields->names[f]);
    PUT("\"></div>\n");
  }
  PUT("</body></html>\n");
#undef PUT
#undef ESC
  if (rc) rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", path);
  if (!rc) rc = r1d_write_file_atomic(path, b.p, b.n, err);
  r1d_buf_free(&b);
  return rc;
}

/* 1 when an earlier run has run r's label. */
static int label_taken(const run *runs, int r) {
  for (int k = 0; k < r; k++)
    if (!strcmp(runs[k].label, runs[r].label)) return 1;
  return 0;
}

/* r1d_plot_metrics, printing each file written to list (when not NULL). */
static int plot_metrics(const char *const *files, const char *const *labels,
                        int n_files, const char *fields, const char *out_dir,
                        FILE *list, r1d_error *err) {
  if (n_files < 1 || !files || !out_dir)
    return r1d_fail(err, R1D_EINVAL,
                    "plot: expected metrics files and an "
                    "output folder");
  if (n_files > R1D_SVG_MAX_SERIES)
    return r1d_fail(err, R1D_EINVAL, "plot: %d files (at most %d per chart)",
                    n_files, R1D_SVG_MAX_SERIES);
  run runs[R1D_SVG_MAX_SERIES];
  memset(runs, 0, sizeof runs);
  name_list *chosen = malloc(sizeof *chosen);
  char(*stems)[MAX_NAME] = malloc(MAX_FIELDS * sizeof *stems);
  int rc = 0;
  if (!chosen || !stems) rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
  for (int r = 0; r < n_files && !rc; r++) {
    runs[r].path = files[r];
    if (labels && labels[r])
      snprintf(runs[r].label, sizeof runs[r].label, "%s", labels[r]);
    else
      default_label(files[r], runs[r].label, sizeof runs[r].label);
    /* two runs in folders of the same name still need telling apart */
    char base[sizeof runs[r].label];
    memcpy(base, runs[r].label, sizeof base);
    for (int d = 2; label_taken(runs, r); d++)
      snprintf(runs[r].label, sizeof runs[r].label, "%.140s (%d)", base, d);
    rc = load_jsonl(files[r], &runs[r].rows, err);
  }
  if (!rc) rc = choose_fields(runs, n_files, fields, chosen, err);
  for (int r = 0; r < n_files && !rc; r++) {
    int any = 0;
    for (int f = 0; f < chosen->n && !any; f++)
      any = has_number(runs[r].rows, chosen->names[f]);
    if (!any)
      rc = r1d_fail(err, R1D_EFORMAT, "%s: no numeric field to plot%s%s",
                    files[r], fields ? " among " : "", fields ? fields : "");
  }
  if (!rc) rc = r1d_mkdir_p(out_dir, err);
  for (int f = 0; f < (rc ? 0 : chosen->n); f++) {
    file_stem(chosen->names[f], stems[f], MAX_NAME);
    char name[MAX_NAME + 8];
    snprintf(name, sizeof name, "%s.svg", stems[f]);
    char *path = r1d_path_join(out_dir, name);
    if (!path) {
      rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
      break;
    }
    rc = draw_field(runs, n_files, chosen->names[f], path, err);
    if (!rc && list) fprintf(list, "%s\n", path);
    free(path);
  }
  if (!rc) {
    char *path = r1d_path_join(out_dir, "index.html");
    if (!path)
      rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
    else
      rc = write_index(runs, n_files, chosen, stems, path, err);
    if (!rc && list) fprintf(list, "%s\n", path);
    free(path);
  }
  for (int r = 0; r < n_files; r++)
    json_decref(runs[r].rows);
  free(chosen);
  free(stems);
  return rc;
}

int r1d_plot_metrics(const char *const *files, const char *const *labels,
                     int n_files, const char *fields, const char *out_dir,
                     r1d_error *err) {
  return plot_metrics(files, labels, n_files, fields, out_dir, NULL, err);
}

/* ---- tables -------------------------------------------------------------- */

/* A number for a table cell: integers whole, ordinary magnitudes with 4
 * significant digits, the rest in exponent form; C locale. */
static void fmt_value(json_t *v, char *out, size_t n) {
  if (json_is_integer(v)) {
    snprintf(out, n, "%lld", (long long)json_integer_value(v));
    return;
  }
  double d = json_number_value(v), a = fabs(d);
  if (d == floor(d) && a < 1e15)
    r1d_svg_fmt_num(d, 'f', 0, out, n);
  else if (a >= 1e6 || a < 1e-3)
    r1d_svg_fmt_num(d, 'e', 2, out, n);
  else if (a >= 1000)
    r1d_svg_fmt_num(d, 'f', 1, out, n);
  else
    r1d_svg_fmt_num(d, 'g', 4, out, n);
}

/* "v +- ci" with v rounded to the precision of ci (two significant digits of
 * ci), the way results with a confidence interval are usually reported. */
static void fmt_with_ci(double v, double ci, char *out, size_t n) {
  int dec = 1 - (int)floor(log10(ci));
  if (dec < 0) dec = 0;
  if (dec > 10) dec = 10;
  char a[64], b[64];
  r1d_svg_fmt_num(v, 'f', dec, a, sizeof a);
  r1d_svg_fmt_num(ci, 'f', dec, b, sizeof b);
  snprintf(out, n, "%s \xC2\xB1 %s", a, b);
}

/* The text of column col in row (malloc'ed; "" when absent). */
static char *cell_string(json_t *row, const char *col) {
  json_t *v = json_object_get(row, col);
  char tmp[160];
  if (!v || json_is_null(v)) return strdup("");
  if (json_is_string(v)) return strdup(json_string_value(v));
  if (json_is_true(v)) return strdup("true");
  if (json_is_false(v)) return strdup("false");
  if (json_is_number(v)) {
    char key[MAX_NAME + 8];
    const char *suf = ci_key(row, col, key, sizeof key);
    double ci = suf ? json_number_value(json_object_get(row, key)) : NAN;
    double d = json_number_value(v);
    if (isfinite(ci) && ci > 0 && isfinite(d))
      fmt_with_ci(d, ci, tmp, sizeof tmp);
    else
      fmt_value(v, tmp, sizeof tmp);
    return strdup(tmp);
  }
  return json_dumps(v, JSON_COMPACT); /* arrays and objects as JSON */
}

/* r1d_plot_table, printing the file written to list (when not NULL). */
static int plot_table(const char *rows_jsonl, const char *columns,
                      const char *out_svg, FILE *list, r1d_error *err) {
  if (!rows_jsonl || !out_svg)
    return r1d_fail(err, R1D_EINVAL,
                    "plot: expected a rows file and an "
                    "output file");
  json_t *rows = NULL;
  int rc = load_jsonl(rows_jsonl, &rows, err);
  if (rc) return rc;
  size_t n_rows = json_array_size(rows);
  name_list *cols = malloc(sizeof *cols);
  char **cells = NULL;
  const char **header = NULL;
  char align[MAX_FIELDS + 1];
  r1d_buf b = {0};
  if (!cols) rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
  if (!rc && n_rows == 0)
    rc = r1d_fail(err, R1D_EFORMAT, "%s: no rows", rows_jsonl);
  if (!rc && n_rows > R1D_SVG_MAX_ROWS)
    rc = r1d_fail(err, R1D_ERANGE, "%s: %zu rows (at most %d)", rows_jsonl,
                  n_rows, R1D_SVG_MAX_ROWS);
  if (!rc && columns) {
    rc = parse_list("--columns", columns, cols, err);
    for (int c = 0; !rc && c < cols->n; c++) {
      int found = 0;
      size_t i;
      json_t *row;
      json_array_foreach(rows, i, row) {
        if (json_object_get(row, cols->names[c])) found = 1;
      }
      if (!found)
        rc = r1d_fail(err, R1D_ENOTFOUND, "%s: no row has a column '%s'",
                      rows_jsonl, cols->names[c]);
    }
  } else if (!rc) {
    cols->n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
      const char *key;
      json_t *v;
      json_object_foreach(row, key, v) {
        if (rc || is_ci_of_present(row, key)) continue;
        if (name_index(cols, key) < 0 && name_add(cols, key, strlen(key)))
          rc = r1d_fail(err, R1D_ERANGE,
                        "%s:%zu: more than %d columns or a key of %d+ "
                        "characters; choose with --columns",
                        rows_jsonl, i + 1, MAX_FIELDS, MAX_NAME);
      }
    }
  }
  if (!rc) {
    cells = calloc(n_rows * (size_t)cols->n, sizeof *cells);
    header = calloc((size_t)cols->n, sizeof *header);
    if (!cells || !header)
      rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
  }
  for (int c = 0; !rc && c < cols->n; c++) {
    int numeric = 1;
    header[c] = cols->names[c];
    for (size_t r = 0; !rc && r < n_rows; r++) {
      json_t *row = json_array_get(rows, r);
      json_t *v = json_object_get(row, cols->names[c]);
      if (v && !json_is_null(v) && !json_is_number(v)) numeric = 0;
      char *s = cell_string(row, cols->names[c]);
      if (!s) rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
      cells[r * (size_t)cols->n + (size_t)c] = s;
    }
    align[c] = numeric ? 'r' : 'l';
  }
  if (!rc) {
    align[cols->n] = 0;
    char *copy = strdup(rows_jsonl);
    r1d_svg_table t = {.title = copy ? basename(copy) : rows_jsonl,
                       .header = header,
                       .cells = (const char *const *)cells,
                       .n_cols = cols->n,
                       .n_rows = (int)n_rows,
                       .align = align};
    rc = r1d_svg_table_render(&t, &b, err);
    free(copy);
  }
  if (!rc) {
    /* the folder of out_svg, made when missing */
    char *copy = strdup(out_svg);
    if (!copy)
      rc = r1d_fail(err, R1D_ENOMEM, "plot: out of memory");
    else
      rc = r1d_mkdir_p(dirname(copy), err);
    free(copy);
  }
  if (!rc) rc = r1d_svg_save(&b, out_svg, err);
  if (!rc && list) fprintf(list, "%s\n", out_svg);
  r1d_buf_free(&b);
  if (cells)
    for (size_t i = 0; i < n_rows * (size_t)cols->n; i++)
      free(cells[i]);
  free(cells);
  free(header);
  free(cols);
  json_decref(rows);
  return rc;
}

int r1d_plot_table(const char *rows_jsonl, const char *columns,
                   const char *out_svg, r1d_error *err) {
  return plot_table(rows_jsonl, columns, out_svg, NULL, err);
}

/* ---- the command --------------------------------------------------------- */

int cmd_plot(int argc, char **argv) {
  static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                       {"fields", required_argument, 0, 'f'},
                                       {"label", required_argument, 0, 'l'},
                                       {"table", required_argument, 0, 't'},
                                       {"columns", required_argument, 0, 'c'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *out = NULL, *fields = NULL, *table = NULL, *columns = NULL;
  const char *labels[R1D_SVG_MAX_SERIES];
  int n_labels = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case 'f': fields = optarg; break;
    case 't': table = optarg; break;
    case 'c': columns = optarg; break;
    case 'l':
      if (n_labels == R1D_SVG_MAX_SERIES)
        return cli_usage_error("--label: at most %d", R1D_SVG_MAX_SERIES);
      labels[n_labels++] = optarg;
      break;
    case 'h': fputs(cmd_plot_help, stdout); return CLI_EXIT_OK;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (!out) return cli_usage_error("plot: --out is required");
  r1d_error err = {0};
  int rc;
  if (table) {
    if (optind < argc)
      return cli_usage_error("plot --table: unexpected argument '%s'",
                             argv[optind]);
    if (fields || n_labels)
      return cli_usage_error("plot --table: --fields and --label are for "
                             "metrics files");
    rc = plot_table(table, columns, out, stdout, &err);
  } else {
    int n_files = argc - optind;
    if (columns)
      return cli_usage_error("plot: --columns goes with --table ROWS.jsonl");
    if (n_files < 1)
      return cli_usage_error("plot: expected METRICS.jsonl files (or --table "
                             "ROWS.jsonl)");
    if (n_files > R1D_SVG_MAX_SERIES)
      return cli_usage_error("plot: %d files (at most %d)", n_files,
                             R1D_SVG_MAX_SERIES);
    if (n_labels > n_files)
      return cli_usage_error("plot: %d labels for %d files", n_labels, n_files);
    const char *lab[R1D_SVG_MAX_SERIES] = {0};
    for (int i = 0; i < n_labels; i++)
      lab[i] = labels[i];
    rc = plot_metrics((const char *const *)(argv + optind), lab, n_files,
                      fields, out, stdout, &err);
  }
  if (rc) return cli_report(&err);
  return CLI_EXIT_OK;
}
