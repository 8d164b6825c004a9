/* template_internal.h - what the chat-template files share: the kinds of
 * template r1d renders (a family plus the switches its published variants
 * differ by), the loaded template, and the fixed strings of the published
 * templates that both the renderers and the recogniser need.
 *
 * Private to engine/text/template*.c; everyone else uses template.h. */
#ifndef R1D_ENGINE_TEXT_TEMPLATE_INTERNAL_H
#define R1D_ENGINE_TEXT_TEMPLATE_INTERNAL_H

#include "template.h"

enum family { FAM_DEEPSEEK, FAM_QWEN3, FAM_CHATML, FAM_LLAMA3, FAM_R1_ZERO };

/* One named kind: a family plus the few switches its published variants
 * differ by. */
typedef struct kind {
  const char *name;
  enum family family;
  int concat_system; /* deepseek: join system messages with "\n\n" (V3); the
                        distill template keeps only the last one */
  int strip_think;   /* deepseek: assistant turns keep text after </think> */
  int think_prompt;  /* deepseek: generation prompt adds "<think>\n" */
  int always_prompt; /* llama3: the first Llama-3 release always appends the
                        assistant header, whatever add_generation_prompt says */
  int date_header;   /* llama3: Llama 3.1's system block with the knowledge
                        cutoff and date, holding the first system message */
} kind;

struct r1d_template {
  const kind *k;
  char *bos; /* never NULL: "" when the tokenizer has none */
  char *eos;
};

/* Fixed pieces of the published templates. */
#define DS_USER "<｜User｜>"
#define DS_ASSISTANT "<｜Assistant｜>"
#define DS_EOS "<｜end▁of▁sentence｜>"
#define QWEN25_DEFAULT_SYSTEM                                                  \
  "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
/* Llama 3.1's system block opening. The template takes the date from a
 * date_string variable that apply_chat_template never sets, so its default is
 * what every caller gets. */
#define LLAMA31_DATE "26 Jul 2024"
#define LLAMA31_SYSTEM                                                         \
  "<|start_header_id|>system<|end_header_id|>\n\n"                             \
  "Cutting Knowledge Date: December 2023\n"                                    \
  "Today Date: " LLAMA31_DATE "\n\n"
#define R1_ZERO_PREAMBLE                                                       \
  "A conversation between User and Assistant. The user asks a question, "      \
  "and the Assistant solves it. The assistant first thinks about the "         \
  "reasoning process in the mind and then provides the user with the "         \
  "answer. The reasoning process and answer are enclosed within <think> "      \
  "</think> and <answer> </answer> tags, respectively, i.e., <think> "         \
  "reasoning process here </think> <answer> answer here </answer>. User: "

/* The kind called `name`, or NULL (template_load.c). */
const kind *tpl_kind_by_name(const char *name);

#endif
