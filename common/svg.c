/* svg.c - line charts and tables as standalone SVG 1.1 (see svg.h).
 *
 * Layout is estimated from character counts (no font metrics on a headless
 * box): about 0.6 em per character, exact for the monospace table font and
 * generous for the chart's sans-serif. Coordinates are printed with integer
 * arithmetic and other numbers through r1d_svg_fmt_num, so the file is the
 * same under any LC_NUMERIC. Appends go through a writer with a sticky error
 * so that one check at the end covers every append of a document. */
#include "svg.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "file.h"
#include "utf8.h"

/* Okabe-Ito-like palette: distinguishable with common colour blindness. */
static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73",
                                      "#cc79a7", "#e69f00", "#56b4e9",
                                      "#7f7f7f", "#000000"};
enum { N_PALETTE = (int)(sizeof palette / sizeof palette[0]) };

const char *r1d_svg_color(int i) {
  if (i < 0) i = -i;
  return palette[i % N_PALETTE];
}

/* ---- the writer ---------------------------------------------------------- */

typedef struct writer {
  r1d_buf *b;
  int rc; /* first failure; later appends do nothing */
} writer;

static void w_raw(writer *w, const char *s, size_t n) {
  if (!w->rc && r1d_buf_append(w->b, s, n)) w->rc = R1D_ENOMEM;
}

static void w_str(writer *w, const char *s) {
  w_raw(w, s, strlen(s));
}

/* printf for markup and integers only: %d and %s are locale-independent;
 * doubles go through w_px / w_num. */
__attribute__((format(printf, 2, 3))) static void w_fmt(writer *w,
                                                        const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    if (!w->rc) w->rc = R1D_EINVAL; /* our own format strings are short */
    return;
  }
  w_raw(w, tmp, (size_t)n);
}

/* A pixel coordinate with at most 2 decimals, trailing zeros dropped. */
static void w_px(writer *w, double v) {
  if (!isfinite(v)) v = 0; /* never reached with finite data; keep XML valid */
  long long q = llround(v * 100.0);
  char tmp[48];
  int n;
  long long a = q < 0 ? -q : q;
  const char *sign = q < 0 ? "-" : "";
  if (a % 100 == 0)
    n = snprintf(tmp, sizeof tmp, "%s%lld", sign, a / 100);
  else if (a % 10 == 0)
    n = snprintf(tmp, sizeof tmp, "%s%lld.%lld", sign, a / 100, a % 100 / 10);
  else
    n = snprintf(tmp, sizeof tmp, "%s%lld.%02lld", sign, a / 100, a % 100);
  w_raw(w, tmp, (size_t)n);
}

static void w_text(writer *w, const char *s) {
  if (!w->rc && r1d_svg_escape(w->b, s)) w->rc = R1D_ENOMEM;
}

/* ---- numbers and text ---------------------------------------------------- */

void r1d_svg_fmt_num(double v, char style, int precision, char *out, size_t n) {
  if (n == 0) return;
  if (isnan(v)) {
    snprintf(out, n, "nan");
    return;
  }
  if (isinf(v)) {
    snprintf(out, n, v < 0 ? "-inf" : "inf");
    return;
  }
  if (precision < 0) precision = 0;
  if (precision > 17) precision = 17;
  switch (style) {
  case 'f': snprintf(out, n, "%.*f", precision, v); break;
  case 'e': snprintf(out, n, "%.*e", precision, v); break;
  default: snprintf(out, n, "%.*g", precision, v); break;
  }
  /* printf follows LC_NUMERIC: put a '.' where the locale's point went */
  const char *dp = localeconv()->decimal_point;
  size_t dl = dp ? strlen(dp) : 0;
  if (dl == 0 || (dl == 1 && dp[0] == '.')) return;
  char *at = strstr(out, dp);
  if (!at) return;
  *at = '.';
  memmove(at + 1, at + dl, strlen(at + dl) + 1);
}

/* Bytes of the character at s[0..n) (n >= 1): a valid character's length, or
 * the maximal invalid run that one U+FFFD stands for. */
static size_t unit_len(const unsigned char *s, size_t n, uint32_t *cp,
                       int *valid) {
  int len = r1d_utf8_decode(s, n, cp);
  if (len > 0) {
    *valid = 1;
    return (size_t)len;
  }
  *valid = 0;
  *cp = 0xFFFD;
  return r1d_utf8_invalid_len(s, n);
}

