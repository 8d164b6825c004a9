/* sft_data.h - training documents from the files TRL users already have,
 * tokenized, with the tokens that carry loss marked, and packed without
 * padding into fixed-size micro-batches.
 *
 * One JSON object per line (blank lines skipped):
 *   {"messages": [...]}            a conversation ending in an assistant
 *       turn. Context: the chat template's rendering of every earlier message
 *       plus the generation prompt (earlier assistant turns as the template
 *       shows history, e.g. without their thoughts for the R1 distills).
 *       Loss: the last assistant turn, thoughts included, and its
 *       end-of-turn token (r1d_template_render_reply). Only the last turn
 *       is learned because that is what the model produces after exactly
 *       this context at inference; a multi-turn example can be split into
 *       one line per turn when every turn matters.
 *   {"prompt": "...", "completion": "..."}  plain text: BOS (when the
 *       tokenizer adds one) + prompt, no loss; completion + EOS, loss.
 *   {"prompt": [messages], "completion": [{"role": "assistant", ...}]}
 *       the conversational form: the template on the prompt, the reply as
 *       above.
 *   {"text": "..."}                language modelling: BOS + text + EOS,
 *       loss on every token (the only form `pretrain` takes).
 * A pretraining text file (r1d_dataset_load_text) is one document.
 *
 * Limits: an SFT document longer than max_len is cut to max_len (counted as
 * truncated; dropped, and counted, if no loss token is left); a pretraining
 * document is cut into max_len pieces, all kept. Each bad line is reported
 * through the callback with its number and skipped; with strict the first
 * one fails the load. */
#ifndef R1D_RL_SFT_DATA_H
#define R1D_RL_SFT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "../engine/text/template.h"
#include "../engine/text/tokenizer.h"

/* One training document: ids[n]; loss[i] = 1 when ids[i] is a target (the
 * model is trained to predict it from ids[0..i-1]). loss[0] is always 0. */
typedef struct r1d_doc {
  int32_t *ids;
  uint8_t *loss;
  int n;
  long line; /* 1-based line of the source file (0 for a text file) */
} r1d_doc;

typedef struct r1d_dataset {
  r1d_doc *docs;
  size_t n_docs, cap;
  long lines;            /* non-blank lines read */
  long bad_lines;        /* reported and skipped */
  long truncated;        /* SFT documents cut to max_len */
  long truncated_tokens; /* tokens cut away */
  long dropped;          /* documents with no loss token (after the cut) */
  long tokens;           /* in docs */
  long loss_tokens;      /* in docs, loss[i] = 1 */
} r1d_dataset;

typedef void (*r1d_data_bad_line_fn)(void *user, long line, const char *msg);

typedef struct r1d_data_opts {
  int pretrain; /* 1: only {"text"} lines; long documents are split */
  int max_len;  /* tokens per document, >= 2 */
  int strict;   /* 1: the first bad line fails the load */
  const r1d_tokenizer *tok;
  const r1d_template *tmpl; /* for messages; NULL refuses them */
  int32_t eos_id;           /* appended to completions and texts */
  int32_t bos_id;           /* prepended to plain prompts and texts, or -1 */
  r1d_data_bad_line_fn on_bad;
  void *user;
} r1d_data_opts;

/* Appends the documents of a JSONL file to ds (zero it before the first
 * load). Errors: the file cannot be read (R1D_EIO), a bad line with strict
 * (R1D_EINVAL, "LINE: msg"), out of memory. */
int r1d_dataset_load_jsonl(const char *path, const r1d_data_opts *o,
                           r1d_dataset *ds, r1d_error *err);

/* Appends a plain text file as one pretraining document (split into max_len
 * pieces). */
int r1d_dataset_load_text(const char *path, const r1d_data_opts *o,
                          r1d_dataset *ds, r1d_error *err);

void r1d_dataset_free(r1d_dataset *ds);

/* Targets of document d: targets[i] = ids[i+1] when loss[i+1], else -1
 * (also for the last token). Returns the number of counted targets. */
int r1d_doc_targets(const r1d_doc *d, int32_t *targets);

/* Moves every k-th document (k = round(1 / fraction)) from ds to eval, in a
 * seeded random order: the same seed and data give the same split. No-op
 * for fraction 0; eval keeps at least one document when fraction > 0. */
int r1d_dataset_split(r1d_dataset *ds, double fraction, uint64_t seed,
                      r1d_dataset *eval, r1d_error *err);

/* Padding-free packing: documents go into packs of at most max_tokens
 * tokens by best-fit decreasing (longest first, each into the fullest pack
 * it fits), so few tokens are wasted; a pack's documents keep their own
 * positions and attention (r1d_train_forward_docs). Deterministic. */
typedef struct r1d_pack {
  size_t first; /* index into r1d_packing.doc_index */
  int n_docs;
  int n_tokens;
  int n_counted; /* targets counted over the pack */
} r1d_pack;

typedef struct r1d_packing {
  r1d_pack *packs;
  size_t n_packs;
  size_t *doc_index; /* the packs' documents, pack by pack */
  long tokens;       /* sum of n_tokens */
  int max_tokens;
} r1d_packing;

/* Every document must be at most max_tokens long (max_len <= max_tokens). */
int r1d_pack_documents(const r1d_dataset *ds, int max_tokens, r1d_packing *out,
                       r1d_error *err);
void r1d_packing_free(r1d_packing *p);

/* The order in which epoch `epoch` visits the packs: a permutation of
 * 0..n-1 made from (seed, epoch) alone, so a resumed run replays it. */
void r1d_pack_order(size_t n, uint64_t seed, long epoch, size_t *order);

#endif
