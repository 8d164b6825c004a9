/* reasoning.h - splits one output choice's streamed text into the thought
 * (reasoning_content) and the answer (content) at the <think> ... </think>
 * block, as docs "Reasoning output" in design/API.md asks.
 *
 * One instance per choice. It is fed, token by token, the token id and the
 * text piece that detok released for it (possibly empty, possibly several
 * characters, possibly part of a tag) and appends text to two buffers:
 *  - In the thought everything goes to reasoning until the end tag
 *    "</think>". When the tokenizer has "</think>" as one token (looked up
 *    at init) the tag is that token id: the tag's text is cut from the piece
 *    released with it, and "</think>" spelled by other tokens stays thought.
 *    Otherwise (no tokenizer, or none with that token) the tag is matched in
 *    the text, a trailing partial match being held back at a piece boundary
 *    until the next piece tells whether it is the tag.
 *  - Outside the thought at the start: if the first non-whitespace text is
 *    "<think>" (a model that opens the block itself), the whitespace and the
 *    tag are dropped and the thought begins; leading whitespace and partial
 *    prefixes of "<think>" are held back until that is decided. Otherwise
 *    everything is content. (The opening tag is matched by text only.)
 *  - Right after "</think>" the answer's leading CR and LF bytes are dropped
 *    (R1 writes "</think>\n\n" before the answer).
 *  - Tags never reach either output. `final` releases what is held back into
 *    the current output (a cut inside the thought keeps it in reasoning).
 * The split is a function of the text (and, in token mode, of which token is
 * the end tag), never of where the pieces break, so streamed pieces joined
 * equal the non-streamed result byte for byte.
 *
 * Known limit in token mode: if a stop-string watcher held back part of the
 * end tag's own text, the held part reaches content later; no stop string
 * that ends a prefix of "</think>" is realistic. */
#ifndef R1D_ENGINE_TEXT_REASONING_H
#define R1D_ENGINE_TEXT_REASONING_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/buf.h"
#include "../../common/status.h"
#include "tokenizer.h"

enum {
  R1D_REASONING_START = 0,   /* before any text: a "<think>" may open it */
  R1D_REASONING_THOUGHT = 1, /* inside the thought */
  R1D_REASONING_ANSWER = 2,  /* after "</think>", dropping leading newlines */
  R1D_REASONING_CONTENT = 3  /* plain content to the end */
};

typedef struct r1d_reasoning {
  int mode;       /* R1D_REASONING_* */
  int32_t end_id; /* the "</think>" token, or -1: the tag is matched as text */
  int tokens;     /* tokens counted as reasoning (see r1d_reasoning_tokens) */
  r1d_buf hold;   /* text held back: leading whitespace, a partial tag */
} r1d_reasoning;

/* 1 when the rendered prompt ends inside a think block: its last "<think>"
 * comes after its last "</think>" (the R1 distill templates end the
 * generation prompt with "<think>\n"); 0 otherwise. */
int r1d_reasoning_prompt_opens(const char *prompt, size_t len);

/* Starts a choice in the thought (start_in_reasoning, usually from
 * r1d_reasoning_prompt_opens) or before it. tok may be NULL (text matching
 * only); it is used only here. Returns 0 (err is for future failures). */
int r1d_reasoning_init(r1d_reasoning *r, const r1d_tokenizer *tok,
                       int start_in_reasoning, r1d_error *err);

/* Feeds token `id` and the text piece detok released with it (len may be
 * 0); `final` marks the choice's last token and releases everything held
 * back. Appends the thought's text to *reasoning and the answer's to
 * *content. Returns 0 or R1D_ENOMEM (outputs may then hold part of it). */
int r1d_reasoning_push(r1d_reasoning *r, int32_t id, const char *text,
                       size_t len, int final, r1d_buf *reasoning,
                       r1d_buf *content);

/* 1 while inside the thought. */
int r1d_reasoning_in_thought(const r1d_reasoning *r);

/* Tokens counted as reasoning (usage.completion_tokens_details.
 * reasoning_tokens): every token pushed while in the thought, or that
 * entered it; so the end tag's token counts, and a model-written "<think>"
 * token counts too. */
int r1d_reasoning_tokens(const r1d_reasoning *r);

void r1d_reasoning_free(r1d_reasoning *r);

#endif
