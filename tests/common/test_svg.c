/* test_svg.c - the SVG writer (common/svg.h): 1-2-5 axis ranges checked by
 * hand, tick labels at huge and tiny magnitudes, XML escaping of hostile
 * text, NaN/inf gaps in lines and bands, empty and constant series, tables
 * with odd characters, limits and argument errors. The well-formedness of
 * whole files is checked by tests/cli/test_plot_cli.py with a real XML
 * parser; here the structure is checked by counting elements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/svg.h"

/* ---- helpers ------------------------------------------------------------- */

/* cmocka before 1.1.6 has no assert_double_equal */
#define assert_near(a, b, tol)                                                 \
  do {                                                                         \
    double a_ = (a), b_ = (b);                                                 \
    if (!(fabs(a_ - b_) <= (tol)))                                             \
      fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                      \
  } while (0)

/* The buffer as a NUL-terminated string (owned by b). */
static const char *str(r1d_buf *b) {
  assert_int_equal(r1d_buf_append(b, "", 1), 0);
  b->n--; /* keep the NUL out of the content */
  return b->p;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  size_t l = strlen(needle);
  for (const char *p = strstr(hay, needle); p; p = strstr(p + l, needle))
    n++;
  return n;
}

/* The d="" of the first element starting with `start` (copied into out). */
static void path_d(const char *svg, const char *start, char *out, size_t n) {
  const char *p = strstr(svg, start);
  assert_non_null(p);
  p = strstr(p, " d=\"");
  assert_non_null(p);
  p += 4;
  const char *e = strchr(p, '"');
  assert_non_null(e);
  size_t len = (size_t)(e - p);
  assert_true(len < n);
  memcpy(out, p, len);
  out[len] = 0;
}

/* Checks what every document must be: the XML prolog, one <svg> root with a
 * closing tag at the end, balanced groups and no non-finite numbers. */
static void check_document(const char *s) {
  assert_true(!strncmp(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"", 36));
  assert_int_equal(count(s, "<svg "), 1);
  assert_int_equal(count(s, "</svg>"), 1);
  size_t n = strlen(s);
  assert_true(n > 7 && !strcmp(s + n - 7, "</svg>\n"));
  assert_int_equal(count(s, "<g"), count(s, "</g>"));
  assert_int_equal(count(s, "<text"), count(s, "</text>"));
  assert_null(strstr(s, "nan"));
  assert_null(strstr(s, "inf"));
}

static void render_chart(const r1d_svg_chart *c, r1d_buf *b) {
  r1d_error err = {0};
  int rc = r1d_svg_line_chart(c, b, &err);
  if (rc) fail_msg("chart: %s", err.msg);
  check_document(str(b));
}

/* ---- axes ---------------------------------------------------------------- */

static void expect_axis(double min, double max, int ticks, double lo, double hi,
                        double step, int n, int decimals, int exp) {
  r1d_svg_axis a;
  r1d_error err = {0};
  assert_int_equal(r1d_svg_nice_axis(min, max, ticks, &a, &err), 0);
  assert_near(a.lo, lo, 1e-12 * fmax(1, fabs(lo)));
  assert_near(a.hi, hi, 1e-12 * fmax(1, fabs(hi)));
  assert_near(a.step, step, 1e-12 * step);
  assert_int_equal(a.n_ticks, n);
  assert_int_equal(a.decimals, decimals);
  assert_int_equal(a.exp, exp);
}

