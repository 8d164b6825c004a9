/* feedback_pairs.h - preference pairs (chosen/rejected answers to one
 * prompt) built from the interactions r1d serve logged and the feedback
 * users gave on them (POST /v1/feedback), for the reward model
 * (rl/reward_model.h: `r1d rm --data-dir`, the server's online trainer,
 * `r1d logs export --format pairs`).
 *
 * Rules, over successful chat answers (object "chat.completion", status
 * "ok"); feedback names an interaction, not a choice, so it is taken to be
 * about choice 0 (the only one unless the request asked for n > 1):
 *  (a) "preferred": each feedback with a preferred text gives
 *      chosen = that text, rejected = the logged answer (its content, the
 *      text after the thought), source "preferred";
 *  (b) "ratings": answers to the same prompt (the request's messages, with
 *      earlier turns' reasoning dropped, compared as canonical JSON) whose
 *      latest ratings differ give one pair for every such couple, the
 *      higher-rated answer chosen, source "ratings"; at most
 *      R1D_FEEDBACK_PAIRS_PER_PROMPT per prompt (the most distant ratings
 *      first), so one popular prompt cannot fill the set;
 *  (c) a rating on an answer with no other rated answer to its prompt gives
 *      nothing (a lone thumbs-up says nothing about what is better).
 * Ratings compare as numbers (the API takes -1..1 thumbs or 1..5 stars;
 * a deployment uses one scale). Pairs whose two texts are equal are
 * dropped; duplicates of an earlier pair (same prompt and texts) too.
 *
 * Each pair is {"prompt": [messages], "chosen": text, "rejected": text,
 * "source": "preferred"|"ratings", "ids": [the interaction ids: for
 * ratings chosen's then rejected's], "ratings": [chosen's, rejected's]
 * (ratings only)}, oldest interactions first: what r1d_pref_pair_from_json
 * and TRL's RewardTrainer (prompt + string completions) read. */
#ifndef R1D_STORAGE_FEEDBACK_PAIRS_H
#define R1D_STORAGE_FEEDBACK_PAIRS_H

#include <jansson.h>

#include "db.h"

enum { R1D_FEEDBACK_PAIRS_PER_PROMPT = 16 };

/* Builds the pairs in one read transaction into *out, a new JSON array
 * (empty when there is nothing to pair). max_pairs > 0 stops there; <= 0:
 * no limit. Errors come from storage (a record that is not JSON is
 * skipped, as `r1d logs export` does). */
int r1d_feedback_pairs_collect(r1d_db *db, long max_pairs, json_t **out,
                               r1d_error *err);

#endif
