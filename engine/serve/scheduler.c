/* scheduler.c - what runs in the next step (continuous batching).
 *
 * Each step has a token budget (max_batch_tokens) and a sequence cap
 * (max_num_seqs). First, waiting interactive work preempts running
 * background work that holds the seats or blocks it needs (pass 0). Then the
 * plan fills the step in three passes, each in urgency order (priority, then
 * arrival, then choice index):
 *   1. running sequences that need one token (decode first, so streaming
 *      latency does not depend on how many prompts are arriving);
 *   2. running sequences in the middle of a chunked prefill;
 *   3. waiting sequences (new or preempted): prefix-cache match, then a
 *      first chunk of their prompt. The first that does not fit stops the
 *      pass, so later arrivals never overtake it.
 * A step has at most max_num_seqs logits rows (the runner's buffer): a
 * sequence computing prompt logprobs needs one per prompt position, so its
 * chunk is cut to the rows the sequences before it left.
 * When a running sequence needs KV blocks the pool does not have, less
 * urgent running sequences that are not part of this step are preempted:
 * their blocks are freed and they go back to the waiting queue, to be
 * recomputed later (their full blocks usually come back from the prefix
 * cache). If none is left, the sequence itself waits. The most urgent
 * sequence can therefore always run, so a request that fits alone never
 * fails.
 *
 * Blocks freed by a preemption may be handed to another sequence in the same
 * step; that is safe because the runner performs copy-on-write copies before
 * any KV write of the step, and a preempted sequence has no rows in it. */
#include <string.h>

#include "engine_internal.h"

int seq_before(const eng_seq *a, const eng_seq *b) {
  if (a->req->priority != b->req->priority)
    return a->req->priority < b->req->priority;
  if (a->req->arrival != b->req->arrival)
    return a->req->arrival < b->req->arrival;
  return a->index < b->index;
}

void seq_list_insert(seq_list *l, eng_seq *s) {
  eng_seq *after = l->tail; /* new work usually goes last */
  while (after && seq_before(s, after))
    after = after->prev;
  s->prev = after;
  s->next = after ? after->next : l->head;
  if (s->next)
    s->next->prev = s;
  else
    l->tail = s;
  if (after)
    after->next = s;
  else
    l->head = s;
  l->n++;
}

void seq_list_remove(seq_list *l, eng_seq *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    l->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    l->tail = s->prev;
  s->prev = s->next = NULL;
  l->n--;
}

void scheduler_preempt(r1d_engine *e, eng_seq *s) {
  r1d_kv_seq_release(e->pool, &s->kv);
  seq_list_remove(&e->running, s);
  s->state = SEQ_WAITING;
  seq_list_insert(&e->waiting, s);
  e->preemptions++;
}

/* The least urgent running sequence outside this step that is less urgent
 * than s, or NULL. */
static eng_seq *pick_victim(r1d_engine *e, const eng_seq *s) {
  for (eng_seq *v = e->running.tail; v; v = v->prev) {
    if (v == s || !seq_before(s, v)) return NULL;
    if (!v->scheduled) return v;
  }
  return NULL;
}

/* Seats taken: running sequences, plus the choices an n-sample request will
 * fork into once its prompt is done (they hold a seat from admission on). */
static int seats_used(const r1d_engine *e) {
  int used = e->running.n;
  for (const eng_seq *s = e->running.head; s; s = s->next)
    if (s->req->n > 1 && !s->req->forked) used += s->req->n - 1;
  return used;
}

typedef struct plan {
  r1d_batch *b;
  int budget; /* tokens left */
  int n_copies;
} plan;