static void test_nice_axis_hand_checked(void **state) {
  (void)state;
  /* min, max, ticks -> lo, hi, step, ticks, decimals, exponent */
  expect_axis(0, 1, 6, 0, 1, 0.2, 6, 1, 0);
  expect_axis(3, 97, 6, 0, 100, 20, 6, 0, 0);
  expect_axis(0.013, 0.087, 6, 0, 0.1, 0.02, 6, 2, 0);
  /* step 2 needs 7 ticks (-4..8): one too many, so 5 */
  expect_axis(-3, 7, 6, -5, 10, 5, 4, 0, 0);
  expect_axis(-3, 7, 8, -4, 8, 2, 7, 0, 0);
  expect_axis(1, 3, 8, 1, 3, 0.5, 5, 1, 0);
  expect_axis(0.3, 0.7, 6, 0.3, 0.7, 0.1, 5, 1, 0);
  expect_axis(-0.08, 0.83, 8, -0.2, 1.0, 0.2, 7, 1, 0);
  expect_axis(0, 200, 8, 0, 200, 50, 5, 0, 0);
  /* one point at step 3 is widened to [2.7, 3.3] */
  expect_axis(3, 3, 8, 2.7, 3.3, 0.1, 7, 1, 0);
  /* huge and tiny: a shared power of ten keeps labels short */
  expect_axis(0, 1e12, 6, 0, 1e12, 2e11, 6, 1, 12);
  expect_axis(0, 5e-6, 6, 0, 5e-6, 1e-6, 6, 0, -6);
  expect_axis(-2.5e9, 7.5e9, 6, -5e9, 1e10, 5e9, 4, 1, 10);
}