size_t r1d_svg_text_chars(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s), chars = 0;
  uint32_t cp;
  int valid;
  for (size_t i = 0; i < n; chars++)
    i += unit_len(p + i, n - i, &cp, &valid);
  return chars;
}

static int escape_n(r1d_buf *out, const char *s, size_t n) {
  static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    /* copy the longest run that needs no escaping in one append */
    size_t j = i;
    while (j < n && p[j] >= 0x20 && p[j] < 0x80 && !strchr("&<>\"'", p[j]))
      j++;
    if (j > i && r1d_buf_append(out, s + i, j - i)) return R1D_ENOMEM;
    i = j;
    if (i >= n) break;
    unsigned c = p[i];
    const char *ent = NULL;
    size_t len = 1;
    if (c == '&')
      ent = "&amp;";
    else if (c == '<')
      ent = "&lt;";
    else if (c == '>')
      ent = "&gt;";
    else if (c == '"')
      ent = "&quot;";
    else if (c == '\'')
      ent = "&apos;";
    else if (c < 0x20)
      ent = (c == '\t' || c == '\n' || c == '\r') ? NULL : repl;
    else {
      uint32_t cp;
      int valid;
      len = unit_len(p + i, n - i, &cp, &valid);
      if (!valid || cp == 0xFFFE || cp == 0xFFFF) ent = repl;
    }
    int rc = ent ? r1d_buf_append(out, ent, strlen(ent))
                 : r1d_buf_append(out, s + i, len);
    if (rc) return R1D_ENOMEM;
    i += len;
  }
  return 0;
}

int r1d_svg_escape(r1d_buf *out, const char *s) {
  return escape_n(out, s, strlen(s));
}

/* ---- axes ---------------------------------------------------------------- */

static double pow10i(int e) {
  /* exact for the powers a double holds exactly; 1/10^-e beats 10^e for e<0 */
  return e >= 0 ? pow(10.0, e) : 1.0 / pow(10.0, -e);
}

/* The axis with the smallest 1-2-5 step >= max(raw, min_step) that fits in
 * max_ticks ticks. */
static int nice_axis(double min, double max, int max_ticks, double min_step,
                     r1d_svg_axis *a, r1d_error *err) {
  if (!isfinite(min) || !isfinite(max) || min > max)
    return r1d_fail(err, R1D_EINVAL, "svg: axis range [%g, %g] is not finite",
                    min, max);
  if (max_ticks < 3 || max_ticks > R1D_SVG_MAX_TICKS)
    return r1d_fail(err, R1D_EINVAL, "svg: %d ticks (expected 3..%d)",
                    max_ticks, R1D_SVG_MAX_TICKS);
  double mag = fmax(fabs(min), fabs(max));
  if (max - min <= mag * 1e-12 || max - min < 1e-300) {
    /* a constant: widen around it so the line sits mid-height */
    double c = min + (max - min) / 2;
    double d = fabs(c) < 1e-300 ? 1.0 : fabs(c) * 0.1;
    if (fabs(c) < 1e-300) c = 0;
    min = c - d;
    max = c + d;
  }
  double span = max - min;
  if (!isfinite(span))
    return r1d_fail(err, R1D_ERANGE, "svg: axis range [%g, %g] is too wide",
                    min, max);
  double raw = fmax(span / (max_ticks - 1), min_step);
  int e = (int)floor(log10(raw));
  double m = raw / pow10i(e);
  int mi; /* index into {1, 2, 5} */
  if (m <= 1 + 1e-9)
    mi = 0;
  else if (m <= 2 + 1e-9)
    mi = 1;
  else if (m <= 5 + 1e-9)
    mi = 2;
  else {
    mi = 0;
    e++;
  }
  static const double mant[3] = {1, 2, 5};
  for (int tries = 0; tries < 40; tries++) {
    double step = mant[mi] * pow10i(e);
    double lo = floor(min / step + 1e-9) * step;
    double hi = ceil(max / step - 1e-9) * step;
    if (!isfinite(lo) || !isfinite(hi) || !isfinite(step))
      return r1d_fail(err, R1D_ERANGE, "svg: axis range [%g, %g] is too wide",
                      min, max);
    double nt = (hi - lo) / step + 1;
    if (nt <= max_ticks + 1e-6) {
      a->lo = lo;
      a->hi = hi;
      a->step = step;
      a->n_ticks = (int)llround(nt);
      double amax = fmax(fabs(lo), fabs(hi));
      /* ordinary magnitudes read best as plain decimals; beyond that one
       * shared power of ten keeps the labels short */
      a->exp = 0;
      if (amax >= 1e6 || amax < 1e-3) a->exp = (int)floor(log10(amax) + 1e-9);
      a->decimals = a->exp - e > 0 ? a->exp - e : 0;
      if (a->decimals > 15) a->decimals = 15;
      return 0;
    }
    if (++mi == 3) {
      mi = 0;
      e++;
    }
  }
  return r1d_fail(err, R1D_ERANGE, "svg: no axis fits [%g, %g] in %d ticks",
                  min, max, max_ticks);
}

