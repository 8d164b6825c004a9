/* task_gen.h - built-in generators of rule-verifiable tasks, for `r1d grpo
 * --task-gen` and `r1d tasks gen`: seeded, each task unique, train and eval
 * splits that never share a problem. The tasks have the shape
 * storage/tasks.h stores ({"id", "prompt", "checker", "split", "source"}),
 * so they import, export and train like any other.
 *
 *   addition[:D]    a+b with D-digit operands (default 2; 1..9): carries
 *                   at every level; math checker
 *   multistep[:N]   an expression of N operations (default 3; 1..8) over
 *                   + - * and one- or two-digit numbers, left to right with
 *                   the usual precedence; math checker
 *   countdown[:N]   N numbers (default 4; 2..6) from 1..25 and a target
 *                   reachable with each used once (+ - * / with exact
 *                   division); countdown checker */
#ifndef R1D_RL_TASK_GEN_H
#define R1D_RL_TASK_GEN_H

#include <stdint.h>

#include <jansson.h>

#include "../common/status.h"

/* A new JSON array of n_train tasks of split "train" then n_eval of split
 * "eval". R1D_EINVAL names an unknown generator or a bad level; R1D_ERANGE
 * when the generator has fewer distinct problems than asked for. */
int r1d_task_gen(const char *spec, int n_train, int n_eval, uint64_t seed,
                 json_t **out, r1d_error *err);

#endif
