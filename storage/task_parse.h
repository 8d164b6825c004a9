/* task_parse.h - private to storage/: what the tasks table (tasks.c) needs
 * from the task parser (task_parse.c) beyond the public tasks.h, which
 * declares the parser's own entry points (r1d_tasks_parse,
 * r1d_task_batch_free). These three keep the knowledge of the stored form
 * (the checker type names, the generated id's placeholder and where it
 * sits in the JSON) and of a batch's error list in task_parse.c. */
#ifndef R1D_STORAGE_TASK_PARSE_H
#define R1D_STORAGE_TASK_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "tasks.h"

/* The checker type names, in the order stats lists them; *n gets how
 * many. Static storage: not to be freed. */
const char *const *r1d_task_checker_types(size_t *n);

/* Appends a line error to b, msg cut to fit r1d_task_error.msg. 0 or
 * R1D_ENOMEM. */
int r1d_task_batch_add_error(r1d_task_batch *b, size_t line, int code,
                             const char *msg);

/* Writes the id made from time key `key` ("task-" + 16 hex digits) over a
 * generated id (task->id_generated) in task->id and in task->json, in
 * place: same length, so writing it again in a retried store is harmless. */
void r1d_task_set_generated_id(r1d_task *task, uint64_t key);

#endif