/* Gives s slots for its next `chunk` tokens and lays them into the batch. */
static int add_to_batch(r1d_engine *e, plan *p, eng_seq *s, int chunk) {
  r1d_batch *b = p->b;
  int start = s->kv.n_tokens, rows = b->n_tokens;
  r1d_kv_copy cp;
  int n_cp = 0;
  int rc =
      r1d_kv_seq_append(e->pool, &s->kv, chunk, e->b_slots + rows, &cp, &n_cp);
  if (rc) return rc;
  if (n_cp) {
    e->b_copies[2 * p->n_copies] = cp.src;
    e->b_copies[2 * p->n_copies + 1] = cp.dst;
    p->n_copies++;
  }
  int t = e->n_b_seqs;
  int32_t *table = e->b_tables + (size_t)t * e->max_blocks_per_seq;
  memcpy(table, s->kv.blocks, (size_t)s->kv.n_blocks * sizeof(int32_t));
  for (int i = 0; i < chunk; i++) {
    e->b_ids[rows + i] = s->tokens[start + i];
    e->b_pos[rows + i] = start + i;
    e->b_q_seq[rows + i] = t;
  }
  if (start + chunk - 1 > b->max_pos) b->max_pos = start + chunk - 1;
  s->logit_row = -1;
  s->plp_n = 0;
  int done = start + chunk == s->n_tokens;
  if (seq_wants_plp(s)) {
    /* every position whose next token is a prompt token; nothing has been
     * generated yet, so the last position predicts the first new token */
    s->plp_row0 = b->n_logits;
    s->plp_pos0 = start;
    s->plp_n = done ? chunk - 1 : chunk;
    for (int i = 0; i < s->plp_n; i++)
      e->b_logit_rows[b->n_logits++] = rows + i;
  }
  if (done) {
    e->b_logit_rows[b->n_logits] = rows + chunk - 1;
    s->logit_row = b->n_logits++;
  }
  s->scheduled = 1;
  e->b_seqs[e->n_b_seqs++] = s;
  b->n_tokens += chunk;
  b->n_seqs = e->n_b_seqs;
  p->budget -= chunk;
  return 0;
}

/* The part of a `chunk` of s's `pending` tokens whose logits rows fit the
 * step (runner limit: max_num_seqs rows), or 0 when none does. A sequence
 * computing prompt logprobs takes a row per token; any other one a row only
 * for the chunk that ends its known tokens. */
static int fit_logit_rows(const r1d_engine *e, const plan *p, const eng_seq *s,
                          int chunk, int pending) {
  int rows_left = e->cfg.max_num_seqs - p->b->n_logits;
  if (seq_wants_plp(s)) return chunk < rows_left ? chunk : rows_left;
  return chunk == pending && rows_left == 0 ? 0 : chunk;
}

/* Passes 1 and 2 over the running list. */
static int plan_running(r1d_engine *e, plan *p, int decode_pass) {
  eng_seq *next;
  for (eng_seq *s = e->running.head; s; s = next) {
    next = s->next;
    if (s->scheduled) continue;
    int pending = s->n_tokens - s->kv.n_tokens;
    if (decode_pass != (pending == 1)) continue;
    if (p->budget == 0 || e->n_b_seqs == e->cfg.max_num_seqs) return 0;
    int chunk = pending < p->budget ? pending : p->budget;
    chunk = fit_logit_rows(e, p, s, chunk, pending);
    if (chunk == 0) continue;
    int need = r1d_kv_seq_blocks_needed(e->pool, &s->kv, chunk);
    while (need > r1d_kv_pool_available(e->pool)) {
      eng_seq *v = pick_victim(e, s);
      if (!v) break;
      if (v == next) next = v->next;
      scheduler_preempt(e, v);
      need = r1d_kv_seq_blocks_needed(e->pool, &s->kv, chunk);
    }
    if (need > r1d_kv_pool_available(e->pool)) {
      scheduler_preempt(e, s); /* more urgent work holds the pool */
      continue;
    }
    int rc = add_to_batch(e, p, s, chunk);
    if (rc) return rc;
  }
  return 0;
}