static void test_nice_axis_constant_and_errors(void **state) {
  (void)state;
  r1d_svg_axis a;
  r1d_error err = {0};
  /* a constant sits mid-range */
  assert_int_equal(r1d_svg_nice_axis(5, 5, 6, &a, &err), 0);
  assert_true(a.lo < 5 && a.hi > 5);
  assert_near((a.lo + a.hi) / 2, 5, 1e-12);
  assert_int_equal(r1d_svg_nice_axis(0, 0, 6, &a, &err), 0);
  assert_near(a.lo, -1, 1e-12);
  assert_near(a.hi, 1, 1e-12);
  assert_int_equal(r1d_svg_nice_axis(-7e-20, -7e-20, 6, &a, &err), 0);
  assert_true(a.lo < -7e-20 && a.hi > -7e-20);
  assert_int_equal(r1d_svg_nice_axis(1e300, 1e300, 6, &a, &err), 0);
  assert_true(a.lo < 1e300 && a.hi > 1e300);

  assert_int_equal(r1d_svg_nice_axis(NAN, 1, 6, &a, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "not finite"));
  assert_int_equal(r1d_svg_nice_axis(0, INFINITY, 6, &a, &err), R1D_EINVAL);
  assert_int_equal(r1d_svg_nice_axis(2, 1, 6, &a, &err), R1D_EINVAL);
  assert_int_equal(r1d_svg_nice_axis(0, 1, 2, &a, &err), R1D_EINVAL);
  assert_int_equal(r1d_svg_nice_axis(-0.01, 0.01, 3, &a, &err), 0);
  assert_int_equal(a.n_ticks, 3);
  assert_int_equal(r1d_svg_nice_axis(0, 1, R1D_SVG_MAX_TICKS + 1, &a, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_svg_nice_axis(-1.5e308, 1.5e308, 6, &a, &err),
                   R1D_ERANGE);
}

/* Whatever the range: it is covered, the step is 1, 2 or 5 times a power of
 * ten, the ticks fit, and lo and hi are multiples of the step. */
static void test_nice_axis_properties(void **state) {
  (void)state;
  uint64_t s = 12345;
  for (int i = 0; i < 5000; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    double u1 = (double)(s >> 11) / 9007199254740992.0;
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    double u2 = (double)(s >> 11) / 9007199254740992.0;
    double scale = pow(10, (int)(u1 * 30) - 15);
    double a = (u1 - 0.3) * scale, b = a + u2 * scale * (i % 3 ? 1 : 1e-3);
    int ticks = 3 + i % 10;
    r1d_svg_axis ax;
    r1d_error err = {0};
    assert_int_equal(r1d_svg_nice_axis(a, b, ticks, &ax, &err), 0);
    assert_true(ax.lo <= a && ax.hi >= b);
    assert_true(ax.n_ticks >= 2 && ax.n_ticks <= ticks);
    double e = floor(log10(ax.step) + 1e-9);
    double m = ax.step / pow(10, e);
    assert_true(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9);
    double k = ax.lo / ax.step;
    assert_true(fabs(k - round(k)) < 1e-6);
    assert_near(ax.lo + (ax.n_ticks - 1) * ax.step, ax.hi,
                1e-9 * fmax(fabs(ax.hi), ax.step));
  }
}

static void label_of(double min, double max, int ticks, double v,
                     const char *want) {
  r1d_svg_axis a;
  assert_int_equal(r1d_svg_nice_axis(min, max, ticks, &a, NULL), 0);
  char lab[64];
  r1d_svg_tick_label(&a, v, lab, sizeof lab);
  assert_string_equal(lab, want);
}

static void test_tick_labels(void **state) {
  (void)state;
  label_of(0, 1, 6, 0.6000000000000001, "0.6");
  label_of(0, 1, 6, 0, "0.0");
  label_of(0, 1, 6, -1e-17, "0.0"); /* rounding noise is not "-0.0" */
  label_of(-3, 7, 8, -4, "-4");
  label_of(0, 0.1, 6, 0.06, "0.06");
  label_of(0, 1e12, 6, 6e11, "0.6"); /* x 1e12 */
  label_of(0, 5e-6, 6, 3e-6, "3");   /* x 1e-6 */
  label_of(-2.5e9, 7.5e9, 6, -5e9, "-0.5");
  label_of(0, 2000, 6, 1600, "1600");
}

/* ---- text ---------------------------------------------------------------- */

static void test_escape(void **state) {
  (void)state;
  r1d_buf b = {0};
  assert_int_equal(r1d_svg_escape(&b, "a&b<c>\"d'e"), 0);
  assert_string_equal(str(&b), "a&amp;b&lt;c&gt;&quot;d&apos;e");
  b.n = 0;
  /* tab and newline stay; other C0 controls, bad UTF-8 and U+FFFF become
   * U+FFFD (XML 1.0 has no way to write them); good UTF-8 is kept */
  assert_int_equal(r1d_svg_escape(&b, "t\tn\nx\x01y\x1b"
                                      "z\xFF"
                                      "\xC3\xA9\xE4\xB8\xAD\xEF\xBF\xBF!"),
                   0);
  assert_string_equal(str(&b), "t\tn\nx\xEF\xBF\xBDy\xEF\xBF\xBD"
                               "z\xEF\xBF\xBD"
                               "\xC3\xA9\xE4\xB8\xAD\xEF\xBF\xBD!");
  b.n = 0;
  assert_int_equal(r1d_svg_escape(&b, ""), 0);
  assert_int_equal(b.n, 0);
  assert_int_equal(r1d_svg_text_chars("\xC3\xA9\xE4\xB8\xAD"
                                      "a"),
                   3);
  assert_int_equal(r1d_svg_text_chars("a\xFF\xFE"), 3);
  assert_int_equal(r1d_svg_text_chars(""), 0);
  r1d_buf_free(&b);
}

static void test_fmt_num_c_locale(void **state) {
  (void)state;
  char s[64];
  r1d_svg_fmt_num(0.5, 'g', 4, s, sizeof s);
  assert_string_equal(s, "0.5");
  r1d_svg_fmt_num(1234.5678, 'f', 1, s, sizeof s);
  assert_string_equal(s, "1234.6");
  r1d_svg_fmt_num(-1.5e-7, 'e', 2, s, sizeof s);
  assert_string_equal(s, "-1.50e-07");
  r1d_svg_fmt_num(NAN, 'g', 4, s, sizeof s);
  assert_string_equal(s, "nan");
  r1d_svg_fmt_num(-INFINITY, 'g', 4, s, sizeof s);
  assert_string_equal(s, "-inf");
  /* a ',' locale must not leak into the file (where one is installed) */
  const char *locales[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE.utf8"};
  for (int i = 0; i < 3; i++) {
    if (!setlocale(LC_NUMERIC, locales[i])) continue;
    r1d_svg_fmt_num(0.25, 'f', 2, s, sizeof s);
    setlocale(LC_NUMERIC, "C");
    assert_string_equal(s, "0.25");
    break;
  }
}

/* ---- charts -------------------------------------------------------------- */

static void test_chart_structure_and_escaping(void **state) {
  (void)state;
  double x[] = {1, 2, 3, 4}, y1[] = {0.1, 0.4, 0.5, 0.7},
         y2[] = {0.2, 0.2, 0.3, 0.3}, ci[] = {0.05, 0.05, 0.04, 0.03};
  r1d_svg_series s[] = {
      {.label = "R1-Zero <run> & \"co\"", .x = x, .y = y1, .n = 4},
      {.label = "cold start", .x = x, .y = y2, .ci = ci, .n = 4},
  };
  r1d_svg_chart c = {.title = "pass@1 <eval> & 'co'",
                     .x_label = "step",
                     .y_label = "eval_pass1",
                     .series = s,
                     .n_series = 2,
                     .x_integer = 1};
  r1d_buf b = {0};
  render_chart(&c, &b);
  const char *svg = str(&b);
  assert_int_equal(count(svg, "<g class=\"series\">"), 2);
  assert_int_equal(count(svg, "<path class=\"line\""), 2);
  assert_int_equal(count(svg, "<path class=\"band\""), 1);
  assert_int_equal(count(svg, "<circle"), 8); /* short series: every point */
  assert_int_equal(count(svg, "<g class=\"entry\">"), 2);
  assert_non_null(strstr(svg, "<title>pass@1 &lt;eval&gt; &amp; &apos;co&apos;"
                              "</title>"));
  assert_non_null(strstr(svg, ">R1-Zero &lt;run&gt; &amp; &quot;co&quot;<"));
  assert_null(strstr(svg, "<run>"));
  assert_non_null(strstr(svg, ">eval_pass1</text>"));
  assert_non_null(strstr(svg, ">step</text>"));
  /* palette colours by position */
  assert_non_null(strstr(svg, r1d_svg_color(0)));
  assert_non_null(strstr(svg, r1d_svg_color(1)));
  /* x_integer: ticks at 1, 2, 3, 4, never 1.5 */
  assert_null(strstr(svg, ">1.5<"));
  /* the same input gives the same bytes */
  r1d_buf b2 = {0};
  render_chart(&c, &b2);
  assert_int_equal(b.n, b2.n);
  assert_memory_equal(b.p, b2.p, b.n);
  /* an explicit colour overrides the position */
  s[0].color = 4;
  b2.n = 0;
  render_chart(&c, &b2);
  assert_non_null(strstr(str(&b2), r1d_svg_color(3)));
  r1d_buf_free(&b);
  r1d_buf_free(&b2);
}

static void test_chart_nan_gaps(void **state) {
  (void)state;
  double x[] = {1, 2, 3, 4, 5, 6, 7, 8};
  double y[] = {1, 2, NAN, 4, 5, INFINITY, 7, 8};
  double ci[] = {0.1, 0.1, 0.1, NAN, 0.1, 0.1, 0.1, -1};
  r1d_svg_series s = {.label = "gappy", .x = x, .y = y, .ci = ci, .n = 8};
  r1d_svg_chart c = {.title = "gaps", .series = &s, .n_series = 1};
  r1d_buf b = {0};
  render_chart(&c, &b);
  char d[4096];
  path_d(str(&b), "<path class=\"line\"", d, sizeof d);
  /* three runs: 1-2, 4-5, 7-8 */
  assert_int_equal(count(d, "M"), 3);
  assert_int_equal(count(d, "L"), 3);
  /* the band breaks where y or ci is bad: 1-2, 5 (alone), 7 (alone) */
  path_d(str(&b), "<path class=\"band\"", d, sizeof d);
  assert_int_equal(count(d, "M"), 3);
  assert_int_equal(count(d, "Z"), 3);
  /* a point between two gaps gets a bigger marker, since no line shows it */
  double y2[] = {1, NAN, 3, NAN, 5, 6, NAN, NAN};
  r1d_svg_series s2 = {.label = "lone", .x = x, .y = y2, .n = 8};
  c.series = &s2;
  b.n = 0;
  render_chart(&c, &b);
  assert_int_equal(count(str(&b), "r=\"3.5\""), 2);
  path_d(str(&b), "<path class=\"line\"", d, sizeof d);
  assert_int_equal(count(d, "M"), 1);
  /* x may be bad too */
  double x3[] = {1, NAN, 3, 4};
  double y3[] = {1, 2, 3, 4};
  r1d_svg_series s3 = {.label = "x", .x = x3, .y = y3, .n = 4};
  c.series = &s3;
  b.n = 0;
  render_chart(&c, &b);
  path_d(str(&b), "<path class=\"line\"", d, sizeof d);
  assert_int_equal(count(d, "M"), 1);
  r1d_buf_free(&b);
}

static void test_chart_empty_and_constant(void **state) {
  (void)state;
  double x[] = {1, 2, 3}, y[] = {8, 8, 8}, bad[] = {NAN, NAN, NAN};
  r1d_svg_series s[] = {
      {.label = "empty", .n = 0},
      {.label = "all NaN", .x = x, .y = bad, .n = 3},
  };
  r1d_svg_chart c = {.title = "nothing", .series = s, .n_series = 2};
  r1d_buf b = {0};
  render_chart(&c, &b);
  /* no lines, but the legend names both and says there is no data */
  assert_int_equal(count(str(&b), "<g class=\"series\">"), 0);
  assert_int_equal(count(str(&b), "<g class=\"entry\">"), 2);
  assert_non_null(strstr(str(&b), ">no data<"));
  /* no series at all */
  r1d_svg_chart none = {0};
  b.n = 0;
  render_chart(&none, &b);
  assert_null(strstr(str(&b), "<g class=\"legend\">"));
  /* a constant: a horizontal line half-way up the plot */
  r1d_svg_series k = {.label = "flat", .x = x, .y = y, .n = 3};
  r1d_svg_chart flat = {.series = &k, .n_series = 1};
  b.n = 0;
  render_chart(&flat, &b);
  char d[512];
  path_d(str(&b), "<path class=\"line\"", d, sizeof d);
  double x0, y0, x1, y1, x2, y2;
  assert_int_equal(
      sscanf(d, "M%lf,%lf L%lf,%lf L%lf,%lf", &x0, &y0, &x1, &y1, &x2, &y2), 6);
  assert_true(x0 < x1 && x1 < x2);
  assert_near(y0, y1, 1e-9);
  assert_near(y1, y2, 1e-9);
  /* default 440 high, top 16, bottom 38: the middle of the plot */
  assert_near(y0, 16 + (440 - 16 - 38) / 2.0, 0.01);
  r1d_buf_free(&b);
}

static void test_chart_magnitudes(void **state) {
  (void)state;
  double x[] = {0, 1e7, 2e7}, big[] = {1e12, 1.5e12, 3e12},
         tiny[] = {1e-9, 3e-9, 2e-9};
  r1d_svg_series s = {.label = "big", .x = x, .y = big, .n = 3};
  r1d_svg_chart c = {.series = &s, .n_series = 1};
  r1d_buf b = {0};
  render_chart(&c, &b);
  assert_non_null(strstr(str(&b), "1e12<"));
  assert_non_null(strstr(str(&b), "1e7<"));
  assert_null(strstr(str(&b), "000000")); /* no long digit strings */
  s.y = tiny;
  b.n = 0;
  render_chart(&c, &b);
  assert_non_null(strstr(str(&b), "1e-9<"));
  assert_null(strstr(str(&b), "0.000"));
  /* magnitudes near the double range still give a file */
  double hx[] = {1, 2}, hy[] = {-1e307, 1e307};
  r1d_svg_series h = {.label = "edge", .x = hx, .y = hy, .n = 2};
  c.series = &h;
  b.n = 0;
  render_chart(&c, &b);
  r1d_buf_free(&b);
}

/* A long run is reduced per pixel column (first, min, max, last): the file
 * stays small and a one-step spike still reaches its height. */
static void test_chart_long_series_decimated(void **state) {
  (void)state;
  enum { N = 100000 };
  double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  assert_non_null(x);
  assert_non_null(y);
  for (int i = 0; i < N; i++) {
    x[i] = i + 1;
    y[i] = sin(i * 0.01);
  }
  y[N / 2] = 10; /* the y axis is then [-2, 10]: the spike is at the top */
  r1d_svg_series s = {.label = "long", .x = x, .y = y, .n = N};
  r1d_svg_chart c = {.series = &s, .n_series = 1, .x_integer = 1};
  r1d_buf b = {0};
  render_chart(&c, &b);
  assert_true(b.n < 120000);
  assert_int_equal(count(str(&b), "<circle"), 0); /* no markers on long runs */
  static char d[200000];
  path_d(str(&b), "<path class=\"line\"", d, sizeof d);
  assert_int_equal(count(d, "M"), 1);
  int pts = count(d, "L") + 1;
  assert_true(pts > 600 && pts <= 4 * 700);
  assert_non_null(strstr(d, ",16 ")); /* the plot's top edge: y = 10 */
  r1d_buf_free(&b);
  free(x);
  free(y);
}

static void test_chart_limits(void **state) {
  (void)state;
  double x[] = {1}, y[] = {1};
  r1d_svg_series s[R1D_SVG_MAX_SERIES + 1];
  for (int i = 0; i <= R1D_SVG_MAX_SERIES; i++)
    s[i] = (r1d_svg_series){.label = "s", .x = x, .y = y, .n = 1};
  r1d_svg_chart c = {.series = s, .n_series = R1D_SVG_MAX_SERIES + 1};
  r1d_buf b = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_svg_line_chart(&c, &b, &err), R1D_ERANGE);
  assert_non_null(strstr(err.msg, "series"));
  c.n_series = R1D_SVG_MAX_SERIES; /* the maximum itself is fine */
  assert_int_equal(r1d_svg_line_chart(&c, &b, &err), 0);
  c.n_series = 1;
  s[0].n = (size_t)R1D_SVG_MAX_POINTS + 1; /* refused before any read */
  assert_int_equal(r1d_svg_line_chart(&c, &b, &err), R1D_ERANGE);
  s[0] = (r1d_svg_series){.label = "s", .x = NULL, .y = y, .n = 1};
  assert_int_equal(r1d_svg_line_chart(&c, &b, &err), R1D_EINVAL);
  c.n_series = 1;
  s[0].x = x;
  c.width = 50; /* no room for a plot */
  assert_int_equal(r1d_svg_line_chart(&c, &b, &err), R1D_EINVAL);
  assert_int_equal(r1d_svg_line_chart(NULL, &b, &err), R1D_EINVAL);
  r1d_buf_free(&b);
}

/* ---- tables -------------------------------------------------------------- */

static void test_table(void **state) {
  (void)state;
  char long_cell[200];
  memset(long_cell, 'a', sizeof long_cell - 5);
  memcpy(long_cell + sizeof long_cell - 5, "tail", 5);
  const char *header[] = {"stage", "pass1 <%>", "note"};
  const char *cells[] = {
      "r1-zero",
      "0.41 \xC2\xB1 0.05",
      "a & b",
      "<script>x</script>",
      "0.5",
      "\"quoted\" 'single'",
      "bad\xFF\x01utf8",
      NULL,
      "\xC3\xA9t\xC3\xA9 \xE4\xB8\xAD",
      "x",
      "1",
      long_cell,
      "y",
      "2",
      "",
  };
  r1d_svg_table t = {.title = "results & co",
                     .header = header,
                     .cells = cells,
                     .n_cols = 3,
                     .n_rows = 5,
                     .align = "lrl"};
  r1d_buf b = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_svg_table_render(&t, &b, &err), 0);
  const char *svg = str(&b);
  check_document(svg);
  assert_non_null(strstr(svg, ">results &amp; co</text>"));
  assert_non_null(strstr(svg, ">pass1 &lt;%&gt;</text>"));
  assert_non_null(strstr(svg, ">&lt;script&gt;x&lt;/script&gt;</text>"));
  assert_non_null(strstr(svg, ">&quot;quoted&quot; &apos;single&apos;<"));
  assert_non_null(strstr(svg, ">0.41 \xC2\xB1 0.05<"));
  assert_non_null(strstr(svg, ">bad\xEF\xBF\xBD\xEF\xBF\xBDutf8<"));
  assert_non_null(strstr(svg, "\xC3\xA9t\xC3\xA9 \xE4\xB8\xAD"));
  assert_null(strstr(svg, "<script>"));
  /* header + 5 rows of 3 cells, plus the title */
  assert_int_equal(count(svg, "<text"), 6 * 3 + 1);
  /* rows 2 and 4 are shaded */
  assert_int_equal(count(svg, "<rect class=\"zebra\""), 2);
  /* the long cell is cut to its end, the whole text in a tooltip */
  assert_non_null(strstr(svg, "\xE2\x80\xA6"
                              "aaaa"));
  assert_non_null(strstr(svg, "tail</text>"));
  assert_non_null(strstr(svg, long_cell));
  /* the middle column is right-aligned */
  assert_int_equal(count(svg, "text-anchor=\"end\""), 6);
  /* widths from text: "<script>x</script>" is 18 characters, so column 2
   * starts at 10 + 18 * 7.3 + 16 = 157.4 and its right edge (ends the
   * right-aligned text, 8 in) at 157.4 + 11 * 7.3 + 16 - 8 = 245.7
   * ("0.41 ± 0.05" is 11 characters) */
  assert_non_null(strstr(svg, "x=\"245.7\""));
  r1d_buf_free(&b);
}