int r1d_svg_nice_axis(double min, double max, int max_ticks, r1d_svg_axis *axis,
                      r1d_error *err) {
  return nice_axis(min, max, max_ticks, 0.0, axis, err);
}

void r1d_svg_tick_label(const r1d_svg_axis *a, double v, char *out, size_t n) {
  if (n == 0) return;
  double s = v / pow10i(a->exp);
  double scaled = s * pow10i(a->decimals);
  if (!isfinite(scaled) || fabs(scaled) >= 9e18) {
    r1d_svg_fmt_num(s, 'g', 15, out, n);
    return;
  }
  long long q = llround(scaled);
  long long abs_q = q < 0 ? -q : q;
  const char *sign = q < 0 ? "-" : "";
  if (a->decimals == 0) {
    snprintf(out, n, "%s%lld", sign, abs_q);
    return;
  }
  long long p = 1;
  for (int i = 0; i < a->decimals; i++)
    p *= 10;
  snprintf(out, n, "%s%lld.%0*lld", sign, abs_q / p, a->decimals, abs_q % p);
}

/* ---- line charts --------------------------------------------------------- */

#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"
#define CHAR_W 7.0       /* px per character at 12px sans-serif (an estimate) */
#define TABLE_CHAR_W 7.3 /* px per character at 12px monospace */

static int point_ok(const r1d_svg_series *s, size_t i) {
  return isfinite(s->x[i]) && isfinite(s->y[i]);
}

static int band_ok(const r1d_svg_series *s, size_t i) {
  return s->ci && point_ok(s, i) && isfinite(s->ci[i]) && s->ci[i] >= 0 &&
         isfinite(s->y[i] + s->ci[i]) && isfinite(s->y[i] - s->ci[i]);
}

typedef struct frame {
  double left, top, pw, ph; /* the plot area */
  r1d_svg_axis ax, ay;
} frame;

static double px_x(const frame *f, double x) {
  return f->left + (x - f->ax.lo) / (f->ax.hi - f->ax.lo) * f->pw;
}

static double px_y(const frame *f, double y) {
  return f->top + f->ph - (y - f->ay.lo) / (f->ay.hi - f->ay.lo) * f->ph;
}

static int check_chart(const r1d_svg_chart *c, r1d_error *err) {
  if (!c || (c->n_series > 0 && !c->series) || c->n_series < 0)
    return r1d_fail(err, R1D_EINVAL, "svg: chart without series array");
  if (c->n_series > R1D_SVG_MAX_SERIES)
    return r1d_fail(err, R1D_ERANGE, "svg: %d series (at most %d per chart)",
                    c->n_series, R1D_SVG_MAX_SERIES);
  if (c->width < 0 || c->height < 0 || c->width > 20000 || c->height > 20000)
    return r1d_fail(err, R1D_EINVAL, "svg: chart size %dx%d", c->width,
                    c->height);
  for (int i = 0; i < c->n_series; i++) {
    const r1d_svg_series *s = &c->series[i];
    if (s->n > R1D_SVG_MAX_POINTS)
      return r1d_fail(err, R1D_ERANGE,
                      "svg: series %d has %zu points (at "
                      "most %d)",
                      i, s->n, R1D_SVG_MAX_POINTS);
    if (s->n > 0 && (!s->x || !s->y))
      return r1d_fail(err, R1D_EINVAL, "svg: series %d has no x or y array", i);
  }
  return 0;
}

static const char *series_color(const r1d_svg_chart *c, int k) {
  int pick = c->series[k].color;
  return r1d_svg_color(pick > 0 ? pick - 1 : k);
}

static void path_point(writer *w, const frame *f, const r1d_svg_series *s,
                       size_t i, const char *cmd) {
  w_str(w, cmd);
  w_px(w, px_x(f, s->x[i]));
  w_str(w, ",");
  w_px(w, px_y(f, s->y[i]));
}

