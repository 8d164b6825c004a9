/* plot.h - training curves and results tables as SVG files, callable by any
 * command (`r1d plot` is the command line of these; `r1d pipeline` draws
 * after each stage). Implemented in cmd_plot.c over common/svg.h.
 *
 * Both return 0 or a negative R1D_E* code with one line in *err naming the
 * file (and line) at fault; they print nothing. */
#ifndef R1D_SERVER_PLOT_H
#define R1D_SERVER_PLOT_H

#include "../common/status.h"

/* Reads the metrics JSONL files (what `r1d grpo` / `r1d sft` write to
 * OUT/metrics.jsonl: training lines and eval lines) and writes
 * out_dir/FIELD.svg for each field, x = "step", one series per file, plus
 * out_dir/index.html showing them all. fields is a comma list, "all" (every
 * numeric field) or NULL for the defaults that are present (reward, accuracy,
 * completion_len, kl, loss, eval_pass1, eval_loss). A sibling FIELD_ci95 or
 * FIELD_ci is drawn as a band. labels[i] (or labels NULL, or labels[i] NULL)
 * names series i; the default is the name of the file's folder. Blank lines
 * are skipped, and "nan"/"inf" values (printf's, not JSON) become gaps. When a
 * resumed run repeats steps, the later lines win. Errors: a file that cannot
 * be read, a line that is not a JSON object, a file with none of the fields,
 * an explicitly named field that no file has. */
int r1d_plot_metrics(const char *const *files, const char *const *labels,
                     int n_files, const char *fields, const char *out_dir,
                     r1d_error *err);

/* Renders the JSON objects of rows_jsonl (one per line, e.g. `r1d eval`'s
 * rows) as an SVG table at out_svg: one column per key (columns: a comma list
 * or NULL for every key in first-seen order), a key X with a sibling X_ci or
 * X_ci95 shown as "X +- ci" in one column, numbers right-aligned. */
int r1d_plot_table(const char *rows_jsonl, const char *columns,
                   const char *out_svg, r1d_error *err);

#endif
