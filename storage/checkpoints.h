/* checkpoints.h - the registry of weight versions (table checkpoints, keys
 * in db.h): every checkpoint a trainer writes, with what it came from, how
 * it scored and whether it is live. The hot swap and rollback of the online
 * trainer read it; `r1d sft --data-dir` and GET /admin/v1/checkpoints are
 * its first writer and reader.
 *
 * A record (JSON, keys in this order):
 *   {"version": "ckpt-" + 16 hex of its time key,
 *    "path": the folder, absolute,
 *    "files": [{"name", "bytes", "sha256"}, ...]  by name; every regular
 *             file of the folder but optimizer.bin (the trainer's moments:
 *             twice the weights' size and never read by a server),
 *    "kind": "sft" | "pretrain" | "grpo" | ..., "step": N or null,
 *    "train_loss", "eval_loss": numbers or null,
 *    "parent": the version it was trained from, or null,
 *    "base": the model folder the run started from, or null,
 *    "job": a job id or null, "created": unix seconds,
 *    "status": "candidate" | "live" | "retired" | "rejected",
 *    "eval": {} scores added later by r1d_ckpt_update}
 * The hashes let a loader prove the folder is still what was registered
 * (r1d_ckpt_verify) before it serves or swaps it in. */
#ifndef R1D_STORAGE_CHECKPOINTS_H
#define R1D_STORAGE_CHECKPOINTS_H

#include <jansson.h>
#include <stdint.h>

#include "db.h"

enum { R1D_CKPT_VERSION_MAX = 24 }; /* "ckpt-" + 16 hex + NUL, rounded up */

typedef struct r1d_ckpt_info {
  const char *path;             /* the checkpoint folder */
  const char *kind;             /* what made it; NULL: "unknown" */
  long step;                    /* < 0: none */
  double train_loss, eval_loss; /* not finite: null */
  const char *parent;           /* a version or NULL */
  const char *base;             /* a folder or NULL */
  const char *job;              /* NULL: none */
} r1d_ckpt_info;

/* "ckpt-" + 16 hex digits of key. */
void r1d_ckpt_version(uint64_t key, char out[R1D_CKPT_VERSION_MAX]);
/* The key of a version string; R1D_EINVAL when it is not one. */
int r1d_ckpt_version_key(const char *version, uint64_t *key);

/* The folder's file list as a record holds it (reads and hashes every file
 * it lists). R1D_EIO naming the file that cannot be read; R1D_EINVAL when
 * dir holds no model.safetensors or model.safetensors.index.json. */
int r1d_ckpt_files(const char *dir, json_t **out, r1d_error *err);

/* Hashes in's folder and stores a new "candidate" record in one write.
 * version (may be NULL) receives its version. */
int r1d_ckpt_register(r1d_db *db, const r1d_ckpt_info *in,
                      char version[R1D_CKPT_VERSION_MAX], r1d_error *err);

/* The record of version as parsed JSON (*out owned by the caller);
 * R1D_ENOTFOUND when there is none, R1D_EINVAL when version is malformed. */
int r1d_ckpt_get(r1d_txn *t, const char *version, json_t **out, r1d_error *err);
/* The newest record whose path is path (made absolute first), or
 * R1D_ENOTFOUND. */
int r1d_ckpt_find_path(r1d_txn *t, const char *path, json_t **out,
                       r1d_error *err);

/* Records newest first, at most limit (0: all), only those with status
 * status when it is not NULL, as a new JSON array. */
int r1d_ckpt_list(r1d_txn *t, const char *status, size_t limit, json_t **out,
                  r1d_error *err);

/* Sets version's status (one of the four names) and merges the members of
 * eval (may be NULL) into its "eval" object. */
int r1d_ckpt_update(r1d_txn *t, const char *version, const char *status,
                    json_t *eval, r1d_error *err);

/* Re-hashes the record's files: R1D_EINVAL naming the first file that is
 * missing, has another size or another hash. */
int r1d_ckpt_verify(const json_t *rec, r1d_error *err);

#endif