/* The subpath of the finite points [i, j). Points falling in one pixel
 * column are reduced to the first, lowest, highest and last of them (M4
 * decimation): the drawing is the same at this resolution, and a run of a
 * million steps stays a file of kilobytes instead of megabytes. */
static void line_run(writer *w, const frame *f, const r1d_svg_series *s,
                     size_t i, size_t j, int *first) {
  int starts = 1;
  for (size_t k = i; k < j;) {
    double col = floor(px_x(f, s->x[k]));
    size_t g = k, lo = k, hi = k;
    for (; g < j && floor(px_x(f, s->x[g])) == col; g++) {
      if (s->y[g] < s->y[lo]) lo = g;
      if (s->y[g] > s->y[hi]) hi = g;
    }
    size_t pick[4] = {k, lo < hi ? lo : hi, lo < hi ? hi : lo, g - 1};
    for (int p = 0; p < 4; p++) {
      if (p > 0 && pick[p] <= pick[p - 1]) continue; /* already drawn */
      path_point(w, f, s, pick[p], starts ? (*first ? "M" : " M") : " L");
      starts = *first = 0;
    }
    k = g;
  }
}

/* Appends one series' <g>: band, line (a subpath per run of finite points),
 * markers. */
static void draw_series(writer *w, const frame *f, const r1d_svg_series *s,
                        const char *color, int markers_all) {
  w_str(w, "<g class=\"series\">");
  if (s->label && s->label[0]) {
    w_str(w, "<title>");
    w_text(w, s->label);
    w_str(w, "</title>");
  }
  int any_band = 0;
  for (size_t i = 0; i < s->n && !any_band; i++)
    any_band = band_ok(s, i);
  if (any_band) {
    /* one closed subpath per run: upper edge forward, lower edge back */
    w_fmt(w,
          "<path class=\"band\" fill=\"%s\" fill-opacity=\"0.18\" "
          "stroke=\"none\" d=\"",
          color);
    size_t i = 0;
    while (i < s->n) {
      if (!band_ok(s, i)) {
        i++;
        continue;
      }
      size_t j = i;
      while (j < s->n && band_ok(s, j))
        j++;
      if (j - i == 1) { /* a lone point: a narrow bar from y-ci to y+ci */
        double x = px_x(f, s->x[i]);
        w_str(w, i == 0 ? "M" : " M");
        w_px(w, x - 1.5);
        w_str(w, ",");
        w_px(w, px_y(f, s->y[i] + s->ci[i]));
        w_str(w, " H");
        w_px(w, x + 1.5);
        w_str(w, " V");
        w_px(w, px_y(f, s->y[i] - s->ci[i]));
        w_str(w, " H");
        w_px(w, x - 1.5);
      } else {
        for (size_t k = i; k < j; k++) {
          w_str(w, k == i ? (i == 0 ? "M" : " M") : " L");
          w_px(w, px_x(f, s->x[k]));
          w_str(w, ",");
          w_px(w, px_y(f, s->y[k] + s->ci[k]));
        }
        for (size_t k = j; k-- > i;) {
          w_str(w, " L");
          w_px(w, px_x(f, s->x[k]));
          w_str(w, ",");
          w_px(w, px_y(f, s->y[k] - s->ci[k]));
        }
      }
      w_str(w, " Z");
      i = j;
    }
    w_str(w, "\"/>");
  }
  int any_line = 0;
  for (size_t i = 0; i + 1 < s->n && !any_line; i++)
    any_line = point_ok(s, i) && point_ok(s, i + 1);
  if (any_line) {
    w_fmt(w,
          "<path class=\"line\" fill=\"none\" stroke=\"%s\" "
          "stroke-width=\"2\" stroke-linejoin=\"round\" d=\"",
          color);
    int first = 1;
    size_t i = 0;
    while (i < s->n) {
      if (!point_ok(s, i)) {
        i++;
        continue;
      }
      size_t j = i;
      while (j < s->n && point_ok(s, j))
        j++;
      if (j - i >= 2) /* a lone point gets a marker below instead */
        line_run(w, f, s, i, j, &first);
      i = j;
    }
    w_str(w, "\"/>");
  }
  for (size_t i = 0; i < s->n; i++) {
    if (!point_ok(s, i)) continue;
    int lone = (i == 0 || !point_ok(s, i - 1)) &&
               (i + 1 == s->n || !point_ok(s, i + 1));
    if (!lone && !markers_all) continue;
    w_fmt(w, "<circle class=\"marker\" fill=\"%s\" r=\"%s\" cx=\"", color,
          lone ? "3.5" : "2.5");
    w_px(w, px_x(f, s->x[i]));
    w_str(w, "\" cy=\"");
    w_px(w, px_y(f, s->y[i]));
    w_str(w, "\"/>");
  }
  w_str(w, "</g>\n");
}