static void test_table_errors(void **state) {
  (void)state;
  const char *header[] = {"a", "b"};
  const char *cells[] = {"1", "2"};
  r1d_svg_table t = {
      .header = header, .cells = cells, .n_cols = 2, .n_rows = 1, .align = "l"};
  r1d_buf b = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_svg_table_render(&t, &b, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "align"));
  t.align = NULL;
  t.n_cols = 0;
  assert_int_equal(r1d_svg_table_render(&t, &b, &err), R1D_EINVAL);
  t.n_cols = R1D_SVG_MAX_COLUMNS + 1;
  assert_int_equal(r1d_svg_table_render(&t, &b, &err), R1D_ERANGE);
  t.n_cols = 2;
  t.n_rows = R1D_SVG_MAX_ROWS + 1;
  assert_int_equal(r1d_svg_table_render(&t, &b, &err), R1D_ERANGE);
  /* no rows: just the header */
  t.n_rows = 0;
  b.n = 0;
  assert_int_equal(r1d_svg_table_render(&t, &b, &err), 0);
  check_document(str(&b));
  assert_int_equal(count(str(&b), "<text"), 2);
  r1d_buf_free(&b);
}

/* ---- output -------------------------------------------------------------- */

static void test_save_and_fwrite(void **state) {
  (void)state;
  r1d_buf b = {0};
  assert_int_equal(r1d_buf_append(&b, "<svg/>", 6), 0);
  char path[] = "/tmp/r1d_test_svg_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  r1d_error err = {0};
  assert_int_equal(r1d_svg_save(&b, path, &err), 0);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char got[16] = {0};
  assert_int_equal(fread(got, 1, sizeof got, f), 6);
  fclose(f);
  assert_string_equal(got, "<svg/>");
  unlink(path);
  assert_int_equal(r1d_svg_save(&b, "/nonexistent-dir/x.svg", &err), R1D_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent-dir/x.svg"));
  FILE *tf = tmpfile();
  assert_non_null(tf);
  assert_int_equal(r1d_svg_fwrite(&b, tf, &err), 0);
  assert_int_equal(ftell(tf), 6);
  fclose(tf);
  r1d_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nice_axis_hand_checked),
      cmocka_unit_test(test_nice_axis_constant_and_errors),
      cmocka_unit_test(test_nice_axis_properties),
      cmocka_unit_test(test_tick_labels),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_fmt_num_c_locale),
      cmocka_unit_test(test_chart_structure_and_escaping),
      cmocka_unit_test(test_chart_nan_gaps),
      cmocka_unit_test(test_chart_empty_and_constant),
      cmocka_unit_test(test_chart_magnitudes),
      cmocka_unit_test(test_chart_long_series_decimated),
      cmocka_unit_test(test_chart_limits),
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_table_errors),
      cmocka_unit_test(test_save_and_fwrite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
