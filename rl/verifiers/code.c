/* code.c - the code checker (verify.h): the program in the answer runs once
 * per stdin/stdout test under `python3 -I -S -B` in the sandbox
 * (rl/sandbox.h); the share of tests whose normalised stdout matches is the
 * score. A broken program is a wrong answer; only a malformed checker or a
 * sandbox that cannot start (no python3) is an error. */
#include "verify.h"

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../sandbox.h"

#define DEFAULT_TIME_LIMIT_S 5.0
#define MAX_TIME_LIMIT_S 60.0
#define PROGRAM_FILE "main.py"

/* ---- the program ------------------------------------------------------ */

static int python_info(const char *s, size_t n) {
  while (n && isspace((unsigned char)*s))
    s++, n--;
  size_t w = 0;
  while (w < n && !isspace((unsigned char)s[w]))
    w++;
  if (w == 0) return 1; /* a bare ``` */
  const char *ok[] = {"python", "python3", "py"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strlen(ok[i]) == w && !strncasecmp(s, ok[i], w)) return 1;
  return 0;
}

/* The last ```python / ``` block (an unclosed last block runs to the end:
 * the completion may have been cut after the code), else the whole answer.
 * Blocks in other languages (```text with sample output) are skipped.
 * Returns a malloc'd copy, NULL without memory. */
static char *extract_program(const char *a) {
  const char *best = NULL, *best_end = NULL;
  const char *body = NULL;
  size_t fence = 0;
  int in_block = 0, wanted = 0;
  for (const char *line = a; *line;) {
    const char *nl = strchr(line, '\n');
    const char *end = nl ? nl : line + strlen(line);
    const char *s = line;
    while (s < end && (*s == ' ' || *s == '\t'))
      s++;
    size_t ticks = 0;
    while (s + ticks < end && s[ticks] == '`')
      ticks++;
    if (!in_block && ticks >= 3 &&
        !memchr(s + ticks, '`', (size_t)(end - s - ticks))) {
      in_block = 1;
      fence = ticks;
      wanted = python_info(s + ticks, (size_t)(end - s - ticks));
      body = nl ? nl + 1 : end;
    } else if (in_block && ticks >= fence) {
      const char *r = s + ticks;
      while (r < end && isspace((unsigned char)*r))
        r++;
      if (r == end) {
        in_block = 0;
        if (wanted) best = body, best_end = line;
      }
    }
    if (!nl) break;
    line = nl + 1;
  }
  if (in_block && wanted) best = body, best_end = body + strlen(body);
  if (!best) best = a, best_end = a + strlen(a);
  if (best_end < best) best_end = best;
  size_t n = (size_t)(best_end - best);
  char *p = malloc(n + 1);
  if (!p) return NULL;
  memcpy(p, best, n);
  p[n] = '\0';
  return p;
}

/* ---- comparing outputs --------------------------------------------------- */

/* snprintf for the detail line, where cutting is intended. */
__attribute__((format(printf, 3, 4))) static void line_fmt(char *d, size_t cap,
                                                           const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  vsnprintf(d, cap, f, ap);
  va_end(ap);
}

/* Trailing white space of each line and trailing blank lines removed, in
 * place; returns the new length. */
static size_t normalise(char *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i <= n;) {
    size_t e = i;
    while (e < n && s[e] != '\n')
      e++;
    size_t t = e;
    while (t > i && isspace((unsigned char)s[t - 1]))
      t--;
    memmove(s + w, s + i, t - i);
    w += t - i;
    if (e < n) s[w++] = '\n';
    i = e + 1;
  }
  while (w && s[w - 1] == '\n')
    w--;
  s[w] = '\0';
  return w;
}

/* Line `k` (0-based) of s as [*b, *e); 0 when s has fewer lines. */
static int nth_line(const char *s, size_t k, const char **b, const char **e) {
  const char *p = s;
  for (size_t i = 0; i < k; i++) {
    p = strchr(p, '\n');
    if (!p) return 0;
    p++;
  }
  *b = p;
  const char *nl = strchr(p, '\n');
  *e = nl ? nl : p + strlen(p);
  return 1;
}