static void doc_open(writer *w, double width, double height,
                     const char *title) {
  w_str(w, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
           "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
           "width=\"");
  w_px(w, width);
  w_str(w, "\" height=\"");
  w_px(w, height);
  w_str(w, "\" viewBox=\"0 0 ");
  w_px(w, width);
  w_str(w, " ");
  w_px(w, height);
  w_str(w, "\" font-family=\"" FONT "\" font-size=\"12\">\n");
  if (title && title[0]) {
    w_str(w, "<title>");
    w_text(w, title);
    w_str(w, "</title>\n");
  }
  w_str(w, "<rect class=\"background\" x=\"0\" y=\"0\" width=\"100%\" "
           "height=\"100%\" fill=\"#ffffff\"/>\n");
}

/* <text> at (x, y) with the given anchor and extra attributes. */
static void text_at(writer *w, double x, double y, const char *anchor,
                    const char *attrs, const char *s) {
  w_str(w, "<text x=\"");
  w_px(w, x);
  w_str(w, "\" y=\"");
  w_px(w, y);
  w_fmt(w, "\" text-anchor=\"%s\"%s%s>", anchor, attrs[0] ? " " : "", attrs);
  w_text(w, s);
  w_str(w, "</text>\n");
}

static void line_at(writer *w, double x1, double y1, double x2, double y2,
                    const char *attrs) {
  w_str(w, "<line x1=\"");
  w_px(w, x1);
  w_str(w, "\" y1=\"");
  w_px(w, y1);
  w_str(w, "\" x2=\"");
  w_px(w, x2);
  w_str(w, "\" y2=\"");
  w_px(w, y2);
  w_fmt(w, "\" %s/>\n", attrs);
}

/* Ticks of an axis as labels; returns the widest label in characters. */
static size_t widest_label(const r1d_svg_axis *a) {
  size_t widest = 0;
  char lab[64];
  for (int i = 0; i < a->n_ticks; i++) {
    r1d_svg_tick_label(a, a->lo + i * a->step, lab, sizeof lab);
    if (strlen(lab) > widest) widest = strlen(lab);
  }
  return widest;
}

