/* fuzz_template.c - libFuzzer harness for r1d_chat_messages_parse and
 * r1d_template_render.
 *
 * The input is a JSON message list. When it parses, it is rendered with
 * every template kind, with and without the generation prompt. Kinds that
 * this build does not know (the list includes ones being added) are
 * skipped. A render either succeeds with a NUL-terminated string or fails
 * with a code and a message. Build: tests/fuzz/build.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/template.h"

static const char *const names[] = {
    "r1-distill", "deepseek-v3",     "qwen3",   "chatml",
    "llama3",     "llama3-instruct", "r1-zero", "llama3.1",
};
#define NNAMES (sizeof names / sizeof names[0])
static r1d_template *tpls[NNAMES];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  for (size_t i = 0; i < NNAMES; i++) {
    r1d_error err = {0};
    /* Odd bos/eos on purpose: the renderers must copy them verbatim. */
    int rc = r1d_template_from_name(names[i], "<bos>", "<eos>", &tpls[i], &err);
    if (rc != R1D_OK && i < 7) {
      fprintf(stderr, "fuzz_template: %s\n", err.msg);
      abort();
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  r1d_chat_message *msgs = NULL;
  size_t n = 0;
  r1d_error err = {0};
  int rc = r1d_chat_messages_parse(text, &msgs, &n, &err);
  free(text);
  if (rc != R1D_OK) {
    if (rc > 0 || err.code != rc || !err.msg[0] || msgs || n) abort();
    return 0;
  }
  if (!msgs || n == 0) abort();
  for (size_t i = 0; i < n; i++)
    if (!msgs[i].role || !msgs[i].content) abort();
  for (size_t k = 0; k < NNAMES; k++) {
    if (!tpls[k]) continue;
    for (int agp = 0; agp < 2; agp++) {
      char *out = NULL;
      r1d_error e2 = {0};
      int r = r1d_template_render(tpls[k], msgs, n, agp, &out, &e2);
      if (r == R1D_OK) {
        if (!out) abort();
        /* ChatML copies every message verbatim. */
        if (strcmp(names[k], "chatml") == 0)
          for (size_t i = 0; i < n; i++)
            if (!strstr(out, msgs[i].content)) abort();
        free(out);
      } else if (r > 0 || out || e2.code != r || !e2.msg[0]) {
        abort();
      }
    }
  }
  free(msgs);
  return 0;
}