/* A short quoted, escaped rendering of [b, e) for the detail line. */
static void quote(char *dst, size_t cap, const char *b, const char *e) {
  size_t w = 0;
  if (!b) {
    snprintf(dst, cap, "end of output");
    return;
  }
  dst[w++] = '\'';
  for (const char *p = b; p < e && w + 6 < cap; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch == '\n')
      dst[w++] = '\\', dst[w++] = 'n';
    else if (ch < 0x20 || ch == 0x7f)
      dst[w++] = '?';
    else
      dst[w++] = (char)ch;
    if (p + 1 < e && w + 6 >= cap) {
      memcpy(dst + w, "...", 3);
      w += 3;
      break;
    }
  }
  dst[w++] = '\'';
  dst[w] = '\0';
}

static void describe_mismatch(char *d, size_t cap, const char *head,
                              const char *want, const char *got) {
  char a[56], b[56];
  if (!strchr(want, '\n') && !strchr(got, '\n')) {
    quote(a, sizeof a, want, want + strlen(want));
    quote(b, sizeof b, got, got + strlen(got));
    line_fmt(d, cap, "%s: expected %s, got %s", head, a, b);
    return;
  }
  for (size_t k = 0;; k++) {
    const char *wb = NULL, *we = NULL, *gb = NULL, *ge = NULL;
    int hw = nth_line(want, k, &wb, &we), hg = nth_line(got, k, &gb, &ge);
    if (!hw && !hg) break;
    if (hw && hg && we - wb == ge - gb && !memcmp(wb, gb, (size_t)(we - wb)))
      continue;
    quote(a, sizeof a, hw ? wb : NULL, we);
    quote(b, sizeof b, hg ? gb : NULL, ge);
    line_fmt(d, cap, "%s: line %zu: expected %s, got %s", head, k + 1, a, b);
    return;
  }
  line_fmt(d, cap, "%s: output differs", head);
}

/* The last non-blank line of stderr (the exception, for Python). */
static void last_line(char *dst, size_t cap, const char *s, size_t n) {
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  size_t b = n;
  while (b && s[b - 1] != '\n')
    b--;
  if (b == n) {
    snprintf(dst, cap, "(no stderr)");
    return;
  }
  size_t len = n - b < cap - 1 ? n - b : cap - 1;
  memcpy(dst, s + b, len);
  dst[len] = '\0';
}

static const char *signal_hint(int sig) {
  switch (sig) {
  case SIGKILL: return "memory limit?";
  case SIGSEGV: return "segmentation fault";
  case SIGABRT: return "aborted";
  case SIGBUS: return "bus error";
  case SIGFPE: return "arithmetic error";
  case SIGXFSZ: return "file size limit";
  default: return "";
  }
}

/* ---- the checker --------------------------------------------------------- */

/* python3 on the daemon's PATH, as an absolute path (the sandbox's own PATH
 * is minimal). NULL when there is none. */
static char *find_python(void) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path; *p;) {
    const char *end = strchr(p, ':');
    size_t dl = end ? (size_t)(end - p) : strlen(p);
    if (dl && *p == '/') {
      char *cand = malloc(dl + sizeof "/python3");
      if (!cand) return NULL;
      memcpy(cand, p, dl);
      memcpy(cand + dl, "/python3", sizeof "/python3");
      struct stat sb;
      if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) &&
          access(cand, X_OK) == 0)
        return cand;
      free(cand);
    }
    if (!end) break;
    p = end + 1;
  }
  return NULL;
}

static int check_spec(const json_t *checker, double *time_limit,
                      r1d_error *err) {
  if (!json_is_object(checker))
    return r1d_fail(err, R1D_EINVAL, "code checker: not a JSON object");
  const json_t *type = json_object_get(checker, "type");
  if (type &&
      (!json_is_string(type) || strcmp(json_string_value(type), "code") != 0))
    return r1d_fail(err, R1D_EINVAL, "code checker: type is not \"code\"");
  const json_t *lang = json_object_get(checker, "language");
  if (lang && (!json_is_string(lang) ||
               (strcmp(json_string_value(lang), "python") != 0 &&
                strcmp(json_string_value(lang), "python3") != 0)))
    return r1d_fail(
        err, R1D_EINVAL, "code checker: language %s is not supported (python)",
        json_is_string(lang) ? json_string_value(lang) : "(not a string)");
  const json_t *tests = json_object_get(checker, "tests");
  if (!json_is_array(tests) || json_array_size(tests) == 0)
    return r1d_fail(err, R1D_EINVAL,
                    "code checker: tests must be a non-empty array");
  size_t i;
  const json_t *t;
  json_array_foreach(tests, i, t) {
    const json_t *in = json_object_get(t, "input");
    if (!json_is_object(t) || !json_is_string(json_object_get(t, "output")) ||
        (in && !json_is_string(in)))
      return r1d_fail(err, R1D_EINVAL,
                      "code checker: test %zu needs string \"output\" (and "
                      "optional string \"input\")",
                      i + 1);
  }
  *time_limit = DEFAULT_TIME_LIMIT_S;
  const json_t *tl = json_object_get(checker, "time_limit_s");
  if (tl) {
    double v = json_is_number(tl) ? json_number_value(tl) : -1;
    if (!(v > 0 && v <= MAX_TIME_LIMIT_S))
      return r1d_fail(err, R1D_EINVAL,
                      "code checker: time_limit_s must be in (0, %g]",
                      MAX_TIME_LIMIT_S);
    *time_limit = v;
  }
  return 0;
}