int r1d_svg_line_chart(const r1d_svg_chart *c, r1d_buf *out, r1d_error *err) {
  int rc = check_chart(c, err);
  if (rc) return rc;
  /* data ranges over the drawable points (and their bands) */
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  size_t drawn = 0;
  for (int k = 0; k < c->n_series; k++) {
    const r1d_svg_series *s = &c->series[k];
    for (size_t i = 0; i < s->n; i++) {
      if (!point_ok(s, i)) continue;
      drawn++;
      xmin = fmin(xmin, s->x[i]);
      xmax = fmax(xmax, s->x[i]);
      ymin = fmin(ymin, s->y[i]);
      ymax = fmax(ymax, s->y[i]);
      if (band_ok(s, i)) {
        ymin = fmin(ymin, s->y[i] - s->ci[i]);
        ymax = fmax(ymax, s->y[i] + s->ci[i]);
      }
    }
  }
  if (!drawn) xmin = ymin = 0, xmax = ymax = 1;
  frame f;
  rc = nice_axis(xmin, xmax, 8, c->x_integer ? 1.0 : 0.0, &f.ax, err);
  if (!rc) rc = nice_axis(ymin, ymax, 8, 0.0, &f.ay, err);
  if (rc) return rc;

  double width = c->width ? c->width : 720,
         height = c->height ? c->height : 440;
  int has_title = c->title && c->title[0];
  int has_xl = c->x_label && c->x_label[0],
      has_yl = c->y_label && c->y_label[0];
  f.top = has_title ? 40 : 16;
  f.left = 14 + (double)widest_label(&f.ay) * CHAR_W + (has_yl ? 22 : 0);
  if (f.left < 48) f.left = 48;
  double right = 24, bottom = 30 + (has_xl ? 20 : 0) + 8;
  f.pw = width - f.left - right;
  f.ph = height - f.top - bottom;
  if (f.pw < 60 || f.ph < 60)
    return r1d_fail(err, R1D_EINVAL,
                    "svg: chart %gx%g is too small for its "
                    "labels",
                    width, height);

  /* the legend flows in rows under the x label */
  double leg_x[R1D_SVG_MAX_SERIES];
  int leg_row[R1D_SVG_MAX_SERIES], rows = 0;
  double cx = f.left;
  for (int k = 0; k < c->n_series; k++) {
    const char *lab = c->series[k].label;
    leg_row[k] = -1;
    if (!lab || !lab[0]) continue;
    double wd = 24 + (double)r1d_svg_text_chars(lab) * CHAR_W + 18;
    if (rows == 0) {
      rows = 1;
    } else if (cx + wd > f.left + f.pw && cx > f.left) {
      rows++;
      cx = f.left;
    }
    leg_x[k] = cx;
    leg_row[k] = rows - 1;
    cx += wd;
  }
  double total_h = height + (rows ? rows * 20.0 + 6 : 0);

  writer w = {out, 0};
  doc_open(&w, width, total_h, c->title);
  if (has_title)
    text_at(&w, width / 2, 26, "middle",
            "class=\"title\" font-size=\"16\" "
            "font-weight=\"bold\"",
            c->title);
  /* grid and ticks */
  w_str(&w, "<g class=\"grid\" stroke=\"#e3e3e3\" stroke-width=\"1\">\n");
  for (int i = 0; i < f.ay.n_ticks; i++) {
    double y = px_y(&f, f.ay.lo + i * f.ay.step);
    line_at(&w, f.left, y, f.left + f.pw, y, "");
  }
  for (int i = 0; i < f.ax.n_ticks; i++) {
    double x = px_x(&f, f.ax.lo + i * f.ax.step);
    line_at(&w, x, f.top, x, f.top + f.ph, "");
  }
  w_str(&w, "</g>\n<rect class=\"frame\" x=\"");
  w_px(&w, f.left);
  w_str(&w, "\" y=\"");
  w_px(&w, f.top);
  w_str(&w, "\" width=\"");
  w_px(&w, f.pw);
  w_str(&w, "\" height=\"");
  w_px(&w, f.ph);
  w_str(&w, "\" fill=\"none\" stroke=\"#888888\"/>\n");
  char lab[64];
  w_str(&w, "<g class=\"axis y\" fill=\"#333333\">\n");
  for (int i = 0; i < f.ay.n_ticks; i++) {
    double y = px_y(&f, f.ay.lo + i * f.ay.step);
    r1d_svg_tick_label(&f.ay, f.ay.lo + i * f.ay.step, lab, sizeof lab);
    text_at(&w, f.left - 6, y + 4, "end", "class=\"tick\"", lab);
  }
  if (f.ay.exp) {
    snprintf(lab, sizeof lab,
             "\xC3\x97"
             "1e%d",
             f.ay.exp); /* ×1eN */
    text_at(&w, f.left, f.top - 5, "start", "class=\"scale\"", lab);
  }
  w_str(&w, "</g>\n<g class=\"axis x\" fill=\"#333333\">\n");
  for (int i = 0; i < f.ax.n_ticks; i++) {
    double x = px_x(&f, f.ax.lo + i * f.ax.step);
    r1d_svg_tick_label(&f.ax, f.ax.lo + i * f.ax.step, lab, sizeof lab);
    text_at(&w, x, f.top + f.ph + 16, "middle", "class=\"tick\"", lab);
  }
  if (f.ax.exp) {
    snprintf(lab, sizeof lab,
             "\xC3\x97"
             "1e%d",
             f.ax.exp);
    text_at(&w, f.left + f.pw, f.top + f.ph + 30, "end", "class=\"scale\"",
            lab);
  }
  w_str(&w, "</g>\n");
  if (has_xl)
    text_at(&w, f.left + f.pw / 2, f.top + f.ph + 36, "middle",
            "class=\"xlabel\"", c->x_label);
  if (has_yl) {
    double yx = 16, yy = f.top + f.ph / 2;
    w_str(&w, "<text class=\"ylabel\" text-anchor=\"middle\" x=\"");
    w_px(&w, yx);
    w_str(&w, "\" y=\"");
    w_px(&w, yy);
    w_str(&w, "\" transform=\"rotate(-90 ");
    w_px(&w, yx);
    w_str(&w, " ");
    w_px(&w, yy);
    w_str(&w, ")\">");
    w_text(&w, c->y_label);
    w_str(&w, "</text>\n");
  }
  if (!drawn)
    text_at(&w, f.left + f.pw / 2, f.top + f.ph / 2, "middle",
            "class=\"nodata\" fill=\"#888888\"", "no data");

  for (int k = 0; k < c->n_series; k++) {
    const r1d_svg_series *s = &c->series[k];
    size_t finite = 0;
    for (size_t i = 0; i < s->n; i++)
      finite += (size_t)point_ok(s, i);
    if (finite) draw_series(&w, &f, s, series_color(c, k), finite <= 40);
  }
  if (rows) {
    w_str(&w, "<g class=\"legend\">\n");
    for (int k = 0; k < c->n_series; k++) {
      if (leg_row[k] < 0) continue;
      double y = height + leg_row[k] * 20.0 + 12; /* the text's baseline */
      w_str(&w, "<g class=\"entry\"><rect x=\"");
      w_px(&w, leg_x[k]);
      w_str(&w, "\" y=\"");
      w_px(&w, y - 6);
      w_fmt(&w, "\" width=\"18\" height=\"4\" fill=\"%s\"/>",
            series_color(c, k));
      w_str(&w, "<text x=\"");
      w_px(&w, leg_x[k] + 24);
      w_str(&w, "\" y=\"");
      w_px(&w, y);
      w_str(&w, "\">");
      w_text(&w, c->series[k].label);
      w_str(&w, "</text></g>\n");
    }
    w_str(&w, "</g>\n");
  }
  w_str(&w, "</svg>\n");
  if (w.rc)
    return r1d_fail(err, w.rc, "svg: %s while writing a chart",
                    r1d_strerror(w.rc));
  return 0;
}

