/* bpe_train.h - trains a byte-level BPE tokenizer from text and writes it as
 * a Hugging Face tokenizer.json (`r1d tokenizer train`).
 *
 * The result has the layout `r1d model init` writes (tokenizer_write.c):
 * NFC, the Qwen2 Split regex, ByteLevel, ids byte b -> b, then the learned
 * tokens in the order they were made, then the added tokens. So a trained
 * tokenizer is a drop-in for the small model family, and both r1d's loader
 * and the Python `tokenizers` package read it.
 *
 * Training splits the text exactly as encoding does, with r1d's own
 * pre-tokenizer (added tokens cut out first, NFC, the same compiled regex),
 * counts the distinct words, and then repeatedly merges the most frequent
 * adjacent pair of tokens:
 *   - ties go to the lowest pair of ids (left id first, then right id), so
 *     the same corpus and options always give the same file;
 *   - pair counts are updated incrementally: a merge touches only the words
 *     that contain its pair (a per-pair list of words), and a max-heap with
 *     lazily corrected counts picks the next pair;
 *   - a merge whose two halves spell a token that already exists (made by
 *     another merge, e.g. "ab"+"c" and "a"+"bc") is kept as a merge into
 *     that token, as `tokenizers`' trainer does; it adds no new id;
 *   - training stops when the vocabulary (byte tokens + learned tokens +
 *     added tokens) reaches vocab_size, or when no pair occurs at least
 *     min_frequency times.
 *
 * Usage: new -> add_text (any number of documents) -> train -> write. */
#ifndef R1D_ENGINE_TEXT_BPE_TRAIN_H
#define R1D_ENGINE_TEXT_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"

/* Limits, checked by the functions below (R1D_ERANGE / R1D_EINVAL). */
enum {
  /* vocab_size at most this (Gemma's 256k fits; an embedding row each) */
  R1D_BPE_MAX_VOCAB = 1 << 18,
  /* added tokens, and the bytes of one added token */
  R1D_BPE_MAX_ADDED = 4096,
  R1D_BPE_MAX_ADDED_BYTES = 256,
  /* distinct pre-tokenized words held while counting */
  R1D_BPE_MAX_WORDS = 1 << 24,
  /* Longer words (long runs of letters or spaces, e.g. base64 or padding)
   * are left out of the pair counts: they would cost time on every merge
   * that touches them and say nothing about natural text. */
  R1D_BPE_MAX_WORD_BYTES = 1024,
};
/* total text accepted by add_text (1 GiB) */
#define R1D_BPE_MAX_CORPUS_BYTES ((long long)1 << 30)

typedef struct r1d_bpe_options {
  /* One past the largest id of the result: 256 byte tokens + learned
   * tokens + n_added. From 256 + n_added (no merges) to R1D_BPE_MAX_VOCAB. */
  int vocab_size;
  /* A pair merges only if it occurs at least this often (>= 1). */
  long long min_frequency;
  /* Added tokens (matched in text before pre-tokenizing, never split), in
   * id order after the learned tokens; added_special[j] marks added[j]
   * special (NULL: all special). Copied by r1d_bpe_trainer_new. */
  const char *const *added;
  const unsigned char *added_special;
  int n_added;
} r1d_bpe_options;

typedef struct r1d_bpe_stats {
  long long corpus_bytes;  /* bytes given to add_text */
  long long words;         /* pre-tokenized words counted */
  long long distinct;      /* distinct words */
  long long long_words;    /* words over R1D_BPE_MAX_WORD_BYTES, not counted */
  long long added_matches; /* added tokens found in the text */
  /* Tokens of the corpus under the learned merges (the training
   * segmentation; long words count one token per byte), after train. */
  long long tokens;
  int merges;     /* merges learned (>= new tokens when some repeat one) */
  int vocab_size; /* one past the largest id of the result */
} r1d_bpe_stats;

typedef struct r1d_bpe_trainer r1d_bpe_trainer;

/* Checks the options (range, added tokens non-empty, valid UTF-8, distinct,
 * at most R1D_BPE_MAX_ADDED_BYTES) and builds the pre-tokenizer. */
int r1d_bpe_trainer_new(const r1d_bpe_options *opt, r1d_bpe_trainer **out,
                        r1d_error *err);

/* Counts the words of one document. Invalid UTF-8 fails with R1D_EINVAL
 * (naming the offset), more than R1D_BPE_MAX_CORPUS_BYTES in all or more
 * than R1D_BPE_MAX_WORDS distinct words with R1D_ERANGE. After train:
 * R1D_ESTATE. */
int r1d_bpe_trainer_add_text(r1d_bpe_trainer *tr, const char *text, size_t len,
                             r1d_error *err);

/* Learns the merges (once; a second call fails with R1D_ESTATE). */
int r1d_bpe_trainer_train(r1d_bpe_trainer *tr, r1d_error *err);

void r1d_bpe_trainer_stats(const r1d_bpe_trainer *tr, r1d_bpe_stats *out);

/* Merge i (rank order, 0 <= i < stats.merges): left + right -> result, as
 * ids. R1D_ERANGE for other i or before train. */
int r1d_bpe_trainer_merge(const r1d_bpe_trainer *tr, int i, int32_t *left,
                          int32_t *right, int32_t *result);

/* The bytes of learned or byte token id (not NUL-terminated), or NULL. */
const char *r1d_bpe_trainer_token(const r1d_bpe_trainer *tr, int32_t id,
                                  size_t *len);

/* Writes tokenizer.json to path (after train). An added token that is also
 * a vocabulary string fails with R1D_EINVAL (its id would be ambiguous). */
int r1d_bpe_trainer_write(const r1d_bpe_trainer *tr, const char *path,
                          r1d_error *err);

void r1d_bpe_trainer_free(r1d_bpe_trainer *tr);

#endif