int r1d_verify_code(const char *answer, const json_t *checker, r1d_verdict *out,
                    r1d_error *err) {
  if (!answer || !out)
    return r1d_fail(err, R1D_EINVAL, "code checker: bad arguments");
  memset(out, 0, sizeof *out);
  double tl;
  int rc = check_spec(checker, &tl, err);
  if (rc) return rc;
  const json_t *tests = json_object_get(checker, "tests");
  size_t total = json_array_size(tests);

  char *python = find_python();
  if (!python)
    return r1d_fail(err, R1D_EIO,
                    "code checker: no python3 interpreter on PATH");
  char *program = extract_program(answer);
  if (!program) {
    free(python);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  r1d_sandbox_limits lim;
  r1d_sandbox_limits_default(&lim);
  lim.cpu_s = (long)ceil(tl) + 1;
  lim.wall_s = tl * 2 + 1;
  const char *argv[] = {python, "-I", "-S", "-B", PROGRAM_FILE, NULL};
  r1d_sandbox_file file = {PROGRAM_FILE, program, strlen(program)};

  size_t passed = 0;
  char *want = NULL;
  for (size_t i = 0; i < total && rc == 0; i++) {
    const json_t *t = json_array_get(tests, i);
    const json_t *in = json_object_get(t, "input");
    const char *input = in ? json_string_value(in) : "";
    size_t in_len = in ? json_string_length(in) : 0;
    r1d_sandbox_result res;
    rc = r1d_sandbox_run(&lim, argv, &file, 1, input, in_len, &res, err);
    if (rc) {
      if (rc != R1D_ENOMEM) {
        char why[sizeof err->msg];
        line_fmt(why, sizeof why, "%s", err ? err->msg : "");
        rc =
            r1d_fail(err, R1D_EIO, "code checker: cannot run python3: %s", why);
      }
      break;
    }
    char head[40], msg[sizeof out->detail];
    line_fmt(head, sizeof head, "test %zu/%zu", i + 1, total);
    msg[0] = '\0';
    if (res.timed_out) {
      line_fmt(msg, sizeof msg, "%s: timed out after %.1f s", head, lim.wall_s);
    } else if (res.cpu_limit) {
      line_fmt(msg, sizeof msg, "%s: CPU time limit exceeded (%ld s)", head,
               lim.cpu_s);
    } else if (res.output_truncated) {
      line_fmt(msg, sizeof msg, "%s: output over %zu bytes", head,
               lim.max_output);
    } else if (res.term_signal) {
      line_fmt(msg, sizeof msg, "%s: killed by signal %d (%s)", head,
               res.term_signal, signal_hint(res.term_signal));
    } else if (res.exit_code != 0) {
      char line[100];
      last_line(line, sizeof line, res.err, res.err_len);
      line_fmt(msg, sizeof msg, "%s: exit code %d: %s", head, res.exit_code,
               line);
    } else {
      const json_t *o = json_object_get(t, "output");
      free(want);
      want = strdup(json_string_value(o));
      if (!want) {
        r1d_sandbox_result_free(&res);
        rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
        break;
      }
      size_t wl = normalise(want, strlen(want));
      size_t gl = normalise(res.out, res.out_len);
      if (wl == gl && memcmp(want, res.out, wl) == 0)
        passed++;
      else
        describe_mismatch(msg, sizeof msg, head, want, res.out);
    }
    if (msg[0] && !out->detail[0])
      line_fmt(out->detail, sizeof out->detail, "%s", msg);
    r1d_sandbox_result_free(&res);
  }
  free(want);
  free(program);
  free(python);
  if (rc) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  out->score = (double)passed / (double)total;
  out->correct = passed == total;
  if (out->correct)
    line_fmt(out->detail, sizeof out->detail, "passed %zu/%zu tests", passed,
             total);
  return 0;
}