/* ---- tables -------------------------------------------------------------- */

static const char *cell_at(const r1d_svg_table *t, int r, int c) {
  const char *s = t->cells[(size_t)r * (size_t)t->n_cols + (size_t)c];
  return s ? s : "";
}

/* Byte offset where the last `keep` characters of s[0..n) start. */
static size_t tail_start(const char *s, size_t n, size_t chars, size_t keep) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  uint32_t cp;
  int valid;
  for (size_t skip = chars - keep; skip > 0 && i < n; skip--)
    i += unit_len(p + i, n - i, &cp, &valid);
  return i;
}

/* The cell's text, cut to its last R1D_SVG_CELL_CHARS - 1 characters after
 * an ellipsis when longer (the end of a path or name is what tells rows
 * apart); the whole text stays in a <title> tooltip. */
static void cell_text(writer *w, const char *s) {
  size_t chars = r1d_svg_text_chars(s);
  if (chars <= R1D_SVG_CELL_CHARS) {
    w_text(w, s);
    return;
  }
  size_t n = strlen(s);
  size_t at = tail_start(s, n, chars, R1D_SVG_CELL_CHARS - 1);
  w_str(w, "<title>");
  w_text(w, s);
  w_str(w, "</title>\xE2\x80\xA6"); /* … */
  if (!w->rc && escape_n(w->b, s + at, n - at)) w->rc = R1D_ENOMEM;
}

