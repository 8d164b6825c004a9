/* template.h - chat templates rendered by hand-written C for the formats r1d
 * serves, equal byte for byte to transformers' apply_chat_template with the
 * published Jinja templates:
 *   r1-distill  DeepSeek-R1 distills (Qwen and Llama flavours): <｜User｜>...
 *               <｜Assistant｜>, generation prompt ends "<think>\n", earlier
 *               assistant turns keep only the text after their last </think>.
 *   deepseek-v3 DeepSeek-V3's own template.
 *   qwen3       Qwen3's ChatML template with its <think> handling.
 *   chatml      plain Qwen2/2.5 ChatML (<|im_start|>role\n...<|im_end|>\n).
 *   llama3      Llama-3 (<|start_header_id|>role<|end_header_id|>\n\n...),
 *               first release: the assistant header is always appended.
 *   llama3-instruct  the later Llama-3 template: header only when asked.
 *   llama3.1    Llama 3.1 and 3.3 Instruct: an opening system block with
 *               "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul
 *               2024\n\n" (the template's default date) and the first
 *               message's text when it is a system one; "ipython" messages
 *               (tool output) fail with R1D_EUNSUPPORTED.
 *   r1-zero     the plain R1-Zero prompt of ../shared/design/RL.md: exactly
 *               one user message, always ending "Assistant:".
 * The kind is recognised from tokenizer_config.json's chat_template.
 * No tools: a "tool" message or tool_calls fail with R1D_EUNSUPPORTED. */
#ifndef R1D_ENGINE_TEXT_TEMPLATE_H
#define R1D_ENGINE_TEXT_TEMPLATE_H

#include <stddef.h>

#include "../../common/status.h"

typedef struct r1d_chat_message {
  const char *role;              /* "system", "user", "assistant" */
  const char *content;           /* never NULL ("" for empty) */
  const char *reasoning_content; /* optional (NULL): an assistant's thoughts */
} r1d_chat_message;

typedef struct r1d_template r1d_template;

/* Reads dir/tokenizer_config.json: chat_template (string, or list of named
 * templates: "default" is used), bos_token and eos_token (string or
 * {"content": ...}). Recognises the template kind; an unknown template fails
 * with R1D_EUNSUPPORTED naming the file. */
int r1d_template_load_dir(const char *dir, r1d_template **out, r1d_error *err);

/* Like r1d_template_load_dir, but with name non-NULL the kind is that name
 * (bos/eos still come from the folder) and chat_template is not read: the
 * override for folders whose template is not recognised. A
 * dir/chat_template.jinja, when present, is used instead of the config's
 * chat_template (as transformers does). */
int r1d_template_load_dir_as(const char *dir, const char *name,
                             r1d_template **out, r1d_error *err);

/* A template by name (list above) with the given bos/eos strings. */
int r1d_template_from_name(const char *name, const char *bos, const char *eos,
                           r1d_template **out, r1d_error *err);
void r1d_template_free(r1d_template *t);
const char *r1d_template_name(const r1d_template *t);
/* The bos/eos strings the template renders ("" when none). */
const char *r1d_template_bos(const r1d_template *t);
const char *r1d_template_eos(const r1d_template *t);

/* Renders messages into a malloc'ed string. add_generation_prompt appends the
 * assistant header (for r1-distill: "<｜Assistant｜><think>\n"). Unknown roles
 * and an empty list fail with R1D_EINVAL. */
int r1d_template_render(const r1d_template *t, const r1d_chat_message *msgs,
                        size_t n, int add_generation_prompt, char **out,
                        r1d_error *err);

/* The text a model generates after r1d_template_render(..., 1) when its
 * turn is `reply` (an assistant message): the thoughts, the answer and the
 * end-of-turn token, as training targets (SFT). Thoughts come from
 * reasoning_content or a <think>...</think> block at the start of content
 * and are kept whole, unlike render(), which drops them from earlier turns:
 *   r1-distill   "R\n</think>\n\nA<｜end▁of▁sentence｜>" (the prompt holds
 *                "<think>\n")
 *   deepseek-v3  content (or "<think>\nR\n</think>\n\nA") + EOS token
 *   qwen3        "<think>\nR\n</think>\n\nA<|im_end|>" (R may be empty)
 *   chatml       content (or the think block) + "<|im_end|>"
 *   llama3*      content trimmed (or the think block) + "<|eot_id|>"
 *   r1-zero      " <think> R </think> <answer> A </answer>" or " " + content,
 *                then the eos string
 * R and A have surrounding newlines removed. R1D_EINVAL if reply is not an
 * assistant message. */
int r1d_template_render_reply(const r1d_template *t,
                              const r1d_chat_message *reply, char **out,
                              r1d_error *err);

/* Parses a JSON array of {"role", "content"[, "reasoning_content"]} from text.
 * content may be a string, null (""), or OpenAI text parts
 * [{"type": "text", "text": ...}] (concatenated); reasoning_content may also
 * be given as "thinking" or "reasoning" (as transformers accepts). Bad shapes
 * fail with R1D_EINVAL, tool_calls and non-text parts with R1D_EUNSUPPORTED.
 * On success *msgs (and the strings they point to) live in one allocation
 * freed with free(*msgs). */
int r1d_chat_messages_parse(const char *json_text, r1d_chat_message **msgs,
                            size_t *n, r1d_error *err);

#endif