/* Pass 3: admits waiting sequences in order while they fit. */
static int plan_waiting(r1d_engine *e, plan *p) {
  r1d_kv_stats st;
  r1d_kv_pool_stats(e->pool, &st);
  /* keep a little slack while others run, so an admission does not force
   * an immediate preemption (vLLM's 1% watermark) */
  int watermark = st.total / 100 > 1 ? st.total / 100 : 1;
  eng_seq *next;
  for (eng_seq *s = e->waiting.head; s; s = next) {
    next = s->next;
    if (p->budget == 0 || e->n_b_seqs == e->cfg.max_num_seqs) break;
    /* an n-sample request will fork into n running sequences */
    int seats = (s->req->n > 1 && !s->req->forked) ? s->req->n : 1;
    int used = seats_used(e);
    if (used > 0 && used + seats > e->cfg.max_num_seqs) break;
    /* check the fit first, so a sequence that must wait attaches nothing
     * (and counts no prefix hit). Prompt logprobs need the logits of every
     * prompt position, so cached blocks (never computed for this request)
     * are of no use to them. */
    int plp = seq_wants_plp(s);
    int idle = 0;
    int hit =
        plp ? 0
            : r1d_kv_pool_peek_prefix(e->pool, s->tokens, s->n_tokens, &idle);
    int pending = s->n_tokens - hit;
    int chunk = pending < p->budget ? pending : p->budget;
    chunk = fit_logit_rows(e, p, s, chunk, pending);
    if (chunk == 0) break;
    int bs = e->cfg.block_size;
    int need = (chunk + bs - 1) / bs + idle;
    int slack = e->running.n > 0 ? watermark : 0;
    if (need + slack > r1d_kv_pool_available(e->pool)) break;
    if (!plp) r1d_kv_seq_match_prefix(e->pool, &s->kv, s->tokens, s->n_tokens);
    if (!s->admitted) {
      s->cached_tokens = hit;
      s->admitted = 1;
    }
    seq_list_remove(&e->waiting, s);
    s->state = SEQ_RUNNING;
    seq_list_insert(&e->running, s);
    int rc = add_to_batch(e, p, s, chunk);
    if (rc) return rc;
  }
  return 0;
}

/* The least urgent running sequence whose priority class is worse than
 * `prio`, or NULL. */
static eng_seq *worse_priority_victim(r1d_engine *e, r1d_priority prio) {
  eng_seq *v = e->running.tail;
  return v && v->req->priority > prio ? v : NULL;
}

/* Pass 0: an interactive request must not wait behind background work that
 * holds the sequence seats or the blocks. Waiting sequences of a better
 * priority class than some running one preempt the least urgent of those
 * until they would fit (an estimate: their first chunk without prefix
 * hits). Sequences of the same class never preempt each other here, so
 * equals do not thrash. */
static void preempt_for_priority(r1d_engine *e) {
  int seats_left = e->cfg.max_num_seqs - seats_used(e);
  int blocks_left = r1d_kv_pool_available(e->pool);
  int bs = e->cfg.block_size;
  for (eng_seq *s = e->waiting.head; s; s = s->next) {
    if (!worse_priority_victim(e, s->req->priority)) return;
    int seats = (s->req->n > 1 && !s->req->forked) ? s->req->n : 1;
    int chunk = s->n_tokens < e->cfg.max_batch_tokens ? s->n_tokens
                                                      : e->cfg.max_batch_tokens;
    int blocks = (chunk + bs - 1) / bs + 1;
    while (seats > seats_left || blocks > blocks_left) {
      eng_seq *v = worse_priority_victim(e, s->req->priority);
      if (!v) return;
      int before_seats = seats_used(e);
      blocks_left -= r1d_kv_pool_available(e->pool);
      scheduler_preempt(e, v);
      blocks_left += r1d_kv_pool_available(e->pool);
      seats_left += before_seats - seats_used(e);
    }
    seats_left -= seats;
    blocks_left -= blocks;
  }
}

int scheduler_plan(r1d_engine *e, r1d_batch *b) {
  memset(b, 0, sizeof *b);
  e->n_b_seqs = 0;
  plan p = {.b = b, .budget = e->cfg.max_batch_tokens, .n_copies = 0};
  preempt_for_priority(e);
  int rc = plan_running(e, &p, 1);
  if (!rc) rc = plan_running(e, &p, 0);
  if (!rc) rc = plan_waiting(e, &p);
  if (rc) return rc;
  b->ids = e->b_ids;
  b->pos = e->b_pos;
  b->q_seq = e->b_q_seq;
  b->slots = e->b_slots;
  b->block_tables = e->b_tables;
  b->logit_rows = e->b_logit_rows;
  b->n_copies = p.n_copies;
  b->copies = e->b_copies;
  return 0;
}