int r1d_svg_table_render(const r1d_svg_table *t, r1d_buf *out, r1d_error *err) {
  if (!t || !t->header || t->n_cols <= 0 || t->n_rows < 0 ||
      (t->n_rows > 0 && !t->cells))
    return r1d_fail(err, R1D_EINVAL, "svg: table without header or cells");
  if (t->n_cols > R1D_SVG_MAX_COLUMNS)
    return r1d_fail(err, R1D_ERANGE, "svg: %d columns (at most %d)", t->n_cols,
                    R1D_SVG_MAX_COLUMNS);
  if (t->n_rows > R1D_SVG_MAX_ROWS)
    return r1d_fail(err, R1D_ERANGE, "svg: %d rows (at most %d)", t->n_rows,
                    R1D_SVG_MAX_ROWS);
  if (t->align && strlen(t->align) != (size_t)t->n_cols)
    return r1d_fail(err, R1D_EINVAL, "svg: align \"%s\" for %d columns",
                    t->align, t->n_cols);
  double col_w[R1D_SVG_MAX_COLUMNS], total_w = 0;
  for (int c = 0; c < t->n_cols; c++) {
    size_t chars = r1d_svg_text_chars(t->header[c] ? t->header[c] : "");
    for (int r = 0; r < t->n_rows; r++) {
      size_t n = r1d_svg_text_chars(cell_at(t, r, c));
      if (n > chars) chars = n;
    }
    if (chars > R1D_SVG_CELL_CHARS) chars = R1D_SVG_CELL_CHARS;
    if (chars < 1) chars = 1;
    col_w[c] = (double)chars * TABLE_CHAR_W + 16;
    total_w += col_w[c];
  }
  const double margin = 10, row_h = 22;
  int has_title = t->title && t->title[0];
  double title_h = has_title ? 30 : 0;
  double title_w =
      has_title ? (double)r1d_svg_text_chars(t->title) * 8.5 + 2 * margin : 0;
  double width = total_w + 2 * margin;
  if (title_w > width) width = title_w;
  double height = title_h + (t->n_rows + 1) * row_h + 2 * margin;

  writer w = {out, 0};
  doc_open(&w, width, height, t->title);
  if (has_title)
    text_at(&w, margin, margin + 16, "start",
            "class=\"title\" font-size=\"15\" font-weight=\"bold\"", t->title);
  double top = margin + title_h;
  w_str(&w, "<g class=\"table\" font-family=\"DejaVu Sans Mono, Menlo, "
            "Consolas, monospace\">\n<rect class=\"header\" x=\"");
  w_px(&w, margin);
  w_str(&w, "\" y=\"");
  w_px(&w, top);
  w_str(&w, "\" width=\"");
  w_px(&w, total_w);
  w_str(&w, "\" height=\"");
  w_px(&w, row_h);
  w_str(&w, "\" fill=\"#2f3e4e\"/>\n");
  for (int r = 1; r < t->n_rows; r += 2) {
    w_str(&w, "<rect class=\"zebra\" x=\"");
    w_px(&w, margin);
    w_str(&w, "\" y=\"");
    w_px(&w, top + (r + 1) * row_h);
    w_str(&w, "\" width=\"");
    w_px(&w, total_w);
    w_str(&w, "\" height=\"");
    w_px(&w, row_h);
    w_str(&w, "\" fill=\"#eef1f5\"/>\n");
  }
  for (int r = -1; r < t->n_rows; r++) {
    double x = margin, y = top + (r + 1) * row_h + 15;
    w_fmt(&w, "<g class=\"%s\"%s>", r < 0 ? "head" : "row",
          r < 0 ? " fill=\"#ffffff\" font-weight=\"bold\""
                : " fill=\"#222222\"");
    for (int c = 0; c < t->n_cols; c++) {
      int right = t->align && t->align[c] == 'r';
      w_str(&w, "<text x=\"");
      w_px(&w, right ? x + col_w[c] - 8 : x + 8);
      w_str(&w, "\" y=\"");
      w_px(&w, y);
      w_fmt(&w, "\"%s xml:space=\"preserve\">",
            right ? " text-anchor=\"end\"" : "");
      const char *s =
          r < 0 ? (t->header[c] ? t->header[c] : "") : cell_at(t, r, c);
      cell_text(&w, s);
      w_str(&w, "</text>");
      x += col_w[c];
    }
    w_str(&w, "</g>\n");
  }
  /* a rule under the header and a frame around the whole table */
  line_at(&w, margin, top + row_h, margin + total_w, top + row_h,
          "stroke=\"#2f3e4e\"");
  w_str(&w, "<rect class=\"frame\" x=\"");
  w_px(&w, margin);
  w_str(&w, "\" y=\"");
  w_px(&w, top);
  w_str(&w, "\" width=\"");
  w_px(&w, total_w);
  w_str(&w, "\" height=\"");
  w_px(&w, (t->n_rows + 1) * row_h);
  w_str(&w, "\" fill=\"none\" stroke=\"#b0b8c0\"/>\n</g>\n</svg>\n");
  if (w.rc)
    return r1d_fail(err, w.rc, "svg: %s while writing a table",
                    r1d_strerror(w.rc));
  return 0;
}

/* ---- output -------------------------------------------------------------- */

int r1d_svg_save(const r1d_buf *b, const char *path, r1d_error *err) {
  return r1d_write_file_atomic(path, b->p ? b->p : "", b->n, err);
}

int r1d_svg_fwrite(const r1d_buf *b, FILE *f, r1d_error *err) {
  if ((b->n && fwrite(b->p, 1, b->n, f) != b->n) || fflush(f) == EOF)
    return r1d_fail(err, R1D_EIO, "svg: write failed");
  return 0;
}
