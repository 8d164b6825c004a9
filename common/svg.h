/* svg.h - a small writer of standalone SVG 1.1 files: line charts and tables.
 *
 * Why our own: training runs must be able to draw their curves and results
 * with nothing but the r1d binary (no Python, no plotting stack on a GPU box),
 * and `r1d plot` / `r1d pipeline` need the pictures as files a browser opens.
 *
 * The writer knows nothing about training: a chart is a list of series of
 * (x, y) points with an optional +-ci band, a table is a header and rows of
 * strings. Everything is rendered into an r1d_buf (common/buf.h); callers
 * write the buffer wherever they like (r1d_svg_save, r1d_svg_fwrite).
 *
 * Output rules: every piece of text is XML-escaped (& < > " ' and characters
 * XML 1.0 forbids), invalid UTF-8 is repaired, and numbers are printed the
 * same whatever LC_NUMERIC says (a ',' decimal point would break the file).
 * Non-finite points are skipped and break the line there. */
#ifndef R1D_COMMON_SVG_H
#define R1D_COMMON_SVG_H

#include <stddef.h>
#include <stdio.h>

#include "buf.h"
#include "status.h"

enum {
  R1D_SVG_MAX_SERIES = 16,      /* series per chart (palette repeats after 8) */
  R1D_SVG_MAX_POINTS = 1000000, /* points per series */
  R1D_SVG_MAX_COLUMNS = 64,     /* table columns */
  R1D_SVG_MAX_ROWS = 100000,    /* table rows */
  R1D_SVG_MAX_TICKS = 20,       /* ticks per axis */
  R1D_SVG_CELL_CHARS = 60,      /* longer cells are cut, keeping their end */
};

/* The fixed palette (colour-blind friendly, "#rrggbb"); series i gets
 * r1d_svg_color(i). */
const char *r1d_svg_color(int i);

/* ---- axes ---------------------------------------------------------------- */

/* A "nice" axis: ticks lo, lo + step, ..., hi, with step 1, 2 or 5 times a
 * power of ten and [lo, hi] covering the data. */
typedef struct r1d_svg_axis {
  double lo, hi, step;
  int n_ticks;  /* (hi - lo) / step + 1 */
  int decimals; /* decimals of the tick labels (after scaling by 10^-exp) */
  int exp;      /* labels are value / 10^exp; 0 for ordinary magnitudes */
} r1d_svg_axis;

/* Chooses the axis for data in [min, max] with at most max_ticks ticks
 * (3..R1D_SVG_MAX_TICKS: a range around 0 always needs 3). min == max (a constant series) widens the range to
 * +-10% of the value (+-1 around zero) so the line sits in the middle.
 * R1D_EINVAL for a non-finite bound, min > max or a bad max_ticks;
 * R1D_ERANGE when the range does not fit a double. */
int r1d_svg_nice_axis(double min, double max, int max_ticks, r1d_svg_axis *axis,
                      r1d_error *err);

/* The label of tick value v on axis a ("0.25", "-3", "1.5" with a->exp = 12
 * meaning 1.5e12), C locale, into out[0..n). */
void r1d_svg_tick_label(const r1d_svg_axis *a, double v, char *out, size_t n);

/* ---- text ---------------------------------------------------------------- */

/* Appends s XML-escaped: & < > " ' as entities, invalid UTF-8 and the
 * characters XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE, U+FFFF) as
 * U+FFFD. R1D_ENOMEM on failure. */
int r1d_svg_escape(r1d_buf *out, const char *s);

/* Formats v with printf's %.*<style> (style 'f', 'e' or 'g') into out[0..n)
 * with '.' as the decimal point whatever the locale; "nan", "inf", "-inf"
 * for non-finite v. */
void r1d_svg_fmt_num(double v, char style, int precision, char *out, size_t n);

/* Characters of UTF-8 s (an invalid byte counts as one): the width unit of
 * the layout, which estimates text widths from character counts. */
size_t r1d_svg_text_chars(const char *s);

/* ---- line charts --------------------------------------------------------- */

typedef struct r1d_svg_series {
  const char *label; /* legend text; NULL or "" for none */
  const double *x, *y;
  const double *ci; /* NULL, or per point the half-width of a band y +- ci
                      * (a non-finite or negative ci breaks the band only) */
  size_t n;         /* points; 0 draws nothing (the legend still names it) */
  int color;        /* 0: palette colour of the series' position; k > 0:
                      * colour k - 1 (a run keeps its colour in every chart
                      * even when other charts leave some runs out) */
} r1d_svg_series;

typedef struct r1d_svg_chart {
  const char *title;             /* NULL for none */
  const char *x_label, *y_label; /* NULL for none */
  const r1d_svg_series *series;
  int n_series;      /* 0..R1D_SVG_MAX_SERIES */
  int width, height; /* pixels; 0 for 720 x 440 (the legend adds rows) */
  int x_integer;     /* x ticks only at whole numbers (steps, epochs) */
} r1d_svg_chart;

/* Appends a whole SVG document with the chart to out. Each series with
 * finite points is one <g class="series"> holding a <title> (its label), at
 * most one <path class="line"> (a new subpath after each gap), one
 * <path class="band"> when it has a band, and <circle class="marker">s: on
 * every point of a series of at most 40 finite points, and a bigger one on
 * each point that has no neighbour to draw a line to. Lines are reduced per
 * pixel column to the first, lowest, highest and last point (same picture,
 * small files for long runs); bands are not reduced. A chart where no point
 * is finite says "no data". The legend (<g class="legend">, one
 * <g class="entry"> per labelled series) flows in rows below the plot and
 * adds 20 px of height per row.
 * R1D_EINVAL for bad arguments (naming them), R1D_ERANGE for too many series
 * or points, R1D_ENOMEM. On error out holds what was appended so far. */
int r1d_svg_line_chart(const r1d_svg_chart *chart, r1d_buf *out,
                       r1d_error *err);

/* ---- tables -------------------------------------------------------------- */

typedef struct r1d_svg_table {
  const char *title;         /* NULL for none */
  const char *const *header; /* n_cols strings */
  const char *const *cells;  /* row-major n_rows * n_cols; NULL = empty */
  int n_cols, n_rows;
  const char *align; /* NULL (all left) or n_cols chars of 'l' / 'r' */
} r1d_svg_table;

/* Appends a whole SVG document with the table to out: a header row, then
 * rows in alternating shades (<rect class="zebra"> under the odd ones),
 * columns as wide as their longest text (cut at R1D_SVG_CELL_CHARS). Each
 * cell is one <text>. Errors as r1d_svg_line_chart. */
int r1d_svg_table_render(const r1d_svg_table *table, r1d_buf *out,
                         r1d_error *err);

/* ---- output -------------------------------------------------------------- */

/* Writes b to path atomically (path.tmp, then rename); R1D_EIO naming the
 * path. */
int r1d_svg_save(const r1d_buf *b, const char *path, r1d_error *err);

/* Writes b to f (and flushes it); R1D_EIO on a failed write. */
int r1d_svg_fwrite(const r1d_buf *b, FILE *f, r1d_error *err);

#endif
