/* openai.h - what the OpenAI routes share: the parsed request
 * (openai_params.c), the call in flight and its choices (openai_response.c
 * builds streamed chunks and final answers from engine events), and the
 * handlers (routes_openai.c). */
#ifndef R1D_SERVER_OPENAI_H
#define R1D_SERVER_OPENAI_H

#include <jansson.h>

#include "../engine/text/reasoning.h"
#include "gen_job.h"
#include "json_api.h"
#include "server.h"

enum { OAI_MAX_STOP = 8, OAI_MAX_PROMPTS = 64, OAI_MAX_BIAS = 1024 };

/* Sampling and output options common to chat and completions. */
typedef struct oai_params {
  r1d_gen_params gen; /* stop/bias point into the arrays below */
  const char *stop[OAI_MAX_STOP];
  r1d_logit_bias bias[OAI_MAX_BIAS];
  int n;
  int max_tokens_given;
  int stream, include_usage;
  int logprobs;     /* 1: token logprobs wanted */
  int top_logprobs; /* alternatives per token */
  int echo;         /* completions */
  int include_reasoning;
  int reasoning_off;   /* reasoning_effort "none" */
  int thinking_budget; /* -1: none */
} oai_params;

/* Reads every field but the prompt/messages; 0 or -1 with e set. */
int oai_params_parse(r1d_server *s, json_t *body, int chat, oai_params *p,
                     api_error *e);

typedef struct oai_choice {
  r1d_reasoning rs;
  r1d_buf reasoning, content; /* non-stream: the whole answer */
  json_t *lp;                 /* non-stream logprobs (chat: content array;
                         completions: the legacy object) */
  json_t *lp_pending;         /* stream: chat entries not yet sent */
  int finished;
  const char *finish;
  double t_last;
  size_t text_offset; /* completions: characters so far (legacy offsets) */
  /* --log-logprobs: the sampled tokens and their raw logprobs */
  int32_t *tok;
  float *tok_lp;
  size_t n_tok, cap_tok;
} oai_choice;

typedef struct oai_call {
  r1d_server *srv;
  http_exchange *ex; /* NULL once the client is gone */
  gen_job *job;      /* NULL once released */
  int chat;
  oai_params p;
  int n_prompts, n_choices;
  oai_choice *choices;
  char **echo_text;     /* [n_prompts] prompt text for echo (completions) */
  json_t **prompt_lp;   /* [n_prompts] legacy logprobs of the prompt */
  int *prompt_len;      /* [n_prompts] */
  int32_t **prompt_ids; /* [n_prompts] */
  char id[48];
  int64_t created;
  int start_in_thought;
  int prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
  int n_finished;
  int got_first_token;
  char *error;     /* the engine's failure, if any */
  double deadline; /* monotonic; 0: none */
  int done;
  r1d_buf scratch_r, scratch_c;
  /* the interaction log (interaction_log.c) */
  json_t *request;          /* the body as sent; NULL: not logged */
  uint64_t key;             /* storage key, also in the id */
  uint64_t weight_version;  /* of the weights that answer */
  char key_id[64];          /* the API key's id, "" when none */
  double t_start, ttft;     /* monotonic; ttft < 0 until the first token */
  int submitted;            /* the engine has (had) the request */
  int logged;               /* the record was queued (once per call) */
  struct ilog_req *log_req; /* non-NULL: the end waits for this commit */
} oai_call;

/* Response building (openai_response.c). */
int oai_call_start_stream(oai_call *c);
void oai_call_on_events(void *owner, gen_job *j, gen_event *list);
/* Ends the call with an error (timeout, drain): in-stream error or a JSON
 * error answer. */
void oai_call_fail(oai_call *c, int status, const char *type,
                   const char *message, const char *code);
void oai_call_free(oai_call *c);
/* Sends the end of the answer (usage chunk and [DONE], or the whole
 * non-stream reply) once it is stored. */
void oai_call_send_final(oai_call *c);
json_t *oai_usage_json(const oai_call *c);

/* The interaction log (interaction_log.c). Builds the call's record and
 * queues it; with hold, returns 1 when the final bytes must wait for the
 * commit (oai_call_send_final runs then), 0 when they may go now (logging
 * off or not possible). status: "ok", "error", "timeout", "cancelled". */
int oai_call_log(oai_call *c, const char *status, int hold);
/* The call is being freed: a pending record no longer points at it. */
void oai_call_log_detach(oai_call *c);

#endif
